/**
 * Open file handles and inline commits (issue 3 §1 "Open file handles", §3):
 * open pins the head version, commitVersion turns an fh's writes into the
 * next version through rules/commit.ts and rules/content.ts, release (or the
 * session's end) lets the fh go and with it an unlinked file's last hold.
 * Owns the fh records, the session's fh list and inode.openFhs. Must never
 * read a clock, decide a commit itself, or store content over the inline
 * limit (blocks are a later slice: EFBIG until then).
 */
import { CommitDecision, INLINE_LIMIT_BYTES, decideCommit } from '../rules/commit';
import { WrittenBytes, extentsOfWrittenBytes, materializeInline } from '../rules/content';
import { Errno, Failure, Result, fail, ok } from '../rules/errno';
import { extentsChangedBetween, validateExtents } from '../rules/extents';
import { R_OK, W_OK, clearSetIdOnWrite, mayAccess } from '../rules/permissions';
import { MutationCommand } from './commands';
import { existing, removeInode } from './namespace-ops';
import { Scope } from './overlay';
import { FhFlags, FhRecord, Inode, Session, decodeRecord, encodeRecord, fhKey, sessionKey } from './records';
import { contentOf, putConflictCopy, putVersion, readHistory, requireVersion } from './versions';

/** Open fhs per session (EMFILE beyond): the session record lists them, and its end releases them in one command. */
export const MAX_FHS_PER_SESSION = 1024;

type Cmd<Op extends MutationCommand['op']> = Extract<MutationCommand, { op: Op }>;

export interface OpenResult {
  fh: number;
  /** The version reads through this fh see until it commits. */
  version: number;
  sizeBytes: number;
}

export interface CommitResult {
  kind: CommitDecision['kind'];
  /** The fh's version after the commit (the new head, or the unchanged pin for no-change). */
  version: number;
  sizeBytes: number;
  /** conflict-lww: the old head, now marked conflict, which keeps the overwritten bytes. */
  conflictVersion?: number;
}

/**
 * A commit refused under policy reject: EBUSY for the client, yet the fh's
 * content is kept as conflict copy `conflictCopy`, so this failure's writes
 * are kept (see keepsWrites).
 */
export interface CommitRejected extends Failure {
  readonly conflictCopy: number;
  readonly headVersion: number;
}

/** Whether a failed command's writes must still be applied (only a rejected commit's conflict copy). */
export function keepsWrites(result: Result<unknown>): boolean {
  return result.ok || typeof (result as Partial<CommitRejected>).conflictCopy === 'number';
}

async function sessionOf(scope: Scope, sessionId: number): Promise<Session> {
  const bytes = await scope.overlay.get(sessionKey(sessionId));
  if (!bytes) throw new Error(`metastate: session ${sessionId} vanished during its own command`);
  return decodeRecord<Session>(bytes, 'session');
}

async function readFh(scope: Scope, fh: number): Promise<FhRecord | undefined> {
  const bytes = await scope.overlay.get(fhKey(fh));
  return bytes ? decodeRecord<FhRecord>(bytes, 'fh') : undefined;
}

/** The fh a command names: EBADF when it is not open, or open in another session (an fh is its session's capability). */
async function ownFh(scope: Scope, fh: number, sessionId: number): Promise<Result<FhRecord>> {
  const record = await readFh(scope, fh);
  if (!record) return fail(Errno.EBADF, `fh ${fh} is not open`);
  if (record.sessionId !== sessionId) return fail(Errno.EBADF, `fh ${fh} belongs to session ${record.sessionId}, not ${sessionId}`);
  return ok(record);
}

function checkFlags(cmd: Cmd<'open'>): Result<FhFlags> {
  if (!cmd.read && !cmd.write) return fail(Errno.EINVAL, 'open needs read, write or both');
  if (cmd.append && !cmd.write) return fail(Errno.EINVAL, 'append needs write');
  return ok({ read: cmd.read, write: cmd.write, append: cmd.append });
}

export async function openFh(scope: Scope, cmd: Cmd<'open'>, entryIndex: number): Promise<Result<OpenResult>> {
  const found = await existing(scope, cmd.handle, 'open');
  if (!found.ok) return found;
  const inode = found.value;
  if (inode.type === 'dir') return fail(Errno.EISDIR, `handle ${inode.handle} is a directory`);
  if (inode.type !== 'reg' || inode.headVersion === undefined) return fail(Errno.EINVAL, `handle ${inode.handle} is a ${inode.type}: only regular files have versions to open`);
  const flags = checkFlags(cmd);
  if (!flags.ok) return flags;
  const allowed = mayAccess(cmd.caller, inode, (flags.value.read ? R_OK : 0) | (flags.value.write ? W_OK : 0));
  if (!allowed.ok) return allowed;
  const session = await sessionOf(scope, cmd.sessionId);
  const fhs = session.fhs ?? [];
  if (fhs.length >= MAX_FHS_PER_SESSION) return fail(Errno.EMFILE, `session ${session.id} has ${MAX_FHS_PER_SESSION} fhs open already`);
  const head = await requireVersion(scope, inode.handle, inode.headVersion, 'head');
  // The entry's index: unique, the same on every member, never reused.
  const record: FhRecord = { id: entryIndex, handle: inode.handle, sessionId: session.id, pinnedVersion: head.version, flags: flags.value, openedAtMs: cmd.nowMs };
  scope.overlay.put(fhKey(record.id), encodeRecord(record));
  scope.overlay.put(sessionKey(session.id), encodeRecord({ ...session, fhs: [...fhs, record.id] } satisfies Session));
  inode.openFhs = (inode.openFhs ?? 0) + 1;
  scope.saveInode(inode);
  const counters = await scope.counters();
  counters.fhsOpen = (counters.fhsOpen ?? 0) + 1;
  return ok({ fh: record.id, version: head.version, sizeBytes: head.sizeBytes });
}

/** Lets one fh go; an unlinked inode goes with its last fh. Does not touch the session record (callers do). */
async function dropFh(scope: Scope, record: FhRecord): Promise<void> {
  scope.overlay.del(fhKey(record.id));
  const counters = await scope.counters();
  counters.fhsOpen = (counters.fhsOpen ?? 0) - 1;
  if (counters.fhsOpen < 0) throw new Error('metastate: fhsOpen fell below 0');
  const inode = await scope.inode(record.handle);
  if (!inode) throw new Error(`metastate: open fh ${record.id} names missing handle ${record.handle}`);
  inode.openFhs = (inode.openFhs ?? 0) - 1;
  if (inode.openFhs < 0) throw new Error(`metastate: handle ${inode.handle} has openFhs ${inode.openFhs}`);
  if (inode.openFhs === 0 && inode.nlink === 0) removeInode(scope, inode, counters);
  else scope.saveInode(inode);
}

export async function releaseFh(scope: Scope, cmd: Cmd<'release'>): Promise<Result<null>> {
  const record = await ownFh(scope, cmd.fh, cmd.sessionId);
  if (!record.ok) return record;
  await dropFh(scope, record.value);
  const session = await sessionOf(scope, cmd.sessionId);
  scope.overlay.put(sessionKey(session.id), encodeRecord({ ...session, fhs: (session.fhs ?? []).filter((id) => id !== cmd.fh) } satisfies Session));
  return ok(null);
}

/** Every fh of a session that is closing or expiring (at most MAX_FHS_PER_SESSION). The caller removes the session record. */
export async function releaseSessionFhs(scope: Scope, session: Session): Promise<number> {
  const fhs = session.fhs ?? [];
  if (fhs.length > MAX_FHS_PER_SESSION) throw new Error(`metastate: session ${session.id} lists ${fhs.length} fhs`);
  for (const id of fhs) {
    const record = await readFh(scope, id);
    if (!record) throw new Error(`metastate: session ${session.id} lists fh ${id}, which is not open`);
    await dropFh(scope, record);
  }
  return fhs.length;
}

function writtenBytesOf(cmd: Cmd<'commitVersion'>): Result<WrittenBytes[]> {
  let totalBytes = 0;
  const written: WrittenBytes[] = [];
  for (const range of cmd.written) {
    const bytes = Buffer.from(range.dataBase64, 'base64');
    totalBytes += bytes.length;
    if (totalBytes > INLINE_LIMIT_BYTES) {
      return fail(Errno.EFBIG, `a commit carries at most ${INLINE_LIMIT_BYTES} bytes of inline content; block content is not supported yet`);
    }
    written.push({ offset: range.offset, bytes });
  }
  return ok(written);
}

export async function commitVersion(scope: Scope, cmd: Cmd<'commitVersion'>): Promise<Result<CommitResult> | CommitRejected> {
  const found = await ownFh(scope, cmd.fh, cmd.sessionId);
  if (!found.ok) return found;
  const fh = found.value;
  if (!fh.flags.write) return fail(Errno.EBADF, `fh ${fh.id} was opened read-only`);
  if (cmd.baseVersion !== fh.pinnedVersion) return fail(Errno.EINVAL, `commit names base version ${cmd.baseVersion}, but fh ${fh.id} holds version ${fh.pinnedVersion}`);
  if (cmd.newSize > INLINE_LIMIT_BYTES) {
    return fail(Errno.EFBIG, `new size ${cmd.newSize} exceeds the inline limit of ${INLINE_LIMIT_BYTES} bytes; block content is not supported yet`);
  }
  const written = writtenBytesOf(cmd);
  if (!written.ok) return written;
  const extents = validateExtents(extentsOfWrittenBytes(written.value));
  if (!extents.ok) return extents;
  const inode = await scope.inode(fh.handle);
  if (!inode || inode.headVersion === undefined) throw new Error(`metastate: open fh ${fh.id} names handle ${fh.handle}, which is not a regular file`);
  const head = await requireVersion(scope, inode.handle, inode.headVersion, 'head');
  const base = await requireVersion(scope, inode.handle, fh.pinnedVersion, 'pinned');
  const changed = extentsChangedBetween(await readHistory(scope, inode.handle, base.version, head.version), base.version, head.version);
  if (!changed.ok) throw new Error(`metastate: stored history of handle ${inode.handle} is malformed: ${changed.message}`);
  const decided = decideCommit({
    head: { version: head.version, size: head.sizeBytes },
    base: { version: base.version, size: base.sizeBytes },
    written: extents.value,
    newSize: cmd.newSize,
    append: fh.flags.append,
    changedSinceBase: changed.value.extents,
    policy: cmd.policy,
  });
  if (!decided.ok) return decided;
  const decision = decided.value;
  if (decision.kind === 'no-change') return ok({ kind: decision.kind, version: fh.pinnedVersion, sizeBytes: base.sizeBytes });
  const targetSize = decision.kind === 'conflict-reject' ? decision.conflictCopy.size : decision.size;
  if (targetSize > INLINE_LIMIT_BYTES) {
    return fail(Errno.EFBIG, `the ${decision.kind} result would be ${targetSize} bytes, over the inline limit of ${INLINE_LIMIT_BYTES}; block content is not supported yet`);
  }
  const content = materializeInline({ baseBytes: contentOf(base), headBytes: contentOf(head), written: written.value, newSize: cmd.newSize }, decision);
  if (!content.ok) return content;
  const inlineBase64 = Buffer.from(content.value).toString('base64');

  if (decision.kind === 'conflict-reject') {
    const copy = (inode.conflictCopies ?? 0) + 1;
    inode.conflictCopies = copy;
    scope.saveInode(inode);
    putConflictCopy(scope, inode.handle, {
      copy, baseVersion: base.version, lostToVersion: decision.conflictCopy.lostToVersion, sizeBytes: decision.conflictCopy.size,
      sessionId: cmd.sessionId, fh: fh.id, commitTimeMs: cmd.nowMs, changedExtents: decision.conflictCopy.changedExtents, inlineBase64,
    });
    return { ...fail(decision.errno, `${decision.message} (conflict copy ${copy} of handle ${inode.handle})`), conflictCopy: copy, headVersion: head.version };
  }

  if (decision.version !== head.version + 1) throw new Error(`metastate: decision made version ${decision.version} after head ${head.version}`);
  if (decision.kind === 'conflict-lww') putVersion(scope, inode.handle, { ...head, conflict: true, lostToVersion: decision.version });
  putVersion(scope, inode.handle, {
    version: decision.version, sizeBytes: decision.size, kind: decision.kind, baseVersion: base.version, sessionId: cmd.sessionId, fh: fh.id,
    commitTimeMs: cmd.nowMs, mtimeMs: cmd.nowMs, changedExtents: decision.changedExtents, conflict: false,
    ...(decision.kind === 'conflict-lww' ? { overwroteVersion: decision.conflictVersion } : {}), inlineBase64,
  });
  applyToInode(inode, decision.version, decision.size, cmd);
  scope.saveInode(inode);
  scope.overlay.put(fhKey(fh.id), encodeRecord({ ...fh, pinnedVersion: decision.version } satisfies FhRecord));
  return ok({ kind: decision.kind, version: decision.version, sizeBytes: decision.size, ...(decision.kind === 'conflict-lww' ? { conflictVersion: decision.conflictVersion } : {}) });
}

/** A write moves the head, the size and both times, and clears setuid/setgid as write(2) does. */
function applyToInode(inode: Inode, version: number, sizeBytes: number, cmd: Cmd<'commitVersion'>): void {
  inode.headVersion = version;
  inode.sizeBytes = sizeBytes;
  inode.mtimeMs = cmd.nowMs;
  inode.ctimeMs = cmd.nowMs;
  inode.mode = clearSetIdOnWrite(cmd.caller, inode);
}
