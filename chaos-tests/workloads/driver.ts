/**
 * What a workload asks of a client, and how an error becomes an outcome.
 * A Driver performs one file-system operation on cluster paths ('/reg/r0')
 * through one client — a FUSE mount (fuse-driver.ts) or the SDK
 * (sdk-driver.ts). Owns the errno → outcome rule; must never retry: a retry
 * would hide what the client saw.
 */
import * as os from 'node:os';
import type { Outcome } from '../history';

export interface Driver {
  /** Whole-file write (create if missing, truncate, write, close). */
  write(path: string, value: string): Promise<void>;
  /** Whole-file read; undefined when the file does not exist. */
  read(path: string): Promise<string | undefined>;
  /** One O_APPEND record (the driver adds nothing: the caller passes the line with its '\n'). */
  append(path: string, record: string): Promise<void>;
  create(dir: string, name: string): Promise<void>;
  rename(dir: string, from: string, to: string): Promise<void>;
  link(dir: string, existing: string, newName: string): Promise<void>;
  unlink(dir: string, name: string): Promise<void>;
  list(dir: string): Promise<string[]>;
  close(): Promise<void>;
  /**
   * The end of a client that dies without closing: open `path` and hold the fh, keep the session
   * open, and answer both; the worker is then killed. SDK only (a mount's process cannot be
   * killed without leaving a dead mount behind).
   */
  abandon?(path: string): Promise<{ sessionId: number; fh: number }>;
}

/**
 * Errnos after which the operation certainly changed nothing. Anything else —
 * EIO, ENOTCONN, ETIMEDOUT, ECANCELED, a worker-side timeout, an unknown code —
 * may have happened: 'unknown' (the checkers treat it as may-have-happened).
 */
const NOTHING_CHANGED = new Set([
  'ENOENT', 'EEXIST', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'EINVAL', 'ENAMETOOLONG', 'EFBIG', 'ENOSPC', 'EDQUOT',
  'EMLINK', 'EXDEV', 'EBADF', 'EROFS', 'EBUSY',
]);

/** Errno number → name (Linux), for the errnos libuv has no name for (ESTALE comes back as "Unknown system error -116"). */
const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([name, value]) => [value, name]));

export function errorCode(error: unknown): string {
  const { code, errno } = (error ?? {}) as { code?: unknown; errno?: unknown };
  if (typeof code === 'string' && /^Unknown system error/.test(code) && typeof errno === 'number') return ERRNO_NAMES.get(Math.abs(errno)) ?? code;
  return typeof code === 'string' && code !== '' ? code : 'EUNKNOWN';
}

export function outcomeOf(code: string): Outcome {
  return NOTHING_CHANGED.has(code) ? 'fail' : 'unknown';
}
