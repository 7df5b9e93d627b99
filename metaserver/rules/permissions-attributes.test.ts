/** Scenarios for setattr (chmod, chown, utimes, truncate), writes, new inodes and xattr access. */
import { Errno, Result } from './errno';
import { FileType } from './modes';
import {
  Caller,
  InodeAttrs,
  R_OK,
  W_OK,
  checkChmod,
  checkChown,
  checkTruncate,
  checkUtimes,
  clearSetIdOnWrite,
  mayAccessXattr,
  newInodeOwnership,
  xattrListable,
} from './permissions';

const alice: Caller = { uid: 1000, gid: 1000, groups: [50] };
const bob: Caller = { uid: 1001, gid: 1001, groups: [50] };
const carol: Caller = { uid: 1002, gid: 1002, groups: [] };
const root: Caller = { uid: 0, gid: 0, groups: [] };

const inode = (type: FileType, mode: number, uid = 1000, gid = 1000): InodeAttrs => ({ type, mode, uid, gid });
const errnoOf = (r: Result<unknown>) => (r.ok ? 0 : r.errno);
const valueOf = <T>(r: Result<T>): T => {
  if (!r.ok) throw new Error(`expected success, got errno ${r.errno}: ${r.message}`);
  return r.value;
};

describe('chmod', () => {
  it('only the owner or root may chmod; anyone else gets EPERM, even with write access', () => {
    const file = inode('reg', 0o666);
    expect(valueOf(checkChmod(alice, file, 0o600))).toBe(0o600);
    expect(valueOf(checkChmod(root, file, 0o600))).toBe(0o600);
    expect(errnoOf(checkChmod(bob, file, 0o600))).toBe(Errno.EPERM);
  });

  it('a non-root owner outside the file\'s group cannot set setgid: the bit is silently dropped', () => {
    expect(valueOf(checkChmod(alice, inode('reg', 0o755, 1000, 2000), 0o2755))).toBe(0o755);
    expect(valueOf(checkChmod(alice, inode('reg', 0o755, 1000, 50), 0o2755))).toBe(0o2755); // supplementary group
    expect(valueOf(checkChmod(alice, inode('dir', 0o755, 1000, 2000), 0o2755))).toBe(0o755); // directories too
    expect(valueOf(checkChmod(root, inode('reg', 0o755, 1000, 2000), 0o2755))).toBe(0o2755);
  });

  it('the owner may set setuid and sticky bits', () => {
    expect(valueOf(checkChmod(alice, inode('reg', 0o755), 0o4755))).toBe(0o4755);
    expect(valueOf(checkChmod(alice, inode('dir', 0o755), 0o1777))).toBe(0o1777);
  });

  it('bits beyond 07777 are ignored and a mode that is not a number is EINVAL', () => {
    expect(valueOf(checkChmod(alice, inode('reg', 0o644), 0o170640))).toBe(0o640);
    expect(errnoOf(checkChmod(alice, inode('reg', 0o644), -1))).toBe(Errno.EINVAL);
    expect(errnoOf(checkChmod(alice, inode('reg', 0o644), Number.NaN))).toBe(Errno.EINVAL);
  });
});

describe('chown', () => {
  it('only root may give a file to another uid', () => {
    const file = inode('reg', 0o644);
    expect(errnoOf(checkChown(alice, file, { uid: 1001 }))).toBe(Errno.EPERM);
    expect(valueOf(checkChown(root, file, { uid: 1001 }))).toEqual({ uid: 1001, gid: 1000, mode: 0o644 });
    expect(valueOf(checkChown(alice, file, { uid: 1000 }))).toEqual({ uid: 1000, gid: 1000, mode: 0o644 }); // to itself: a no-op
  });

  it('the owner may change the group to one it belongs to, or keep it, but not to another', () => {
    const file = inode('reg', 0o644, 1000, 3000);
    expect(valueOf(checkChown(alice, file, { gid: 50 })).gid).toBe(50);
    expect(valueOf(checkChown(alice, file, { gid: 1000 })).gid).toBe(1000);
    expect(valueOf(checkChown(alice, file, { gid: 3000 })).gid).toBe(3000);
    expect(errnoOf(checkChown(alice, file, { gid: 1001 }))).toBe(Errno.EPERM);
    expect(errnoOf(checkChown(bob, file, { gid: 50 }))).toBe(Errno.EPERM); // bob is in group 50 but not the owner
    expect(valueOf(checkChown(root, file, { gid: 7 })).gid).toBe(7);
  });

  it('chown clears setuid on a non-directory, even when root does it', () => {
    expect(valueOf(checkChown(root, inode('reg', 0o4755), { uid: 0 })).mode).toBe(0o755);
    expect(valueOf(checkChown(alice, inode('reg', 0o4755), { gid: 50 })).mode).toBe(0o755);
  });

  it('chown clears setgid on a non-directory when group-exec is set, and keeps it otherwise (for root, or a group member)', () => {
    expect(valueOf(checkChown(root, inode('reg', 0o2755), { gid: 7 })).mode).toBe(0o755);
    expect(valueOf(checkChown(root, inode('reg', 0o2644), { gid: 7 })).mode).toBe(0o2644);
    expect(valueOf(checkChown(alice, inode('reg', 0o2644, 1000, 50), { gid: 1000 })).mode).toBe(0o2644);
    expect(valueOf(checkChown(alice, inode('reg', 0o6750, 1000, 50), { gid: 1000 })).mode).toBe(0o0750);
  });

  it('chown by a non-root owner outside the file\'s group clears setgid even without group-exec (Linux ≥ 6.2)', () => {
    expect(valueOf(checkChown(alice, inode('reg', 0o2644, 1000, 3000), { gid: 50 })).mode).toBe(0o644);
  });

  it('chown keeps setuid and setgid on a directory', () => {
    expect(valueOf(checkChown(root, inode('dir', 0o6775), { uid: 5, gid: 5 })).mode).toBe(0o6775);
  });

  it('a stranger\'s no-op chown succeeds, unless it would have to clear a set-id bit (EPERM)', () => {
    expect(valueOf(checkChown(carol, inode('reg', 0o644), {}))).toEqual({ uid: 1000, gid: 1000, mode: 0o644 });
    expect(errnoOf(checkChown(carol, inode('reg', 0o4755), {}))).toBe(Errno.EPERM);
  });

  it('an id outside [0, 0xfffffffe] is EINVAL', () => {
    for (const id of [-1, 0xffffffff, 1.5, Number.NaN]) {
      expect(errnoOf(checkChown(root, inode('reg', 0o644), { uid: id }))).toBe(Errno.EINVAL);
      expect(errnoOf(checkChown(root, inode('reg', 0o644), { gid: id }))).toBe(Errno.EINVAL);
    }
  });
});

describe('utimes', () => {
  const file = inode('reg', 0o646, 1000, 50); // group (bob) r--, other (carol) rw-

  it('setting both times to now needs ownership, root or write access (EACCES)', () => {
    expect(errnoOf(checkUtimes(alice, inode('reg', 0o000), 'now', 'now'))).toBe(0);
    expect(errnoOf(checkUtimes(root, inode('reg', 0o000), 'now', 'now'))).toBe(0);
    expect(errnoOf(checkUtimes(carol, file, 'now', 'now'))).toBe(0);
    expect(errnoOf(checkUtimes(bob, file, 'now', 'now'))).toBe(Errno.EACCES);
  });

  it('setting explicit times needs ownership or root (EPERM), write access is not enough', () => {
    expect(errnoOf(checkUtimes(alice, file, 'set', 'set'))).toBe(0);
    expect(errnoOf(checkUtimes(root, file, 'set', 'set'))).toBe(0);
    expect(errnoOf(checkUtimes(carol, file, 'set', 'set'))).toBe(Errno.EPERM);
  });

  it('anything but both-now or both-omit counts as explicit (EPERM for a writer who does not own the file)', () => {
    expect(errnoOf(checkUtimes(carol, file, 'now', 'omit'))).toBe(Errno.EPERM);
    expect(errnoOf(checkUtimes(carol, file, 'now', 'set'))).toBe(Errno.EPERM);
  });

  it('omitting both times always succeeds', () => {
    expect(errnoOf(checkUtimes(bob, file, 'omit', 'omit'))).toBe(0);
  });
});

describe('truncate', () => {
  const limits = { newSizeBytes: 10, maxFileSizeBytes: 1 << 20 };

  it('changing the size needs write access (EACCES), except through a handle opened for writing', () => {
    const file = inode('reg', 0o644);
    expect(valueOf(checkTruncate(alice, file, limits))).toBe(0o644);
    expect(errnoOf(checkTruncate(bob, file, limits))).toBe(Errno.EACCES);
    expect(valueOf(checkTruncate(bob, file, { ...limits, viaWritableHandle: true }))).toBe(0o644);
    expect(valueOf(checkTruncate(root, inode('reg', 0o000), limits))).toBe(0o000);
  });

  it('a directory is EISDIR and any other non-regular file EINVAL', () => {
    expect(errnoOf(checkTruncate(alice, inode('dir', 0o777), limits))).toBe(Errno.EISDIR);
    expect(errnoOf(checkTruncate(alice, inode('fifo', 0o666), limits))).toBe(Errno.EINVAL);
    expect(errnoOf(checkTruncate(alice, inode('lnk', 0o777), limits))).toBe(Errno.EINVAL);
  });

  it('a negative size is EINVAL and one beyond the maximum EFBIG', () => {
    const file = inode('reg', 0o644);
    expect(errnoOf(checkTruncate(alice, file, { ...limits, newSizeBytes: -1 }))).toBe(Errno.EINVAL);
    expect(errnoOf(checkTruncate(alice, file, { ...limits, newSizeBytes: 2 ** 53 }))).toBe(Errno.EINVAL);
    expect(errnoOf(checkTruncate(alice, file, { ...limits, newSizeBytes: (1 << 20) + 1 }))).toBe(Errno.EFBIG);
    expect(valueOf(checkTruncate(alice, file, { ...limits, newSizeBytes: 1 << 20 }))).toBe(0o644);
  });

  it('a truncate by a non-root caller clears set-id bits as a write does', () => {
    expect(valueOf(checkTruncate(alice, inode('reg', 0o6777), limits))).toBe(0o777);
    expect(valueOf(checkTruncate(root, inode('reg', 0o6777), limits))).toBe(0o6777);
  });
});

describe('writing clears set-id bits', () => {
  it('a write by a non-root caller clears setuid', () => {
    expect(clearSetIdOnWrite(alice, inode('reg', 0o4755))).toBe(0o755);
    expect(clearSetIdOnWrite(bob, inode('reg', 0o4777))).toBe(0o777);
  });

  it('a write clears setgid when group-exec is set', () => {
    expect(clearSetIdOnWrite(alice, inode('reg', 0o2775))).toBe(0o775);
  });

  it('a setgid bit without group-exec stays for a writer in the file\'s group, and goes for one outside it (Linux ≥ 6.2)', () => {
    expect(clearSetIdOnWrite(alice, inode('reg', 0o2666, 1000, 50))).toBe(0o2666);
    expect(clearSetIdOnWrite(carol, inode('reg', 0o2666, 1000, 50))).toBe(0o666);
  });

  it('a write by root keeps both bits, and so does a write to anything but a regular file', () => {
    expect(clearSetIdOnWrite(root, inode('reg', 0o6755))).toBe(0o6755);
    expect(clearSetIdOnWrite(alice, inode('dir', 0o6775))).toBe(0o6775);
  });

  it('returns permission bits only, whatever type bits the stored mode carries', () => {
    expect(clearSetIdOnWrite(alice, inode('reg', 0o104755))).toBe(0o755);
  });
});

describe('ownership of a new inode', () => {
  const plainDir = inode('dir', 0o777, 0, 0);
  const sharedDir = inode('dir', 0o2775, 0, 50); // setgid, group 50

  it('takes the caller\'s uid and gid in an ordinary directory, with the umask applied', () => {
    expect(valueOf(newInodeOwnership(alice, plainDir, 'reg', 0o666, 0o022))).toEqual({ uid: 1000, gid: 1000, mode: 0o644 });
    expect(valueOf(newInodeOwnership(alice, plainDir, 'dir', 0o777, 0o027))).toEqual({ uid: 1000, gid: 1000, mode: 0o750 });
  });

  it('inherits the group of a setgid directory, and a new directory inherits the setgid bit too', () => {
    expect(valueOf(newInodeOwnership(carol, sharedDir, 'reg', 0o644))).toEqual({ uid: 1002, gid: 50, mode: 0o644 });
    expect(valueOf(newInodeOwnership(carol, sharedDir, 'dir', 0o755))).toEqual({ uid: 1002, gid: 50, mode: 0o2755 });
    expect(valueOf(newInodeOwnership(carol, plainDir, 'dir', 0o755)).mode).toBe(0o755);
  });

  it('mkdir keeps only rwx and sticky bits of the requested mode', () => {
    expect(valueOf(newInodeOwnership(alice, plainDir, 'dir', 0o7777)).mode).toBe(0o1777);
  });

  it('a non-member creating setgid+group-exec in a setgid directory loses setgid; a member or root keeps it', () => {
    expect(valueOf(newInodeOwnership(carol, sharedDir, 'reg', 0o2755)).mode).toBe(0o755);
    expect(valueOf(newInodeOwnership(alice, sharedDir, 'reg', 0o2755)).mode).toBe(0o2755);
    expect(valueOf(newInodeOwnership(root, sharedDir, 'reg', 0o2755)).mode).toBe(0o2755);
    expect(valueOf(newInodeOwnership(carol, sharedDir, 'reg', 0o2644)).mode).toBe(0o2644); // no group-exec: kept
  });

  it('a symlink is always 0777, whatever the mode and umask', () => {
    expect(valueOf(newInodeOwnership(alice, plainDir, 'lnk', 0o600, 0o077))).toEqual({ uid: 1000, gid: 1000, mode: 0o777 });
    expect(valueOf(newInodeOwnership(carol, sharedDir, 'lnk', 0)).gid).toBe(50);
  });

  it('only root may create device nodes (EPERM); fifos and sockets are anyone\'s', () => {
    expect(errnoOf(newInodeOwnership(alice, plainDir, 'chr', 0o666))).toBe(Errno.EPERM);
    expect(errnoOf(newInodeOwnership(alice, plainDir, 'blk', 0o666))).toBe(Errno.EPERM);
    expect(valueOf(newInodeOwnership(root, plainDir, 'blk', 0o660)).mode).toBe(0o660);
    expect(valueOf(newInodeOwnership(alice, plainDir, 'fifo', 0o666, 0o002)).mode).toBe(0o664);
    expect(valueOf(newInodeOwnership(alice, plainDir, 'sock', 0o755)).mode).toBe(0o755);
  });

  it('a parent that is not a directory is ENOTDIR, a bad mode or umask EINVAL', () => {
    expect(errnoOf(newInodeOwnership(alice, inode('reg', 0o777), 'reg', 0o644))).toBe(Errno.ENOTDIR);
    expect(errnoOf(newInodeOwnership(alice, plainDir, 'reg', -1))).toBe(Errno.EINVAL);
    expect(errnoOf(newInodeOwnership(alice, plainDir, 'reg', 0o644, 0.5))).toBe(Errno.EINVAL);
  });
});

describe('extended attribute access', () => {
  it('user.* follows the file\'s r and w bits', () => {
    const file = inode('reg', 0o640, 1000, 50);
    expect(errnoOf(mayAccessXattr(bob, file, 'user', R_OK))).toBe(0);
    expect(errnoOf(mayAccessXattr(bob, file, 'user', W_OK))).toBe(Errno.EACCES);
    expect(errnoOf(mayAccessXattr(carol, file, 'user', R_OK))).toBe(Errno.EACCES);
  });

  it('user.* exists only on regular files and directories: writing elsewhere is EPERM, reading ENODATA', () => {
    const link = inode('lnk', 0o777);
    expect(errnoOf(mayAccessXattr(alice, link, 'user', W_OK))).toBe(Errno.EPERM);
    expect(errnoOf(mayAccessXattr(alice, link, 'user', R_OK))).toBe(Errno.ENODATA);
  });

  it('on a sticky directory only the owner or root may write user.*', () => {
    const tmp = inode('dir', 0o1777);
    expect(errnoOf(mayAccessXattr(bob, tmp, 'user', W_OK))).toBe(Errno.EPERM);
    expect(errnoOf(mayAccessXattr(alice, tmp, 'user', W_OK))).toBe(0);
    expect(errnoOf(mayAccessXattr(bob, tmp, 'user', R_OK))).toBe(0);
  });

  it('trusted.* is root\'s alone: others get EPERM writing and ENODATA reading, and do not see it listed', () => {
    const file = inode('reg', 0o666);
    expect(errnoOf(mayAccessXattr(alice, file, 'trusted', W_OK))).toBe(Errno.EPERM);
    expect(errnoOf(mayAccessXattr(alice, file, 'trusted', R_OK))).toBe(Errno.ENODATA);
    expect(errnoOf(mayAccessXattr(root, file, 'trusted', W_OK))).toBe(0);
    expect(xattrListable(alice, 'trusted')).toBe(false);
    expect(xattrListable(root, 'trusted')).toBe(true);
    expect(xattrListable(alice, 'user')).toBe(true);
  });

  it('security.* anyone may read, even without read access, and only root may write', () => {
    const file = inode('reg', 0o000);
    expect(errnoOf(mayAccessXattr(carol, file, 'security', R_OK))).toBe(0);
    expect(errnoOf(mayAccessXattr(alice, file, 'security', W_OK))).toBe(Errno.EPERM);
    expect(errnoOf(mayAccessXattr(root, file, 'security', W_OK))).toBe(0);
  });

  it('system.* anyone may read, and only the owner or root may write', () => {
    const file = inode('reg', 0o666);
    expect(errnoOf(mayAccessXattr(carol, file, 'system', R_OK))).toBe(0);
    expect(errnoOf(mayAccessXattr(carol, file, 'system', W_OK))).toBe(Errno.EPERM);
    expect(errnoOf(mayAccessXattr(alice, file, 'system', W_OK))).toBe(0);
  });

  it('asking for anything but R_OK or W_OK is EINVAL', () => {
    expect(errnoOf(mayAccessXattr(alice, inode('reg', 0o666), 'user', 3))).toBe(Errno.EINVAL);
  });
});
