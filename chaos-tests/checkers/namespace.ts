/**
 * Namespace churn: create, rename, link and unlink with unique names in a
 * directory must be explained by one order consistent with real time in
 * which ok operations happened, failed ones did not, and unknown ones may or
 * may not have (optional operations in the Wing & Gong search of
 * wing-gong.ts); every ok 'list' and the final listing after healing must
 * match the names at their point in that order.
 *
 * A create that failed with EEXIST on a unique name is treated as unknown:
 * the name can only exist because an earlier attempt of this same create
 * landed (the SDK re-applies a create under a new session after an expiry,
 * a documented caveat). Other failed operations are dropped, not checked.
 *
 * Owns the directory model; must never read a clock or do I/O, and never pass
 * a directory whose search ran out of budget.
 */
import type { History, Operation } from '../history';
import type { CheckResult, Checker, FinalState, Violation } from './checker';
import { quote } from './describe';
import { type SearchModel, searchLinearization, shrinkFailing } from './wing-gong';

export const NAMESPACE = 'namespace';

export interface NamespaceCheckOptions {
  /** Search iterations allowed per directory; beyond, it is reported inconclusive. */
  maxStepsPerDirectory?: number;
  /** Names in the directory before the run (default none). */
  initialNames?: readonly string[];
  /** Searches allowed while shrinking a violation. */
  maxShrinkChecks?: number;
}

export const DEFAULT_NAMESPACE_MAX_STEPS = 2_000_000;
/** Steps per operation allowed to the first, quick whole-directory search. */
const QUICK_STEPS_PER_OPERATION = 50;
/** Failing name groups reported one by one per directory; the rest are counted. */
export const NAMESPACE_GROUP_VIOLATIONS_MAX = 10;

type Unit = { names: Set<string>; ops: Operation[] };
const NAMESPACE_KINDS = new Set(['create', 'rename', 'link', 'unlink', 'list']);

/** One operation as the model sees it: what it needs present, what it removes and adds; or a listing. */
interface NsOp {
  op: Operation | undefined; // undefined for the final listing
  invokeMs: number;
  completeMs: number;
  /** Unknown and never relied on: it may be left out (deferred past the final listing = never happened). */
  optional: boolean;
  needs: string[];
  removes: string[];
  adds: string[];
  /** rename replaces an existing target (POSIX); create and link need the name free. */
  replaces: boolean;
  listing?: string[];
}

function pair(op: Operation): [string, string] {
  const parts = (op.value ?? '').split('\u0000');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') throw new Error(`${op.kind} #${op.id}: value must be "from\\u0000to"`);
  return [parts[0], parts[1]];
}

/** Names an operation mentions (for grouping) — list results excluded. */
function namesOf(op: Operation): string[] {
  if (op.kind === 'rename' || op.kind === 'link') return pair(op);
  if (op.kind === 'create' || op.kind === 'unlink') {
    if (typeof op.value !== 'string' || op.value === '' || op.value.includes('\n')) throw new Error(`${op.kind} #${op.id}: value must be a name without '\n'`);
    return [op.value];
  }
  return [];
}

function listingOf(result: string | undefined): string[] {
  return result === undefined || result === '' ? [] : result.split('\n');
}

/** True if the operation should be in the search: ok, unknown, or a create that answered EEXIST. */
function counts(op: Operation): boolean {
  if (op.kind === 'list') return op.outcome === 'ok';
  return op.outcome !== 'fail' || (op.kind === 'create' && /^EEXIST\b/.test(op.error ?? ''));
}

/** Parsed list results, kept per operation: the group searches read each list many times. */
const listedNames = new WeakMap<Operation, ReadonlySet<string>>();

function listedOf(op: Operation): ReadonlySet<string> {
  let names = listedNames.get(op);
  if (!names) {
    names = new Set(listingOf(op.result));
    listedNames.set(op, names);
  }
  return names;
}

/** Names of `listed` that `visible` keeps (undefined: all), sorted; walks the smaller of the two. */
function project(listed: ReadonlySet<string>, visible: ReadonlySet<string> | undefined): string[] {
  if (visible === undefined) return [...listed].sort();
  if (visible.size < listed.size) return [...visible].filter((n) => listed.has(n)).sort();
  return [...listed].filter((n) => visible.has(n)).sort();
}

function toNsOp(op: Operation, visible: ReadonlySet<string> | undefined): NsOp {
  const base = { op, invokeMs: op.invokeMs, completeMs: op.outcome === 'ok' ? op.completeMs : Infinity, optional: op.outcome !== 'ok', replaces: op.kind === 'rename' };
  switch (op.kind) {
    case 'create':
      return { ...base, needs: [], removes: [], adds: [op.value!] };
    case 'unlink':
      return { ...base, needs: [op.value!], removes: [op.value!], adds: [] };
    case 'rename': {
      const [from, to] = pair(op);
      return { ...base, needs: [from], removes: [from], adds: [to] };
    }
    case 'link': {
      const [existing, name] = pair(op);
      return { ...base, needs: [existing], removes: [], adds: [name] };
    }
    default:
      return { ...base, needs: [], removes: [], adds: [], listing: project(listedOf(op), visible) };
  }
}

/**
 * The search input for a directory, restricted to the names `visible` allows
 * (a projection of a linearizable history is linearizable, which is what
 * makes shrinking by name groups sound).
 */
function buildSearch(ops: readonly Operation[], finalNames: readonly string[] | undefined, initial: readonly string[], visible: ReadonlySet<string> | undefined): NsOp[] {
  let nsOps = ops.filter(counts).map((op) => toNsOp(op, visible));
  // An unknown op that alone adds a name (not there initially) which an acknowledged op later relied on
  // must have happened before that: it becomes required, bounded by the earliest such reliance.
  const adderCount = new Map<string, number>();
  const reliedOnByMs = new Map<string, number>();
  for (const ns of nsOps) {
    for (const name of ns.adds) adderCount.set(name, (adderCount.get(name) ?? 0) + 1);
    if (ns.op?.outcome !== 'ok') continue; // an unknown op may have been a no-op: it proves nothing
    for (const name of [...ns.needs, ...(ns.listing ?? [])]) reliedOnByMs.set(name, Math.min(reliedOnByMs.get(name) ?? Infinity, ns.completeMs));
  }
  const initialSet = new Set(initial);
  for (const ns of nsOps) {
    if (!ns.optional || ns.adds.length !== 1) continue;
    const name = ns.adds[0];
    const boundMs = reliedOnByMs.get(name);
    if (adderCount.get(name) !== 1 || initialSet.has(name) || boundMs === undefined) continue;
    ns.completeMs = Math.max(ns.invokeMs, boundMs);
    ns.optional = false;
  }
  if (finalNames !== undefined) {
    const listing = project(new Set(finalNames), visible);
    nsOps = settleUnknowns(nsOps, new Set(listing), initialSet);
    let afterAllMs = 0;
    for (const op of ops) afterAllMs = Math.max(afterAllMs, Number.isFinite(op.completeMs) ? op.completeMs : op.invokeMs);
    nsOps.push({ op: undefined, invokeMs: afterAllMs + 1, completeMs: Infinity, optional: false, needs: [], removes: [], adds: [], replaces: false, listing });
  }
  return nsOps;
}

/**
 * Decides what the final listing already decides about unknown operations,
 * so the search does not carry them as open choices (each open one can
 * double the configurations). With unique names, a name has one source:
 *  - one that needs a name nothing can provide could only have been a no-op: dropped;
 *  - one whose added name is absent at the end with nothing to remove it did not happen: dropped;
 *  - one whose removed name is present at the end with no second source did not happen
 *    (or happened before the name existed, a no-op): dropped;
 *  - the only source of a name present at the end, or the only remover of a name that
 *    existed and is absent at the end, did happen: required.
 * Repeated until nothing changes (at most once per operation).
 */
function settleUnknowns(nsOps: NsOp[], finalSet: ReadonlySet<string>, initialSet: ReadonlySet<string>): NsOp[] {
  let live = nsOps;
  for (let round = 0; round <= nsOps.length; round++) {
    const adders = new Map<string, NsOp[]>();
    const removers = new Map<string, NsOp[]>();
    for (const ns of live) {
      for (const n of ns.adds) adders.set(n, [...(adders.get(n) ?? []), ns]);
      for (const n of ns.removes) removers.set(n, [...(removers.get(n) ?? []), ns]);
    }
    const sources = (n: string, except: NsOp): number => (initialSet.has(n) ? 1 : 0) + (adders.get(n) ?? []).filter((o) => o !== except).length;
    const othersRemoving = (n: string, except: NsOp): number => (removers.get(n) ?? []).filter((o) => o !== except).length;
    let changed = false;
    const kept: NsOp[] = [];
    for (const ns of live) {
      if (ns.optional) {
        const noOp = ns.needs.some((n) => sources(n, ns) === 0);
        const addOutlives = ns.adds.some((n) => !finalSet.has(n) && !ns.removes.includes(n) && othersRemoving(n, ns) === 0);
        const removeIsUndone = ns.removes.some((n) => finalSet.has(n) && !ns.adds.includes(n) && sources(n, ns) <= 1);
        if (noOp || addOutlives || removeIsUndone) {
          changed = true;
          continue;
        }
        const onlySource = ns.adds.some((n) => finalSet.has(n) && sources(n, ns) === 0);
        const onlyRemover = ns.removes.some((n) => !finalSet.has(n) && sources(n, ns) > 0 && othersRemoving(n, ns) === 0);
        if (onlySource || onlyRemover) {
          ns.optional = false;
          changed = true;
        }
      }
      kept.push(ns);
    }
    live = kept;
    if (!changed) return live;
  }
  throw new Error('namespace: settling unknown operations did not converge (bug)');
}

function directoryModel(nsOps: readonly NsOp[], initial: readonly string[]): SearchModel<readonly string[]> {
  return {
    init: [...initial].sort(),
    key: (names) => names.join('\u0000'),
    isReadOnly: (index) => nsOps[index].listing !== undefined,
    step(names, index) {
      const ns = nsOps[index];
      if (ns.listing) return ns.listing.length === names.length && ns.listing.every((n, i) => n === names[i]) ? [names] : [];
      const present = new Set(names);
      const possible = ns.needs.every((n) => present.has(n)) && (ns.replaces || ns.adds.every((n) => !present.has(n)));
      // An unknown op whose precondition fails here would have changed nothing: the same as not happening.
      if (!possible) return ns.op?.outcome === 'ok' ? [] : [names];
      for (const n of ns.removes) present.delete(n);
      for (const n of ns.adds) present.add(n);
      return [[...present].sort()];
    },
  };
}

interface DirectoryVerdict {
  verdict: 'linearizable' | 'not-linearizable' | 'unknown';
  steps: number;
}

function checkDirectory(
  ops: readonly Operation[],
  finalNames: readonly string[] | undefined,
  options: NamespaceCheckOptions,
  visible: ReadonlySet<string> | undefined,
  maxSteps = options.maxStepsPerDirectory ?? DEFAULT_NAMESPACE_MAX_STEPS,
): DirectoryVerdict {
  const initial = project(new Set(options.initialNames ?? []), visible);
  const nsOps = buildSearch(ops, finalNames, initial, visible);
  const result = searchLinearization(nsOps, directoryModel(nsOps, initial), maxSteps);
  return { verdict: result.verdict, steps: result.steps };
}

/** Groups of names tied together by rename and link (union-find), each with its operations. */
function nameGroups(ops: readonly Operation[]): Unit[] {
  const parent = new Map<string, string>();
  const find = (n: string): string => {
    let root = n;
    for (let hops = 0; parent.get(root) !== root; hops++) {
      if (hops > parent.size) throw new Error('namespace: name groups form a cycle (bug)');
      root = parent.get(root)!;
    }
    return root;
  };
  for (const op of ops) for (const n of namesOf(op)) if (!parent.has(n)) parent.set(n, n);
  for (const op of ops) {
    const names = namesOf(op);
    if (names.length === 2 && find(names[0]) !== find(names[1])) parent.set(find(names[0]), find(names[1]));
  }
  const groups = new Map<string, { names: Set<string>; ops: Operation[] }>();
  for (const n of parent.keys()) {
    const group = groups.get(find(n)) ?? { names: new Set<string>(), ops: [] };
    group.names.add(n);
    groups.set(find(n), group);
  }
  for (const op of ops) if (op.kind !== 'list') groups.get(find(namesOf(op)[0]))!.ops.push(op);
  return [...groups.values()];
}

function diagnose(dir: string, minimal: readonly Operation[], names: Set<string>, finalNames: readonly string[] | undefined, all: readonly Operation[]): string {
  const head = `${dir}: namespace not explainable`;
  const lists = minimal.filter((op) => op.kind === 'list').sort((a, b) => a.completeMs - b.completeMs);
  const finalShown = (finalNames ?? []).filter((n) => names.has(n));
  if (lists.length === 0 && finalNames !== undefined) {
    for (const n of finalShown) {
      const adders = all.filter((op) => op.kind !== 'list' && op.kind !== 'unlink' && namesOf(op)[namesOf(op).length - 1] === n);
      if (adders.length === 0) return `${head}: the final listing holds ${quote(n)}, which no client created, renamed or linked there`;
      if (adders.every((op) => op.outcome === 'fail' && !counts(op))) {
        return `${head}: the final listing holds ${quote(n)} although ${adders[0].kind} #${adders[0].id} of it failed (${adders[0].error ?? 'no errno'})`;
      }
    }
    const okAdd = minimal.find((op) => op.outcome === 'ok' && (op.kind === 'create' || op.kind === 'link') && !finalShown.includes(namesOf(op)[namesOf(op).length - 1]));
    if (okAdd) return `${head}: the final listing lacks ${quote(namesOf(okAdd)[namesOf(okAdd).length - 1])}, acknowledged by ${okAdd.kind} #${okAdd.id} (ok at ${okAdd.completeMs} ms), and no operation below may have removed it`;
    return `${head}: no order of the operations below gives the final listing [${finalShown.map((n) => quote(n)).join(', ')}]`;
  }
  const culprit = lists[lists.length - 1];
  if (!culprit) return `${head}: the operations below cannot all have succeeded in any order`;
  const shown = listingOf(culprit.result).filter((n) => names.has(n));
  return `${head}: no order of the operations below explains list #${culprit.id} by ${culprit.client} (${culprit.invokeMs}–${culprit.completeMs} ms) showing [${shown.map((n) => quote(n)).join(', ')}] among these names`;
}

/**
 * The lists that can tell something about one group's names. A list that
 * ended before any of the group's operations began must show the initial
 * names; one that began after all of them ended (none unknown) must show the
 * final ones: those are checked here directly and left out of the search when
 * they agree.
 */
function listsThatMatter(group: Unit, lists: readonly Unit[], finalNames: readonly string[] | undefined, initial: readonly string[]): Unit[] {
  if (group.ops.length === 0) return [...lists];
  const groupNames = [...group.names].sort();
  const projectSet = (names: ReadonlySet<string>): string => groupNames.filter((n) => names.has(n)).join('\u0000');
  const project = (names: readonly string[]): string => projectSet(new Set(names));
  let firstInvokeMs = Infinity;
  let lastCompleteMs = -Infinity;
  let settled = finalNames !== undefined;
  for (const op of group.ops) {
    firstInvokeMs = Math.min(firstInvokeMs, op.invokeMs);
    lastCompleteMs = Math.max(lastCompleteMs, op.completeMs);
    if (op.outcome !== 'ok') settled = false;
  }
  const before = project(initial);
  const after = settled ? project(finalNames!) : undefined;
  return lists.filter((unit) => {
    const list = unit.ops[0];
    if (list.completeMs < firstInvokeMs) return projectSet(listedOf(list)) !== before;
    if (after !== undefined && list.invokeMs > lastCompleteMs) return projectSet(listedOf(list)) !== after;
    return true;
  });
}

export function namespaceChecker(options: NamespaceCheckOptions = {}): Checker {
  const maxShrinkChecks = options.maxShrinkChecks ?? 300;
  return {
    name: NAMESPACE,
    check(history: History, final: FinalState): CheckResult {
      const byDir = new Map<string, Operation[]>();
      for (const op of history.operations) if (NAMESPACE_KINDS.has(op.kind)) byDir.set(op.key, [...(byDir.get(op.key) ?? []), op]);
      const violations: Violation[] = [];
      const inconclusive: string[] = [];
      const stats = { directories: 0, operations: 0, statesExplored: 0, shrinkChecks: 0, groupsFailing: 0, directoriesWithoutFinalListing: 0 };
      for (const dir of [...byDir.keys()].sort()) {
        const ops = byDir.get(dir)!;
        const finalNames = final.listings[dir];
        stats.directories++;
        stats.operations += ops.length;
        if (finalNames === undefined) stats.directoriesWithoutFinalListing++;
        // Units: a group of names tied by rename/link with its operations, or one list.
        const groups: Unit[] = nameGroups(ops);
        const lists: Unit[] = ops.filter((op) => op.kind === 'list' && op.outcome === 'ok').map((op) => ({ names: new Set<string>(), ops: [op] }));
        // Names nobody operated on (only seen in listings) form one more group, so "a name nobody created" can be shown.
        const known = new Set(groups.flatMap((u) => [...u.names]));
        const seen = [...(finalNames ?? []), ...(options.initialNames ?? []), ...lists.flatMap((u) => [...listedOf(u.ops[0])])];
        const strangers = new Set(seen.filter((n) => !known.has(n)));
        if (strangers.size > 0) groups.unshift({ names: strangers, ops: [] });
        const run = (candidate: readonly Unit[], maxSteps?: number): DirectoryVerdict => {
          const names = new Set(candidate.flatMap((u) => [...u.names]));
          const result = checkDirectory(candidate.flatMap((u) => u.ops), finalNames, options, names, maxSteps);
          stats.statesExplored += result.steps;
          return result;
        };
        // Shrinking searches get twice the steps the failing whole took (see shrinkStepsPerCheck in linearizable-registers.ts).
        const report = (units: readonly Unit[], failingSteps: number): void => {
          const maxSteps = Math.min(options.maxStepsPerDirectory ?? DEFAULT_NAMESPACE_MAX_STEPS, Math.max(10_000, 2 * failingSteps));
          const shrunk = shrinkFailing(units, (candidate) => run(candidate, maxSteps).verdict === 'not-linearizable', maxShrinkChecks);
          stats.shrinkChecks += shrunk.checks;
          const minimal = shrunk.items.flatMap((u) => u.ops).sort((a, b) => a.invokeMs - b.invokeMs || a.id - b.id);
          const names = new Set(shrunk.items.flatMap((u) => [...u.names]));
          const note = shrunk.minimal ? '' : ` (shrinking stopped after ${shrunk.checks} searches; not minimal)`;
          violations.push({ checker: NAMESPACE, message: diagnose(dir, minimal, names, finalNames, ops) + note, operations: minimal });
        };

        // A quick whole-directory search first: most runs pass, and a pass is found fast. Saying no takes
        // an exhaustive search, so a failing or undecided quick search hands over to the groups.
        const maxSteps = options.maxStepsPerDirectory ?? DEFAULT_NAMESPACE_MAX_STEPS;
        const quick = run([...groups, ...lists], Math.min(maxSteps, QUICK_STEPS_PER_OPERATION * ops.length + 10_000));
        if (quick.verdict === 'linearizable') continue;

        // Then each group alone, with the lists projected onto its names: a projection of a linearizable
        // history is linearizable, so a failing group is a real violation, found in a far smaller search
        // than the whole directory's (which must exhaust every order before it can say no).
        let groupsFailing = 0;
        let groupsUndecided = 0;
        for (const group of groups) {
          const units = [group, ...listsThatMatter(group, lists, finalNames, options.initialNames ?? [])];
          const alone = run(units);
          if (alone.verdict === 'unknown') groupsUndecided++;
          if (alone.verdict !== 'not-linearizable') continue;
          groupsFailing++;
          if (groupsFailing <= NAMESPACE_GROUP_VIOLATIONS_MAX) report(units, alone.steps);
        }
        stats.groupsFailing += groupsFailing;
        if (groupsFailing > NAMESPACE_GROUP_VIOLATIONS_MAX) {
          violations.push({ checker: NAMESPACE, message: `${dir}: and ${groupsFailing - NAMESPACE_GROUP_VIOLATIONS_MAX} more name groups not explainable`, operations: [] });
        }
        if (groupsFailing > 0) continue;

        // Then the whole directory with the full budget: lists must agree on one order across groups.
        const verdict = quick.verdict === 'not-linearizable' ? quick : run([...groups, ...lists]);
        if (verdict.verdict === 'linearizable') continue;
        if (verdict.verdict === 'not-linearizable') {
          report([...groups, ...lists], verdict.steps);
          continue;
        }
        const undecided = groupsUndecided > 0 ? `, and ${groupsUndecided} of ${groups.length} name groups were undecided alone` : `; each of the ${groups.length} name groups alone is explainable`;
        inconclusive.push(
          `${dir}: the namespace search gave up after ${verdict.steps} steps (${ops.length} operations)${undecided}; raise maxStepsPerDirectory or shorten the run`,
        );
      }
      return { checker: NAMESPACE, ok: violations.length === 0 && inconclusive.length === 0, violations, stats, inconclusive };
    },
  };
}
