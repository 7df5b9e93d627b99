/**
 * A file's history after its commits: restoring an old version as the new
 * head, dropping the versions and conflict copies retention no longer keeps
 * (rules/retention.ts decides; a leader-proposed command carries the policy,
 * so every member drops the same ones), and the block pins and collection
 * that follow content (state/block-refs.ts). Must never read a clock or
 * decide retention itself.
 */
import { Errno, Result, fail, ok } from '../rules/errno';
import { W_OK, clearSetIdOnWrite, mayAccess } from '../rules/permissions';
import { conflictCopiesToDrop, versionsToDrop } from '../rules/retention';
import { checkUsable, blockIdsOf, collectBlocks as collectUnreferenced } from './block-refs';
import { Command, MutationCommand } from './commands';
import { existing } from './namespace-ops';
import { Scope } from './overlay';
import { ConflictCopyRecord, VersionRecord } from './records';
import { addVersion, dropConflictCopy, dropVersion, readConflictCopy, readVersion, requireVersion } from './versions';

type Cmd<Op extends MutationCommand['op']> = Extract<MutationCommand, { op: Op }>;

/** Versions and copies one retention decision looks at, at most (the oldest kept first). */
export const MAX_VERSIONS_PER_RETENTION = 10_000;

export interface RestoreResult {
  version: number;
  sizeBytes: number;
}

/** restoreVersion: the head becomes a copy of an older kept version (which stays in the history). Needs write permission. */
export async function restoreVersion(scope: Scope, cmd: Cmd<'restoreVersion'>): Promise<Result<RestoreResult>> {
  const found = await existing(scope, cmd.handle, 'restoreVersion');
  if (!found.ok) return found;
  const inode = found.value;
  if (inode.type !== 'reg' || inode.headVersion === undefined) return fail(Errno.EINVAL, `handle ${inode.handle} is a ${inode.type}: only regular files have versions`);
  const allowed = mayAccess(cmd.caller, inode, W_OK);
  if (!allowed.ok) return allowed;
  const source = await readVersion(scope, inode.handle, cmd.version);
  if (!source) return fail(Errno.ENOENT, `version ${cmd.version} of handle ${inode.handle} is not kept (head is ${inode.headVersion})`);
  const usable = await checkUsable(scope, blockIdsOf(source), cmd.nowMs, new Set());
  if (!usable.ok) throw new Error(`metastate: kept version ${cmd.version} of handle ${inode.handle} lists an unreferenced block: ${usable.message}`);
  const head = await requireVersion(scope, inode.handle, inode.headVersion, 'head');
  const version = head.version + 1;
  const changedLength = Math.max(head.sizeBytes, source.sizeBytes);
  await addVersion(scope, inode.handle, {
    sizeBytes: source.sizeBytes, inlineBase64: source.inlineBase64, ...(source.blocks ? { blocks: source.blocks, blockSizeBytes: source.blockSizeBytes } : {}),
    version, kind: 'restore', baseVersion: head.version, sessionId: cmd.sessionId, commitTimeMs: cmd.nowMs, mtimeMs: cmd.nowMs,
    // Conservatively the whole file: fhs based earlier see a restore as touching everything.
    changedExtents: changedLength > 0 ? [{ offset: 0, length: changedLength }] : [], conflict: false, restoredFrom: source.version,
  }, cmd.nowMs);
  inode.headVersion = version;
  inode.sizeBytes = source.sizeBytes;
  inode.mtimeMs = cmd.nowMs;
  inode.ctimeMs = cmd.nowMs;
  inode.mode = clearSetIdOnWrite(cmd.caller, inode);
  scope.saveInode(inode);
  return ok({ version, sizeBytes: source.sizeBytes });
}

export interface RetainResult {
  droppedVersions: number[];
  droppedCopies: number[];
}

/** retainVersions (leader-proposed): drops what the policy in the command no longer keeps. A gone or non-regular handle drops nothing. */
export async function retainVersions(scope: Scope, cmd: Extract<Command, { op: 'retainVersions' }>): Promise<Result<RetainResult>> {
  const inode = await scope.inode(cmd.handle);
  if (!inode || inode.type !== 'reg' || inode.headVersion === undefined) return ok({ droppedVersions: [], droppedCopies: [] });
  const first = inode.firstVersion ?? 1;
  const last = Math.min(inode.headVersion, first + MAX_VERSIONS_PER_RETENTION - 1);
  const records: VersionRecord[] = [];
  for (let v = first; v <= last; v++) {
    const record = await readVersion(scope, inode.handle, v);
    if (record) records.push(record);
  }
  const pins = inode.fhPins ?? {};
  const policy = { keepLast: cmd.keepLast, keepYoungerThanMs: cmd.keepYoungerThanMs, keepConflictsYoungerThanMs: cmd.keepConflictsYoungerThanMs };
  // A window short of the head lies wholly below the newest keepLast (keepLast ≤ 1,000 < the window): only its own newest is kept by count.
  const reachesHead = last === inode.headVersion;
  if (records.length === 0) throw new Error(`metastate: handle ${inode.handle} keeps no version in ${first}..${last}`);
  const drop = versionsToDrop({
    ...policy,
    keepLast: reachesHead ? cmd.keepLast : 1,
    nowMs: cmd.nowMs,
    versions: records.map((r) => ({ version: r.version, commitTimeMs: r.commitTimeMs, pinned: (pins[r.version] ?? 0) > 0, isHead: r === records[records.length - 1], conflict: r.conflict })),
  });
  if (!drop.ok) return fail(Errno.EINVAL, `retention policy: ${drop.message}`);
  const droppedVersions = drop.value;
  for (const v of droppedVersions) {
    const record = records.find((r) => r.version === v);
    if (!record || v === inode.headVersion) throw new Error(`metastate: retention chose version ${v} of handle ${inode.handle}, which is not droppable`);
    await dropVersion(scope, inode.handle, record, cmd.nowMs);
  }
  const remaining = records.filter((r) => !droppedVersions.includes(r.version));
  inode.firstVersion = remaining.length > 0 ? remaining[0].version : last + 1;

  const firstCopy = inode.firstConflictCopy ?? 1;
  const lastCopy = Math.min(inode.conflictCopies ?? 0, firstCopy + MAX_VERSIONS_PER_RETENTION - 1);
  const copies: ConflictCopyRecord[] = [];
  for (let c = firstCopy; c <= lastCopy; c++) {
    const record = await readConflictCopy(scope, inode.handle, c);
    if (record) copies.push(record);
  }
  const copyDrop = conflictCopiesToDrop(copies.map((c) => ({ number: c.copy, createdTimeMs: c.commitTimeMs, pinned: false })), cmd.nowMs, {
    keepConflictsYoungerThanMs: cmd.keepConflictsYoungerThanMs, maxDropsPerDecision: 1024,
  });
  if (!copyDrop.ok) return fail(Errno.EINVAL, `retention policy: ${copyDrop.message}`);
  for (const c of copyDrop.value) {
    const record = copies.find((r) => r.copy === c);
    if (record) await dropConflictCopy(scope, inode.handle, record, cmd.nowMs);
  }
  const copiesLeft = copies.filter((c) => !copyDrop.value.includes(c.copy));
  inode.firstConflictCopy = copiesLeft.length > 0 ? copiesLeft[0].copy : lastCopy + 1;
  scope.saveInode(inode);
  return ok({ droppedVersions, droppedCopies: copyDrop.value });
}

/** collectBlocks (leader-proposed): the ids whose bytes every member now deletes. */
export async function collectBlocks(scope: Scope, cmd: Extract<Command, { op: 'collectBlocks' }>): Promise<{ collected: string[] }> {
  return { collected: await collectUnreferenced(scope, cmd.ids, cmd.nowMs, cmd.graceMs) };
}
