/** Scenarios for access(2) and the directory rules: lookup, create, delete, rename. */
import { Errno, Result } from './errno';
import { Caller, InodeAttrs, R_OK, W_OK, X_OK, checkCaller, checkWritable, mayAccess, mayCreateIn, mayDeleteFrom, mayLookup, mayRename } from './permissions';
import { FileType } from './modes';

const alice: Caller = { uid: 1000, gid: 1000, groups: [1000, 50] };
const bob: Caller = { uid: 1001, gid: 1001, groups: [1001, 50] };
const carol: Caller = { uid: 1002, gid: 1002, groups: [] };
const root: Caller = { uid: 0, gid: 0, groups: [] };

const inode = (type: FileType, mode: number, uid = 1000, gid = 1000): InodeAttrs => ({ type, mode, uid, gid });
const errnoOf = (r: Result<unknown>) => (r.ok ? 0 : r.errno);

describe('access: exactly one class applies', () => {
  it('the owner gets the owner bits', () => {
    const file = inode('reg', 0o640);
    expect(errnoOf(mayAccess(alice, file, R_OK | W_OK))).toBe(0);
    expect(errnoOf(mayAccess(alice, file, X_OK))).toBe(Errno.EACCES);
  });

  it('the owner class applies even when the group or other bits would allow more', () => {
    const file = inode('reg', 0o077);
    expect(errnoOf(mayAccess(alice, file, R_OK))).toBe(Errno.EACCES);
    expect(errnoOf(mayAccess(bob, file, R_OK))).toBe(0); // a stranger reads what the owner may not
  });

  it('a member of the file\'s group but not its owner gets the group bits, not other\'s', () => {
    const file = inode('reg', 0o604, 1000, 50); // group ---, other r--
    expect(errnoOf(mayAccess(bob, file, R_OK))).toBe(Errno.EACCES);
    expect(errnoOf(mayAccess(carol, file, R_OK))).toBe(0);
  });

  it('group membership counts through the primary gid as well as the supplementary groups', () => {
    const file = inode('reg', 0o040, 1000, 1001);
    expect(errnoOf(mayAccess(bob, file, R_OK))).toBe(0); // bob's primary gid
    expect(errnoOf(mayAccess({ uid: 7, gid: 7, groups: [1001] }, file, R_OK))).toBe(0);
    expect(errnoOf(mayAccess(carol, file, R_OK))).toBe(Errno.EACCES);
  });

  it('anyone else gets the other bits', () => {
    const file = inode('reg', 0o751);
    expect(errnoOf(mayAccess(carol, file, X_OK))).toBe(0);
    expect(errnoOf(mayAccess(carol, file, R_OK))).toBe(Errno.EACCES);
  });

  it('every wanted bit must be granted, and asking for nothing is always granted', () => {
    const file = inode('reg', 0o004);
    expect(errnoOf(mayAccess(carol, file, R_OK | W_OK))).toBe(Errno.EACCES);
    expect(errnoOf(mayAccess(carol, inode('reg', 0), 0))).toBe(0);
  });

  it('the denial names what was needed and what the class grants', () => {
    const r = mayAccess(bob, inode('reg', 0o654, 1000, 50), W_OK);
    expect(r).toEqual({ ok: false, errno: Errno.EACCES, message: 'need -w-, the group class grants r-x' });
  });

  it('set-id, sticky and type bits in the mode do not grant access', () => {
    expect(errnoOf(mayAccess(carol, inode('reg', 0o107000), R_OK))).toBe(Errno.EACCES);
  });

  it('a mask outside R_OK|W_OK|X_OK is EINVAL', () => {
    for (const want of [8, -1, 1.5, Number.NaN]) expect(errnoOf(mayAccess(alice, inode('reg', 0o777), want))).toBe(Errno.EINVAL);
  });
});

describe('access: root', () => {
  it('root reads and writes whatever the mode says', () => {
    expect(errnoOf(mayAccess(root, inode('reg', 0o000), R_OK | W_OK))).toBe(0);
  });

  it('root executes a file only if some x bit is set, for any class', () => {
    expect(errnoOf(mayAccess(root, inode('reg', 0o666), X_OK))).toBe(Errno.EACCES);
    expect(errnoOf(mayAccess(root, inode('reg', 0o001), X_OK))).toBe(0);
    expect(errnoOf(mayAccess(root, inode('reg', 0o010), X_OK))).toBe(0);
  });

  it('root searches any directory, x bits or not', () => {
    expect(errnoOf(mayAccess(root, inode('dir', 0o000), R_OK | W_OK | X_OK))).toBe(0);
  });
});

describe('directory operations', () => {
  const dir = inode('dir', 0o755);

  it('looking a name up needs x on the directory, not r', () => {
    expect(errnoOf(mayLookup(carol, inode('dir', 0o711)))).toBe(0);
    expect(errnoOf(mayLookup(carol, inode('dir', 0o754)))).toBe(Errno.EACCES);
  });

  it('looking a name up in something that is not a directory is ENOTDIR', () => {
    expect(errnoOf(mayLookup(alice, inode('reg', 0o777)))).toBe(Errno.ENOTDIR);
  });

  it('creating needs w and x on the directory', () => {
    expect(errnoOf(mayCreateIn(alice, dir, false))).toBe(0);
    expect(errnoOf(mayCreateIn(carol, dir, false))).toBe(Errno.EACCES);
    expect(errnoOf(mayCreateIn(carol, inode('dir', 0o772), false))).toBe(Errno.EACCES); // w without x
    expect(errnoOf(mayCreateIn(carol, inode('dir', 0o773), false))).toBe(0);
  });

  it('creating an existing name is EEXIST even without w, but EACCES without x', () => {
    expect(errnoOf(mayCreateIn(carol, dir, true))).toBe(Errno.EEXIST);
    expect(errnoOf(mayCreateIn(carol, inode('dir', 0o776), true))).toBe(Errno.EACCES);
  });

  it('deleting needs w and x on the directory, whoever owns the victim', () => {
    const mine = inode('reg', 0o644, 1002, 1002);
    expect(errnoOf(mayDeleteFrom(carol, dir, mine))).toBe(Errno.EACCES);
    expect(errnoOf(mayDeleteFrom(carol, inode('dir', 0o777), inode('reg', 0o000)))).toBe(0); // even a file carol cannot read
  });

  it('only the owner, the directory\'s owner or root may delete from a sticky directory', () => {
    const tmp = inode('dir', 0o1777, 1000, 1000); // owned by alice
    const bobsFile = inode('reg', 0o666, 1001, 1001);
    expect(errnoOf(mayDeleteFrom(bob, tmp, bobsFile))).toBe(0); // the file's owner
    expect(errnoOf(mayDeleteFrom(alice, tmp, bobsFile))).toBe(0); // the directory's owner
    expect(errnoOf(mayDeleteFrom(root, tmp, bobsFile))).toBe(0);
    const r = mayDeleteFrom(carol, tmp, bobsFile);
    expect(errnoOf(r)).toBe(Errno.EPERM);
    expect(r.ok ? '' : r.message).toMatch(/sticky/);
  });

  it('the sticky rule comes after w+x: a stranger without w gets EACCES, not EPERM', () => {
    const lockedTmp = inode('dir', 0o1755, 1000);
    expect(errnoOf(mayDeleteFrom(carol, lockedTmp, inode('reg', 0o666, 1001)))).toBe(Errno.EACCES);
  });

  it('rmdir wants a directory (ENOTDIR) and unlink a non-directory (EISDIR), checked after permission', () => {
    const open = inode('dir', 0o777);
    expect(errnoOf(mayDeleteFrom(alice, open, inode('reg', 0o644), 'dir'))).toBe(Errno.ENOTDIR);
    expect(errnoOf(mayDeleteFrom(alice, open, inode('dir', 0o755), 'nondir'))).toBe(Errno.EISDIR);
    expect(errnoOf(mayDeleteFrom(carol, dir, inode('dir', 0o755), 'nondir'))).toBe(Errno.EACCES);
    expect(errnoOf(mayDeleteFrom(alice, open, inode('lnk', 0o777), 'nondir'))).toBe(0);
  });

  it('root deletes from any directory, sticky or not', () => {
    expect(errnoOf(mayDeleteFrom(root, inode('dir', 0o1000, 1000), inode('reg', 0o000, 1001)))).toBe(0);
  });
});

describe('rename', () => {
  const open = inode('dir', 0o777, 1000);
  const otherOpen = inode('dir', 0o777, 1001);
  const carolsDir = inode('dir', 0o755, 1002, 1002);
  const carolsFile = inode('reg', 0o644, 1002, 1002);

  it('within one directory needs w+x there and nothing on the file', () => {
    expect(errnoOf(mayRename(carol, { fromDir: open, source: inode('reg', 0o000, 1000), toDir: open, sameDir: true }))).toBe(0);
    expect(errnoOf(mayRename(carol, { fromDir: inode('dir', 0o755), source: carolsFile, toDir: inode('dir', 0o755), sameDir: true }))).toBe(
      Errno.EACCES,
    );
  });

  it('to another directory needs w+x on both', () => {
    const readOnlyDest = inode('dir', 0o755, 1000);
    expect(errnoOf(mayRename(carol, { fromDir: open, source: carolsFile, toDir: readOnlyDest, sameDir: false }))).toBe(Errno.EACCES);
    expect(errnoOf(mayRename(carol, { fromDir: open, source: carolsFile, toDir: otherOpen, sameDir: false }))).toBe(0);
  });

  it('moving a directory to another parent needs w on the directory itself, for its ".."', () => {
    const request = { fromDir: open, source: inode('dir', 0o555, 1002), toDir: otherOpen };
    expect(errnoOf(mayRename(carol, { ...request, sameDir: true }))).toBe(0); // same parent: ".." unchanged
    const r = mayRename(carol, { ...request, sameDir: false });
    expect(errnoOf(r)).toBe(Errno.EACCES);
    expect(r.ok ? '' : r.message).toMatch(/"\.\."/);
    expect(errnoOf(mayRename(carol, { ...request, source: carolsDir, sameDir: false }))).toBe(0);
    expect(errnoOf(mayRename(root, { ...request, sameDir: false }))).toBe(0);
  });

  it('a directory replaces only a directory (ENOTDIR) and a non-directory only a non-directory (EISDIR)', () => {
    expect(errnoOf(mayRename(alice, { fromDir: open, source: inode('dir', 0o755), toDir: open, target: inode('reg', 0o644), sameDir: true }))).toBe(
      Errno.ENOTDIR,
    );
    expect(errnoOf(mayRename(alice, { fromDir: open, source: inode('reg', 0o644), toDir: open, target: inode('dir', 0o755), sameDir: true }))).toBe(
      Errno.EISDIR,
    );
  });

  it('the sticky rule applies to the source and to a replaced target', () => {
    const tmp = inode('dir', 0o1777, 0, 0);
    const bobsFile = inode('reg', 0o666, 1001, 1001);
    expect(errnoOf(mayRename(carol, { fromDir: tmp, source: bobsFile, toDir: tmp, sameDir: true }))).toBe(Errno.EPERM);
    expect(errnoOf(mayRename(carol, { fromDir: tmp, source: carolsFile, toDir: tmp, target: bobsFile, sameDir: true }))).toBe(Errno.EPERM);
    expect(errnoOf(mayRename(carol, { fromDir: tmp, source: carolsFile, toDir: tmp, sameDir: true }))).toBe(0);
  });

  it('RENAME_NOREPLACE onto an existing name is EEXIST, RENAME_EXCHANGE with no target ENOENT, both together EINVAL', () => {
    const base = { fromDir: open, source: carolsFile, toDir: open, sameDir: true };
    expect(errnoOf(mayRename(carol, { ...base, target: inode('reg', 0o644, 1002), noReplace: true }))).toBe(Errno.EEXIST);
    expect(errnoOf(mayRename(carol, { ...base, noReplace: true }))).toBe(0);
    expect(errnoOf(mayRename(carol, { ...base, exchange: true }))).toBe(Errno.ENOENT);
    expect(errnoOf(mayRename(carol, { ...base, exchange: true, noReplace: true }))).toBe(Errno.EINVAL);
  });

  it('RENAME_EXCHANGE swaps a file with a directory, and moving that directory across parents needs w on it', () => {
    const base = { fromDir: open, source: carolsFile, toDir: otherOpen, exchange: true };
    const lockedDir = inode('dir', 0o555, 1000);
    expect(errnoOf(mayRename(carol, { ...base, target: carolsDir, sameDir: false }))).toBe(0);
    expect(errnoOf(mayRename(carol, { ...base, target: lockedDir, sameDir: false }))).toBe(Errno.EACCES);
    expect(errnoOf(mayRename(carol, { ...base, target: lockedDir, sameDir: true }))).toBe(0);
  });

  it('a destination that is not a directory is ENOTDIR', () => {
    expect(errnoOf(mayRename(alice, { fromDir: open, source: carolsFile, toDir: inode('reg', 0o777), sameDir: false }))).toBe(Errno.ENOTDIR);
  });
});

describe('callers and read-only servers', () => {
  it('a caller must carry valid ids and a bounded group list (EINVAL names the field)', () => {
    expect(checkCaller(alice).ok).toBe(true);
    expect(checkCaller({ uid: 0xfffffffe, gid: 0, groups: [] }).ok).toBe(true);
    const bad: Array<[Caller, RegExp]> = [
      [{ uid: -1, gid: 0, groups: [] }, /uid/],
      [{ uid: 0xffffffff, gid: 0, groups: [] }, /uid/],
      [{ uid: 0, gid: 1.5, groups: [] }, /gid/],
      [{ uid: 0, gid: 0, groups: [1, Number.NaN] }, /group NaN/],
      [{ uid: 0, gid: 0, groups: new Array<number>(65537).fill(1) }, /65537 groups/],
      [{ uid: 0, gid: 0, groups: 'wheel' as unknown as number[] }, /not a list/],
    ];
    for (const [caller, message] of bad) {
      const r = checkCaller(caller);
      expect(errnoOf(r)).toBe(Errno.EINVAL);
      expect(r.ok ? '' : r.message).toMatch(message);
    }
  });

  it('a read-only server refuses every change with EROFS', () => {
    expect(errnoOf(checkWritable(true))).toBe(Errno.EROFS);
    expect(errnoOf(checkWritable(false))).toBe(0);
  });
});
