/**
 * Namespace commands on a real LevelDB folder: each command, its effects on
 * nlink, entry counts and times, and each of its errors.
 */
import { Errno } from '../rules/errno';
import { ALICE, BOB, Harness, ROOT, T0_MS, TestSession } from './testing';
import { ROOT_HANDLE } from './records';
import { EntryResult } from './namespace-ops';
import { CommandResult } from './meta-state-machine';

const errnoOf = (r: CommandResult) => (r.ok ? 0 : r.errno);
const handleOf = (r: CommandResult) => {
  if (!r.ok) throw new Error(`expected success, got ${r.message}`);
  return (r.value as EntryResult).attrs.handle;
};

let h: Harness;
let s: TestSession;
beforeEach(async () => {
  h = await Harness.open();
  s = await h.openSession(ROOT);
});
afterEach(async () => {
  await h.destroy();
});

async function attrs(handle: number) {
  const r = await h.machine.query.getattr(handle);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

describe('the root directory', () => {
  it('exists from the first apply as handle 1, a 0755 directory owned by root with nlink 2', async () => {
    expect(await attrs(ROOT_HANDLE)).toMatchObject({ handle: 1, type: 'dir', mode: 0o755, uid: 0, gid: 0, nlink: 2 });
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 1, nextHandle: 2, sessionsOpen: 1 });
  });
});

describe('mkdir', () => {
  it('creates a directory with nlink 2, bumps the parent nlink and updates its mtime/ctime', async () => {
    h.nowMs = T0_MS + 5_000;
    const r = await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'docs', mode: 0o775, umask: 0o022 });
    expect(r.ok).toBe(true);
    const dir = await attrs(handleOf(r));
    expect(dir).toMatchObject({ type: 'dir', mode: 0o755, nlink: 2, uid: 0, mtimeMs: T0_MS + 5_000 });
    expect(await attrs(ROOT_HANDLE)).toMatchObject({ nlink: 3, mtimeMs: T0_MS + 5_000, ctimeMs: T0_MS + 5_000 });
    const looked = await h.machine.query.lookup(ROOT, ROOT_HANDLE, 'docs');
    expect(looked.ok && looked.value.handle).toBe(dir.handle);
  });

  it('hands out new handles that are never reused, even after a removal', async () => {
    const a = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'a', mode: 0o755 }));
    await s.must({ op: 'rmdir', parent: ROOT_HANDLE, name: 'a' });
    const b = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'a', mode: 0o755 }));
    expect(b).toBeGreaterThan(a);
    expect(errnoOf(await h.machine.query.getattr(a))).toBe(Errno.ESTALE);
  });

  it('answers EEXIST, ESTALE for a parent handle that never existed, ENOTDIR, ENAMETOOLONG, EINVAL and EACCES', async () => {
    const file = handleOf(await s.run({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o644, exclusive: true }));
    expect(errnoOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'f', mode: 0o755 }))).toBe(Errno.EEXIST);
    expect(errnoOf(await s.run({ op: 'mkdir', parent: 999, name: 'x', mode: 0o755 }))).toBe(Errno.ESTALE);
    expect(errnoOf(await s.run({ op: 'mkdir', parent: file, name: 'x', mode: 0o755 }))).toBe(Errno.ENOTDIR);
    expect(errnoOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'n'.repeat(256), mode: 0o755 }))).toBe(Errno.ENAMETOOLONG);
    for (const name of ['', '.', '..', 'a/b', 'a\0b']) expect(errnoOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name, mode: 0o755 }))).toBe(Errno.EINVAL);
    expect(errnoOf(await s.runAs(ALICE, { op: 'mkdir', parent: ROOT_HANDLE, name: 'mine', mode: 0o755 }))).toBe(Errno.EACCES);
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 2 });
  });
});

describe('create', () => {
  it('creates an empty regular file owned by the caller', async () => {
    const home = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'home', mode: 0o777 }));
    const r = await s.runAs(ALICE, { op: 'create', parent: home, name: 'a.txt', mode: 0o644, exclusive: true });
    expect(r.ok && r.value).toMatchObject({ created: true, attrs: { type: 'reg', uid: 1000, gid: 1000, mode: 0o644, nlink: 1, sizeBytes: 0 } });
  });

  it('with the exclusive flag answers EEXIST; without it opens the existing file, but never a directory (EISDIR)', async () => {
    const first = handleOf(await s.run({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o644, exclusive: true }));
    expect(errnoOf(await s.run({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o644, exclusive: true }))).toBe(Errno.EEXIST);
    const again = await s.run({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o600, exclusive: false });
    expect(again.ok && again.value).toMatchObject({ created: false, attrs: { handle: first, mode: 0o644 } });
    await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 });
    expect(errnoOf(await s.run({ op: 'create', parent: ROOT_HANDLE, name: 'd', mode: 0o644, exclusive: false }))).toBe(Errno.EISDIR);
  });
});

describe('mknod and symlink', () => {
  it('makes FIFOs, sockets and device nodes (with rdev, root only: EPERM otherwise)', async () => {
    const pub = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'pub', mode: 0o777 }));
    const fifo = await s.run({ op: 'mknod', parent: pub, name: 'pipe', fileType: 'fifo', mode: 0o644, rdev: 0 });
    expect(fifo.ok && fifo.value).toMatchObject({ attrs: { type: 'fifo', rdev: 0 } });
    const sock = await s.run({ op: 'mknod', parent: pub, name: 'sock', fileType: 'sock', mode: 0o644, rdev: 7 });
    expect(sock.ok && sock.value).toMatchObject({ attrs: { type: 'sock', rdev: 0 } });
    const dev = await s.run({ op: 'mknod', parent: pub, name: 'null', fileType: 'chr', mode: 0o666, rdev: 0x0103 });
    expect(dev.ok && dev.value).toMatchObject({ attrs: { type: 'chr', rdev: 0x0103 } });
    expect(errnoOf(await s.runAs(ALICE, { op: 'mknod', parent: pub, name: 'sda', fileType: 'blk', mode: 0o660, rdev: 0x0800 }))).toBe(Errno.EPERM);
    expect((await s.runAs(ALICE, { op: 'mknod', parent: pub, name: 'p2', fileType: 'fifo', mode: 0o600, rdev: 0 })).ok).toBe(true);
  });

  it('stores a symlink target that readlink returns; readlink of a non-symlink is EINVAL; an empty target ENOENT', async () => {
    const link = handleOf(await s.run({ op: 'symlink', parent: ROOT_HANDLE, name: 'ln', target: '../some/where' }));
    expect(await h.machine.query.readlink(link)).toEqual({ ok: true, value: '../some/where' });
    expect(await attrs(link)).toMatchObject({ type: 'lnk', mode: 0o777, sizeBytes: 13 });
    expect(errnoOf(await h.machine.query.readlink(ROOT_HANDLE))).toBe(Errno.EINVAL);
    expect(errnoOf(await s.run({ op: 'symlink', parent: ROOT_HANDLE, name: 'empty', target: '' }))).toBe(Errno.ENOENT);
    expect(errnoOf(await s.run({ op: 'symlink', parent: ROOT_HANDLE, name: 'ln', target: 'x' }))).toBe(Errno.EEXIST);
    expect(errnoOf(await s.run({ op: 'symlink', parent: ROOT_HANDLE, name: 'long', target: 'x'.repeat(4096) }))).toBe(Errno.ENAMETOOLONG);
  });
});

describe('link and unlink', () => {
  it('counts links: link increments, unlink decrements, and the last unlink removes the inode (ESTALE after)', async () => {
    const f = handleOf(await s.run({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o644, exclusive: true }));
    h.nowMs = T0_MS + 1_000;
    const linked = await s.run({ op: 'link', handle: f, newParent: ROOT_HANDLE, newName: 'g' });
    expect(linked.ok && linked.value).toMatchObject({ attrs: { handle: f, nlink: 2, ctimeMs: T0_MS + 1_000 } });
    await s.must({ op: 'unlink', parent: ROOT_HANDLE, name: 'f' });
    expect(await attrs(f)).toMatchObject({ nlink: 1 });
    await s.must({ op: 'unlink', parent: ROOT_HANDLE, name: 'g' });
    expect(errnoOf(await h.machine.query.getattr(f))).toBe(Errno.ESTALE);
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 1 });
  });

  it('refuses to hard-link a directory (EPERM), onto an existing name (EEXIST), from a gone handle (ESTALE), or without w on the target directory (EACCES)', async () => {
    const d = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 }));
    await s.must({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o644, exclusive: true });
    expect(errnoOf(await s.run({ op: 'link', handle: d, newParent: ROOT_HANDLE, newName: 'd2' }))).toBe(Errno.EPERM);
    expect(errnoOf(await s.run({ op: 'link', handle: d, newParent: ROOT_HANDLE, newName: 'f' }))).toBe(Errno.EEXIST);
    expect(errnoOf(await s.run({ op: 'link', handle: 4242, newParent: ROOT_HANDLE, newName: 'z' }))).toBe(Errno.ESTALE);
    const x = handleOf(await s.run({ op: 'create', parent: d, name: 'x', mode: 0o644, exclusive: true }));
    expect(errnoOf(await s.runAs(ALICE, { op: 'link', handle: x, newParent: d, newName: 'y' }))).toBe(Errno.EACCES);
  });

  it('unlink answers ENOENT for a missing name, EISDIR for a directory, EACCES without w on the parent, EPERM in a sticky directory', async () => {
    const tmp = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'tmp', mode: 0o1777 }));
    await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 });
    await s.must({ op: 'create', parent: ROOT_HANDLE, name: 'rootfile', mode: 0o666, exclusive: true });
    expect(errnoOf(await s.run({ op: 'unlink', parent: ROOT_HANDLE, name: 'nope' }))).toBe(Errno.ENOENT);
    expect(errnoOf(await s.run({ op: 'unlink', parent: ROOT_HANDLE, name: 'd' }))).toBe(Errno.EISDIR);
    expect(errnoOf(await s.runAs(ALICE, { op: 'unlink', parent: ROOT_HANDLE, name: 'rootfile' }))).toBe(Errno.EACCES);
    expect((await s.runAs(ALICE, { op: 'create', parent: tmp, name: 'alice', mode: 0o644, exclusive: true })).ok).toBe(true);
    expect(errnoOf(await s.runAs(BOB, { op: 'unlink', parent: tmp, name: 'alice' }))).toBe(Errno.EPERM);
    expect((await s.runAs(ALICE, { op: 'unlink', parent: tmp, name: 'alice' })).ok).toBe(true);
  });
});

describe('rmdir', () => {
  it('removes an empty directory and decrements the parent nlink', async () => {
    await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 });
    expect(await attrs(ROOT_HANDLE)).toMatchObject({ nlink: 3 });
    await s.must({ op: 'rmdir', parent: ROOT_HANDLE, name: 'd' });
    expect(await attrs(ROOT_HANDLE)).toMatchObject({ nlink: 2 });
    expect(errnoOf(await h.machine.query.lookup(ROOT, ROOT_HANDLE, 'd'))).toBe(Errno.ENOENT);
  });

  it('answers ENOTEMPTY, ENOTDIR for a file, ENOENT for a missing name', async () => {
    const d = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 }));
    await s.must({ op: 'create', parent: d, name: 'inside', mode: 0o644, exclusive: true });
    await s.must({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o644, exclusive: true });
    expect(errnoOf(await s.run({ op: 'rmdir', parent: ROOT_HANDLE, name: 'd' }))).toBe(Errno.ENOTEMPTY);
    expect(errnoOf(await s.run({ op: 'rmdir', parent: ROOT_HANDLE, name: 'f' }))).toBe(Errno.ENOTDIR);
    expect(errnoOf(await s.run({ op: 'rmdir', parent: ROOT_HANDLE, name: 'zzz' }))).toBe(Errno.ENOENT);
  });
});

describe('rename', () => {
  let a: number;
  let b: number;
  beforeEach(async () => {
    a = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'a', mode: 0o755 }));
    b = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'b', mode: 0o755 }));
  });

  it('moves a file between directories atomically and keeps its handle', async () => {
    const f = handleOf(await s.run({ op: 'create', parent: a, name: 'f', mode: 0o644, exclusive: true }));
    h.nowMs = T0_MS + 9_000;
    await s.must({ op: 'rename', fromParent: a, fromName: 'f', toParent: b, toName: 'g' });
    expect(errnoOf(await h.machine.query.lookup(ROOT, a, 'f'))).toBe(Errno.ENOENT);
    const moved = await h.machine.query.lookup(ROOT, b, 'g');
    expect(moved.ok && moved.value).toMatchObject({ handle: f, ctimeMs: T0_MS + 9_000 });
    expect(await attrs(a)).toMatchObject({ mtimeMs: T0_MS + 9_000 });
    expect(await attrs(b)).toMatchObject({ mtimeMs: T0_MS + 9_000 });
  });

  it('moves a directory to another parent and moves one nlink with it', async () => {
    await s.must({ op: 'mkdir', parent: a, name: 'sub', mode: 0o755 });
    expect([(await attrs(a)).nlink, (await attrs(b)).nlink]).toEqual([3, 2]);
    await s.must({ op: 'rename', fromParent: a, fromName: 'sub', toParent: b, toName: 'sub' });
    expect([(await attrs(a)).nlink, (await attrs(b)).nlink]).toEqual([2, 3]);
  });

  it('replaces a file with a file (the old one goes) and an empty directory with a directory', async () => {
    const f = handleOf(await s.run({ op: 'create', parent: a, name: 'f', mode: 0o644, exclusive: true }));
    const old = handleOf(await s.run({ op: 'create', parent: b, name: 'f', mode: 0o644, exclusive: true }));
    await s.must({ op: 'rename', fromParent: a, fromName: 'f', toParent: b, toName: 'f' });
    expect(errnoOf(await h.machine.query.getattr(old))).toBe(Errno.ESTALE);
    const now = await h.machine.query.lookup(ROOT, b, 'f');
    expect(now.ok && now.value.handle).toBe(f);
    await s.must({ op: 'mkdir', parent: b, name: 'empty', mode: 0o755 });
    const moving = handleOf(await s.run({ op: 'mkdir', parent: a, name: 'full', mode: 0o755 }));
    await s.must({ op: 'create', parent: moving, name: 'x', mode: 0o644, exclusive: true });
    await s.must({ op: 'rename', fromParent: a, fromName: 'full', toParent: b, toName: 'empty' });
    expect(await attrs(b)).toMatchObject({ nlink: 3 });
    expect(await attrs(a)).toMatchObject({ nlink: 2 });
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 6 });
  });

  it('answers EISDIR (file over dir), ENOTDIR (dir over file), ENOTEMPTY (dir over full dir), ENOENT (missing source)', async () => {
    await s.must({ op: 'create', parent: a, name: 'file', mode: 0o644, exclusive: true });
    await s.must({ op: 'mkdir', parent: a, name: 'dir', mode: 0o755 });
    const full = handleOf(await s.run({ op: 'mkdir', parent: b, name: 'full', mode: 0o755 }));
    await s.must({ op: 'create', parent: full, name: 'x', mode: 0o644, exclusive: true });
    expect(errnoOf(await s.run({ op: 'rename', fromParent: a, fromName: 'file', toParent: a, toName: 'dir' }))).toBe(Errno.EISDIR);
    expect(errnoOf(await s.run({ op: 'rename', fromParent: a, fromName: 'dir', toParent: a, toName: 'file' }))).toBe(Errno.ENOTDIR);
    expect(errnoOf(await s.run({ op: 'rename', fromParent: a, fromName: 'dir', toParent: b, toName: 'full' }))).toBe(Errno.ENOTEMPTY);
    expect(errnoOf(await s.run({ op: 'rename', fromParent: a, fromName: 'ghost', toParent: b, toName: 'g' }))).toBe(Errno.ENOENT);
    expect(errnoOf(await s.run({ op: 'rename', fromParent: a, fromName: 'file', toParent: b, toName: 'x/y' }))).toBe(Errno.EINVAL);
  });

  it('refuses to move a directory into its own subtree (EINVAL), and moving onto itself is a no-op', async () => {
    const inner = handleOf(await s.run({ op: 'mkdir', parent: a, name: 'inner', mode: 0o755 }));
    const deepest = handleOf(await s.run({ op: 'mkdir', parent: inner, name: 'deepest', mode: 0o755 }));
    expect(errnoOf(await s.run({ op: 'rename', fromParent: ROOT_HANDLE, fromName: 'a', toParent: deepest, toName: 'a' }))).toBe(Errno.EINVAL);
    expect(errnoOf(await s.run({ op: 'rename', fromParent: ROOT_HANDLE, fromName: 'a', toParent: a, toName: 'self' }))).toBe(Errno.EINVAL);
    const before = await attrs(a);
    expect((await s.run({ op: 'rename', fromParent: ROOT_HANDLE, fromName: 'a', toParent: ROOT_HANDLE, toName: 'a' })).ok).toBe(true);
    expect(await attrs(a)).toEqual(before);
    const f = handleOf(await s.run({ op: 'create', parent: a, name: 'f', mode: 0o644, exclusive: true }));
    await s.must({ op: 'link', handle: f, newParent: b, newName: 'hard' });
    expect((await s.run({ op: 'rename', fromParent: a, fromName: 'f', toParent: b, toName: 'hard' })).ok).toBe(true);
    expect(await attrs(f)).toMatchObject({ nlink: 2 });
  });

  it('answers EACCES without write permission on the source directory, EPERM for a stranger\'s entry in a sticky one', async () => {
    await s.must({ op: 'create', parent: a, name: 'f', mode: 0o666, exclusive: true });
    expect(errnoOf(await s.runAs(ALICE, { op: 'rename', fromParent: a, fromName: 'f', toParent: a, toName: 'g' }))).toBe(Errno.EACCES);
    const tmp = handleOf(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'tmp', mode: 0o1777 }));
    await s.runAs(ALICE, { op: 'create', parent: tmp, name: 'alice', mode: 0o644, exclusive: true });
    expect(errnoOf(await s.runAs(BOB, { op: 'rename', fromParent: tmp, fromName: 'alice', toParent: tmp, toName: 'bob' }))).toBe(Errno.EPERM);
  });

  it('answers ENAMETOOLONG for a target name over 255 bytes and EEXIST with noReplace', async () => {
    await s.must({ op: 'create', parent: a, name: 'f', mode: 0o644, exclusive: true });
    await s.must({ op: 'create', parent: b, name: 'taken', mode: 0o644, exclusive: true });
    expect(errnoOf(await s.run({ op: 'rename', fromParent: a, fromName: 'f', toParent: b, toName: 'é'.repeat(128) }))).toBe(Errno.ENAMETOOLONG);
    expect(errnoOf(await s.run({ op: 'rename', fromParent: a, fromName: 'f', toParent: b, toName: 'taken', noReplace: true }))).toBe(Errno.EEXIST);
  });
});
