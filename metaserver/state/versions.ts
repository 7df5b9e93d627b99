/**
 * The stored history of a regular file, inside one command Scope: version
 * records (metadata, change tracking, inline content) and conflict copies.
 * Owns how a file's history is born (version 1, the empty file, written by
 * create) and how it goes with its inode. Must never decide a commit (that is
 * rules/commit.ts via fh-ops.ts) or read a clock.
 */
import { VersionChanges } from '../rules/extents';
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

export function putVersion(scope: Scope, handle: number, record: VersionRecord): void {
  scope.overlay.put(versionKey(handle, record.version), encodeRecord(record));
}

export function putConflictCopy(scope: Scope, handle: number, record: ConflictCopyRecord): void {
  scope.overlay.put(conflictCopyKey(handle, record.copy), encodeRecord(record));
}

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
export function writeInitialVersion(scope: Scope, inode: Inode, sessionId: number, nowMs: number): void {
  if (inode.type !== 'reg') throw new Error(`metastate: a ${inode.type} has no versions`);
  inode.headVersion = 1;
  inode.conflictCopies = 0;
  inode.openFhs = 0;
  putVersion(scope, inode.handle, {
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
  });
}

/**
 * Deletes every version and conflict copy of a file whose inode goes. No
 * version is dropped before that yet (retention comes with blocks), so they
 * are exactly 1..headVersion and 1..conflictCopies: the loop is bounded by the
 * file's own commit count, which retention will bound in turn.
 */
export function removeFileContent(scope: Scope, inode: Inode): void {
  for (let v = 1; v <= (inode.headVersion ?? 0); v++) scope.overlay.del(versionKey(inode.handle, v));
  for (let c = 1; c <= (inode.conflictCopies ?? 0); c++) scope.overlay.del(conflictCopyKey(inode.handle, c));
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
