/**
 * Open file handles on a real LevelDB folder: who may open what, release,
 * the end of a session releasing its fhs, an unlinked file living on while an
 * fh holds it, and fhs and versions surviving a restart and a snapshot.
 */
import { Errno } from '../rules/errno';
import { MutationBody } from './commands';
import { MAX_FHS_PER_SESSION, OpenResult } from './fh-ops';
import { CommandResult } from './meta-state-machine';
import { ROOT_HANDLE } from './records';
import { ALICE, BOB, Harness, ROOT, TestSession } from './testing';

const errnoOf = (r: { ok: boolean; errno?: number }) => (r.ok ? 0 : r.errno);
const b64 = (text: string) => Buffer.from(text).toString('base64');

let h: Harness;
let s: TestSession;
const others: Harness[] = [];
beforeEach(async () => {
  h = await Harness.open();
  s = await h.openSession(ROOT);
});
afterEach(async () => {
  await h.destroy();
  for (const other of others.splice(0)) await other.destroy();
});

async function makeFile(name = 'f', mode = 0o644): Promise<number> {
  return (await s.must({ op: 'create', parent: ROOT_HANDLE, name, mode, exclusive: true })).attrs.handle;
}

function openBody(handle: number, read = true, write = true, append = false): MutationBody {
  return { op: 'open', handle, read, write, append };
}

function commitBody(fh: number, baseVersion: number, text: string, newSize = text.length): MutationBody {
  return { op: 'commitVersion', fh, baseVersion, written: [{ offset: 0, dataBase64: b64(text) }], newSize, policy: 'lww' };
}

async function headText(handle: number): Promise<string> {
  const attrs = await h.machine.query.getattr(handle);
  if (!attrs.ok || attrs.value.headVersion === undefined) throw new Error('no head');
  const got = await h.machine.query.getVersion(ROOT, handle, attrs.value.headVersion);
  if (!got.ok) throw new Error(got.message);
  return Buffer.from(got.value.bytes).toString();
}

describe('opening a file', () => {
  it('gives the fh the log index of its open entry, pins the head and records session and flags', async () => {
    const file = await makeFile();
    const applied = await h.machine.appliedIndex();
    const opened = await s.must<OpenResult>(openBody(file, true, false));
    expect(opened.fh).toBe(applied + 1);
    const fh = await h.machine.query.getFh(opened.fh);
    expect(fh).toEqual({ ok: true, value: { id: opened.fh, handle: file, sessionId: s.id, pinnedVersion: 1, flags: { read: true, write: false, append: false }, openedAtMs: h.nowMs } });
    expect(await h.machine.query.fhsOpen()).toBe(1);
  });

  it('checks read and write permission as open(2) does', async () => {
    const alice = await h.openSession(ALICE);
    const file = await makeFile('mine', 0o640);
    await s.must({ op: 'setattr', handle: file, uid: ALICE.uid, gid: BOB.gid });
    const bob = await h.openSession(BOB);
    expect(errnoOf(await bob.run(openBody(file, true, false)))).toBe(0);
    expect(errnoOf(await bob.run(openBody(file, false, true)))).toBe(Errno.EACCES);
    const carol = await h.openSession({ uid: 1002, gid: 1002, groups: [] });
    expect(errnoOf(await carol.run(openBody(file, true, false)))).toBe(Errno.EACCES);
    expect(errnoOf(await alice.run(openBody(file, true, true)))).toBe(0);
  });

  it('refuses directories, other file types, bad flags and gone handles', async () => {
    const dir = (await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 })).attrs.handle;
    const fifo = (await s.must({ op: 'mknod', parent: ROOT_HANDLE, name: 'p', fileType: 'fifo', mode: 0o644, rdev: 0 })).attrs.handle;
    const file = await makeFile();
    expect(errnoOf(await s.run(openBody(dir, true, false)))).toBe(Errno.EISDIR);
    expect(errnoOf(await s.run(openBody(fifo)))).toBe(Errno.EINVAL);
    expect(errnoOf(await s.run(openBody(file, false, false)))).toBe(Errno.EINVAL);
    expect(errnoOf(await s.run(openBody(file, true, false, true)))).toBe(Errno.EINVAL);
    expect(errnoOf(await s.run(openBody(999)))).toBe(Errno.ESTALE);
  });

  it('gives a file made by mknod a version history too', async () => {
    const file = (await s.must({ op: 'mknod', parent: ROOT_HANDLE, name: 'r', fileType: 'reg', mode: 0o644, rdev: 0 })).attrs.handle;
    const opened = await s.must<OpenResult>(openBody(file));
    expect(opened.version).toBe(1);
  });

  it(`answers EMFILE beyond ${MAX_FHS_PER_SESSION} fhs in one session`, async () => {
    const file = await makeFile();
    const results = await h.applyBatch(Array.from({ length: MAX_FHS_PER_SESSION + 1 }, () => s.command(openBody(file, true, false))));
    expect(results.slice(0, MAX_FHS_PER_SESSION).every((r) => r.ok)).toBe(true);
    expect(errnoOf(results[MAX_FHS_PER_SESSION])).toBe(Errno.EMFILE);
  });
});

describe('using an fh', () => {
  it('refuses a commit through a read-only fh, a read through a write-only fh, and another session\'s fh (EBADF)', async () => {
    const file = await makeFile();
    const reader = await s.must<OpenResult>(openBody(file, true, false));
    const writer = await s.must<OpenResult>(openBody(file, false, true));
    expect(errnoOf(await s.run(commitBody(reader.fh, 1, 'x')))).toBe(Errno.EBADF);
    expect(errnoOf(await h.machine.query.readThroughFh(writer.fh))).toBe(Errno.EBADF);
    const other = await h.openSession(ROOT);
    expect(errnoOf(await other.run(commitBody(writer.fh, 1, 'x')))).toBe(Errno.EBADF);
    expect(errnoOf(await other.run({ op: 'release', fh: writer.fh }))).toBe(Errno.EBADF);
    expect(errnoOf(await h.machine.query.getFh(writer.fh, other.id))).toBe(Errno.EBADF);
  });

  it('releases an fh once: a second release answers EBADF, a retried one the first answer', async () => {
    const file = await makeFile();
    const opened = await s.must<OpenResult>(openBody(file));
    const first = await s.run({ op: 'release', fh: opened.fh });
    expect(first).toEqual({ ok: true, value: null });
    expect(await s.run({ op: 'release', fh: opened.fh }, s.sequence)).toEqual(first);
    expect(errnoOf(await s.run({ op: 'release', fh: opened.fh }))).toBe(Errno.EBADF);
    expect(errnoOf(await h.machine.query.getFh(opened.fh))).toBe(Errno.EBADF);
    expect(errnoOf(await s.run(commitBody(opened.fh, 1, 'x')))).toBe(Errno.EBADF);
    expect(await h.machine.query.fhsOpen()).toBe(0);
  });
});

describe('the end of a session', () => {
  it('releases every fh of an expired session, and nothing of another session', async () => {
    const file = await makeFile();
    const doomed = await h.openSession(ROOT);
    const a = await doomed.must<OpenResult>(openBody(file));
    const b = await doomed.must<OpenResult>(openBody(file, true, false));
    const kept = await s.must<OpenResult>(openBody(file));
    expect(await h.apply({ op: 'expireSession', sessionId: doomed.id, nowMs: h.nowMs })).toEqual({ ok: true, value: { expired: true } });
    expect(errnoOf(await h.machine.query.getFh(a.fh))).toBe(Errno.EBADF);
    expect(errnoOf(await h.machine.query.getFh(b.fh))).toBe(Errno.EBADF);
    expect((await h.machine.query.getFh(kept.fh)).ok).toBe(true);
    expect(await h.machine.query.fhsOpen()).toBe(1);
  });

  it('releases the fhs of a closed session', async () => {
    const file = await makeFile();
    const closing = await h.openSession(ROOT);
    const opened = await closing.must<OpenResult>(openBody(file));
    await closing.must({ op: 'closeSession' });
    expect(errnoOf(await h.machine.query.getFh(opened.fh))).toBe(Errno.EBADF);
    expect(await h.machine.query.fhsOpen()).toBe(0);
  });
});

describe('an unlinked file that is still open', () => {
  it('keeps its inode and versions until the last fh is released, then goes with them', async () => {
    const file = await makeFile();
    const one = await s.must<OpenResult>(openBody(file));
    const two = await s.must<OpenResult>(openBody(file, true, false));
    await s.must(commitBody(one.fh, 1, 'still here'));
    await s.must({ op: 'unlink', parent: ROOT_HANDLE, name: 'f' });
    expect(errnoOf(await h.machine.query.lookup(ROOT, ROOT_HANDLE, 'f'))).toBe(Errno.ENOENT);
    const attrs = await h.machine.query.getattr(file);
    expect(attrs.ok && attrs.value).toMatchObject({ nlink: 0, headVersion: 2 });
    await s.must(commitBody(one.fh, 2, 'STILL', 'still here'.length));
    expect(await headText(file)).toBe('STILL here');
    expect(errnoOf(await s.run({ op: 'link', handle: file, newParent: ROOT_HANDLE, newName: 'back' }))).toBe(Errno.ENOENT);
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 2 });
    await s.must({ op: 'release', fh: one.fh });
    expect((await h.machine.query.getattr(file)).ok).toBe(true);
    await s.must({ op: 'release', fh: two.fh });
    expect(errnoOf(await h.machine.query.getattr(file))).toBe(Errno.ESTALE);
    expect(errnoOf(await h.machine.query.getVersion(ROOT, file, 2))).toBe(Errno.ESTALE);
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 1 });
    // No version record outlives its inode.
    const { data } = await h.machine.snapshot();
    expect(Buffer.from(data).includes(Buffer.from(b64('STILL here')))).toBe(false);
  });

  it('lives on when a rename replaces it, and goes when its session expires', async () => {
    const file = await makeFile('target');
    await makeFile('source');
    const holder = await h.openSession(ROOT);
    const opened = await holder.must<OpenResult>(openBody(file));
    await holder.must(commitBody(opened.fh, 1, 'old'));
    await s.must({ op: 'rename', fromParent: ROOT_HANDLE, fromName: 'source', toParent: ROOT_HANDLE, toName: 'target' });
    const read = await h.machine.query.readThroughFh(opened.fh);
    expect(read.ok && Buffer.from(read.value.bytes).toString()).toBe('old');
    await h.apply({ op: 'expireSession', sessionId: holder.id, nowMs: h.nowMs });
    expect(errnoOf(await h.machine.query.getattr(file))).toBe(Errno.ESTALE);
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 2 });
  });

  it('goes at once when unlinked with no fh open', async () => {
    const file = await makeFile();
    const opened = await s.must<OpenResult>(openBody(file));
    await s.must({ op: 'release', fh: opened.fh });
    await s.must({ op: 'unlink', parent: ROOT_HANDLE, name: 'f' });
    expect(errnoOf(await h.machine.query.getattr(file))).toBe(Errno.ESTALE);
  });
});

describe('durability of versions and fhs', () => {
  async function buildState(): Promise<{ file: number; fh: number }> {
    const file = await makeFile();
    const opened = await s.must<OpenResult>(openBody(file));
    await s.must(commitBody(opened.fh, 1, 'v2'));
    await s.must(commitBody(opened.fh, 2, 'v3'));
    return { file, fh: opened.fh };
  }

  async function describeFile(machine: Harness['machine'], file: number, fh: number): Promise<unknown> {
    return {
      attrs: await machine.query.getattr(file),
      versions: await machine.query.listVersions(ROOT, file),
      v2: await machine.query.getVersion(ROOT, file, 2),
      fh: await machine.query.getFh(fh),
      read: await machine.query.readThroughFh(fh),
      fhsOpen: await machine.query.fhsOpen(),
    };
  }

  it('keeps versions and fhs across close and reopen, and the fh commits on from there', async () => {
    const { file, fh } = await buildState();
    const before = await describeFile(h.machine, file, fh);
    await h.reopen();
    expect(await describeFile(h.machine, file, fh)).toEqual(before);
    expect(await s.run(commitBody(fh, 3, 'v4'))).toMatchObject({ ok: true, value: { version: 4 } });
  });

  it('carries versions and fhs in a snapshot, and the restored machine answers the next commit alike', async () => {
    const { file, fh } = await buildState();
    const snapshot = await h.machine.snapshot();
    const fresh = await Harness.open();
    others.push(fresh);
    await fresh.machine.restore({ metadata: { index: snapshot.index, term: 1, membership: { members: [] } }, data: snapshot.data });
    expect(await describeFile(fresh.machine, file, fh)).toEqual(await describeFile(h.machine, file, fh));
    const next = s.command(commitBody(fh, 3, 'v4'));
    const answers: CommandResult[] = [await fresh.apply(next), await h.apply(next)];
    expect(answers[0]).toEqual(answers[1]);
    expect(answers[0]).toMatchObject({ ok: true, value: { version: 4 } });
  });
});

describe('fhs opened or released inside other commands', () => {
  it('releases an fh opened by create with open flags when its session ends, and an unlinked file with it', async () => {
    const doomed = await h.openSession(ROOT);
    const created = await doomed.must<{ attrs: { handle: number }; open: { fh: number } }>({
      op: 'create', parent: ROOT_HANDLE, name: 'gone-with-session', mode: 0o644, exclusive: true, open: { read: true, write: true, append: false },
    });
    await doomed.must({ op: 'unlink', parent: ROOT_HANDLE, name: 'gone-with-session' });
    expect(await h.apply({ op: 'expireSession', sessionId: doomed.id, nowMs: h.nowMs })).toEqual({ ok: true, value: { expired: true } });
    expect(await h.machine.query.getattr(created.attrs.handle)).toMatchObject({ ok: false, errno: Errno.ESTALE });
    expect(await h.machine.query.fhsOpen()).toBe(0);
  });

  it('ends a session cleanly after a commit with release let its fh go', async () => {
    const doomed = await h.openSession(ROOT);
    const created = await doomed.must({ op: 'create', parent: ROOT_HANDLE, name: 'released-by-commit', mode: 0o644, exclusive: true });
    const opened = await doomed.must<OpenResult>({ op: 'open', handle: created.attrs.handle, read: true, write: true, append: false });
    const committed = await doomed.run({
      op: 'commitVersion', fh: opened.fh, baseVersion: opened.version, written: [{ offset: 0, dataBase64: Buffer.from('x').toString('base64') }],
      newSize: 1, policy: 'lww', release: true,
    });
    expect(committed.ok).toBe(true);
    expect(await h.machine.query.fhsOpen()).toBe(0);
    expect(await h.apply({ op: 'expireSession', sessionId: doomed.id, nowMs: h.nowMs })).toEqual({ ok: true, value: { expired: true } });
  });
});
