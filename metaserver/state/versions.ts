/**
 * The stored history of a regular file, inside one command Scope: version
 * records (metadata, change tracking, inline content) and conflict copies.
 * Owns how a file's history is born (version 1, the empty file, written by
 * create) and how it goes with its inode. Must never decide a commit (that is
 * rules/commit.ts via fh-ops.ts) or read a clock.
 */
import { VersionChanges } from '../rules/extents';
import { addRefs, blockIdsOf, dropRefs } from './block-refs';
import { Scope } from './overlay';
import { ConflictCopyRecord, Inode, VersionRecord, conflictCopyKey, decodeRecord, encodeRecord, versionKey } from './records';

export async function readVersion(scope: Scope, handle: number, version: number): Promise<VersionRecord | undefined> {
  const bytes = await scope.overlay.get(versionKey(handle, version));
  if (!bytes) return undefined;
  const record = decodeRecord<VersionRecord>(bytes, 'version');
  if (record.version !== version) throw new Error(`metastate: version record ${handle}/${version} names version ${record.version}`);
  return record;
}

/** A version every invariant says exists (the head, or a version an open fh pins). */
export async function requireVersion(scope: Scope, handle: number, version: number, role: string): Promise<VersionRecord> {
  const record = await readVersion(scope, handle, version);
  if (!record) throw new Error(`metastate: ${role} version ${version} of handle ${handle} is missing`);
  return record;
}

/** Rewrites an existing version's metadata (its content, and so its block references, must not change). */
export function updateVersion(scope: Scope, handle: number, record: VersionRecord): void {
  scope.overlay.put(versionKey(handle, record.version), encodeRecord(record));
}

/** Stores a new version and takes a reference to each of its blocks. */
export async function addVersion(scope: Scope, handle: number, record: VersionRecord, nowMs: number): Promise<void> {
  scope.overlay.put(versionKey(handle, record.version), encodeRecord(record));
  await addRefs(scope, blockIdsOf(record), nowMs);
  const counters = await scope.counters();
  counters.versionsKept = (counters.versionsKept ?? 0) + 1;
}

/** Stores a new conflict copy and takes a reference to each of its blocks. */
export async function addConflictCopy(scope: Scope, handle: number, record: ConflictCopyRecord, nowMs: number): Promise<void> {
  scope.overlay.put(conflictCopyKey(handle, record.copy), encodeRecord(record));
  await addRefs(scope, blockIdsOf(record), nowMs);
  const counters = await scope.counters();
  counters.conflictCopiesKept = (counters.conflictCopiesKept ?? 0) + 1;
}

/** Deletes a version and drops its block references. */
export async function dropVersion(scope: Scope, handle: number, record: VersionRecord, nowMs: number): Promise<void> {
  scope.overlay.del(versionKey(handle, record.version));
  await dropRefs(scope, blockIdsOf(record), nowMs);
  const counters = await scope.counters();
  counters.versionsKept = (counters.versionsKept ?? 0) - 1;
  if (record.conflict) counters.conflictVersions = (counters.conflictVersions ?? 0) - 1;
}

/** Deletes a conflict copy and drops its block references. */
export async function dropConflictCopy(scope: Scope, handle: number, record: ConflictCopyRecord, nowMs: number): Promise<void> {
  scope.overlay.del(conflictCopyKey(handle, record.copy));
  await dropRefs(scope, blockIdsOf(record), nowMs);
  const counters = await scope.counters();
  counters.conflictCopiesKept = (counters.conflictCopiesKept ?? 0) - 1;
}

export async function readConflictCopy(scope: Scope, handle: number, copy: number): Promise<ConflictCopyRecord | undefined> {
  const bytes = await scope.overlay.get(conflictCopyKey(handle, copy));
  return bytes ? decodeRecord<ConflictCopyRecord>(bytes, 'conflict copy') : undefined;
}

/** Inline content's bytes (blocks: state/version-content.ts sourceOf). */
export function contentOf(record: { inlineBase64: string; sizeBytes: number }): Uint8Array {
  const bytes = Buffer.from(record.inlineBase64, 'base64');
  if (bytes.length !== record.sizeBytes) throw new Error(`metastate: stored content holds ${bytes.length} bytes, its record says ${record.sizeBytes}`);
  return bytes;
}

/**
 * A new regular file's history: version 1 is the empty file, so the rules
 * (which number versions from 1) apply unchanged, and every fh pins a version
 * that exists. The first commit makes version 2.
 */
export async function writeInitialVersion(scope: Scope, inode: Inode, sessionId: number, nowMs: number): Promise<void> {
  if (inode.type !== 'reg') throw new Error(`metastate: a ${inode.type} has no versions`);
  inode.headVersion = 1;
  inode.firstVersion = 1;
  inode.conflictCopies = 0;
  inode.openFhs = 0;
  await addVersion(scope, inode.handle, {
    version: 1,
    sizeBytes: 0,
    kind: 'create',
    baseVersion: 0,
    sessionId,
    commitTimeMs: nowMs,
    mtimeMs: nowMs,
    changedExtents: [],
    conflict: false,
    inlineBase64: '',
  }, nowMs);
}

/**
 * Deletes every kept version and conflict copy of a file whose inode goes,
 * dropping their block references. Kept versions lie in firstVersion..head
 * (retention raises firstVersion), so the walk is bounded by what retention
 * keeps, not by the file's whole commit count.
 */
export async function removeFileContent(scope: Scope, inode: Inode, nowMs: number): Promise<void> {
  for (let v = inode.firstVersion ?? 1; v <= (inode.headVersion ?? 0); v++) {
    const record = await readVersion(scope, inode.handle, v);
    if (record) await dropVersion(scope, inode.handle, record, nowMs);
  }
  for (let c = inode.firstConflictCopy ?? 1; c <= (inode.conflictCopies ?? 0); c++) {
    const record = await readConflictCopy(scope, inode.handle, c);
    if (record) await dropConflictCopy(scope, inode.handle, record, nowMs);
  }
}

/** At most this many versions are read to tell what changed since an fh's base; a longer gap counts as "everything changed". */
export const MAX_HISTORY_WALK_VERSIONS = 10_000;

/** Change tracking of versions from..to (inclusive), or [] when the range is too long (extentsChangedBetween then answers "everything"). */
export async function readHistory(scope: Scope, handle: number, fromVersion: number, toVersion: number): Promise<VersionChanges[]> {
  if (toVersion - fromVersion + 1 > MAX_HISTORY_WALK_VERSIONS) return [];
  const history: VersionChanges[] = [];
  for (let v = fromVersion; v <= toVersion; v++) {
    const record = await readVersion(scope, handle, v);
    if (record) history.push({ version: v, size: record.sizeBytes, changedExtents: record.changedExtents });
  }
  return history;
}
