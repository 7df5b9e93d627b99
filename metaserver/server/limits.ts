/**
 * What a server refuses before proposing, from its configuration: every
 * change on a read-only server (EROFS), new inodes past --max-inodes and new
 * block bytes past --max-block-bytes or into a disk with less than
 * --min-free-disk-bytes left (ENOSPC). Pure: the service passes the usage it
 * last read (at most a second old: a quota, not an exact count). Must never refuse what frees space or only reads (closing a session,
 * releasing an fh, unlinking, opening for reading).
 */
import { Errno, Failure, fail } from '../rules/errno';
import { MutationBody } from '../state/commands';

export interface ServerLimits {
  readOnly: boolean;
  /** 0 = no limit. */
  maxInodes: number;
  /** Bytes of block content this member stores at most; 0 = no limit. */
  maxBlockBytes: number;
  /** Uploads stop while the data folder's disk has less free than this. */
  minFreeDiskBytes: number;
}

export interface Usage {
  inodesInUse: number;
  blockBytesStored: number;
  diskFreeBytes: number;
}

/** Bytes a new block may add (PutBlock's data length), so a limit is not overshot by one upload. */
export function limitRefusal(body: MutationBody, limits: ServerLimits, usage: Usage, newBlockBytes = 0): Failure | undefined {
  const op = body.op;
  const changes = !(op === 'closeSession' || op === 'release' || (op === 'open' && !body.write && !body.append));
  if (limits.readOnly && changes) return fail(Errno.EROFS, `the file system is read-only (this server runs with --read-only): ${op} refused`);
  if ((op === 'create' || op === 'mkdir' || op === 'mknod' || op === 'symlink') && limits.maxInodes > 0) {
    const { inodesInUse } = usage;
    if (inodesInUse >= limits.maxInodes) return fail(Errno.ENOSPC, `the file system holds ${inodesInUse} inodes, its limit (--max-inodes ${limits.maxInodes})`);
  }
  if (op === 'pinBlocks' && newBlockBytes > 0) {
    const { blockBytesStored, diskFreeBytes } = usage;
    if (limits.maxBlockBytes > 0 && blockBytesStored + newBlockBytes > limits.maxBlockBytes) {
      return fail(Errno.ENOSPC, `storing ${newBlockBytes} more bytes would exceed the block limit (--max-block-bytes ${limits.maxBlockBytes}; ${blockBytesStored} stored)`);
    }
    if (diskFreeBytes - newBlockBytes < limits.minFreeDiskBytes) {
      return fail(Errno.ENOSPC, `the data disk has ${diskFreeBytes} bytes free, less than --min-free-disk-bytes ${limits.minFreeDiskBytes} after this block`);
    }
  }
  return undefined;
}
