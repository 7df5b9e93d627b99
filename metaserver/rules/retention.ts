/**
 * Which old versions of a file may be dropped, and which unreferenced blocks
 * may be deleted. Pure and deterministic: "now" is the leader's clock reading
 * carried in the command, never a clock read here; bad input returns an errno.
 * Never deletes anything itself: the state machine applies the answer.
 *
 * Versions. Kept, whatever else: the head; every version pinned by an open fh
 * (its base); the last keepLast versions; every version younger than
 * keepYoungerThanMs; every version marked conflict (it holds bytes that lost a
 * conflict, commit.ts) younger than keepConflictsYoungerThanMs. A commit time
 * after "now" (a new leader whose clock is behind) counts as young, so a clock
 * step only ever keeps more. Dropping a version removes its content; commits
 * based before a dropped version then see the whole file as changed
 * (extents.ts), which can cause a spurious conflict but never a lost write.
 * Conflict copies of rejected commits (commit.ts) are kept while pinned or
 * younger than keepConflictsYoungerThanMs.
 *
 * Blocks: the contract the state machine keeps so that collecting a block can
 * never race an upload of it.
 * 1. A block is referenced from before its bytes are uploaded: the client
 *    first commits a pin command (the fh holds a pending reference to each
 *    block id it will upload or reuse) and uploads only after that pin is
 *    applied. The commit turns pending references into the new version's
 *    references in the same apply; closing the fh or expiring its session
 *    releases pending ones. So a block being uploaded is always in
 *    `referenced`, and content addressing cannot hand a new upload a block id
 *    that is about to be deleted without the pin having made it referenced.
 * 2. unreferencedSinceMs is set, from the command's time, when the last
 *    reference goes, and cleared when any reference comes back; a block
 *    unreferenced again later gets a fresh time.
 * 3. Collection is itself a replicated command: the leader proposes the ids
 *    this function chose, and apply runs it again against the state at that
 *    log position, deleting only ids it still returns. A pin applied in
 *    between wins.
 * 4. Block servers delete bytes only after that command is applied; a pin
 *    applied after it finds the block gone and makes the client upload again.
 * Safety therefore rests on 1-4, not on time. The grace period is for readers
 * that hold a block id without a reference (a client's cached block list of a
 * version dropped a moment ago) and absorbs leader clock steps.
 */
import { Errno, Result, fail, ok } from './errno';

const HOUR_MS = 60 * 60 * 1000;

export interface RetentionPolicy {
  /** The last N versions are always kept (N ≥ 1). */
  readonly keepLast: number;
  /** Versions younger than this are always kept. */
  readonly keepYoungerThanMs: number;
  /** Versions marked conflict younger than this are always kept. */
  readonly keepConflictsYoungerThanMs: number;
  /** At most this many versions are dropped per decision; the leader asks again for more. */
  readonly maxDropsPerDecision: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = Object.freeze({
  keepLast: 10,
  keepYoungerThanMs: 1 * HOUR_MS,
  keepConflictsYoungerThanMs: 7 * 24 * HOUR_MS,
  maxDropsPerDecision: 1024,
});

export interface RetainedVersion {
  readonly version: number;
  /** The leader's clock when the version was committed. */
  readonly commitTimeMs: number;
  /** An open fh holds this version. */
  readonly pinned: boolean;
  readonly isHead: boolean;
  /** Holds bytes that lost a conflict (the old head under lww). */
  readonly conflict?: boolean;
}

export interface VersionsToDropInput extends Partial<RetentionPolicy> {
  readonly versions: readonly RetainedVersion[];
  readonly nowMs: number;
}

/** What is wrong with a retention policy, or undefined; for the config loader, and checked on every call. */
export function retentionPolicyProblem(policy: RetentionPolicy): string | undefined {
  if (!Number.isSafeInteger(policy.keepLast) || policy.keepLast < 1) return `keepLast ${String(policy.keepLast)} is not an integer ≥ 1`;
  for (const field of ['keepYoungerThanMs', 'keepConflictsYoungerThanMs'] as const) {
    if (!Number.isSafeInteger(policy[field]) || policy[field] < 0) return `${field} ${String(policy[field])} is not a non-negative integer`;
  }
  if (!Number.isSafeInteger(policy.maxDropsPerDecision) || policy.maxDropsPerDecision < 1) {
    return `maxDropsPerDecision ${String(policy.maxDropsPerDecision)} is not an integer ≥ 1`;
  }
  return undefined;
}

function isYounger(commitTimeMs: number, nowMs: number, limitMs: number): boolean {
  return nowMs - commitTimeMs < limitMs;
}

/**
 * The versions of one file to drop, oldest first, at most maxDropsPerDecision.
 * EINVAL for a bad policy, a malformed version, a repeated version number, or
 * a head that is missing, repeated, or not the newest version.
 */
export function versionsToDrop(input: VersionsToDropInput): Result<number[]> {
  if (typeof input !== 'object' || input === null) return fail(Errno.EINVAL, 'retention input is not an object');
  const policy: RetentionPolicy = {
    keepLast: input.keepLast ?? DEFAULT_RETENTION.keepLast,
    keepYoungerThanMs: input.keepYoungerThanMs ?? DEFAULT_RETENTION.keepYoungerThanMs,
    keepConflictsYoungerThanMs: input.keepConflictsYoungerThanMs ?? DEFAULT_RETENTION.keepConflictsYoungerThanMs,
    maxDropsPerDecision: input.maxDropsPerDecision ?? DEFAULT_RETENTION.maxDropsPerDecision,
  };
  const problem = retentionPolicyProblem(policy);
  if (problem !== undefined) return fail(Errno.EINVAL, problem);
  if (!Number.isSafeInteger(input.nowMs)) return fail(Errno.EINVAL, `nowMs ${String(input.nowMs)} is not an integer`);
  if (!Array.isArray(input.versions)) return fail(Errno.EINVAL, 'versions is not a list');
  if (input.versions.length === 0) return ok([]);

  const seen = new Set<number>();
  let head: RetainedVersion | undefined;
  for (const v of input.versions) {
    if (typeof v !== 'object' || v === null || !Number.isSafeInteger(v.version) || v.version < 1) {
      return fail(Errno.EINVAL, `version record ${String((v as { version?: unknown } | null)?.version)} has no valid version number`);
    }
    if (!Number.isSafeInteger(v.commitTimeMs)) return fail(Errno.EINVAL, `version ${v.version} has commit time ${String(v.commitTimeMs)}`);
    if (typeof v.pinned !== 'boolean' || typeof v.isHead !== 'boolean' || (v.conflict !== undefined && typeof v.conflict !== 'boolean')) {
      return fail(Errno.EINVAL, `version ${v.version} has a non-boolean flag`);
    }
    if (seen.has(v.version)) return fail(Errno.EINVAL, `version ${v.version} is listed twice`);
    seen.add(v.version);
    if (v.isHead) {
      if (head !== undefined) return fail(Errno.EINVAL, `versions ${head.version} and ${v.version} are both marked head`);
      head = v;
    }
  }
  if (head === undefined) return fail(Errno.EINVAL, 'no version is marked head');
  const newestFirst = [...input.versions].sort((a, b) => b.version - a.version);
  if (newestFirst[0] !== head) return fail(Errno.EINVAL, `head ${head.version} is not the newest version ${newestFirst[0].version}`);

  const drop: number[] = [];
  for (let i = newestFirst.length - 1; i >= policy.keepLast && drop.length < policy.maxDropsPerDecision; i--) {
    const v = newestFirst[i];
    if (v.isHead || v.pinned) continue;
    if (isYounger(v.commitTimeMs, input.nowMs, policy.keepYoungerThanMs)) continue;
    if (v.conflict === true && isYounger(v.commitTimeMs, input.nowMs, policy.keepConflictsYoungerThanMs)) continue;
    drop.push(v.version);
  }
  return ok(drop);
}

export interface RetainedConflictCopy {
  /** Its number in the file's conflict series (commit.ts). */
  readonly number: number;
  readonly createdTimeMs: number;
  /** An open fh holds this copy. */
  readonly pinned: boolean;
}

/**
 * The conflict copies (rejected commits, commit.ts) of one file to drop, oldest
 * first, at most maxDropsPerDecision: those not pinned and at least
 * keepConflictsYoungerThanMs old. EINVAL for a bad policy or record.
 */
export function conflictCopiesToDrop(
  copies: readonly RetainedConflictCopy[],
  nowMs: number,
  policy: Pick<RetentionPolicy, 'keepConflictsYoungerThanMs' | 'maxDropsPerDecision'> = DEFAULT_RETENTION,
): Result<number[]> {
  const problem = retentionPolicyProblem({ ...DEFAULT_RETENTION, ...policy });
  if (problem !== undefined) return fail(Errno.EINVAL, problem);
  if (!Number.isSafeInteger(nowMs)) return fail(Errno.EINVAL, `nowMs ${String(nowMs)} is not an integer`);
  if (!Array.isArray(copies)) return fail(Errno.EINVAL, 'copies is not a list');
  const seen = new Set<number>();
  for (const c of copies) {
    if (typeof c !== 'object' || c === null || !Number.isSafeInteger(c.number) || c.number < 1) return fail(Errno.EINVAL, `conflict copy ${String((c as { number?: unknown } | null)?.number)} has no valid number`);
    if (!Number.isSafeInteger(c.createdTimeMs) || typeof c.pinned !== 'boolean') return fail(Errno.EINVAL, `conflict copy ${c.number} is malformed`);
    if (seen.has(c.number)) return fail(Errno.EINVAL, `conflict copy ${c.number} is listed twice`);
    seen.add(c.number);
  }
  return ok(
    [...copies]
      .sort((a, b) => a.number - b.number)
      .filter((c) => !c.pinned && !isYounger(c.createdTimeMs, nowMs, policy.keepConflictsYoungerThanMs))
      .slice(0, policy.maxDropsPerDecision)
      .map((c) => c.number),
  );
}

/** Content-addressed block ids are SHA-256 in lowercase hex. */
export const BLOCK_ID_PATTERN = /^[0-9a-f]{64}$/;

/** EINVAL naming the first malformed id or a list over the command limit. */
export function checkBlockIds(ids: unknown, field: string, allowHoles: boolean, maxIds = Number.MAX_SAFE_INTEGER): Result<string[]> {
  if (!Array.isArray(ids)) return fail(Errno.EINVAL, `${field} must be a list of block ids`);
  if (ids.length > maxIds) return fail(Errno.EINVAL, `${field} lists ${ids.length} blocks, more than ${maxIds}`);
  for (const [i, id] of ids.entries()) {
    if (typeof id !== 'string' || !(BLOCK_ID_PATTERN.test(id) || (allowHoles && id === ''))) {
      return fail(Errno.EINVAL, `${field}[${i}] ${JSON.stringify(String(id).slice(0, 80))} is not a SHA-256 block id (64 lowercase hex digits)`);
    }
  }
  return ok(ids as string[]);
}

export interface CollectCandidate {
  readonly blockId: string;
  /** The command time at which the block's last reference went (contract 2 above). */
  readonly unreferencedSinceMs: number;
}

export const DEFAULT_MAX_BLOCKS_PER_COLLECT = 1024;

/**
 * Blocks safe to delete: not referenced (pending references included) and
 * unreferenced for at least graceMs; oldest first, at most maxBlocks. A
 * candidate listed twice counts with its latest time. EINVAL for a malformed
 * id, time, grace or limit.
 */
export function blocksToCollect(
  referenced: ReadonlySet<string>,
  candidates: readonly CollectCandidate[],
  nowMs: number,
  graceMs: number,
  maxBlocks = DEFAULT_MAX_BLOCKS_PER_COLLECT,
): Result<string[]> {
  if (!(referenced instanceof Set)) return fail(Errno.EINVAL, 'referenced is not a set');
  if (!Array.isArray(candidates)) return fail(Errno.EINVAL, 'candidates is not a list');
  if (!Number.isSafeInteger(nowMs)) return fail(Errno.EINVAL, `nowMs ${String(nowMs)} is not an integer`);
  if (!Number.isSafeInteger(graceMs) || graceMs < 0) return fail(Errno.EINVAL, `graceMs ${String(graceMs)} is not a non-negative integer`);
  if (!Number.isSafeInteger(maxBlocks) || maxBlocks < 1) return fail(Errno.EINVAL, `maxBlocks ${String(maxBlocks)} is not an integer ≥ 1`);
  const latest = new Map<string, number>();
  for (const c of candidates) {
    if (typeof c !== 'object' || c === null || typeof c.blockId !== 'string' || !BLOCK_ID_PATTERN.test(c.blockId)) {
      return fail(Errno.EINVAL, `candidate ${String((c as { blockId?: unknown } | null)?.blockId).slice(0, 100)} has no SHA-256 block id`);
    }
    if (!Number.isSafeInteger(c.unreferencedSinceMs)) return fail(Errno.EINVAL, `block ${c.blockId} has time ${String(c.unreferencedSinceMs)}`);
    latest.set(c.blockId, Math.max(latest.get(c.blockId) ?? Number.MIN_SAFE_INTEGER, c.unreferencedSinceMs));
  }
  const eligible = [...latest.entries()]
    .filter(([blockId, sinceMs]) => !referenced.has(blockId) && nowMs - sinceMs >= graceMs)
    .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return ok(eligible.slice(0, maxBlocks).map(([blockId]) => blockId));
}
