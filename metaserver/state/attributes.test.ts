/**
 * setattr and extended attributes on a real LevelDB folder: what each change
 * does to the inode and its ctime, and the EPERM/EACCES/EINVAL rules.
 */
import { Errno } from '../rules/errno';
import { XATTR_CREATE, XATTR_REPLACE } from '../rules/names';
import { CommandResult } from './meta-state-machine';
import { EntryResult } from './namespace-ops';
import { ROOT_HANDLE } from './records';
import { ALICE, BOB, Harness, ROOT, T0_MS, TestSession } from './testing';

const errnoOf = (r: { ok: boolean; errno?: number }) => (r.ok ? 0 : r.errno);
const b64 = (text: string) => Buffer.from(text).toString('base64');

let h: Harness;
let s: TestSession;
let file: number;
beforeEach(async () => {
  h = await Harness.open();
  s = await h.openSession(ROOT);
  await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'home', mode: 0o777 });
  const created = (await s.runAs(ALICE, { op: 'create', parent: 2, name: 'a.txt', mode: 0o644, exclusive: true })) as CommandResult;
  if (!created.ok) throw new Error(created.message);
  file = (created.value as EntryResult).attrs.handle;
});
afterEach(async () => {
  await h.destroy();
});

describe('setattr', () => {
  it('lets the owner chmod (ctime moves) and answers EPERM to anyone else', async () => {
    h.nowMs = T0_MS + 2_000;
    const r = await s.runAs(ALICE, { op: 'setattr', handle: file, mode: 0o600 });
    expect(r.ok && r.value).toMatchObject({ mode: 0o600, ctimeMs: T0_MS + 2_000, mtimeMs: T0_MS });
    expect(errnoOf(await s.runAs(BOB, { op: 'setattr', handle: file, mode: 0o777 }))).toBe(Errno.EPERM);
  });

  it('lets only root change the owner (EPERM otherwise), and chown clears set-uid', async () => {
    await s.runAs(ALICE, { op: 'setattr', handle: file, mode: 0o4755 });
    expect(errnoOf(await s.runAs(ALICE, { op: 'setattr', handle: file, uid: 1001 }))).toBe(Errno.EPERM);
    const r = await s.run({ op: 'setattr', handle: file, uid: 1001, gid: 1001 });
    expect(r.ok && r.value).toMatchObject({ uid: 1001, gid: 1001, mode: 0o755 });
  });

  it('records a size (truncate needs write access: EACCES; a directory is EISDIR) and moves mtime when it changes', async () => {
    h.nowMs = T0_MS + 3_000;
    const r = await s.runAs(ALICE, { op: 'setattr', handle: file, sizeBytes: 4096 });
    expect(r.ok && r.value).toMatchObject({ sizeBytes: 4096, mtimeMs: T0_MS + 3_000, ctimeMs: T0_MS + 3_000 });
    expect(errnoOf(await s.runAs(BOB, { op: 'setattr', handle: file, sizeBytes: 0 }))).toBe(Errno.EACCES);
    expect(errnoOf(await s.run({ op: 'setattr', handle: ROOT_HANDLE, sizeBytes: 0 }))).toBe(Errno.EISDIR);
  });

  it('sets explicit times (owner or root; EPERM otherwise) and "now" from the command clock', async () => {
    const r = await s.runAs(ALICE, { op: 'setattr', handle: file, atime: 1_000, mtime: 2_000 });
    expect(r.ok && r.value).toMatchObject({ atimeMs: 1_000, mtimeMs: 2_000 });
    expect(errnoOf(await s.runAs(BOB, { op: 'setattr', handle: file, mtime: 5 }))).toBe(Errno.EPERM);
    h.nowMs = T0_MS + 7_000;
    const now = await s.run({ op: 'setattr', handle: file, atime: 'now', mtime: 'now' });
    expect(now.ok && now.value).toMatchObject({ atimeMs: T0_MS + 7_000, mtimeMs: T0_MS + 7_000 });
  });

  it('changes nothing when one part fails (a chmod that passes beside a chown that does not)', async () => {
    expect(errnoOf(await s.runAs(ALICE, { op: 'setattr', handle: file, mode: 0o600, uid: 0 }))).toBe(Errno.EPERM);
    const attrs = await h.machine.query.getattr(file);
    expect(attrs.ok && attrs.value).toMatchObject({ mode: 0o644, uid: 1000 });
  });

  it('answers ESTALE for a gone handle and for a wrong generation on getattr', async () => {
    expect(errnoOf(await s.run({ op: 'setattr', handle: 9999, mode: 0o600 }))).toBe(Errno.ESTALE);
    const attrs = await h.machine.query.getattr(file);
    if (!attrs.ok) throw new Error(attrs.message);
    expect((await h.machine.query.getattr(file, attrs.value.generation)).ok).toBe(true);
    expect(errnoOf(await h.machine.query.getattr(file, attrs.value.generation + 1))).toBe(Errno.ESTALE);
  });
});

describe('extended attributes', () => {
  it('sets, reads, lists in name order and removes user attributes, moving ctime', async () => {
    h.nowMs = T0_MS + 4_000;
    expect((await s.runAs(ALICE, { op: 'setxattr', handle: file, name: 'user.z', valueBase64: b64('last'), flags: 0 })).ok).toBe(true);
    expect((await s.runAs(ALICE, { op: 'setxattr', handle: file, name: 'user.a', valueBase64: b64('first'), flags: XATTR_CREATE })).ok).toBe(true);
    const value = await h.machine.query.getxattr(ALICE, file, 'user.a');
    expect(value.ok && Buffer.from(value.value).toString()).toBe('first');
    expect(await h.machine.query.listxattr(ALICE, file)).toEqual({ ok: true, value: ['user.a', 'user.z'] });
    const attrs = await h.machine.query.getattr(file);
    expect(attrs.ok && attrs.value.ctimeMs).toBe(T0_MS + 4_000);
    expect((await s.runAs(ALICE, { op: 'removexattr', handle: file, name: 'user.a' })).ok).toBe(true);
    expect(errnoOf(await h.machine.query.getxattr(ALICE, file, 'user.a'))).toBe(Errno.ENODATA);
  });

  it('follows the set flags (EEXIST, ENODATA), name rules (ENOTSUP, ERANGE) and permissions (EACCES, EPERM)', async () => {
    await s.runAs(ALICE, { op: 'setxattr', handle: file, name: 'user.k', valueBase64: b64('v'), flags: 0 });
    expect(errnoOf(await s.runAs(ALICE, { op: 'setxattr', handle: file, name: 'user.k', valueBase64: b64('v'), flags: XATTR_CREATE }))).toBe(Errno.EEXIST);
    expect(errnoOf(await s.runAs(ALICE, { op: 'setxattr', handle: file, name: 'user.new', valueBase64: b64('v'), flags: XATTR_REPLACE }))).toBe(Errno.ENODATA);
    expect(errnoOf(await s.runAs(ALICE, { op: 'setxattr', handle: file, name: 'nonsense.k', valueBase64: b64('v'), flags: 0 }))).toBe(Errno.ENOTSUP);
    expect(errnoOf(await s.runAs(ALICE, { op: 'setxattr', handle: file, name: '', valueBase64: b64('v'), flags: 0 }))).toBe(Errno.ERANGE);
    expect(errnoOf(await s.runAs(BOB, { op: 'setxattr', handle: file, name: 'user.k', valueBase64: b64('x'), flags: 0 }))).toBe(Errno.EACCES);
    expect(errnoOf(await s.runAs(ALICE, { op: 'setxattr', handle: file, name: 'trusted.k', valueBase64: b64('x'), flags: 0 }))).toBe(Errno.EPERM);
    expect(errnoOf(await s.runAs(ALICE, { op: 'removexattr', handle: file, name: 'user.none' }))).toBe(Errno.ENODATA);
    expect((await s.run({ op: 'setxattr', handle: file, name: 'trusted.k', valueBase64: b64('x'), flags: 0 })).ok).toBe(true);
    expect(await h.machine.query.listxattr(ALICE, file)).toEqual({ ok: true, value: ['user.k'] });
    expect(await h.machine.query.listxattr(ROOT, file)).toEqual({ ok: true, value: ['trusted.k', 'user.k'] });
  });

  it('drops an inode\'s attributes with its last link', async () => {
    await s.runAs(ALICE, { op: 'setxattr', handle: file, name: 'user.k', valueBase64: b64('v'), flags: 0 });
    await s.runAs(ALICE, { op: 'unlink', parent: 2, name: 'a.txt' });
    expect(errnoOf(await h.machine.query.getxattr(ROOT, file, 'user.k'))).toBe(Errno.ESTALE);
    const snapshot = await h.machine.snapshot();
    expect(Buffer.from(snapshot.data).includes(Buffer.from('user.k'))).toBe(false);
  });
});
