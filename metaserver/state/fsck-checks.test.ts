/**
 * The fsck rules on crafted states: a consistent namespace with hard links,
 * an unlinked-but-open file and shared blocks is clean; each kind of damage
 * (wrong nlink, orphan, dangling entry, wrong block references, stray
 * records, counters) is found, named and counted, with samples bounded.
 */
import { createHash } from 'node:crypto';
import { FsckAccumulator, FsckFindings } from './fsck-checks';
import {
  APPLIED_KEY, BlockRecord, COUNTERS_KEY, Counters, FhRecord, Inode, ROOT_HANDLE, VersionRecord,
  blockKey, direntKey, encodeDirent, encodeRecord, fhKey, inodeKey, unreferencedBlockKey, versionKey, xattrKey,
} from './records';

const idOf = (label: string): string => createHash('sha256').update(label).digest('hex');
const A = idOf('a');
const B = idOf('b');

function dir(handle: number, nlink: number, entries: number, parent = ROOT_HANDLE): Inode {
  return { handle, generation: handle, type: 'dir', mode: 0o755, uid: 0, gid: 0, nlink, sizeBytes: 0, atimeMs: 0, mtimeMs: 0, ctimeMs: 0, rdev: 0, parent, entries, xattrs: [] };
}
function file(handle: number, nlink: number, openFhs = 0): Inode {
  return {
    handle, generation: handle, type: 'reg', mode: 0o644, uid: 0, gid: 0, nlink, sizeBytes: 0, atimeMs: 0, mtimeMs: 0, ctimeMs: 0, rdev: 0, xattrs: [],
    headVersion: 1, firstVersion: 1, conflictCopies: 0, openFhs,
  };
}
function version(v: number, blocks?: string[]): VersionRecord {
  return { version: v, sizeBytes: 0, kind: 'create', baseVersion: 0, sessionId: 1, commitTimeMs: 0, mtimeMs: 0, changedExtents: [], conflict: false, inlineBase64: '', ...(blocks ? { blocks, blockSizeBytes: 1 << 20 } : {}) };
}
function fh(id: number, handle: number): FhRecord {
  return { id, handle, sessionId: 1, pinnedVersion: 1, flags: { read: true, write: false, append: false }, openedAtMs: 0 };
}
const applied = (index: number): Buffer => {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(index));
  return out;
};

/**
 * /            handle 1 (nlink 3: itself, '..' of d)
 * /d           handle 2
 * /f, /d/g     handle 3, one file under two names; versions list A twice and B once
 * (unlinked)   handle 4, nlink 0, held by fh 10
 */
function consistentState(): Map<string, [Buffer, Uint8Array]> {
  const state = new Map<string, [Buffer, Uint8Array]>();
  const put = (key: Buffer, value: Uint8Array): void => void state.set(key.toString('hex'), [key, value]);
  put(APPLIED_KEY, applied(42));
  put(COUNTERS_KEY, encodeRecord({ nextHandle: 5, inodesInUse: 4, sessionsOpen: 1, fhsOpen: 1, blockRecords: 2 } satisfies Counters));
  put(inodeKey(1), encodeRecord(dir(1, 3, 2)));
  put(inodeKey(2), encodeRecord(dir(2, 2, 1)));
  put(inodeKey(3), encodeRecord(file(3, 2)));
  put(inodeKey(4), encodeRecord(file(4, 0, 1)));
  put(direntKey(1, 'd'), encodeDirent(2, 'dir'));
  put(direntKey(1, 'f'), encodeDirent(3, 'reg'));
  put(direntKey(2, 'g'), encodeDirent(3, 'reg'));
  put(xattrKey(3, 'user.x'), Buffer.from('v'));
  put(versionKey(3, 1), encodeRecord(version(1)));
  put(versionKey(3, 2), encodeRecord(version(2, [A, '', B])));
  put(versionKey(3, 3), encodeRecord(version(3, [A])));
  put(versionKey(4, 1), encodeRecord(version(1)));
  put(fhKey(10), encodeRecord(fh(10, 4)));
  put(blockKey(A), encodeRecord({ refs: 2, pinnedUntilMs: 0 } satisfies BlockRecord));
  put(blockKey(B), encodeRecord({ refs: 1, pinnedUntilMs: 0 } satisfies BlockRecord));
  return state;
}

function check(state: Map<string, [Buffer, Uint8Array]>, samplesPerKind?: number): FsckFindings {
  const checks = new FsckAccumulator({ samplesPerKind });
  for (const [key, value] of [...state.values()].sort(([x], [y]) => Buffer.compare(x, y))) checks.add(key, value);
  return checks.finish();
}

const total = (findings: FsckFindings): number => Object.values(findings.counts).reduce((n, c) => n + c, 0);

describe('fsck rules on a crafted state', () => {
  it('finds nothing wrong in a consistent state with hard links, an unlinked open file and shared blocks', () => {
    const findings = check(consistentState());
    expect(findings.samples).toEqual([]);
    expect(total(findings)).toBe(0);
    expect(findings.incomplete).toBe(false);
    expect(findings.stats).toEqual({ inodes: 4, entries: 3, fhs: 1, versions: 4, conflictCopies: 0, blockRecords: 2, referencedBlocks: 2 });
  });

  it('reports a file whose nlink disagrees with the entries naming it, with the expected value', () => {
    const state = consistentState();
    state.set(inodeKey(3).toString('hex'), [inodeKey(3), encodeRecord(file(3, 1))]);
    const findings = check(state);
    expect(findings.counts.nlink).toBe(1);
    expect(findings.samples).toEqual([expect.objectContaining({ kind: 'nlink', subject: 'handle 3', handle: 3, expected: 2 })]);
  });

  it('reports a directory whose nlink is not 2 + its subdirectories', () => {
    const state = consistentState();
    state.set(inodeKey(1).toString('hex'), [inodeKey(1), encodeRecord(dir(1, 2, 2))]);
    const findings = check(state);
    expect(findings.samples).toEqual([expect.objectContaining({ kind: 'nlink', handle: 1, expected: 3, detail: expect.stringContaining('2 + subdirectories') })]);
  });

  it('reports a file no entry reaches and no fh holds as an orphan, but not the unlinked file an fh holds', () => {
    const state = consistentState();
    state.set(inodeKey(5).toString('hex'), [inodeKey(5), encodeRecord(file(5, 0))]);
    state.set(versionKey(5, 1).toString('hex'), [versionKey(5, 1), encodeRecord(version(1))]);
    state.set(COUNTERS_KEY.toString('hex'), [COUNTERS_KEY, encodeRecord({ nextHandle: 6, inodesInUse: 5, sessionsOpen: 1, fhsOpen: 1, blockRecords: 2 })]);
    const findings = check(state);
    expect(findings.counts.orphan).toBe(1);
    expect(findings.samples).toEqual([expect.objectContaining({ kind: 'orphan', subject: 'handle 5', handle: 5 })]);
  });

  it('reports a detached directory and everything under it as orphans', () => {
    const state = consistentState();
    // Directory 6 holds directory 7; nothing names 6.
    state.set(inodeKey(6).toString('hex'), [inodeKey(6), encodeRecord(dir(6, 3, 1))]);
    state.set(inodeKey(7).toString('hex'), [inodeKey(7), encodeRecord(dir(7, 2, 0, 6))]);
    state.set(direntKey(6, 'sub').toString('hex'), [direntKey(6, 'sub'), encodeDirent(7, 'dir')]);
    const findings = check(state);
    expect(findings.samples.filter((f) => f.kind === 'orphan').map((f) => f.handle)).toEqual([6, 7]);
  });

  it('reports an entry naming a missing handle as dangling', () => {
    const state = consistentState();
    state.set(direntKey(2, 'ghost').toString('hex'), [direntKey(2, 'ghost'), encodeDirent(99, 'reg')]);
    const findings = check(state);
    expect(findings.samples).toContainEqual(expect.objectContaining({ kind: 'dangling-entry', subject: 'entry 2/"ghost"', handle: 99 }));
    // The directory's entry count now disagrees too.
    expect(findings.counts['dir-entries']).toBe(1);
  });

  it('reports a block record whose reference count differs from the listings', () => {
    const state = consistentState();
    state.set(blockKey(A).toString('hex'), [blockKey(A), encodeRecord({ refs: 3, pinnedUntilMs: 0 })]);
    const findings = check(state);
    expect(findings.samples).toEqual([expect.objectContaining({ kind: 'block-refs', detail: 'its record counts 3 references, kept versions and copies list it 2 times' })]);
  });

  it('reports a listed block with no record and an unreferenced block that is not a collection candidate', () => {
    const state = consistentState();
    state.delete(blockKey(B).toString('hex'));
    const C = idOf('c');
    state.set(blockKey(C).toString('hex'), [blockKey(C), encodeRecord({ refs: 0, pinnedUntilMs: 0 })]);
    state.set(COUNTERS_KEY.toString('hex'), [COUNTERS_KEY, encodeRecord({ nextHandle: 5, inodesInUse: 4, sessionsOpen: 1, fhsOpen: 1, blockRecords: 2 })]);
    const details = check(state).samples.map((f) => `${f.kind}: ${f.detail}`);
    expect(details).toEqual([
      'block-refs: no references but not a collection candidate: it would never be collected',
      'block-refs: listed 1 times by kept versions and copies but has no block record',
    ]);
    state.set(unreferencedBlockKey(C).toString('hex'), [unreferencedBlockKey(C), encodeRecord({ sinceMs: 0 })]);
    expect(check(state).samples.map((f) => f.detail)).toEqual(['listed 1 times by kept versions and copies but has no block record']);
  });

  it('reports versions of a handle that has no inode, an fh on a missing handle, and counters that disagree', () => {
    const state = consistentState();
    state.set(versionKey(8, 1).toString('hex'), [versionKey(8, 1), encodeRecord(version(1))]);
    state.set(fhKey(11).toString('hex'), [fhKey(11), encodeRecord(fh(11, 9))]);
    const kinds = check(state).samples.map((f) => `${f.kind} ${f.subject}`);
    expect(kinds).toEqual(['stray-record handle 8', 'dangling-fh fh 11', 'counters counter fhsOpen']);
  });

  it('reports an unreadable record instead of failing the whole check', () => {
    const state = consistentState();
    state.set(inodeKey(3).toString('hex'), [inodeKey(3), Buffer.from('{not json')]);
    const findings = check(state);
    expect(findings.counts['corrupt-record']).toBe(1);
  });

  it('keeps only the first samples of a kind but counts them all', () => {
    const state = consistentState();
    for (let h = 20; h < 50; h++) state.set(inodeKey(h).toString('hex'), [inodeKey(h), encodeRecord(file(h, 0))]);
    const findings = check(state, 5);
    expect(findings.counts.orphan).toBe(30);
    expect(findings.samples.filter((f) => f.kind === 'orphan')).toHaveLength(5);
  });

  it('refuses keys out of order (a caller bug, not a state problem)', () => {
    const checks = new FsckAccumulator();
    checks.add(inodeKey(2), encodeRecord(dir(2, 2, 0)));
    expect(() => checks.add(inodeKey(1), encodeRecord(dir(1, 2, 0)))).toThrow(/out of order/);
  });
});
