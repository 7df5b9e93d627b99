/** The pure parts of the mount: the libfuse option string and the mount-process arguments. */
import { buildFuseOptionString, DEFAULT_HOST_OPTIONS } from './fuse-host';
import { parseMountArgs } from './mount-process';

describe('the libfuse option string', () => {
  it('asks for big writes of 128 KiB, the cache timeouts, and no kernel permission checks', () => {
    const s = buildFuseOptionString({ ...DEFAULT_HOST_OPTIONS, attrTimeoutS: 0.5, entryTimeoutS: 2, negativeTimeoutS: 0 });
    const opts = s.replace(/^-o/, '').split(',');
    expect(opts).toEqual(expect.arrayContaining(['big_writes', 'max_write=131072', 'attr_timeout=0.5', 'entry_timeout=2', 'negative_timeout=0', 'use_ino']));
    expect(opts).not.toContain('default_permissions');
    expect(opts).not.toContain('allow_other');
  });

  it('adds allow_other and ro only when asked', () => {
    const opts = buildFuseOptionString({ ...DEFAULT_HOST_OPTIONS, allowOther: true, readOnly: true }).split(',');
    expect(opts).toEqual(expect.arrayContaining(['allow_other', 'ro']));
  });

  it('rejects a negative or absurd timeout and an fsname that would inject options', () => {
    expect(() => buildFuseOptionString({ ...DEFAULT_HOST_OPTIONS, attrTimeoutS: -1 })).toThrow(/attrTimeoutS/);
    expect(() => buildFuseOptionString({ ...DEFAULT_HOST_OPTIONS, entryTimeoutS: Number.NaN })).toThrow(/entryTimeoutS/);
    expect(() => buildFuseOptionString({ ...DEFAULT_HOST_OPTIONS, fsName: 'x,allow_other' })).toThrow(/fsName/);
  });
});

describe('mount-process arguments', () => {
  it('parses the directory, backend and options', () => {
    const a = parseMountArgs(['/tmp/m', '--backend', 'memory', '--attr-timeout-s', '0', '--allow-other']);
    expect(a.mountpoint).toBe('/tmp/m');
    expect(a.host.attrTimeoutS).toBe(0);
    expect(a.host.allowOther).toBe(true);
    expect(a.host.entryTimeoutS).toBe(1);
    expect(a.readFrom).toBe('leader');
    expect(parseMountArgs(['/tmp/m', '--servers', '127.0.0.1:1', '--read-from', 'first-listed']).readFrom).toBe('first-listed');
  });

  it('names the bad argument', () => {
    expect(() => parseMountArgs([])).toThrow(/usage/);
    expect(() => parseMountArgs(['/m', '--backend', 'cluster'])).toThrow(/--backend/);
    expect(() => parseMountArgs(['/m', '--backend', 'memory', '--attr-timeout-s', 'soon'])).toThrow(/--attr-timeout-s/);
    expect(() => parseMountArgs(['/m', '--backend', 'memory', '--bogus'])).toThrow(/--bogus/);
    expect(() => parseMountArgs(['/m', '--servers', '127.0.0.1:1', '--read-from', 'nearest'])).toThrow(/--read-from must be leader or first-listed, got "nearest"/);
  });
});
