/**
 * The POSIX errors the metadata API returns, with their Linux numbers, and the
 * Result shape rules use to return them without throwing. The client hands the
 * number to the kernel unchanged, so these numbers are a wire contract: never
 * renumber one. Owns no policy about which error an operation returns.
 */

/** Linux errno numbers (asm-generic/errno-base.h and errno.h). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EMFILE: 24,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOLCK: 37,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EOVERFLOW: 75,
  /** Linux spells it EOPNOTSUPP too; both are 95. */
  ENOTSUP: 95,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ESTALE: 116,
  EDQUOT: 122,
  ECANCELED: 125,
} as const;

export type ErrnoName = keyof typeof Errno;
export type Errno = (typeof Errno)[ErrnoName];

const NAME_BY_NUMBER: ReadonlyMap<number, ErrnoName> = new Map(
  (Object.keys(Errno) as ErrnoName[]).map((name) => [Errno[name], name]),
);

/** True when n is one of the errno values above (e.g. a number read off the wire). */
export function isErrno(n: unknown): n is Errno {
  return typeof n === 'number' && NAME_BY_NUMBER.has(n);
}

/** "ENOENT" for 2; "EUNKNOWN(n)" for a number not in the table. Never throws. */
export function errnoName(n: number): string {
  return NAME_BY_NUMBER.get(n) ?? `EUNKNOWN(${String(n)})`;
}

/** An error that carries its errno; for code that throws (never the rules themselves). */
export class FsError extends Error {
  /** The errno name, as Node's own system errors carry it. */
  readonly code: string;

  constructor(
    readonly errno: Errno,
    readonly detail: string,
  ) {
    super(`${errnoName(errno)}: ${detail}`);
    this.name = 'FsError';
    this.code = errnoName(errno);
  }
}

export interface Ok<T> {
  readonly ok: true;
  readonly value: T;
}

export interface Failure {
  readonly ok: false;
  readonly errno: Errno;
  /** Names the problem ("need w on the directory, other class grants r-x"). */
  readonly message: string;
}

export type Result<T> = Ok<T> | Failure;
/** A rule that only decides yes or no. */
export type Check = Result<void>;

export function ok<T>(value: T): Ok<T> {
  return { ok: true, value };
}

/** The one "yes" every Check shares (frozen, so no caller can alter it). */
export const OK: Ok<void> = Object.freeze({ ok: true as const, value: undefined });

export function fail(errno: Errno, message: string): Failure {
  return { ok: false, errno, message };
}

/** The value of a Result, or an FsError thrown with its errno: for callers that prefer exceptions. */
export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw new FsError(result.errno, result.message);
}

/** The Failure an FsError stands for (to store it as a command's result). */
export function failureOf(error: FsError): Failure {
  return fail(error.errno, error.detail);
}
