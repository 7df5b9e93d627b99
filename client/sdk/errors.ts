/**
 * The SDK's one error type: a POSIX errno (Linux numbers, as the servers use)
 * with its code name, and the session layer's reason when it came from there.
 * Owns the errno ↔ code mapping; must never decide retries (that is
 * leader-channel.ts and meta-client.ts).
 */
import * as os from 'node:os';

const ERRNO: Readonly<Record<string, number>> = os.constants.errno as Record<string, number>;
const CODE_OF = new Map<number, string>();
for (const [code, errno] of Object.entries(ERRNO)) if (!CODE_OF.has(errno)) CODE_OF.set(errno, code);

/** The errno number of a code such as 'ENOENT' (throws on an unknown code: a programming error). */
export function errnoOf(code: string): number {
  const errno = ERRNO[code];
  if (errno === undefined) throw new Error(`unknown errno code ${code}`);
  return errno;
}

export function codeOf(errno: number): string {
  return CODE_OF.get(errno) ?? `E${errno}`;
}

export class MetaError extends Error {
  readonly code: string;

  constructor(readonly errno: number, message: string, readonly sessionError?: string) {
    super(`${codeOf(errno)}: ${message}`);
    this.name = 'MetaError';
    this.code = codeOf(errno);
    if (sessionError === '') this.sessionError = undefined;
  }
}

/** EBUSY from a commit under the reject policy: the head stayed, this fh's content is conflict copy `conflictCopy`. */
export class CommitConflictError extends MetaError {
  constructor(message: string, readonly conflictCopy: number, readonly headVersion: number) {
    super(errnoOf('EBUSY'), message);
    this.name = 'CommitConflictError';
  }
}

export const ENOENT = errnoOf('ENOENT');
export const EINVAL = errnoOf('EINVAL');
export const EIO = errnoOf('EIO');
export const EACCES = errnoOf('EACCES');
export const EAGAIN = errnoOf('EAGAIN');
export const ENOTCONN = errnoOf('ENOTCONN');
export const ETIMEDOUT = errnoOf('ETIMEDOUT');
export const ECANCELED = errnoOf('ECANCELED');
export const ENOTDIR = errnoOf('ENOTDIR');
export const ELOOP = errnoOf('ELOOP');
export const EBUSY = errnoOf('EBUSY');
export const EISDIR = errnoOf('EISDIR');
