/**
 * Byte-range arithmetic for version commits: what an Extent is, the checks a
 * commit's extents must pass, set operations on lists of extents, and which
 * bytes of a file changed between two versions. Pure and deterministic: no I/O,
 * clocks or randomness. Input from the wire goes through validateExtents /
 * validateSize, which return an errno; the set operations expect well-formed
 * extents and assert it (a malformed one there is a bug in the caller).
 *
 * What "changed" means (the one rule every other rule here builds on):
 * - A written extent changes the bytes it covers.
 * - Growing a file from oldSize to newSize changes [oldSize, newSize): the
 *   new bytes did not exist before, holes included.
 * - Shrinking a file to newSize changes [newSize, ∞), represented as
 *   [newSize, maxFileSizeBytes): a truncation claims everything from the new
 *   end on, including bytes that other clients add beyond the old end while
 *   it is in flight. This makes "do two concurrent commits conflict?" the
 *   same question whichever commits first (see commit.ts), at the price that
 *   a truncation never merges with a concurrent write past its new end.
 */
import { Errno, Result, fail, ok } from './errno';

/** A byte range [offset, offset + length). Safe integers, length > 0. */
export interface Extent {
  readonly offset: number;
  readonly length: number;
}

export interface ExtentLimits {
  /** No byte of any file lies at or beyond this offset (EFBIG). */
  readonly maxFileSizeBytes: number;
  /** A commit names at most this many written extents (E2BIG): the client coalesces or commits in parts. */
  readonly maxExtentsPerCommit: number;
}

export const DEFAULT_EXTENT_LIMITS: ExtentLimits = Object.freeze({
  maxFileSizeBytes: 2 ** 40, // 1 TiB
  maxExtentsPerCommit: 4096,
});

/** The hard ceiling on extents per commit a configuration may choose: keeps one command's work bounded. */
export const MAX_EXTENTS_PER_COMMIT_CEILING = 1 << 20;

/** What is wrong with a limits configuration, or undefined; for the config loader, once at start. */
export function extentLimitsProblem(limits: ExtentLimits): string | undefined {
  const { maxFileSizeBytes, maxExtentsPerCommit } = limits;
  if (!Number.isSafeInteger(maxFileSizeBytes) || maxFileSizeBytes < 1) return `maxFileSizeBytes ${String(maxFileSizeBytes)} is not a positive safe integer`;
  if (!Number.isSafeInteger(maxExtentsPerCommit) || maxExtentsPerCommit < 1 || maxExtentsPerCommit > MAX_EXTENTS_PER_COMMIT_CEILING) {
    return `maxExtentsPerCommit ${String(maxExtentsPerCommit)} is not an integer in [1, ${MAX_EXTENTS_PER_COMMIT_CEILING}]`;
  }
  return undefined;
}

function assertLimits(limits: ExtentLimits): void {
  const problem = extentLimitsProblem(limits);
  if (problem !== undefined) throw new Error(`extent limits were not validated at start: ${problem}`);
}

export function extentEnd(e: Extent): number {
  return e.offset + e.length;
}

function isWellFormed(e: Extent): boolean {
  return (
    typeof e === 'object' &&
    e !== null &&
    Number.isSafeInteger(e.offset) &&
    Number.isSafeInteger(e.length) &&
    e.offset >= 0 &&
    e.length > 0 &&
    Number.isSafeInteger(e.offset + e.length)
  );
}

function assertWellFormed(extents: readonly Extent[]): void {
  for (const e of extents) {
    if (!isWellFormed(e)) throw new Error(`malformed extent [${String(e?.offset)}, +${String(e?.length)}) reached extent arithmetic unvalidated`);
  }
}

/** A file size as a commit or a version carries it: EINVAL if not a non-negative safe integer, EFBIG past the limit. */
export function validateSize(size: unknown, limits: ExtentLimits = DEFAULT_EXTENT_LIMITS): Result<number> {
  assertLimits(limits);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return fail(Errno.EINVAL, `size ${String(size)} is not a non-negative integer`);
  if (size > limits.maxFileSizeBytes) return fail(Errno.EFBIG, `size ${size} exceeds the maximum file size ${limits.maxFileSizeBytes}`);
  return ok(size);
}

/**
 * The written extents of a commit, checked and normalized. E2BIG for more than
 * maxExtentsPerCommit (checked before looking at any element), EINVAL for a
 * malformed one, EFBIG for one ending past maxFileSizeBytes. Overlapping or
 * unsorted input is accepted: a client may report its writes in any order.
 */
export function validateExtents(input: unknown, limits: ExtentLimits = DEFAULT_EXTENT_LIMITS): Result<Extent[]> {
  assertLimits(limits);
  if (!Array.isArray(input)) return fail(Errno.EINVAL, 'extents is not a list');
  if (input.length > limits.maxExtentsPerCommit) {
    return fail(Errno.E2BIG, `${input.length} extents exceed the limit of ${limits.maxExtentsPerCommit} per commit`);
  }
  const checked: Extent[] = [];
  for (let i = 0; i < input.length; i++) {
    const e: unknown = input[i];
    if (typeof e !== 'object' || e === null) return fail(Errno.EINVAL, `extent ${i} is not an object`);
    const { offset, length } = e as { offset?: unknown; length?: unknown };
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      return fail(Errno.EINVAL, `extent ${i} has offset ${String(offset)}, not a non-negative integer`);
    }
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length <= 0) {
      return fail(Errno.EINVAL, `extent ${i} has length ${String(length)}, not a positive integer`);
    }
    if (offset > limits.maxFileSizeBytes - length) {
      return fail(Errno.EFBIG, `extent ${i} [${offset}, +${length}) ends past the maximum file size ${limits.maxFileSizeBytes}`);
    }
    checked.push({ offset, length });
  }
  return ok(normalize(checked));
}

/** Sorted by offset, overlapping and adjacent extents merged. Returns a new list. */
export function normalize(extents: readonly Extent[]): Extent[] {
  assertWellFormed(extents);
  const sorted = [...extents].sort((a, b) => a.offset - b.offset || a.length - b.length);
  const merged: Extent[] = [];
  for (const e of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && e.offset <= extentEnd(last)) {
      const end = Math.max(extentEnd(last), extentEnd(e));
      merged[merged.length - 1] = { offset: last.offset, length: end - last.offset };
    } else {
      merged.push({ offset: e.offset, length: e.length });
    }
  }
  return merged;
}

/** True when extents are sorted, disjoint, non-adjacent and well formed (what normalize returns). */
export function isNormalized(extents: readonly Extent[]): boolean {
  for (let i = 0; i < extents.length; i++) {
    if (!isWellFormed(extents[i])) return false;
    if (i > 0 && extents[i].offset <= extentEnd(extents[i - 1])) return false;
  }
  return true;
}

export function union(a: readonly Extent[], b: readonly Extent[]): Extent[] {
  return normalize([...a, ...b]);
}

/** The bytes in both a and b, normalized. */
export function intersect(a: readonly Extent[], b: readonly Extent[]): Extent[] {
  const x = normalize(a);
  const y = normalize(b);
  const out: Extent[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    const start = Math.max(x[i].offset, y[j].offset);
    const end = Math.min(extentEnd(x[i]), extentEnd(y[j]));
    if (start < end) out.push({ offset: start, length: end - start });
    if (extentEnd(x[i]) < extentEnd(y[j])) i++;
    else j++;
  }
  return out;
}

export function overlaps(a: readonly Extent[], b: readonly Extent[]): boolean {
  return intersect(a, b).length > 0;
}

/** The bytes in a and not in b, normalized. */
export function subtract(a: readonly Extent[], b: readonly Extent[]): Extent[] {
  const x = normalize(a);
  const y = normalize(b);
  const out: Extent[] = [];
  let j = 0;
  for (const e of x) {
    let start = e.offset;
    const end = extentEnd(e);
    while (j < y.length && extentEnd(y[j]) <= start) j++;
    let k = j;
    while (k < y.length && y[k].offset < end) {
      if (y[k].offset > start) out.push({ offset: start, length: y[k].offset - start });
      start = Math.max(start, extentEnd(y[k]));
      k++;
    }
    if (start < end) out.push({ offset: start, length: end - start });
  }
  return out;
}

/** The parts of extents inside [from, to). */
export function clip(extents: readonly Extent[], from: number, to: number): Extent[] {
  if (!(to > from)) return [];
  return intersect(extents, [{ offset: from, length: to - from }]);
}

export function totalBytes(extents: readonly Extent[]): number {
  return normalize(extents).reduce((sum, e) => sum + e.length, 0);
}

/**
 * Every extent moved by deltaBytes (negative moves toward 0): how an O_APPEND
 * commit's bytes move from the end of its base to the end of the head.
 * EINVAL if one would start before 0, EFBIG if one would end past the limit.
 */
export function shift(extents: readonly Extent[], deltaBytes: number, limits: ExtentLimits = DEFAULT_EXTENT_LIMITS): Result<Extent[]> {
  assertLimits(limits);
  assertWellFormed(extents);
  if (!Number.isSafeInteger(deltaBytes)) return fail(Errno.EINVAL, `shift of ${String(deltaBytes)} bytes is not a safe integer`);
  const out: Extent[] = [];
  for (const e of normalize(extents)) {
    const offset = e.offset + deltaBytes;
    if (offset < 0) return fail(Errno.EINVAL, `shifting [${e.offset}, +${e.length}) by ${deltaBytes} starts before byte 0`);
    if (offset > limits.maxFileSizeBytes - e.length) {
      return fail(Errno.EFBIG, `shifting [${e.offset}, +${e.length}) by ${deltaBytes} ends past the maximum file size ${limits.maxFileSizeBytes}`);
    }
    out.push({ offset, length: e.length });
  }
  return ok(out);
}

/**
 * The bytes a size change from oldSize to newSize changes (see the header):
 * [oldSize, newSize) when growing, [newSize, maxFileSizeBytes) when shrinking,
 * nothing when equal. Sizes must be valid (validateSize).
 */
export function sizeChangeExtents(oldSize: number, newSize: number, limits: ExtentLimits = DEFAULT_EXTENT_LIMITS): Extent[] {
  assertLimits(limits);
  for (const size of [oldSize, newSize]) {
    if (!Number.isSafeInteger(size) || size < 0 || size > limits.maxFileSizeBytes) throw new Error(`size ${size} reached sizeChangeExtents unvalidated`);
  }
  if (newSize > oldSize) return [{ offset: oldSize, length: newSize - oldSize }];
  if (newSize < oldSize) return [{ offset: newSize, length: limits.maxFileSizeBytes - newSize }];
  return [];
}

/** What the state machine keeps about each version for change tracking (its content lives elsewhere). */
export interface VersionChanges {
  readonly version: number;
  readonly size: number;
  /** Bytes this version wrote relative to version - 1 (size changes are derived from the sizes). */
  readonly changedExtents: readonly Extent[];
}

export interface ChangedBetween {
  /** Normalized. */
  readonly extents: Extent[];
  /**
   * False when the answer is a conservative superset: a version in
   * (fromVersion, toVersion], or fromVersion itself, was missing from the
   * history (retention dropped it), and the answer is the whole file
   * [0, maxFileSizeBytes), so a commit based before the gap conflicts rather
   * than rebasing over changes nobody can see any more; or the changes were
   * more than MAX_EXTENTS_PER_COMMIT_CEILING extents and are answered as the
   * one extent spanning them.
   */
  readonly exact: boolean;
}

/**
 * The union of what versions fromVersion+1 .. toVersion changed, size changes
 * included: the bytes a commit based on fromVersion must not have touched to
 * rebase onto toVersion. `history` holds the versions the state machine still
 * has, in any order. EINVAL for a malformed range or history.
 */
export function extentsChangedBetween(
  history: readonly VersionChanges[],
  fromVersion: number,
  toVersion: number,
  limits: ExtentLimits = DEFAULT_EXTENT_LIMITS,
): Result<ChangedBetween> {
  assertLimits(limits);
  if (!Number.isSafeInteger(fromVersion) || fromVersion < 1) return fail(Errno.EINVAL, `fromVersion ${String(fromVersion)} is not a version number`);
  if (!Number.isSafeInteger(toVersion) || toVersion < fromVersion) return fail(Errno.EINVAL, `toVersion ${String(toVersion)} is before fromVersion ${fromVersion}`);
  if (!Array.isArray(history)) return fail(Errno.EINVAL, 'history is not a list');
  const byVersion = new Map<number, VersionChanges>();
  const seen = new Set<number>();
  for (const record of history) {
    if (typeof record !== 'object' || record === null || !Number.isSafeInteger(record.version) || record.version < 1) {
      return fail(Errno.EINVAL, `history record ${String((record as { version?: unknown } | null)?.version)} has no valid version number`);
    }
    if (seen.has(record.version)) return fail(Errno.EINVAL, `history holds version ${record.version} twice`);
    seen.add(record.version);
    if (record.version < fromVersion || record.version > toVersion) continue;
    const size = validateSize(record.size, limits);
    if (!size.ok) return fail(Errno.EINVAL, `history version ${record.version}: ${size.message}`);
    const changed = validateExtents(record.changedExtents, { ...limits, maxExtentsPerCommit: MAX_EXTENTS_PER_COMMIT_CEILING });
    if (!changed.ok) return fail(Errno.EINVAL, `history version ${record.version}: ${changed.message}`);
    byVersion.set(record.version, record);
  }
  const everything: ChangedBetween = { extents: [{ offset: 0, length: limits.maxFileSizeBytes }], exact: false };
  // More versions asked for than records given means a gap: answer at once rather than loop over a huge range.
  if (toVersion - fromVersion + 1 > byVersion.size) return ok(everything);
  const parts: Extent[] = [];
  let previous = byVersion.get(fromVersion);
  for (let v = fromVersion + 1; v <= toVersion; v++) {
    const current = byVersion.get(v);
    if (previous === undefined || current === undefined) return ok(everything);
    parts.push(...current.changedExtents, ...sizeChangeExtents(previous.size, current.size, limits));
    previous = current;
  }
  if (previous === undefined) return ok(everything);
  const extents = normalize(parts);
  if (extents.length > MAX_EXTENTS_PER_COMMIT_CEILING) {
    // Too scattered to carry: one extent covering them all is a superset, so it can only add conflicts.
    const last = extents[extents.length - 1];
    return ok({ extents: [{ offset: extents[0].offset, length: extentEnd(last) - extents[0].offset }], exact: false });
  }
  return ok({ extents, exact: true });
}
