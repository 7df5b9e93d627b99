/**
 * Open file handles and inline commits (issue 3 §1 "Open file handles", §3):
 * open pins the head version, commitVersion turns an fh's writes into the
 * next version through rules/commit.ts and rules/content.ts, release (or the
 * session's end) lets the fh go and with it an unlinked file's last hold.
 * Owns the fh records, the session's fh list and inode.openFhs. Must never
 * read a clock, decide a commit itself, or read block bytes (content over the
 * inline limit is a block list; blocks only the leader can build come back as
 * NEEDS_ASSEMBLY, state/version-content.ts).
 */
import { CommitDecision, INLINE_LIMIT_BYTES, Placement, commitClaims, decideCommit } from '../rules/commit';
import { WrittenBytes, extentsOfWrittenBytes, fhBytesOf } from '../rules/content';
import { Errno, Failure, Result, fail, ok } from '../rules/errno';
import { Extent, extentsChangedBetween, validateExtents } from '../rules/extents';
import { R_OK, W_OK, clearSetIdOnWrite, mayAccess } from '../rules/permissions';
import { MutationCommand } from './commands';
import { existing, removeInode } from './namespace-ops';
import { Scope } from './overlay';
import { blockIdsOf, checkUsable } from './block-refs';
import { FhFlags, FhRecord, Inode, Session, StoredContent, VersionRecord, decodeRecord, encodeRecord, fhKey, sessionKey } from './records';
import { Agreement, AssemblyRequired, BLOCK_SIZE_BYTES, ContentSource, assembledOf, assemblyRequired, buildContent, sourceOf } from './version-content';
import { addConflictCopy, addVersion, contentOf, readHistory, requireVersion, updateVersion } from './versions';

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

/** `justCreated`: open(2) with O_CREAT checks no permission on the file it creates (mode 0444 can be opened for writing). */
export async function openFh(scope: Scope, cmd: Cmd<'open'>, entryIndex: number, justCreated = false): Promise<Result<OpenResult>> {
  const found = await existing(scope, cmd.handle, 'open');
  if (!found.ok) return found;
  const inode = found.value;
  if (inode.type === 'dir') return fail(Errno.EISDIR, `handle ${inode.handle} is a directory`);
  if (inode.type !== 'reg' || inode.headVersion === undefined) return fail(Errno.EINVAL, `handle ${inode.handle} is a ${inode.type}: only regular files have versions to open`);
  const flags = checkFlags(cmd);
  if (!flags.ok) return flags;
  const allowed = justCreated ? ok(null) : mayAccess(cmd.caller, inode, (flags.value.read ? R_OK : 0) | (flags.value.write ? W_OK : 0));
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
  movePin(inode, 0, head.version);
  scope.saveInode(inode);
  const counters = await scope.counters();
  counters.fhsOpen = (counters.fhsOpen ?? 0) + 1;
  return ok({ fh: record.id, version: head.version, sizeBytes: head.sizeBytes });
}

/** Lets one fh go; an unlinked inode goes with its last fh. Does not touch the session record (callers do). */
async function dropFh(scope: Scope, record: FhRecord, nowMs: number): Promise<void> {
  scope.overlay.del(fhKey(record.id));
  const counters = await scope.counters();
  counters.fhsOpen = (counters.fhsOpen ?? 0) - 1;
  if (counters.fhsOpen < 0) throw new Error('metastate: fhsOpen fell below 0');
  const inode = await scope.inode(record.handle);
  if (!inode) throw new Error(`metastate: open fh ${record.id} names missing handle ${record.handle}`);
  inode.openFhs = (inode.openFhs ?? 0) - 1;
  if (inode.openFhs < 0) throw new Error(`metastate: handle ${inode.handle} has openFhs ${inode.openFhs}`);
  movePin(inode, record.pinnedVersion, 0);
  if (inode.openFhs === 0 && inode.nlink === 0) await removeInode(scope, inode, counters, nowMs);
  else scope.saveInode(inode);
}

export async function releaseFh(scope: Scope, cmd: Cmd<'release'>): Promise<Result<null>> {
  const record = await ownFh(scope, cmd.fh, cmd.sessionId);
  if (!record.ok) return record;
  await dropFh(scope, record.value, cmd.nowMs);
  const session = await sessionOf(scope, cmd.sessionId);
  scope.overlay.put(sessionKey(session.id), encodeRecord({ ...session, fhs: (session.fhs ?? []).filter((id) => id !== cmd.fh) } satisfies Session));
  return ok(null);
}

/** Every fh of a session that is closing or expiring (at most MAX_FHS_PER_SESSION). The caller removes the session record. */
export async function releaseSessionFhs(scope: Scope, session: Session, nowMs: number): Promise<number> {
  const fhs = session.fhs ?? [];
  if (fhs.length > MAX_FHS_PER_SESSION) throw new Error(`metastate: session ${session.id} lists ${fhs.length} fhs`);
  for (const id of fhs) {
    const record = await readFh(scope, id);
    if (!record) throw new Error(`metastate: session ${session.id} lists fh ${id}, which is not open`);
    await dropFh(scope, record, nowMs);
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
      return fail(Errno.EFBIG, `an inline commit carries at most ${INLINE_LIMIT_BYTES} bytes; commit larger content as blocks`);
    }
    written.push({ offset: range.offset, bytes });
  }
  return ok(written);
}

/** The fh's version as a content source, and the extents it wrote: from inline bytes over an inline base, or from the block form. */
function fhSourceOf(cmd: Cmd<'commitVersion'>, base: VersionRecord): Result<{ source: ContentSource; written: Extent[] }> {
  if (cmd.blocks) {
    if (cmd.blocks.length !== Math.ceil(cmd.newSize / BLOCK_SIZE_BYTES)) {
      return fail(Errno.EINVAL, `blocks lists ${cmd.blocks.length} ids for new size ${cmd.newSize}; ${Math.ceil(cmd.newSize / BLOCK_SIZE_BYTES)} blocks of ${BLOCK_SIZE_BYTES} bytes expected`);
    }
    const extents = validateExtents(cmd.writtenExtents ?? []);
    if (!extents.ok) return extents;
    return ok({ source: { kind: 'blocks', blocks: cmd.blocks, sizeBytes: cmd.newSize }, written: extents.value });
  }
  if (cmd.newSize > INLINE_LIMIT_BYTES) return fail(Errno.EFBIG, `new size ${cmd.newSize} exceeds the inline limit of ${INLINE_LIMIT_BYTES} bytes; commit it as blocks`);
  if (base.blocks && base.blocks.length > 0) return fail(Errno.EINVAL, `base version ${base.version} is stored as blocks; commit as blocks`);
  const written = writtenBytesOf(cmd);
  if (!written.ok) return written;
  const extents = validateExtents(extentsOfWrittenBytes(written.value));
  if (!extents.ok) return extents;
  const bytes = fhBytesOf(contentOf(base), written.value, cmd.newSize);
  if (!bytes.ok) return bytes;
  return ok({ source: { kind: 'inline', bytes: bytes.value }, written: extents.value });
}

/**
 * New content from placements, or NEEDS_ASSEMBLY; every block it lists must
 * be referenced or pinned already (the ones the leader assembled for this
 * command are trusted: it stored them on a majority before proposing).
 */
export async function contentFor(
  scope: Scope, placements: readonly Placement[], size: number, head: VersionRecord, fh: ContentSource, cmd: MutationCommand, agreement?: Agreement,
): Promise<Result<StoredContent> | AssemblyRequired> {
  const built = buildContent(placements, size, head.version, sourceOf(head), fh, assembledOf(cmd.assembled), agreement);
  if (!built.ok) return built;
  if (built.value.kind === 'needs-assembly') return assemblyRequired(built.value.needed);
  const usable = await checkUsable(scope, blockIdsOf(built.value.content), cmd.nowMs, new Set(built.value.assembledIds));
  if (!usable.ok) return usable;
  return ok(built.value.content);
}

/** Moves one fh pin of the inode from one version to another (0 = none), so retention keeps pinned versions. */
export function movePin(inode: Inode, fromVersion: number, toVersion: number): void {
  const pins = { ...(inode.fhPins ?? {}) };
  if (fromVersion > 0) {
    const left = (pins[fromVersion] ?? 0) - 1;
    if (left < 0) throw new Error(`metastate: handle ${inode.handle} had no fh pin on version ${fromVersion}`);
    if (left === 0) delete pins[fromVersion];
    else pins[fromVersion] = left;
  }
  if (toVersion > 0) pins[toVersion] = (pins[toVersion] ?? 0) + 1;
  inode.fhPins = pins;
}

export async function commitVersion(scope: Scope, cmd: Cmd<'commitVersion'>): Promise<Result<CommitResult> | CommitRejected | AssemblyRequired> {
  const found = await ownFh(scope, cmd.fh, cmd.sessionId);
  if (!found.ok) return found;
  const fh = found.value;
  if (!fh.flags.write) return fail(Errno.EBADF, `fh ${fh.id} was opened read-only`);
  if (cmd.baseVersion !== fh.pinnedVersion) return fail(Errno.EINVAL, `commit names base version ${cmd.baseVersion}, but fh ${fh.id} holds version ${fh.pinnedVersion}`);
  const inode = await scope.inode(fh.handle);
  if (!inode || inode.headVersion === undefined) throw new Error(`metastate: open fh ${fh.id} names handle ${fh.handle}, which is not a regular file`);
  const head = await requireVersion(scope, inode.handle, inode.headVersion, 'head');
  const base = await requireVersion(scope, inode.handle, fh.pinnedVersion, 'pinned');
  const fhContent = fhSourceOf(cmd, base);
  if (!fhContent.ok) return fhContent;
  const changed = extentsChangedBetween(await readHistory(scope, inode.handle, base.version, head.version), base.version, head.version);
  if (!changed.ok) throw new Error(`metastate: stored history of handle ${inode.handle} is malformed: ${changed.message}`);
  const decided = decideCommit({
    head: { version: head.version, size: head.sizeBytes },
    base: { version: base.version, size: base.sizeBytes },
    written: fhContent.value.written,
    newSize: cmd.newSize,
    truncatedTo: cmd.truncatedTo,
    append: fh.flags.append,
    changedSinceBase: changed.value.extents,
    policy: cmd.policy,
  });
  if (!decided.ok) return decided;
  const decision = decided.value;
  if (decision.kind === 'no-change') return released(scope, cmd, ok({ kind: decision.kind, version: fh.pinnedVersion, sizeBytes: base.sizeBytes }));
  const target = decision.kind === 'conflict-reject' ? decision.conflictCopy : decision;
  const agreement = { headChanged: changed.value.extents, fhClaims: commitClaims(base.sizeBytes, cmd.newSize, fhContent.value.written, undefined, cmd.truncatedTo) };
  const content = await contentFor(scope, target.placements, target.size, head, fhContent.value.source, cmd, agreement);
  if (!content.ok) return content;

  if (decision.kind === 'conflict-reject') {
    const copy = (inode.conflictCopies ?? 0) + 1;
    inode.conflictCopies = copy;
    scope.saveInode(inode);
    await addConflictCopy(scope, inode.handle, {
      ...content.value, copy, baseVersion: base.version, lostToVersion: decision.conflictCopy.lostToVersion,
      sessionId: cmd.sessionId, fh: fh.id, commitTimeMs: cmd.nowMs, changedExtents: decision.conflictCopy.changedExtents,
    }, cmd.nowMs);
    return { ...fail(decision.errno, `${decision.message} (conflict copy ${copy} of handle ${inode.handle})`), conflictCopy: copy, headVersion: head.version };
  }

  if (decision.version !== head.version + 1) throw new Error(`metastate: decision made version ${decision.version} after head ${head.version}`);
  if (decision.kind === 'conflict-lww') {
    updateVersion(scope, inode.handle, { ...head, conflict: true, lostToVersion: decision.version });
    const counters = await scope.counters();
    counters.conflictVersions = (counters.conflictVersions ?? 0) + 1;
  }
  await addVersion(scope, inode.handle, {
    ...content.value, version: decision.version, kind: decision.kind, baseVersion: base.version, sessionId: cmd.sessionId, fh: fh.id,
    commitTimeMs: cmd.nowMs, mtimeMs: cmd.nowMs, changedExtents: decision.changedExtents, conflict: false,
    ...(decision.kind === 'conflict-lww' ? { overwroteVersion: decision.conflictVersion } : {}),
  }, cmd.nowMs);
  applyToInode(inode, decision.version, decision.size, cmd);
  movePin(inode, fh.pinnedVersion, decision.version);
  scope.saveInode(inode);
  scope.overlay.put(fhKey(fh.id), encodeRecord({ ...fh, pinnedVersion: decision.version } satisfies FhRecord));
  return released(scope, cmd, ok({ kind: decision.kind, version: decision.version, sizeBytes: decision.size, ...(decision.kind === 'conflict-lww' ? { conflictVersion: decision.conflictVersion } : {}) }));
}

/** close = flush + release: a successful commit with `release` lets the fh go in the same command. */
async function released(scope: Scope, cmd: Cmd<'commitVersion'>, result: Result<CommitResult>): Promise<Result<CommitResult>> {
  if (!result.ok || !cmd.release) return result;
  const release = await releaseFh(scope, { ...cmd, op: 'release', fh: cmd.fh });
  if (!release.ok) throw new Error(`metastate: releasing fh ${cmd.fh} after its own commit failed: ${release.message}`);
  return result;
}

/** A write moves the head, the size and both times, and clears setuid/setgid as write(2) does. */
function applyToInode(inode: Inode, version: number, sizeBytes: number, cmd: Cmd<'commitVersion'>): void {
  inode.headVersion = version;
  inode.sizeBytes = sizeBytes;
  inode.mtimeMs = cmd.nowMs;
  inode.ctimeMs = cmd.nowMs;
  inode.mode = clearSetIdOnWrite(cmd.caller, inode);
}
