/**
 * Client errors only of documented kinds: every 'fail' or 'unknown'
 * operation carries an errno that handlefs documents for that operation, and
 * a 'fail' carries one that guarantees nothing changed (else the history is
 * misrecorded and the other checkers would wrongly drop a write that may have
 * landed). Owns the table of documented errors; must never read a clock or do
 * I/O.
 */
import type { History, OpKind, Operation } from '../history';
import type { CheckResult, Checker, FinalState, Violation } from './checker';

export const ERRORS = 'errors';

/** What each documented errno tells a user of a handlefs mount or SDK client. */
export const ERRNO_MEANINGS: Readonly<Record<string, string>> = {
  ETIMEDOUT: 'no answer before the deadline (SDK 30 s, mount op timeout): it may or may not have happened; read back before retrying',
  EIO: 'the mount could not finish (a non-retryable server error, a checksum mismatch, an fh it lost): it may have happened',
  ENOTCONN: 'the session expired or the mount lost its connection while the call was out: it may have happened',
  ECONNABORTED: 'the FUSE connection was aborted (forced unmount) while the call waited: it may have happened',
  ECANCELED: 'the SDK client was closed with the call outstanding: it may have happened',
  EAGAIN: 'the SDK queue of waiting mutations was full: the call was never sent, nothing happened; retry later',
  EBUSY: 'reject policy only: someone else changed these bytes first; the file did not change, your bytes are a conflict copy',
  EEXIST: 'the name is taken: nothing changed',
  ENOENT: 'the name (or its directory) does not exist: nothing changed',
};

/** Transport and session errors: the call may have reached the leader and committed. */
const MAY_HAVE_HAPPENED = ['ETIMEDOUT', 'EIO', 'ENOTCONN', 'ECONNABORTED', 'ECANCELED'];

export interface AllowedErrors {
  /** Errnos that guarantee nothing changed: allowed for 'fail' and 'unknown' outcomes. */
  nothingHappened: readonly string[];
  /** Errnos after which it may have happened: allowed only for 'unknown' outcomes. */
  mayHaveHappened: readonly string[];
}

/**
 * The documented errors per operation kind. Reads change nothing, so every
 * error of theirs is "nothing happened". A read of a missing register file is
 * an ok read without a result, never ENOENT. O_APPEND commits never conflict,
 * so even under reject an append never answers EBUSY.
 */
export function allowedErrors(conflictPolicy: 'lww' | 'reject'): Readonly<Record<OpKind, AllowedErrors>> {
  const readErrors = [...MAY_HAVE_HAPPENED, 'EAGAIN'];
  return {
    write: { nothingHappened: conflictPolicy === 'reject' ? ['EAGAIN', 'EBUSY'] : ['EAGAIN'], mayHaveHappened: MAY_HAVE_HAPPENED },
    append: { nothingHappened: ['EAGAIN'], mayHaveHappened: MAY_HAVE_HAPPENED },
    read: { nothingHappened: readErrors, mayHaveHappened: [] },
    'read-appends': { nothingHappened: [...readErrors, 'ENOENT'], mayHaveHappened: [] },
    list: { nothingHappened: [...readErrors, 'ENOENT'], mayHaveHappened: [] },
    create: { nothingHappened: ['EEXIST', 'ENOENT', 'EAGAIN'], mayHaveHappened: MAY_HAVE_HAPPENED },
    rename: { nothingHappened: ['ENOENT', 'EAGAIN'], mayHaveHappened: MAY_HAVE_HAPPENED },
    link: { nothingHappened: ['ENOENT', 'EEXIST', 'EAGAIN'], mayHaveHappened: MAY_HAVE_HAPPENED },
    unlink: { nothingHappened: ['ENOENT', 'EAGAIN'], mayHaveHappened: MAY_HAVE_HAPPENED },
  };
}

/** The errno name at the start of an error text ('ETIMEDOUT: no answer…' → 'ETIMEDOUT'), or undefined. */
export function errnoName(error: string | undefined): string | undefined {
  const match = /^E[A-Z0-9]+\b/.exec(error ?? '');
  return match ? match[0] : undefined;
}

export interface ErrorsCheckOptions {
  /** The run's conflict policy (default 'lww'): EBUSY on a write is documented only under 'reject'. */
  conflictPolicy?: 'lww' | 'reject';
}

/** Example operations quoted per violation (the count names the rest). */
export const ERROR_EXAMPLES_MAX = 5;

export function errorsChecker(options: ErrorsCheckOptions = {}): Checker {
  const allowed = allowedErrors(options.conflictPolicy ?? 'lww');
  return {
    name: ERRORS,
    check(history: History, _final: FinalState): CheckResult {
      // Grouped by (kind, outcome, errno, problem) so a storm of one bad errno is one violation.
      const groups = new Map<string, { problem: string; ops: Operation[] }>();
      const stats = { failed: 0, unknown: 0, undocumented: 0 };
      for (const op of history.operations) {
        if (op.outcome === 'ok') continue;
        if (op.outcome === 'fail') stats.failed++;
        else stats.unknown++;
        const errno = errnoName(op.error);
        const table = allowed[op.kind];
        let problem: string | undefined;
        if (errno === undefined) {
          problem = `${op.kind} operations ended ${op.outcome} without an errno (error ${JSON.stringify(op.error ?? null)})`;
        } else if (op.outcome === 'fail' && table.mayHaveHappened.includes(errno)) {
          problem = `${op.kind} operations are recorded as fail with ${errno}, which does not guarantee nothing happened (${ERRNO_MEANINGS[errno]}): record them as unknown`;
        } else if (!table.nothingHappened.includes(errno) && !(op.outcome === 'unknown' && table.mayHaveHappened.includes(errno))) {
          const documented = [...table.nothingHappened, ...table.mayHaveHappened].join(', ');
          problem = `${op.kind} operations ended ${op.outcome} with ${errno}, which is not a documented error for ${op.kind} (documented: ${documented})`;
        }
        if (problem === undefined) continue;
        stats.undocumented++;
        const group = groups.get(problem) ?? { problem, ops: [] };
        group.ops.push(op);
        groups.set(problem, group);
      }
      const violations: Violation[] = [...groups.values()].map(({ problem, ops }) => ({
        checker: ERRORS,
        message: `${ops.length} ${problem}; first: #${ops[0].id} by ${ops[0].client} at ${ops[0].invokeMs} ms`,
        operations: ops.slice(0, ERROR_EXAMPLES_MAX),
      }));
      return { checker: ERRORS, ok: violations.length === 0, violations, stats };
    },
  };
}
