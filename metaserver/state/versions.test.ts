/**
 * Versions with inline content on a real LevelDB folder: open pins a version,
 * commits fast-forward, rebase disjoint writes, resolve overlaps by lww or
 * reject (nothing lost either way), O_APPEND floats to the current end, and a
 * retried commit makes one version.
 */
import { INLINE_LIMIT_BYTES } from '../rules/commit';
import { Errno } from '../rules/errno';
import { MutationBody, encodeCommand } from './commands';
import { CommandResult } from './meta-state-machine';
import { OpenResult } from './fh-ops';
import { ROOT_HANDLE } from './records';
import { Harness, ROOT, TestSession } from './testing';

const errnoOf = (r: { ok: boolean; errno?: number }) => (r.ok ? 0 : r.errno);
const b64 = (text: string) => Buffer.from(text).toString('base64');

let h: Harness;
let s: TestSession;
beforeEach(async () => {
  h = await Harness.open();
  s = await h.openSession(ROOT);
});
afterEach(async () => {
  await h.destroy();
});

async function makeFile(name = 'f'): Promise<number> {
  return (await s.must({ op: 'create', parent: ROOT_HANDLE, name, mode: 0o644, exclusive: true })).attrs.handle;
}

function openBody(handle: number, append = false): MutationBody {
  return { op: 'open', handle, read: true, write: true, append };
}

async function open(handle: number, append = false, session = s): Promise<OpenResult> {
  return session.must<OpenResult>(openBody(handle, append));
}

function commitBody(fh: OpenResult | number, baseVersion: number, writes: Array<[number, string]>, newSize: number, policy: 'lww' | 'reject' = 'lww'): MutationBody {
  return { op: 'commitVersion', fh: typeof fh === 'number' ? fh : fh.fh, baseVersion, written: writes.map(([offset, text]) => ({ offset, dataBase64: b64(text) })), newSize, policy };
}

async function commit(fh: OpenResult, baseVersion: number, writes: Array<[number, string]>, newSize: number, policy: 'lww' | 'reject' = 'lww'): Promise<CommandResult> {
  return s.run(commitBody(fh, baseVersion, writes, newSize, policy));
}

async function textOf(handle: number, version: number): Promise<string> {
  const got = await h.machine.query.getVersion(ROOT, handle, version);
  if (!got.ok) throw new Error(got.message);
  return Buffer.from(got.value.bytes).toString();
}

async function readFh(fh: OpenResult): Promise<{ version: number; text: string }> {
  const got = await h.machine.query.readThroughFh(fh.fh, s.id);
  if (!got.ok) throw new Error(got.message);
  return { version: got.value.info.version, text: Buffer.from(got.value.bytes).toString() };
}

describe('a new regular file', () => {
  it('starts with version 1, the empty file, written by create; the first commit makes version 2', async () => {
    const file = await makeFile();
    expect((await h.machine.query.getattr(file)).ok && (await h.machine.query.getattr(file))).toMatchObject({ value: { headVersion: 1, sizeBytes: 0 } });
    const fh = await open(file);
    expect(fh).toMatchObject({ version: 1, sizeBytes: 0 });
    const first = await commit(fh, 1, [[0, 'hello']], 5);
    expect(first).toEqual({ ok: true, value: { kind: 'fast-forward', version: 2, sizeBytes: 5 } });
    const listed = await h.machine.query.listVersions(ROOT, file);
    expect(listed.ok && listed.value.map((v) => [v.version, v.kind, v.sizeBytes, v.baseVersion])).toEqual([[1, 'create', 0, 0], [2, 'fast-forward', 5, 1]]);
  });
});

describe('committing through an fh', () => {
  it('fast-forwards: the new version holds the bytes, the inode takes its size, times and head, the fh moves to it', async () => {
    const file = await makeFile();
    const fh = await open(file);
    h.nowMs += 5_000;
    await commit(fh, 1, [[0, 'abcdef']], 6);
    h.nowMs += 5_000;
    expect(await commit(fh, 2, [[2, 'XY']], 6)).toMatchObject({ ok: true, value: { kind: 'fast-forward', version: 3 } });
    expect(await textOf(file, 3)).toBe('abXYef');
    expect(await textOf(file, 2)).toBe('abcdef');
    const attrs = await h.machine.query.getattr(file);
    expect(attrs.ok && attrs.value).toMatchObject({ headVersion: 3, sizeBytes: 6, mtimeMs: h.nowMs, ctimeMs: h.nowMs });
    expect(await readFh(fh)).toEqual({ version: 3, text: 'abXYef' });
    const v3 = await h.machine.query.getVersion(ROOT, file, 3);
    expect(v3.ok && v3.value.info).toMatchObject({ commitTimeMs: h.nowMs, mtimeMs: h.nowMs, sessionId: s.id, fh: fh.fh, baseVersion: 2, conflict: false });
  });

  it('keeps reads through an fh on its pinned version after another fh commits', async () => {
    const file = await makeFile();
    const writer = await open(file);
    await commit(writer, 1, [[0, 'first']], 5);
    const reader = await open(file);
    expect(reader.version).toBe(2);
    await commit(writer, 2, [[0, 'SECOND']], 6);
    expect(await readFh(reader)).toEqual({ version: 2, text: 'first' });
    expect(await readFh(writer)).toEqual({ version: 3, text: 'SECOND' });
  });

  it('rebases two fhs that wrote disjoint ranges from one base: the result holds both', async () => {
    const file = await makeFile();
    const setup = await open(file);
    await commit(setup, 1, [[0, 'aaaaaaaaaa']], 10);
    const one = await open(file);
    const two = await open(file);
    expect(await commit(one, 2, [[0, 'XX']], 10)).toMatchObject({ ok: true, value: { kind: 'fast-forward', version: 3 } });
    expect(await commit(two, 2, [[7, 'YYY']], 10)).toMatchObject({ ok: true, value: { kind: 'rebase', version: 4 } });
    expect(await textOf(file, 4)).toBe('XXaaaaaYYY');
    expect(await readFh(two)).toEqual({ version: 4, text: 'XXaaaaaYYY' });
  });

  it('under lww makes the later commit head, keeps numbers gap-free and the loser readable in history, marked conflict', async () => {
    const file = await makeFile();
    const setup = await open(file);
    await commit(setup, 1, [[0, '0123456789']], 10);
    const one = await open(file);
    const two = await open(file);
    await commit(one, 2, [[2, 'AAAA']], 10);
    const late = await commit(two, 2, [[4, 'BBBB']], 10, 'lww');
    expect(late).toEqual({ ok: true, value: { kind: 'conflict-lww', version: 4, sizeBytes: 10, conflictVersion: 3 } });
    expect(await textOf(file, 4)).toBe('01AABBBB89');
    expect(await textOf(file, 3)).toBe('01AAAA6789');
    const listed = await h.machine.query.listVersions(ROOT, file);
    if (!listed.ok) throw new Error(listed.message);
    expect(listed.value.map((v) => v.version)).toEqual([1, 2, 3, 4]);
    expect(listed.value[2]).toMatchObject({ conflict: true, lostToVersion: 4 });
    expect(listed.value[3]).toMatchObject({ conflict: false, overwroteVersion: 3 });
  });

  it('under reject answers EBUSY, leaves the head alone and keeps the fh\'s content as a readable conflict copy', async () => {
    const file = await makeFile();
    const setup = await open(file);
    await commit(setup, 1, [[0, '0123456789']], 10);
    const one = await open(file);
    const two = await open(file);
    await commit(one, 2, [[2, 'AAAA']], 10);
    const rejected = await commit(two, 2, [[4, 'BBBB']], 10, 'reject');
    expect(errnoOf(rejected)).toBe(Errno.EBUSY);
    expect(rejected).toMatchObject({ conflictCopy: 1, headVersion: 3 });
    expect(!rejected.ok && rejected.message).toMatch(/conflict copy 1/);
    const attrs = await h.machine.query.getattr(file);
    expect(attrs.ok && attrs.value.headVersion).toBe(3);
    const copy = await h.machine.query.getConflictCopy(ROOT, file, 1);
    if (!copy.ok) throw new Error(copy.message);
    expect(Buffer.from(copy.value.bytes).toString()).toBe('0123BBBB89');
    expect(copy.value.info).toMatchObject({ baseVersion: 2, lostToVersion: 3, fh: two.fh, sessionId: s.id });
    expect(await readFh(two)).toEqual({ version: 2, text: '0123456789' });
    const copies = await h.machine.query.listConflictCopies(ROOT, file);
    expect(copies.ok && copies.value.map((c) => c.copy)).toEqual([1]);
  });

  it('rebases an O_APPEND commit onto the current end of file', async () => {
    const file = await makeFile();
    const setup = await open(file);
    await commit(setup, 1, [[0, 'log:']], 4);
    const appender = await open(file, true);
    const other = await open(file, true);
    await commit(other, 2, [[4, 'one;']], 8);
    expect(await commit(appender, 2, [[4, 'two;']], 8)).toMatchObject({ ok: true, value: { kind: 'rebase', version: 4, sizeBytes: 12 } });
    expect(await textOf(file, 4)).toBe('log:one;two;');
  });

  it('answers a retried commit with the first answer and makes one version', async () => {
    const file = await makeFile();
    const fh = await open(file);
    const first = await commit(fh, 1, [[0, 'once']], 4);
    const retry = await s.run(commitBody(fh, 1, [[0, 'once']], 4), s.sequence);
    expect(retry).toEqual(first);
    const listed = await h.machine.query.listVersions(ROOT, file);
    expect(listed.ok && listed.value.map((v) => v.version)).toEqual([1, 2]);
  });

  it('makes no version for a commit that changes nothing', async () => {
    const file = await makeFile();
    const fh = await open(file);
    expect(await commit(fh, 1, [], 0)).toEqual({ ok: true, value: { kind: 'no-change', version: 1, sizeBytes: 0 } });
    const attrs = await h.machine.query.getattr(file);
    expect(attrs.ok && attrs.value.headVersion).toBe(1);
  });

  it('refuses inline content over the inline limit with EFBIG (larger content is committed as blocks), a wrong base with EINVAL, and changes nothing', async () => {
    const file = await makeFile();
    const fh = await open(file);
    const big = 'x'.repeat(INLINE_LIMIT_BYTES + 1);
    const tooBig = await commit(fh, 1, [[0, big]], big.length);
    expect(errnoOf(tooBig)).toBe(Errno.EFBIG);
    expect(!tooBig.ok && tooBig.message).toMatch(/commit it as blocks/);
    expect(errnoOf(await commit(fh, 1, [], INLINE_LIMIT_BYTES + 1))).toBe(Errno.EFBIG);
    expect(errnoOf(await commit(fh, 7, [[0, 'a']], 1))).toBe(Errno.EINVAL);
    expect(errnoOf(await commit(fh, 1, [[3, 'a']], 2))).toBe(Errno.EINVAL);
    const listed = await h.machine.query.listVersions(ROOT, file);
    expect(listed.ok && listed.value).toHaveLength(1);
  });

  it('answers ENOENT for a version the file does not have', async () => {
    const file = await makeFile();
    expect(errnoOf(await h.machine.query.getVersion(ROOT, file, 2))).toBe(Errno.ENOENT);
    expect(errnoOf(await h.machine.query.getVersion(ROOT, file, 0))).toBe(Errno.EINVAL);
  });
});

describe('truncating through setattr', () => {
  it('makes the next version from the head cut or zero-extended, so getattr and the history agree', async () => {
    const file = await makeFile();
    const fh = await open(file);
    await commit(fh, 1, [[0, 'abcdef']], 6);
    h.nowMs += 1_000;
    expect(await s.run({ op: 'setattr', handle: file, sizeBytes: 3 })).toMatchObject({ ok: true, value: { sizeBytes: 3, headVersion: 3, mtimeMs: h.nowMs } });
    expect(await textOf(file, 3)).toBe('abc');
    await s.must({ op: 'setattr', handle: file, sizeBytes: 5 });
    expect(await textOf(file, 4)).toBe('abc\0\0');
    await s.must({ op: 'setattr', handle: file, sizeBytes: 5 });
    const listed = await h.machine.query.listVersions(ROOT, file);
    expect(listed.ok && listed.value.map((v) => [v.version, v.kind])).toEqual([[1, 'create'], [2, 'fast-forward'], [3, 'truncate'], [4, 'truncate']]);
    // Past the inline limit the version becomes blocks, whose first block only the leader can build from the inline head.
    expect(await s.run({ op: 'setattr', handle: file, sizeBytes: INLINE_LIMIT_BYTES + 1 })).toMatchObject({ ok: false, errno: Errno.EAGAIN, session: 'NEEDS_ASSEMBLY' });
  });

  it('counts as a change since an fh\'s base: a write past the new end then conflicts, one before it rebases', async () => {
    const file = await makeFile();
    const setup = await open(file);
    await commit(setup, 1, [[0, '0123456789']], 10);
    const early = await open(file);
    const late = await open(file);
    await s.must({ op: 'setattr', handle: file, sizeBytes: 5 });
    expect(await commit(early, 2, [[0, 'AB']], 10)).toMatchObject({ ok: true, value: { kind: 'rebase', version: 4, sizeBytes: 5 } });
    expect(await textOf(file, 4)).toBe('AB234');
    expect(errnoOf(await commit(late, 2, [[7, 'Z']], 10, 'reject'))).toBe(Errno.EBUSY);
  });
});

describe('a malformed commit', () => {
  it('answers EINVAL for bad base64, an unknown policy or a missing field, and changes nothing', async () => {
    const file = await makeFile();
    const fh = await open(file);
    const good = { ...commitBody(fh, 1, [[0, 'ok']], 2), sessionId: s.id, caller: ROOT, nowMs: h.nowMs };
    const variants: object[] = [
      { ...good, sequence: ++s.sequence, written: [{ offset: 0, dataBase64: 'not base64!' }] },
      { ...good, sequence: ++s.sequence, written: [{ offset: 0, dataBase64: '' }] },
      { ...good, sequence: ++s.sequence, policy: 'first-wins' },
      { ...good, sequence: ++s.sequence, newSize: -1 },
      { ...good, sequence: ++s.sequence, fh: undefined },
    ];
    for (const variant of variants) {
      const raw = Buffer.from(JSON.stringify({ v: 1, ...variant }));
      expect(errnoOf(await h.apply(raw))).toBe(Errno.EINVAL);
    }
    expect(errnoOf(await h.apply(encodeCommand({ ...good, sequence: ++s.sequence } as never)))).toBe(0);
    const listed = await h.machine.query.listVersions(ROOT, file);
    expect(listed.ok && listed.value.map((v) => v.version)).toEqual([1, 2]);
  });
});
