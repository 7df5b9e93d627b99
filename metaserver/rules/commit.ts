/**
 * The commit rule of handlefs versions (issue 3 §3): given the head, a
 * commit's base and what its fh changed, decide fast-forward, rebase or
 * conflict, and say where every byte of the resulting version comes from.
 * Pure and deterministic, because it runs in apply() on every member: no I/O,
 * clocks or randomness; bad input returns an errno and never throws. Turning
 * a decision into bytes (inline) or block runs is content.ts.
 *
 * Content model. A version is {version, size, changedExtents (bytes written
 * relative to version - 1; size changes follow from the sizes), content}.
 * Content is inline bytes (size ≤ INLINE_LIMIT_BYTES) or a list of blocks of
 * blockSizeBytes: block i holds [i·B, min((i+1)·B, size)) under the SHA-256 of
 * its bytes (or no id: a hole of zeros), so unchanged blocks are the same id in
 * both versions. These rules see only sizes and extents. A decision lists
 * Placements: each range of the new version comes from the head, from the fh's
 * own version (its base with its writes, newSize bytes: for block content the
 * block list the client uploaded, for inline content rebuilt from the written
 * bytes the commit carries), or is zeros.
 *
 * What a commit claims: its written extents plus its size change (extents.ts):
 * growing claims [base.size, newSize), shrinking claims [newSize, ∞), and a
 * cut at or below the base's size at any time in the fh's life (`truncatedTo`,
 * e.g. O_TRUNC, then writes that grew it back; also of an empty file) claims
 * [truncatedTo, ∞): whatever the base or anyone else had there, the fh's
 * version says it is gone. Two
 * positional commits from one base conflict iff their claims overlap, and the
 * answer does not depend on which commits first.
 *
 * The decision for a positional commit:
 * - head == base: fast-forward. The fh's version becomes head + 1.
 * - Else overlap = claims ∩ changed since base. Empty: rebase. The result is
 *   the head with this commit's claimed bytes on top: what a local file would
 *   hold had both commits' writes reached it in commit order. Disjoint commits
 *   therefore give the same bytes in either order.
 * - Overlap, policy lww (default): the same merge becomes head + 1. This
 *   commit's bytes win where both wrote; the head's concurrent changes outside
 *   the overlap survive. The overwritten bytes live on, unchanged, in version
 *   `head`, which the state machine marks conflict (lost to head + 1).
 * - Overlap, policy reject: the head stays. The commit's content (the fh's
 *   whole version) is kept as a conflict copy and the answer carries EBUSY,
 *   which the client returns from close/fsync: unlike EIO it says "someone
 *   else changed these bytes", not "the storage failed".
 * In both policies the thing marked conflict holds exactly the bytes that lost.
 *
 * Size of a merge: newSize when the commit shrank the file or cut it
 * (truncatedTo); otherwise
 * max(head.size, end of its last written byte, newSize when it grew the file).
 * So a concurrent truncation stands; only under lww can bytes this commit
 * wrote past it grow the file again, with zeros between.
 *
 * Truncation: a shrinking commit rebases only when nothing changed at or past
 * its new end since its base (so the head still has the base's size); the
 * result has exactly newSize bytes. Anything else is a conflict: rebasing
 * would either cut off bytes another client just wrote or quietly turn the
 * truncation into "zero these bytes", and neither is what anyone asked for.
 *
 * O_APPEND: the commit must write exactly [base.size, newSize) (an O_APPEND fh
 * that truncates commits the truncation as a positional commit). Its bytes
 * move to the head's end: size = head.size + appended length. Appends never
 * conflict, even after a concurrent truncation: that is what O_APPEND
 * promises. Appends float, so a positional write over bytes an append placed
 * first does conflict, while the same write committed before the append does
 * not; symmetry holds among positional commits only.
 *
 * Why a rejected commit becomes a conflict copy (a per-file series of its own,
 * conflict 1, 2, ..., numbered by the state machine, each naming its base and
 * the head it lost to) rather than version head + 1 with the head pointer
 * left behind:
 * - the version history stays the list of contents the file really had: each
 *   version was head once, v + 1 was built on v, numbers rise by exactly 1 per
 *   successful commit, and change tracking needs no holes or skips;
 * - asking for "the newest version" or "the version after 7" never returns
 *   content that never was the file's;
 * - it is what users of other systems know: a rejected git push leaves the
 *   work on a branch, Dropbox and Syncthing keep a "conflicted copy" beside the
 *   file rather than inside its history.
 *
 * Client contract: `written` covers every byte whose content in the fh's
 * version may differ from the base at the same offset, clipped to newSize. A
 * truncate-then-extend inside one fh therefore reports the re-grown zeros as
 * written; a plain extension past the base's end need not (its hole is claimed
 * by the size change). An empty commit (nothing written, size unchanged) is
 * answered `no-change` and creates no version.
 */
import { Errno, Result, fail, ok } from './errno';
import {
  DEFAULT_EXTENT_LIMITS,
  Extent,
  ExtentLimits,
  MAX_EXTENTS_PER_COMMIT_CEILING,
  clip,
  extentEnd,
  intersect,
  normalize,
  sizeChangeExtents,
  subtract,
  union,
  validateExtents,
  validateSize,
} from './extents';

/** Versions up to this size keep their bytes in the state machine itself. */
export const INLINE_LIMIT_BYTES = 4096;
export const DEFAULT_BLOCK_SIZE_BYTES = 1 << 20;

export type ConflictPolicy = 'lww' | 'reject';
export const DEFAULT_CONFLICT_POLICY: ConflictPolicy = 'lww';

export interface VersionPoint {
  readonly version: number;
  readonly size: number;
}

export interface CommitRequest {
  /** The file's head at this log position (from the state machine). */
  readonly head: VersionPoint;
  /** The version the fh's content was built on (the client names it; the state machine looks up its size). */
  readonly base: VersionPoint;
  /** What the fh wrote, relative to base: from the client, untrusted. */
  readonly written: readonly Extent[];
  /** The fh's size at commit: from the client, untrusted. */
  readonly newSize: number;
  /**
   * The lowest size the fh cut the file to, at or below the base's size (O_TRUNC and ftruncate
   * count, even of an empty file, whatever was written afterwards); undefined when it never cut.
   */
  readonly truncatedTo?: number;
  /** The fh was opened O_APPEND. */
  readonly append: boolean;
  /** extentsChangedBetween(history, base.version, head.version).extents. */
  readonly changedSinceBase: readonly Extent[];
  readonly policy: ConflictPolicy;
}

/** Where a range of a new version's bytes comes from. 'fh' is the fh's own version, 'zero' needs no source. */
export type ContentSource = 'head' | 'fh' | 'zero';

export interface Placement {
  /** Range in the new version. */
  readonly offset: number;
  readonly length: number;
  readonly source: ContentSource;
  /** Where the bytes start in the source (equal to offset except for appends; 0 for 'zero'). */
  readonly sourceOffset: number;
}

interface NewVersion {
  /** head.version + 1. */
  readonly version: number;
  readonly size: number;
  /** Sorted, contiguous, tiling [0, size). */
  readonly placements: Placement[];
  /** To record as the new version's changedExtents: everything not taken from the head at the same offset. */
  readonly changedExtents: Extent[];
}

export interface FastForward extends NewVersion {
  readonly kind: 'fast-forward';
}

export interface Rebase extends NewVersion {
  readonly kind: 'rebase';
}

export interface ConflictLww extends NewVersion {
  readonly kind: 'conflict-lww';
  /** Bytes this commit overwrote that changed concurrently since its base. */
  readonly overlap: Extent[];
  /** The old head: it keeps the overwritten bytes and is to be marked conflict, lost to `version`. */
  readonly conflictVersion: number;
}

export interface ConflictCopy {
  readonly baseVersion: number;
  readonly lostToVersion: number;
  readonly size: number;
  /** All from 'fh': the copy is the fh's version exactly as its writer saw it. */
  readonly placements: Placement[];
  /** Relative to baseVersion. */
  readonly changedExtents: Extent[];
}

export interface ConflictReject {
  readonly kind: 'conflict-reject';
  readonly errno: typeof Errno.EBUSY;
  readonly message: string;
  /** Unchanged: no version is created. */
  readonly headVersion: number;
  readonly overlap: Extent[];
  readonly conflictCopy: ConflictCopy;
}

export interface NoChange {
  readonly kind: 'no-change';
  readonly version: number;
  readonly size: number;
}

export type CommitDecision = FastForward | Rebase | ConflictLww | ConflictReject | NoChange;

const MAX_EXTENTS_IN_MESSAGE = 3;

/** "[0, +10), [20, +5) and 3 more": keeps error messages short whatever the input. */
export function describeExtents(extents: readonly Extent[]): string {
  const shown = extents.slice(0, MAX_EXTENTS_IN_MESSAGE).map((e) => `[${e.offset}, +${e.length})`);
  const more = extents.length - shown.length;
  return shown.join(', ') + (more > 0 ? ` and ${more} more` : '') || 'nothing';
}

function checkPoint(name: string, p: unknown, limits: ExtentLimits): Result<VersionPoint> {
  if (typeof p !== 'object' || p === null) return fail(Errno.EINVAL, `${name} is not a {version, size}`);
  const { version, size } = p as { version?: unknown; size?: unknown };
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    return fail(Errno.EINVAL, `${name} version ${String(version)} is not a version number (they start at 1)`);
  }
  const checkedSize = validateSize(size, limits);
  if (!checkedSize.ok) return fail(checkedSize.errno, `${name}: ${checkedSize.message}`);
  return ok({ version, size: checkedSize.value });
}

interface CheckedRequest {
  readonly head: VersionPoint;
  readonly base: VersionPoint;
  readonly written: Extent[];
  readonly newSize: number;
  readonly truncatedTo: number | undefined;
  readonly append: boolean;
  readonly changedSinceBase: Extent[];
  readonly policy: ConflictPolicy;
}

function checkRequest(request: CommitRequest, limits: ExtentLimits): Result<CheckedRequest> {
  if (typeof request !== 'object' || request === null) return fail(Errno.EINVAL, 'commit request is not an object');
  if (request.policy !== 'lww' && request.policy !== 'reject') return fail(Errno.EINVAL, `conflict policy ${String(request.policy)} is neither lww nor reject`);
  if (typeof request.append !== 'boolean') return fail(Errno.EINVAL, 'append is not a boolean');
  const head = checkPoint('head', request.head, limits);
  if (!head.ok) return head;
  const base = checkPoint('base', request.base, limits);
  if (!base.ok) return base;
  if (base.value.version > head.value.version) {
    return fail(Errno.EINVAL, `base version ${base.value.version} is newer than head version ${head.value.version}`);
  }
  if (base.value.version === head.value.version && base.value.size !== head.value.size) {
    return fail(Errno.EINVAL, `base and head are both version ${head.value.version} but have sizes ${base.value.size} and ${head.value.size}`);
  }
  if (head.value.version >= Number.MAX_SAFE_INTEGER) return fail(Errno.EOVERFLOW, `version ${head.value.version} is the last one a file can have`);
  const newSize = validateSize(request.newSize, limits);
  if (!newSize.ok) return fail(newSize.errno, `new size: ${newSize.message}`);
  const written = validateExtents(request.written, limits);
  if (!written.ok) return fail(written.errno, `written: ${written.message}`);
  const last = written.value[written.value.length - 1];
  if (last !== undefined && extentEnd(last) > newSize.value) {
    return fail(Errno.EINVAL, `written bytes reach ${extentEnd(last)}, past the new size ${newSize.value}`);
  }
  const truncatedTo = request.truncatedTo;
  if (truncatedTo !== undefined && (!Number.isSafeInteger(truncatedTo) || truncatedTo < 0 || truncatedTo > base.value.size || truncatedTo > newSize.value)) {
    return fail(Errno.EINVAL, `truncatedTo ${String(truncatedTo)} must be an integer at most the base's size ${base.value.size} and at most the new size ${newSize.value}`);
  }
  const changed = validateExtents(request.changedSinceBase, { ...limits, maxExtentsPerCommit: MAX_EXTENTS_PER_COMMIT_CEILING });
  if (!changed.ok) return fail(Errno.EINVAL, `changedSinceBase: ${changed.message}`);
  if (head.value.version === base.value.version && changed.value.length > 0) {
    return fail(Errno.EINVAL, `changedSinceBase names ${describeExtents(changed.value)} but head is the base`);
  }
  return ok({
    head: head.value,
    base: base.value,
    written: written.value,
    newSize: newSize.value,
    truncatedTo,
    append: request.append,
    changedSinceBase: changed.value,
    policy: request.policy,
  });
}

/** What a commit claims relative to its base: its written bytes, its size change and any cut below the base (see the header). */
export function commitClaims(baseSize: number, newSize: number, written: readonly Extent[], limits: ExtentLimits = DEFAULT_EXTENT_LIMITS, truncatedTo?: number): Extent[] {
  const claims = union(written, sizeChangeExtents(baseSize, newSize, limits));
  // A cut claims everything from its point on, even at the base's end (O_TRUNC of an empty file): the fh's file ends at newSize.
  return truncatedTo === undefined || truncatedTo >= limits.maxFileSizeBytes ? claims : union(claims, [{ offset: truncatedTo, length: limits.maxFileSizeBytes - truncatedTo }]);
}

/** What is wrong with placements as a version of `size` bytes, or undefined when they tile [0, size) in order. */
export function placementsProblem(placements: readonly Placement[], size: number): string | undefined {
  if (!Array.isArray(placements)) return 'placements is not a list';
  let at = 0;
  for (let i = 0; i < placements.length; i++) {
    const p = placements[i];
    if (typeof p !== 'object' || p === null) return `placement ${i} is not an object`;
    if (p.offset !== at) return `placement ${i} starts at ${String(p.offset)}, expected ${at}`;
    if (!Number.isSafeInteger(p.length) || p.length <= 0) return `placement ${i} has length ${String(p.length)}`;
    if (p.source !== 'head' && p.source !== 'fh' && p.source !== 'zero') return `placement ${i} has unknown source ${String(p.source)}`;
    if (!Number.isSafeInteger(p.sourceOffset) || p.sourceOffset < 0 || !Number.isSafeInteger(p.sourceOffset + p.length)) {
      return `placement ${i} has source offset ${String(p.sourceOffset)}`;
    }
    at += p.length;
  }
  if (at !== size) return `placements end at ${at}, not at size ${String(size)}`;
  return undefined;
}

/** Every decision promises the block layer placements that tile [0, size): a broken one is a bug here. */
function assertTiles(placements: readonly Placement[], size: number): void {
  const problem = placementsProblem(placements, size);
  if (problem !== undefined) throw new Error(`decision broke its own invariant: ${problem}`);
}

function fromFh(e: Extent, sourceOffset = e.offset): Placement {
  return { offset: e.offset, length: e.length, source: 'fh', sourceOffset };
}

/** The head's bytes outside `ours` (zeros past the head's end) and the fh's bytes inside it, over [0, size). */
function mergePlacements(headSize: number, ours: readonly Extent[], size: number): Placement[] {
  const whole: Extent[] = size > 0 ? [{ offset: 0, length: size }] : [];
  const mine = clip(ours, 0, size);
  const rest = subtract(whole, mine);
  const placements: Placement[] = mine.map((e) => fromFh(e));
  for (const e of clip(rest, 0, headSize)) placements.push({ offset: e.offset, length: e.length, source: 'head', sourceOffset: e.offset });
  for (const e of clip(rest, headSize, size)) placements.push({ offset: e.offset, length: e.length, source: 'zero', sourceOffset: 0 });
  placements.sort((a, b) => a.offset - b.offset);
  assertTiles(placements, size);
  return placements;
}

/** Everything a version does not take from the head at the same offset: its changedExtents. */
function changedAgainstHead(placements: readonly Placement[]): Extent[] {
  return normalize(placements.filter((p) => p.source !== 'head' || p.sourceOffset !== p.offset).map((p) => ({ offset: p.offset, length: p.length })));
}

function wholeFh(size: number): Placement[] {
  return size > 0 ? [fromFh({ offset: 0, length: size })] : [];
}

function fastForward(c: CheckedRequest): FastForward {
  const placements = wholeFh(c.newSize);
  return { kind: 'fast-forward', version: c.head.version + 1, size: c.newSize, placements, changedExtents: c.written };
}

function decideAppend(c: CheckedRequest, limits: ExtentLimits): Result<CommitDecision> {
  const appendedBytes = c.newSize - c.base.size;
  const expected: Extent[] = appendedBytes > 0 ? [{ offset: c.base.size, length: appendedBytes }] : [];
  const exact = c.written.length === expected.length && c.written.every((e, i) => e.offset === expected[i].offset && e.length === expected[i].length);
  if (appendedBytes < 0 || !exact) {
    return fail(
      Errno.EINVAL,
      `an O_APPEND commit must write exactly [${c.base.size}, ${c.newSize}) (the base's end to the new size); it wrote ${describeExtents(c.written)}`,
    );
  }
  if (appendedBytes === 0) return ok({ kind: 'no-change', version: c.head.version, size: c.head.size });
  if (c.head.version === c.base.version) return ok(fastForward(c));
  if (c.head.size > limits.maxFileSizeBytes - appendedBytes) {
    return fail(Errno.EFBIG, `appending ${appendedBytes} bytes at the head's end ${c.head.size} passes the maximum file size ${limits.maxFileSizeBytes}`);
  }
  const size = c.head.size + appendedBytes;
  const placements: Placement[] = [];
  if (c.head.size > 0) placements.push({ offset: 0, length: c.head.size, source: 'head', sourceOffset: 0 });
  placements.push(fromFh({ offset: c.head.size, length: appendedBytes }, c.base.size));
  assertTiles(placements, size);
  return ok({ kind: 'rebase', version: c.head.version + 1, size, placements, changedExtents: [{ offset: c.head.size, length: appendedBytes }] });
}

/** The size of the head with this commit's claims applied (see the header). */
function mergedSize(c: CheckedRequest): number {
  if (c.newSize < c.base.size || c.truncatedTo !== undefined) return c.newSize;
  const last = c.written[c.written.length - 1];
  const writtenEnd = last === undefined ? 0 : extentEnd(last);
  return Math.max(c.head.size, writtenEnd, c.newSize > c.base.size ? c.newSize : 0);
}

/**
 * Decides what a commit becomes. A Failure means the request itself is bad
 * (EINVAL, E2BIG, EFBIG, EOVERFLOW) and nothing is stored; a rejected
 * conflict is a decision (`conflict-reject`, carrying EBUSY) because its
 * content is still kept.
 */
export function decideCommit(request: CommitRequest, limits: ExtentLimits = DEFAULT_EXTENT_LIMITS): Result<CommitDecision> {
  const checked = checkRequest(request, limits);
  if (!checked.ok) return checked;
  const c = checked.value;
  if (c.append) return decideAppend(c, limits);

  const claims = commitClaims(c.base.size, c.newSize, c.written, limits, c.truncatedTo);
  if (claims.length === 0) return ok({ kind: 'no-change', version: c.head.version, size: c.head.size });
  if (c.head.version === c.base.version) return ok(fastForward(c));

  const overlap = intersect(claims, c.changedSinceBase);
  if (overlap.length > 0 && c.policy === 'reject') {
    return ok({
      kind: 'conflict-reject',
      errno: Errno.EBUSY,
      message: `version ${c.head.version} changed ${describeExtents(overlap)} since base version ${c.base.version}; kept as a conflict copy`,
      headVersion: c.head.version,
      overlap,
      conflictCopy: {
        baseVersion: c.base.version,
        lostToVersion: c.head.version,
        size: c.newSize,
        placements: wholeFh(c.newSize),
        changedExtents: c.written,
      },
    });
  }
  const size = mergedSize(c);
  const placements = mergePlacements(c.head.size, claims, size);
  const merged = { version: c.head.version + 1, size, placements, changedExtents: changedAgainstHead(placements) };
  if (overlap.length === 0) return ok({ kind: 'rebase', ...merged });
  return ok({ kind: 'conflict-lww', ...merged, overlap, conflictVersion: c.head.version });
}
