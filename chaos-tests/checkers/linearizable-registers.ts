/**
 * Linearizability of whole-file registers: per file, the 'write' and 'read'
 * operations must have an order consistent with real time in which every read
 * returns the last value written (Wing & Gong search, wing-gong.ts). Files are
 * independent objects, so each key is checked alone (P-compositionality).
 *
 * Outcomes: 'fail' operations never happened and are dropped; an 'unknown'
 * write may have happened at any point after its invoke, or never (it never
 * returns); an 'unknown' read tells nothing and is dropped. With unique
 * values most unknown writes are settled before the search (see prepare()).
 *
 * When the final state lists the file's versions, writes must also take
 * effect in version order: handlefs' version numbers are the commit order,
 * and under the default lww policy every acknowledged write lands as a
 * version, so reads must be explained by that same order of writes.
 *
 * Owns the register model and the reduction of unknown writes; must never
 * read a clock or do I/O, and never report a pass for a key whose search ran
 * out of budget.
 */
import type { History, Operation } from '../history';
import type { CheckResult, Checker, FinalState, Violation } from './checker';
import { describeOperation, quote, timeMs } from './describe';
import { type SearchModel, type SearchResult, searchLinearization, shrinkFailing } from './wing-gong';

export const LINEARIZABLE_REGISTERS = 'linearizable-registers';

export interface RegisterCheckOptions {
  /** The content of a register before any write: null for "the file is missing" (the default), '' if the workload creates it empty. */
  initialValue?: string | null;
  /** Search iterations allowed per key; beyond, the key is reported inconclusive (never passed). */
  maxStepsPerKey?: number;
  /** Constrain writes to take effect in the order of FinalState.versions (default true). */
  useVersionOrder?: boolean;
  /** Searches allowed while shrinking a violation to a minimal subhistory. */
  maxShrinkChecks?: number;
  /** Look for the usual anomalies before searching (default true; tests turn it off to exercise the search). */
  screen?: boolean;
}

export const DEFAULT_MAX_STEPS_PER_KEY = 5_000_000;
export const DEFAULT_MAX_SHRINK_CHECKS = 400;

export interface KeyVerdict {
  key: string;
  verdict: SearchResult['verdict'];
  /** Operations the search saw after dropping what cannot matter. */
  searchedOps: number;
  steps: number;
  cacheEntries: number;
}

/** The content id of every value no read returned (ids of read values start at 1; 0 is "missing"). */
const UNREADABLE_CONTENT_ID = -1;

/** A prepared operation: the raw one, its effective completion time and the model's view of it. */
interface PreparedOp {
  op: Operation;
  invokeMs: number;
  completeMs: number;
  isWrite: boolean;
  /** An unknown write that may never have happened (returns at Infinity; the search may leave it out). */
  optional: boolean;
  /** Content id: what a write stores or what a read returned (0 = missing). */
  contentId: number;
  /** Index of the write's content in the final versions, -1 if unknown or unused. */
  versionIndex: number;
}

/**
 * Prepares one key's operations for the search. Unknown writes are reduced
 * where that is sound: one nobody read and not among the versions is never
 * observable, so it is dropped; one whose value is unique may not take effect
 * after the first read that returned it, nor after an acknowledged write with
 * a later version, so its completion is bounded by theirs.
 */
function prepare(ops: readonly Operation[], initialValue: string | null, versionContents: string[] | undefined): PreparedOp[] {
  const contentIds = new Map<string, number>();
  const idOf = (content: string | undefined | null): number => {
    if (content === undefined || content === null) return 0;
    let id = contentIds.get(content);
    if (id === undefined) {
      id = contentIds.size + 1;
      contentIds.set(content, id);
    }
    return id;
  };
  idOf(initialValue);
  const versionIndexOf = new Map<string, number>();
  for (const [index, content] of (versionContents ?? []).entries()) if (!versionIndexOf.has(content)) versionIndexOf.set(content, index);

  const live = ops.filter((op) => op.outcome !== 'fail' && (op.kind === 'write' || (op.kind === 'read' && op.outcome === 'ok')));
  const writersOf = new Map<string, number>();
  for (const op of live) if (op.kind === 'write') writersOf.set(op.value!, (writersOf.get(op.value!) ?? 0) + 1);
  const firstReadCompleteMs = new Map<string, number>();
  for (const op of live) {
    if (op.kind === 'read' && op.result !== undefined) {
      firstReadCompleteMs.set(op.result, Math.min(firstReadCompleteMs.get(op.result) ?? Infinity, op.completeMs));
    }
  }

  const prepared: PreparedOp[] = [];
  for (const op of live) {
    const isWrite = op.kind === 'write';
    if (isWrite && typeof op.value !== 'string') throw new Error(`${describeOperation(op)}: a write needs a value`);
    const content = isWrite ? op.value! : op.result;
    const versionIndex = isWrite && versionContents ? (versionIndexOf.get(content!) ?? -1) : -1;
    let completeMs = op.completeMs;
    if (isWrite && op.outcome === 'unknown') {
      completeMs = Infinity;
      const read = firstReadCompleteMs.has(content!);
      if (!read && versionIndex < 0) continue;
      if (writersOf.get(content!) === 1) {
        completeMs = Math.min(completeMs, firstReadCompleteMs.get(content!) ?? Infinity);
        if (versionIndex >= 0) {
          for (const other of live) {
            const otherIndex = other.kind === 'write' && other.outcome === 'ok' ? (versionIndexOf.get(other.value!) ?? -1) : -1;
            if (otherIndex > versionIndex) completeMs = Math.min(completeMs, other.completeMs);
          }
        }
        completeMs = Math.max(completeMs, op.invokeMs);
      }
    }
    // A unique value among the versions proves the write happened; otherwise an unbounded unknown write may never have.
    const provenByVersion = versionIndex >= 0 && writersOf.get(content!) === 1;
    const optional = completeMs === Infinity && !provenByVersion;
    // Values nobody read all leave the register in one state, "unreadable": which of them is there cannot
    // matter to any read, and one state instead of many lets the memoization merge their orders.
    const blind = isWrite && !firstReadCompleteMs.has(content!) && content !== initialValue;
    prepared.push({ op, invokeMs: op.invokeMs, completeMs, isWrite, optional, contentId: blind ? UNREADABLE_CONTENT_ID : idOf(content), versionIndex });
  }
  return prepared;
}

/**
 * The register: state = content id, the last version index applied, and how
 * many reads of the current content are still to come, packed in one number.
 *
 * The last part prunes hard (it is what makes ten concurrent clients cheap):
 * a content with a single source (one writer, or the initial value nobody
 * writes again) can never come back once overwritten, so no write may take
 * effect while a read that returned it is still unlinearized.
 */
function registerModel(prepared: readonly PreparedOp[], initialContentId: number, singleSource: ReadonlySet<number>): SearchModel<number> {
  const readsOf = new Map<number, number>();
  for (const p of prepared) if (!p.isWrite) readsOf.set(p.contentId, (readsOf.get(p.contentId) ?? 0) + 1);
  let readsSpan = 1;
  for (const count of readsOf.values()) readsSpan = Math.max(readsSpan, count + 1);
  let versionsSpan = 1;
  for (const p of prepared) versionsSpan = Math.max(versionsSpan, p.versionIndex + 2);
  // Content id + 1 (≥ 0, as unreadable is -1), then lastIndex + 1, then the reads still to come.
  const pack = (contentId: number, lastIndex: number, readsLeft: number): number =>
    ((contentId + 1) * versionsSpan + lastIndex + 1) * readsSpan + readsLeft;
  if (!Number.isSafeInteger(pack(Math.max(initialContentId, prepared.length), versionsSpan - 2, readsSpan - 1))) {
    throw new Error(`linearizable-registers: ${prepared.length} operations are too many to pack a state in one number`);
  }
  const writeTo = (contentId: number, lastIndex: number): number => pack(contentId, lastIndex, readsOf.get(contentId) ?? 0);
  // Versions are the commit order: a write may take effect only once every required write of an earlier
  // version has (skipping one would leave it nowhere to go). Per write: the latest earlier required version.
  const requiredIndexes = [...new Set(prepared.filter((p) => p.isWrite && !p.optional && p.versionIndex >= 0).map((p) => p.versionIndex))].sort((a, b) => a - b);
  const previousRequired = prepared.map((p) => {
    let previous = -1;
    for (const index of requiredIndexes) if (index < p.versionIndex) previous = index;
    return previous;
  });
  return {
    init: writeTo(initialContentId, -1),
    key: (state) => String(state),
    isReadOnly: (opIndex) => !prepared[opIndex].isWrite,
    step(state, opIndex) {
      const p = prepared[opIndex];
      const readsLeft = state % readsSpan;
      const high = Math.floor(state / readsSpan);
      const contentId = Math.floor(high / versionsSpan) - 1;
      const lastIndex = (high % versionsSpan) - 1;
      if (!p.isWrite) return p.contentId === contentId && readsLeft > 0 ? [state - 1] : [];
      if (readsLeft > 0 && singleSource.has(contentId)) return [];
      if (p.versionIndex < 0) return [writeTo(p.contentId, lastIndex)];
      return p.versionIndex > lastIndex && previousRequired[opIndex] <= lastIndex ? [writeTo(p.contentId, p.versionIndex)] : [];
    },
  };
}

/** Runs the search on one key's raw operations. */
export function checkRegisterKey(
  key: string,
  ops: readonly Operation[],
  versionContents: string[] | undefined,
  options: RegisterCheckOptions = {},
): KeyVerdict {
  const initialValue = options.initialValue === undefined ? null : options.initialValue;
  const prepared = prepare(ops, initialValue, versionContents);
  const initialContentId = initialValue === null ? 0 : 1;
  // Sources per content: its writes (any not failed) plus the initial value.
  const sources = new Map<number, number>([[initialContentId, 1]]);
  for (const p of prepared) if (p.isWrite) sources.set(p.contentId, (sources.get(p.contentId) ?? 0) + 1);
  for (const op of ops) {
    // Unknown writes dropped by prepare() are sources too (they may have landed unread).
    if (op.kind === 'write' && op.outcome === 'unknown' && !prepared.some((p) => p.op === op) && op.value === initialValue) sources.set(initialContentId, 2);
  }
  const singleSource = new Set([...sources].filter(([id, count]) => count === 1 && id !== UNREADABLE_CONTENT_ID).map(([id]) => id));
  const model = registerModel(prepared, initialContentId, singleSource);
  const result = searchLinearization(prepared, model, options.maxStepsPerKey ?? DEFAULT_MAX_STEPS_PER_KEY, 'deadline');
  return { key, verdict: result.verdict, searchedOps: prepared.length, steps: result.steps, cacheEntries: result.cacheEntries };
}

/**
 * Whether a shrunk candidate still holds, for every read in it, a write of the
 * value it returned (if the full history had one). Without this, shrinking
 * would "find" a read of a value whose write it removed: a violation that the
 * real history does not have.
 */
function keepsWritersOfReads(all: readonly Operation[], candidate: readonly Operation[]): boolean {
  const writtenInAll = new Set(all.filter((op) => op.kind === 'write' && op.outcome !== 'fail').map((op) => op.value));
  const writtenInCandidate = new Set(candidate.filter((op) => op.kind === 'write' && op.outcome !== 'fail').map((op) => op.value));
  return candidate.every((op) => op.kind !== 'read' || op.result === undefined || !writtenInAll.has(op.result) || writtenInCandidate.has(op.result));
}

/**
 * The budget of one search while shrinking: a subhistory rarely needs more
 * than the failing whole did, so twice that (at least 10,000, at most the
 * per-key budget). A search that runs out counts as "no longer fails": the
 * shrunk result then stays a real violation, just less small.
 */
export function shrinkStepsPerCheck(failingSteps: number, options: RegisterCheckOptions): number {
  return Math.min(options.maxStepsPerKey ?? DEFAULT_MAX_STEPS_PER_KEY, Math.max(10_000, 2 * failingSteps));
}

/**
 * The usual anomalies, found without a search: a read whose value's only
 * writer began after the read ended (a read from the future), a read that
 * returns a value another acknowledged write overwrote before the read began
 * (stale), and a read returning an older value than one an earlier read
 * already saw (back in time). Each is proposed as a tiny subhistory and
 * confirmed by the search; with unique values, a failing subhistory that
 * keeps the writers of its reads proves the whole history fails. This finds
 * most violations at once, where the search would have to exhaust every
 * order (hopeless with tens of concurrent clients) before saying no.
 */
function screenObviousViolations(ops: readonly Operation[], initialValue: string | null): Operation[][] {
  const writes = ops.filter((op) => op.kind === 'write' && op.outcome !== 'fail');
  const writersOf = new Map<string, Operation[]>();
  for (const op of writes) writersOf.set(op.value!, [...(writersOf.get(op.value!) ?? []), op]);
  const okWrites = writes.filter((op) => op.outcome === 'ok').sort((a, b) => a.invokeMs - b.invokeMs);
  const reads = ops.filter((op) => op.kind === 'read' && op.outcome === 'ok');
  const initialIsUnique = initialValue === null || !writersOf.has(initialValue);
  // A read's only source: its writer (undefined for the initial value), or null if the value has several or none.
  const sourceOf = (read: Operation): Operation | undefined | null => {
    if (read.result === undefined ? initialValue === null : read.result === initialValue) return initialIsUnique ? undefined : null;
    const writers = writersOf.get(read.result!) ?? [];
    return writers.length === 1 ? writers[0] : null;
  };
  const candidates: Operation[][] = [];
  for (const read of reads) {
    const source = sourceOf(read);
    if (source === null) continue;
    if (source && source.invokeMs > read.completeMs) candidates.push([source, read]);
    if (source && source.outcome !== 'ok') continue;
    const sourceEndMs = source ? source.completeMs : -Infinity;
    const newer = okWrites.find((w) => w !== source && w.value !== read.result && w.invokeMs > sourceEndMs && w.completeMs < read.invokeMs);
    if (newer) candidates.push(source ? [source, newer, read] : [newer, read]);
  }
  // Back in time: an earlier read saw a value whose writer began after this read's writer ended.
  const byCompletion = reads.filter((r) => sourceOf(r)).sort((a, b) => a.completeMs - b.completeMs);
  let latest: Operation | undefined; // among reads completed so far: the one whose writer began last
  let next = 0;
  for (const later of [...reads].sort((a, b) => a.invokeMs - b.invokeMs)) {
    while (next < byCompletion.length && byCompletion[next].completeMs < later.invokeMs) {
      const r = byCompletion[next++];
      if (!latest || sourceOf(r)!.invokeMs > sourceOf(latest)!.invokeMs) latest = r;
    }
    const source = sourceOf(later);
    if (!latest || source === null || latest.result === later.result) continue;
    const sourceEndMs = source ? (source.outcome === 'ok' ? source.completeMs : Infinity) : -Infinity;
    const earlierSource = sourceOf(latest)!;
    if (earlierSource.invokeMs > sourceEndMs) candidates.push(source ? [source, earlierSource, latest, later] : [earlierSource, latest, later]);
  }
  return candidates.map((c) => c.sort((a, b) => a.invokeMs - b.invokeMs || a.id - b.id));
}

/** Candidates screened at most per key (each costs a tiny search). */
export const SCREENED_CANDIDATES_MAX = 200;

/** When only the version order makes the subhistory fail, says so and quotes the versions of its writes. */
function blameVersions(key: string, minimal: readonly Operation[], final: FinalState, options: RegisterCheckOptions): string {
  const versions = final.versions[key];
  if (options.useVersionOrder === false || !versions) return '';
  if (checkRegisterKey(key, minimal, undefined, { ...options, maxStepsPerKey: 100_000 }).verdict !== 'linearizable') return '';
  const numbered = minimal
    .filter((op) => op.kind === 'write')
    .map((op) => `${quote(op.value)} is version ${versions.find((v) => v.content === op.value)?.version ?? 'none'}`);
  return ` — only because the versions fix the writes' order (${numbered.join(', ')})`;
}

/** Explains a minimal failing subhistory in one sentence, naming the read that cannot be explained. */
function diagnose(key: string, minimal: readonly Operation[], all: readonly Operation[], initialValue: string | null): string {
  const reads = minimal.filter((op) => op.kind === 'read').sort((a, b) => a.completeMs - b.completeMs || a.id - b.id);
  const culprit = reads[reads.length - 1];
  const head = `${key} is not linearizable`;
  if (!culprit) return `${head}: its writes alone cannot take effect in the order of the file's versions`;
  const at = `read #${culprit.id} by ${culprit.client} (${timeMs(culprit.invokeMs)}–${timeMs(culprit.completeMs)} ms) returned ${quote(culprit.result)}`;
  if (culprit.result !== undefined && culprit.result !== initialValue) {
    const writers = all.filter((op) => op.kind === 'write' && op.value === culprit.result);
    if (writers.length === 0) return `${head}: ${at}, a value no client wrote to this file`;
    if (writers.every((op) => op.outcome === 'fail')) return `${head}: ${at}, the value of a write that failed (#${writers[0].id}, ${writers[0].error ?? 'no errno'})`;
    const live = writers.filter((op) => op.outcome !== 'fail');
    if (live.every((op) => op.invokeMs > culprit.completeMs)) {
      return `${head}: ${at}, a value from the future: write #${live[0].id} only began at ${live[0].invokeMs} ms, after the read ended`;
    }
  }
  // A stale read: an acknowledged write of another value completed after the read value's write and before this read began.
  const sourceEndMs = culprit.result === undefined || culprit.result === initialValue
    ? -Infinity
    : Math.min(...minimal.filter((op) => op.kind === 'write' && op.value === culprit.result).map((op) => op.completeMs));
  const newer = minimal.find(
    (op) => op.kind === 'write' && op.outcome === 'ok' && op.value !== culprit.result && op.invokeMs > sourceEndMs && op.completeMs < culprit.invokeMs,
  );
  if (newer) {
    return `${head}: ${at}, a stale value: write #${newer.id} of ${quote(newer.value)} was acknowledged at ${newer.completeMs} ms, before the read began`;
  }
  const newerRead = minimal.find(
    (op) => op.kind === 'read' && op !== culprit && op.result !== culprit.result && op.completeMs < culprit.invokeMs,
  );
  if (newerRead) {
    return `${head}: ${at}, going back in time: read #${newerRead.id} by ${newerRead.client} had already returned ${quote(newerRead.result)} at ${newerRead.completeMs} ms`;
  }
  return `${head}: no order of the ${minimal.length} operations below explains ${at}`;
}

export function linearizableRegistersChecker(options: RegisterCheckOptions = {}): Checker {
  const initialValue = options.initialValue === undefined ? null : options.initialValue;
  const maxShrinkChecks = options.maxShrinkChecks ?? DEFAULT_MAX_SHRINK_CHECKS;
  return {
    name: LINEARIZABLE_REGISTERS,
    check(history: History, final: FinalState): CheckResult {
      const byKey = new Map<string, Operation[]>();
      for (const op of history.operations) {
        if (op.kind !== 'write' && op.kind !== 'read') continue;
        const list = byKey.get(op.key) ?? [];
        list.push(op);
        byKey.set(op.key, list);
      }
      const violations: Violation[] = [];
      const inconclusive: string[] = [];
      const stats = { keys: 0, operations: 0, statesExplored: 0, maxStatesPerKey: 0, cacheEntries: 0, shrinkChecks: 0, screenedViolations: 0 };
      for (const key of [...byKey.keys()].sort()) {
        const ops = byKey.get(key)!;
        const versionContents = options.useVersionOrder === false ? undefined : final.versions[key]?.map((v) => v.content);
        stats.keys++;
        stats.operations += ops.length;
        const screened = (options.screen === false ? [] : screenObviousViolations(ops, initialValue))
          .slice(0, SCREENED_CANDIDATES_MAX)
          .find((candidate) => checkRegisterKey(key, candidate, versionContents, { ...options, maxStepsPerKey: 10_000 }).verdict === 'not-linearizable');
        if (screened) {
          stats.screenedViolations++;
          violations.push({
            checker: LINEARIZABLE_REGISTERS,
            message: diagnose(key, screened, ops, initialValue) + blameVersions(key, screened, final, options),
            operations: screened,
          });
          continue;
        }
        const verdict = checkRegisterKey(key, ops, versionContents, options);
        stats.statesExplored += verdict.steps;
        stats.maxStatesPerKey = Math.max(stats.maxStatesPerKey, verdict.steps);
        stats.cacheEntries += verdict.cacheEntries;
        if (verdict.verdict === 'unknown') {
          inconclusive.push(
            `${key}: the linearizability search gave up after ${verdict.steps} steps (${verdict.searchedOps} operations); raise maxStepsPerKey or shorten the run`,
          );
          continue;
        }
        if (verdict.verdict === 'linearizable') continue;
        const ordered = [...ops].sort((a, b) => a.invokeMs - b.invokeMs || a.id - b.id);
        const shrunk = shrinkFailing(
          ordered,
          (candidate) =>
            keepsWritersOfReads(ops, candidate) &&
            checkRegisterKey(key, candidate, versionContents, { ...options, maxStepsPerKey: shrinkStepsPerCheck(verdict.steps, options) }).verdict ===
              'not-linearizable',
          maxShrinkChecks,
        );
        stats.shrinkChecks += shrunk.checks;
        const note = shrunk.minimal ? '' : ` (shrinking stopped after ${shrunk.checks} searches; not minimal)`;
        violations.push({
          checker: LINEARIZABLE_REGISTERS,
          message: diagnose(key, shrunk.items, ops, initialValue) + blameVersions(key, shrunk.items, final, options) + note,
          operations: shrunk.items,
        });
      }
      return { checker: LINEARIZABLE_REGISTERS, ok: violations.length === 0 && inconclusive.length === 0, violations, stats, inconclusive };
    },
  };
}
