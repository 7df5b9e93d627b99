/**
 * POSIX permission decisions, made as Linux 6.x makes them (fs/namei.c,
 * fs/attr.c, fs/inode.c, fs/xattr.c), with uid 0 standing for a caller with
 * every capability. Each rule returns EACCES or EPERM exactly where Linux
 * does, and the mode/owner an operation leaves behind (set-id clearing,
 * setgid inheritance). Pure and total over its declared input types: never
 * reads the namespace, a clock or the disk, and never throws. Whether a name
 * exists, a directory is empty or one directory contains another is the
 * state machine's question; the comments say where its answer goes.
 */
import { Check, Errno, OK, Result, fail, ok } from './errno';
import {
  FileType,
  PERMISSION_BITS,
  S_IRWXUGO,
  S_ISGID,
  S_ISUID,
  S_ISVTX,
  S_IXGRP,
  S_IXUGO,
  rwxString,
} from './modes';
import { XattrNamespace } from './names';

/** Access bits as access(2) numbers them; they line up with each class's rwx bits. */
export const R_OK = 4;
export const W_OK = 2;
export const X_OK = 1;

export const ROOT_UID = 0;
/** Linux NGROUPS_MAX: supplementary groups a caller may carry. */
export const GROUPS_MAX = 65536;
/** uid/gid 0xFFFFFFFF is "no change" in chown(2), so it is never a real id. */
export const ID_MAX = 0xfffffffe;

/** Who asks: the credentials the client sent with the command. */
export interface Caller {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups (the primary gid need not be repeated). */
  readonly groups: readonly number[];
}

/** The inode attributes the rules read. `mode` is read through PERMISSION_BITS; `type` is authoritative. */
export interface InodeAttrs {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly type: FileType;
}

/** What a chown or a create leaves on the inode (mode: permission bits only). */
export interface Ownership {
  uid: number;
  gid: number;
  mode: number;
}

/** How utimensat asks for one timestamp: UTIME_NOW, UTIME_OMIT, or an explicit time. */
export type TimeUpdate = 'now' | 'omit' | 'set';

/** Credentials a command may carry: EINVAL names the bad field. Run once when a command is decoded. */
export function checkCaller(caller: Caller): Check {
  if (!isId(caller.uid)) return fail(Errno.EINVAL, `caller uid ${String(caller.uid)} is not an id in [0, ${ID_MAX}]`);
  if (!isId(caller.gid)) return fail(Errno.EINVAL, `caller gid ${String(caller.gid)} is not an id in [0, ${ID_MAX}]`);
  if (!Array.isArray(caller.groups)) return fail(Errno.EINVAL, 'caller groups is not a list');
  if (caller.groups.length > GROUPS_MAX) {
    return fail(Errno.EINVAL, `caller carries ${caller.groups.length} groups, more than ${GROUPS_MAX}`);
  }
  const bad = caller.groups.find((gid) => !isId(gid));
  if (bad !== undefined) return fail(Errno.EINVAL, `caller group ${String(bad)} is not an id in [0, ${ID_MAX}]`);
  return OK;
}

/** EROFS for any change on a read-only server or mount. Callers check it before the permission rules, as Linux does. */
export function checkWritable(readOnly: boolean): Check {
  return readOnly ? fail(Errno.EROFS, 'the file system is read-only') : OK;
}

export function inGroup(caller: Caller, gid: number): boolean {
  return caller.gid === gid || caller.groups.includes(gid);
}

/**
 * access(2)'s decision: exactly one class applies (owner, else group, else
 * other), even when a later class would grant more. Root may read and write
 * anything and search any directory, but executes a file only if some x bit
 * is set.
 */
export function mayAccess(caller: Caller, inode: InodeAttrs, want: number): Check {
  if (!Number.isInteger(want) || want < 0 || want > (R_OK | W_OK | X_OK)) {
    return fail(Errno.EINVAL, `access mask ${String(want)} is not a combination of R_OK, W_OK, X_OK`);
  }
  if (isRoot(caller)) {
    if (want & X_OK && inode.type !== 'dir' && (inode.mode & S_IXUGO) === 0) {
      return fail(Errno.EACCES, 'even root may execute a file only when some x bit is set');
    }
    return OK;
  }
  let className: string;
  let shift: number;
  if (caller.uid === inode.uid) [className, shift] = ['owner', 6];
  else if (inGroup(caller, inode.gid)) [className, shift] = ['group', 3];
  else [className, shift] = ['other', 0];
  const granted = (inode.mode >> shift) & 7;
  if ((want & ~granted) !== 0) {
    return fail(Errno.EACCES, `need ${rwxString(want)}, the ${className} class grants ${rwxString(granted)}`);
  }
  return OK;
}

/** Looking a name up in (or walking through) a directory needs x on it. */
export function mayLookup(caller: Caller, dir: InodeAttrs): Check {
  if (dir.type !== 'dir') return fail(Errno.ENOTDIR, `looking a name up in a ${dir.type}, not a directory`);
  return mayAccess(caller, dir, X_OK);
}

/**
 * Creating an entry (create, mkdir, mknod, symlink, link target) needs w and
 * x on the directory. Linux finds the name first, so an existing name is
 * EEXIST even without w (but not without x): pass whether it exists.
 */
export function mayCreateIn(caller: Caller, dir: InodeAttrs, nameExists: boolean): Check {
  const lookup = mayLookup(caller, dir);
  if (!lookup.ok) return lookup;
  if (nameExists) return fail(Errno.EEXIST, 'the name exists');
  return mayAccess(caller, dir, W_OK | X_OK);
}

/**
 * Removing `victim` from `dir` (unlink, rmdir, either side of rename): w and
 * x on the directory (EACCES), then the sticky rule (EPERM: in a S_ISVTX
 * directory only the victim's owner, the directory's owner or root), then the
 * type the operation expects: rmdir wants a directory (ENOTDIR), unlink a
 * non-directory (EISDIR). Callers first check mayLookup and that the victim
 * exists (ENOENT).
 */
export function mayDeleteFrom(
  caller: Caller,
  dir: InodeAttrs,
  victim: InodeAttrs,
  expect: 'any' | 'dir' | 'nondir' = 'any',
): Check {
  if (dir.type !== 'dir') return fail(Errno.ENOTDIR, `removing an entry from a ${dir.type}, not a directory`);
  const access = mayAccess(caller, dir, W_OK | X_OK);
  if (!access.ok) return access;
  if (dir.mode & S_ISVTX && !isRoot(caller) && caller.uid !== victim.uid && caller.uid !== dir.uid) {
    return fail(
      Errno.EPERM,
      `sticky directory: uid ${caller.uid} owns neither the entry (uid ${victim.uid}) nor the directory (uid ${dir.uid})`,
    );
  }
  if (expect === 'dir' && victim.type !== 'dir') return fail(Errno.ENOTDIR, `the entry is a ${victim.type}, not a directory`);
  if (expect === 'nondir' && victim.type === 'dir') return fail(Errno.EISDIR, 'the entry is a directory');
  return OK;
}

export interface RenameRequest {
  fromDir: InodeAttrs;
  source: InodeAttrs;
  toDir: InodeAttrs;
  /** The inode the new name points at now, if any. */
  target?: InodeAttrs;
  /** fromDir and toDir are the same directory (the state machine compares handles). */
  sameDir: boolean;
  /** RENAME_NOREPLACE: fail with EEXIST rather than replace. */
  noReplace?: boolean;
  /** RENAME_EXCHANGE: swap source and target atomically. */
  exchange?: boolean;
}

/**
 * rename(2)'s permission decision, in Linux's order: flags, removing the
 * source, creating or replacing the target (a directory replaces only a
 * directory, a non-directory only a non-directory), and, when a directory
 * changes parent, w on the directory itself since its ".." entry is
 * rewritten. Left to the state machine, before this: x on both parents and
 * the source's existence, renaming a name onto a hard link of the same inode
 * (a successful no-op); after this: source an ancestor of the target (EINVAL),
 * target an ancestor of the source or a non-empty directory (ENOTEMPTY).
 */
export function mayRename(caller: Caller, request: RenameRequest): Check {
  const { fromDir, source, toDir, target, sameDir } = request;
  const exchange = request.exchange === true;
  if (exchange && request.noReplace === true) return fail(Errno.EINVAL, 'RENAME_EXCHANGE and RENAME_NOREPLACE together');
  if (request.noReplace === true && target !== undefined) return fail(Errno.EEXIST, 'RENAME_NOREPLACE and the target exists');
  if (exchange && target === undefined) return fail(Errno.ENOENT, 'RENAME_EXCHANGE and the target does not exist');
  const sourceIsDir = source.type === 'dir';
  const leave = mayDeleteFrom(caller, fromDir, source);
  if (!leave.ok) return leave;
  if (target === undefined) {
    const arrive = mayAccessDir(caller, toDir, W_OK | X_OK);
    if (!arrive.ok) return arrive;
  } else {
    // Plain rename overwrites the target, so it must match the source's kind; an exchange keeps both.
    const expect = exchange ? 'any' : sourceIsDir ? 'dir' : 'nondir';
    const replace = mayDeleteFrom(caller, toDir, target, expect);
    if (!replace.ok) return replace;
  }
  if (!sameDir) {
    if (sourceIsDir) {
      const dotdot = mayAccess(caller, source, W_OK);
      if (!dotdot.ok) return fail(Errno.EACCES, `moving a directory to another parent rewrites its "..": ${dotdot.message}`);
    }
    if (exchange && target !== undefined && target.type === 'dir') {
      const dotdot = mayAccess(caller, target, W_OK);
      if (!dotdot.ok) return fail(Errno.EACCES, `exchanging moves the target directory and rewrites its "..": ${dotdot.message}`);
    }
  }
  return OK;
}

/**
 * chmod: only the owner or root (EPERM). A non-root caller outside the file's
 * group cannot set S_ISGID: the bit is silently dropped. Bits beyond 07777
 * are ignored, as chmod(2) does. For a setattr that also changes the group,
 * apply checkChown first and pass the inode with its new gid.
 */
export function checkChmod(caller: Caller, inode: InodeAttrs, requestedMode: number): Result<number> {
  if (!Number.isInteger(requestedMode) || requestedMode < 0) {
    return fail(Errno.EINVAL, `mode ${String(requestedMode)} is not a non-negative integer`);
  }
  if (!isRoot(caller) && caller.uid !== inode.uid) {
    return fail(Errno.EPERM, `only the owner (uid ${inode.uid}) or root may chmod; caller is uid ${caller.uid}`);
  }
  let mode = requestedMode & PERMISSION_BITS;
  if (!isRoot(caller) && !inGroup(caller, inode.gid)) mode &= ~S_ISGID;
  return ok(mode);
}

/**
 * chown/chgrp (undefined leaves an id unchanged). Only root gives a file to
 * another uid; the owner may change the group to one of its own groups (or
 * keep it); anything else is EPERM. On a non-directory every chown (by root
 * too) clears S_ISUID, and clears S_ISGID when group-exec is set or the
 * caller is neither root nor in the file's group: the Linux ≥ 6.2 rule. A
 * stranger's no-op chown succeeds unless it would have to strip a set-id bit.
 */
export function checkChown(caller: Caller, inode: InodeAttrs, change: { uid?: number; gid?: number }): Result<Ownership> {
  if (change.uid !== undefined && !isId(change.uid)) return fail(Errno.EINVAL, `uid ${String(change.uid)} is not a valid id`);
  if (change.gid !== undefined && !isId(change.gid)) return fail(Errno.EINVAL, `gid ${String(change.gid)} is not a valid id`);
  const root = isRoot(caller);
  const owner = caller.uid === inode.uid;
  if (change.uid !== undefined && !root && !(owner && change.uid === inode.uid)) {
    return fail(Errno.EPERM, `only root may change the owner (uid ${inode.uid} to ${change.uid})`);
  }
  if (change.gid !== undefined && !root && !(owner && (change.gid === inode.gid || inGroup(caller, change.gid)))) {
    return fail(
      Errno.EPERM,
      owner
        ? `the owner may change the group only to one of its own; uid ${caller.uid} is not in group ${change.gid}`
        : `only the owner (uid ${inode.uid}) or root may change the group`,
    );
  }
  const before = inode.mode & PERMISSION_BITS;
  let mode = before;
  if (inode.type !== 'dir') {
    mode &= ~S_ISUID;
    if (mode & S_ISGID && (mode & S_IXGRP || (!root && !inGroup(caller, inode.gid)))) mode &= ~S_ISGID;
  }
  // Stripping bits is a mode change, which Linux lets only the owner or root make.
  if (mode !== before && !root && !owner) {
    return fail(Errno.EPERM, 'chown would clear set-id bits, which only the owner or root may do');
  }
  return ok({ uid: change.uid ?? inode.uid, gid: change.gid ?? inode.gid, mode });
}

/**
 * utimensat: setting both times to now needs ownership, root or write
 * access (EACCES); any explicit time (even beside "now" or "omit") needs
 * ownership or root (EPERM); omitting both is a no-op that always succeeds.
 */
export function checkUtimes(caller: Caller, inode: InodeAttrs, atime: TimeUpdate, mtime: TimeUpdate): Check {
  if (atime === 'omit' && mtime === 'omit') return OK;
  if (isRoot(caller) || caller.uid === inode.uid) return OK;
  if (atime === 'now' && mtime === 'now') {
    const write = mayAccess(caller, inode, W_OK);
    return write.ok ? OK : fail(Errno.EACCES, `setting times to now needs ownership or write access: ${write.message}`);
  }
  return fail(Errno.EPERM, `only the owner (uid ${inode.uid}) or root may set explicit times`);
}

export interface TruncateRequest {
  newSizeBytes: number;
  maxFileSizeBytes: number;
  /** ftruncate through a handle opened for writing: the open already checked w. */
  viaWritableHandle?: boolean;
}

/**
 * Changing a file's size: EINVAL for a negative size or a non-regular file
 * (EISDIR for a directory), EACCES without write access (unless through a
 * writable handle), EFBIG beyond the maximum. Returns the mode afterwards:
 * a truncate clears set-id bits as a write does.
 */
export function checkTruncate(caller: Caller, inode: InodeAttrs, request: TruncateRequest): Result<number> {
  const { newSizeBytes, maxFileSizeBytes } = request;
  if (!Number.isSafeInteger(newSizeBytes) || newSizeBytes < 0) {
    return fail(Errno.EINVAL, `size ${String(newSizeBytes)} is not a non-negative integer`);
  }
  if (inode.type === 'dir') return fail(Errno.EISDIR, 'cannot truncate a directory');
  if (inode.type !== 'reg') return fail(Errno.EINVAL, `cannot truncate a ${inode.type}`);
  if (request.viaWritableHandle !== true) {
    const write = mayAccess(caller, inode, W_OK);
    if (!write.ok) return write;
  }
  if (newSizeBytes > maxFileSizeBytes) {
    return fail(Errno.EFBIG, `size ${newSizeBytes} exceeds the maximum file size ${maxFileSizeBytes}`);
  }
  return ok(clearSetIdOnWrite(caller, inode));
}

/**
 * The mode after a non-root caller writes to (or truncates) a regular file:
 * S_ISUID goes; S_ISGID goes when group-exec is set (a real setgid program)
 * or when the caller is not in the file's group (Linux ≥ 6.2). A setgid bit
 * without group-exec is otherwise kept (the old mandatory-locking mark). Root
 * and other file types keep their bits.
 */
export function clearSetIdOnWrite(caller: Caller, inode: InodeAttrs): number {
  const mode = inode.mode & PERMISSION_BITS;
  if (isRoot(caller) || inode.type !== 'reg') return mode;
  let cleared = mode & ~S_ISUID;
  if (cleared & S_ISGID && (cleared & S_IXGRP || !inGroup(caller, inode.gid))) cleared &= ~S_ISGID;
  return cleared;
}

/**
 * Owner, group and mode of a new inode. The umask (0 when the client already
 * applied it) removes rwx bits; mkdir keeps only rwx and sticky bits. In a
 * setgid directory the new inode takes the directory's group, and a new
 * directory also takes the setgid bit; a non-directory asking for
 * setgid+group-exec there loses setgid unless the caller is root or in that
 * group. Symlinks are always 0777. Only root may create device nodes (EPERM).
 * Callers check mayCreateIn first.
 */
export function newInodeOwnership(
  caller: Caller,
  parentDir: InodeAttrs,
  type: FileType,
  requestedMode: number,
  umask = 0,
): Result<Ownership> {
  if (parentDir.type !== 'dir') return fail(Errno.ENOTDIR, `creating in a ${parentDir.type}, not a directory`);
  if (!Number.isInteger(requestedMode) || requestedMode < 0) {
    return fail(Errno.EINVAL, `mode ${String(requestedMode)} is not a non-negative integer`);
  }
  if (!Number.isInteger(umask) || umask < 0) return fail(Errno.EINVAL, `umask ${String(umask)} is not a non-negative integer`);
  if ((type === 'chr' || type === 'blk') && !isRoot(caller)) {
    return fail(Errno.EPERM, 'only root may create device nodes');
  }
  const parentSetgid = (parentDir.mode & S_ISGID) !== 0;
  const gid = parentSetgid ? parentDir.gid : caller.gid;
  if (type === 'lnk') return ok({ uid: caller.uid, gid, mode: S_IRWXUGO });
  let mode = requestedMode & PERMISSION_BITS;
  if (
    type !== 'dir' &&
    parentSetgid &&
    (mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) &&
    !isRoot(caller) &&
    !inGroup(caller, parentDir.gid)
  ) {
    mode &= ~S_ISGID;
  }
  mode &= ~(umask & S_IRWXUGO);
  if (type === 'dir') {
    mode &= S_IRWXUGO | S_ISVTX;
    if (parentSetgid) mode |= S_ISGID;
  }
  return ok({ uid: caller.uid, gid, mode });
}

/**
 * Reading (R_OK) or writing (W_OK) an extended attribute, by namespace as
 * Linux's xattr_permission and capability hooks decide: trusted.* is root's
 * alone (write EPERM, read ENODATA as if absent); security.* anyone may read
 * and only root write (EPERM); system.* (ACLs) anyone may read and the owner
 * or root write (EPERM); user.* lives only on regular files and directories
 * (write EPERM, read ENODATA elsewhere), only the owner or root writes one on
 * a sticky directory (EPERM), and otherwise follows the file's r/w bits.
 */
export function mayAccessXattr(caller: Caller, inode: InodeAttrs, namespace: XattrNamespace, want: number): Check {
  if (want !== R_OK && want !== W_OK) return fail(Errno.EINVAL, `xattr access ${String(want)} is neither R_OK nor W_OK`);
  const writing = want === W_OK;
  const root = isRoot(caller);
  switch (namespace) {
    case 'trusted':
      if (root) return OK;
      return writing ? fail(Errno.EPERM, 'only root may set trusted.* attributes') : fail(Errno.ENODATA, 'no such attribute');
    case 'security':
      return writing && !root ? fail(Errno.EPERM, 'only root may set security.* attributes') : OK;
    case 'system':
      return writing && !root && caller.uid !== inode.uid
        ? fail(Errno.EPERM, `only the owner (uid ${inode.uid}) or root may set system.* attributes`)
        : OK;
    case 'user':
      if (inode.type !== 'reg' && inode.type !== 'dir') {
        return writing
          ? fail(Errno.EPERM, `user.* attributes exist only on regular files and directories, not a ${inode.type}`)
          : fail(Errno.ENODATA, 'no such attribute');
      }
      if (writing && inode.type === 'dir' && inode.mode & S_ISVTX && !root && caller.uid !== inode.uid) {
        return fail(Errno.EPERM, 'only the owner or root may set user.* attributes on a sticky directory');
      }
      return mayAccess(caller, inode, want);
  }
}

/** Whether listxattr shows an attribute of this namespace to the caller (trusted.* only to root). */
export function xattrListable(caller: Caller, namespace: XattrNamespace): boolean {
  return namespace !== 'trusted' || isRoot(caller);
}

function isRoot(caller: Caller): boolean {
  return caller.uid === ROOT_UID;
}

function isId(id: number): boolean {
  return Number.isInteger(id) && id >= 0 && id <= ID_MAX;
}

/** mayAccess for a directory operand, with ENOTDIR when it is not one. */
function mayAccessDir(caller: Caller, dir: InodeAttrs, want: number): Check {
  if (dir.type !== 'dir') return fail(Errno.ENOTDIR, `the destination is a ${dir.type}, not a directory`);
  return mayAccess(caller, dir, want);
}
