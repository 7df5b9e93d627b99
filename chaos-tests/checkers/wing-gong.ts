/**
 * The linearizability search shared by the register and namespace checkers:
 * Wing & Gong's backtracking over a linked list of call/return entries with
 * Lowe's memoization (a configuration already seen — same set of linearized
 * operations, same model state — is never explored twice), as in Porcupine.
 * Written here from the papers' description; no code is copied.
 *
 * Owns the search, its step budget and the shrinking of a failing history.
 * Must never know what a file, a register or a directory is (that is the
 * model's job), never read a clock and never do I/O: deterministic for a
 * given input.
 *
 * Two additions to Porcupine: a model step may offer several next states
 * (nondeterminism; backtracking tries each alternative), and an operation
 * may be optional — the search succeeds once every required operation is
 * linearized, which is how "an unknown operation may never have happened" is
 * said without doubling the configurations at every step.
 */

/** What the search needs of one operation: when it was invoked and when it returned (Infinity if never). */
export interface TimedOp {
  invokeMs: number;
  completeMs: number;
  /**
   * May be left out of the linearization altogether: an unknown operation
   * that may never have happened. Such an op must return at Infinity (it can
   * take effect any time after its invoke, or never).
   */
  optional?: boolean;
}

/** A sequential specification over operations numbered 0..n-1 (the index in the ops array). */
export interface SearchModel<S> {
  readonly init: S;
  /** The possible states after applying operation `opIndex` in `state`; empty if it cannot happen there. */
  step(state: S, opIndex: number): S[];
  /** A string that is equal for equal states (the memoization key). */
  key(state: S): string;
  /**
   * True for an operation that never changes the state (a read). Such an
   * operation, valid where it is a candidate, is linearized there at once and
   * no other order is tried at that point: moving a state-preserving
   * operation to the front of any linearization from here keeps it valid
   * (everything that had to precede it in real time is already linearized).
   */
  isReadOnly?(opIndex: number): boolean;
}

/**
 * The order in which the required candidates of a configuration are tried:
 * by invoke time (Porcupine's), or earliest return first. Either explores the
 * same space before saying no; the order only changes how soon a yes is found
 * (deadline-first measured better on registers, invoke order on namespaces).
 */
export type CandidateOrder = 'invoke' | 'deadline';

export type SearchVerdict = 'linearizable' | 'not-linearizable' | 'unknown';

export interface SearchResult {
  verdict: SearchVerdict;
  /** Loop iterations: candidate tries plus backtracks. */
  steps: number;
  /** Distinct (linearized set, state) configurations memoized. */
  cacheEntries: number;
}

/** Above this many operations in one partition the bitset keys become too costly; callers must split or refuse. */
export const MAX_OPS_PER_SEARCH = 100_000;

/**
 * Is there an order of `ops`, consistent with real time (an operation that
 * returned before another was invoked comes first), in which `model` accepts
 * every operation? Gives up with 'unknown' after `maxSteps` iterations: a
 * budget exceeded is never reported as a pass.
 */
export function searchLinearization<S>(ops: readonly TimedOp[], model: SearchModel<S>, maxSteps: number, candidateOrder: CandidateOrder = 'invoke'): SearchResult {
  const n = ops.length;
  if (n > MAX_OPS_PER_SEARCH) throw new Error(`linearizability search: ${n} operations in one partition (limit ${MAX_OPS_PER_SEARCH})`);
  if (!(maxSteps > 0)) throw new Error(`linearizability search: maxSteps must be positive, got ${maxSteps}`);
  for (const [index, op] of ops.entries()) {
    if (!(op.completeMs >= op.invokeMs) || Number.isNaN(op.invokeMs)) {
      throw new Error(`linearizability search: operation ${index} has invokeMs ${op.invokeMs} after completeMs ${op.completeMs}`);
    }
    if (op.optional && op.completeMs !== Infinity) throw new Error(`linearizability search: optional operation ${index} must complete at Infinity`);
  }
  const requiredTotal = ops.filter((op) => !op.optional).length;
  let requiredLinearized = 0;
  if (requiredTotal === 0) return { verdict: 'linearizable', steps: 0, cacheEntries: 0 };

  // Entries sorted by time; at equal times calls come before returns (overlap is the lenient reading), then by index.
  const entries: Array<{ op: number; isCall: boolean; timeMs: number }> = [];
  for (let i = 0; i < n; i++) {
    entries.push({ op: i, isCall: true, timeMs: ops[i].invokeMs });
    entries.push({ op: i, isCall: false, timeMs: ops[i].completeMs });
  }
  entries.sort((a, b) => a.timeMs - b.timeMs || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1) || a.op - b.op);

  // Doubly linked list over entry nodes 0..2n-1, node 2n is the head sentinel, -1 is nil.
  const head = 2 * n;
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  const opOf = new Int32Array(2 * n);
  const isCall = new Uint8Array(2 * n);
  const returnNodeOf = new Int32Array(n);
  for (let node = 0; node < 2 * n; node++) {
    opOf[node] = entries[node].op;
    isCall[node] = entries[node].isCall ? 1 : 0;
    if (!entries[node].isCall) returnNodeOf[entries[node].op] = node;
    next[node] = node + 1 < 2 * n ? node + 1 : -1;
    prev[node] = node === 0 ? head : node - 1;
  }
  next[head] = 0;
  prev[head] = -1;

  const unlink = (node: number): void => {
    next[prev[node]] = next[node];
    if (next[node] !== -1) prev[next[node]] = prev[node];
  };
  const relink = (node: number): void => {
    next[prev[node]] = node;
    if (next[node] !== -1) prev[next[node]] = node;
  };

  const words = new Uint32Array(Math.ceil(n / 32));
  const bitsKey = (): string => {
    let key = '';
    for (let w = 0; w < words.length; w++) key += String.fromCharCode(words[w] & 0xffff, words[w] >>> 16);
    return key;
  };
  const cache = new Set<string>();

  // The candidates of a configuration: the calls before the first return still in the list (an operation
  // may take effect next only if no pending operation returned before it was invoked). Required ones are
  // tried first: an optional one can always wait, so trying it early only widens the search.
  const candidatesNow = (): number[] => {
    const required: number[] = [];
    const optional: number[] = [];
    for (let node = next[head]; node !== -1 && isCall[node] === 1; node = next[node]) {
      (ops[opOf[node]].optional ? optional : required).push(node);
    }
    if (candidateOrder === 'deadline') required.sort((a, b) => ops[opOf[a]].completeMs - ops[opOf[b]].completeMs || a - b);
    return required.concat(optional);
  };

  // The stack of linearized operations: the call node, the state before it, the alternative taken, its candidate index.
  const stackNode: number[] = [];
  const stackState: S[] = [];
  const stackAlt: number[] = [];
  const stackCandidate: number[] = [];

  let state = model.init;
  let stateKey = model.key(state);
  let candidates = candidatesNow();
  let candidate = 0;
  let firstAlt = 0;
  let steps = 0;
  // A configuration just reached: a valid read-only candidate, if any, is taken greedily (stack candidate -1).
  let fresh = true;
  const readOnly = model.isReadOnly?.bind(model);
  while (requiredLinearized < requiredTotal) {
    if (steps >= maxSteps) return { verdict: 'unknown', steps, cacheEntries: cache.size };
    steps++;
    if (fresh && readOnly) {
      fresh = false;
      const greedy = candidates.find((node) => !ops[opOf[node]].optional && readOnly(opOf[node]));
      let greedyAlt = -1;
      if (greedy !== undefined) greedyAlt = model.step(state, opOf[greedy]).findIndex((next) => model.key(next) === stateKey);
      if (greedy !== undefined && greedyAlt >= 0) {
        const op = opOf[greedy];
        words[op >>> 5] |= 1 << (op & 31);
        const key = bitsKey() + '\u0001' + stateKey;
        if (cache.has(key)) {
          // Already explored from here, and it failed: so does this configuration.
          words[op >>> 5] &= ~(1 << (op & 31));
          candidate = candidates.length;
          continue;
        }
        cache.add(key);
        stackNode.push(greedy);
        stackState.push(state);
        stackAlt.push(greedyAlt);
        stackCandidate.push(-1);
        unlink(greedy);
        unlink(returnNodeOf[op]);
        if (!ops[op].optional) requiredLinearized++;
        candidates = candidatesNow();
        candidate = 0;
        fresh = true;
        continue;
      }
    }
    if (candidate < candidates.length) {
      const node = candidates[candidate];
      const op = opOf[node];
      const nextStates = model.step(state, op);
      let taken = -1;
      for (let alt = firstAlt; alt < nextStates.length; alt++) {
        const nextKey = model.key(nextStates[alt]);
        // An optional operation that changes nothing here is better left pending (it may matter later, or never).
        if (ops[op].optional && nextKey === stateKey) continue;
        words[op >>> 5] |= 1 << (op & 31);
        const key = bitsKey() + '\u0001' + nextKey;
        if (!cache.has(key)) {
          cache.add(key);
          taken = alt;
          stateKey = nextKey;
          break;
        }
        words[op >>> 5] &= ~(1 << (op & 31));
      }
      firstAlt = 0;
      if (taken < 0) {
        candidate++;
        continue;
      }
      stackNode.push(node);
      stackState.push(state);
      stackAlt.push(taken);
      stackCandidate.push(candidate);
      state = nextStates[taken];
      unlink(node);
      unlink(returnNodeOf[op]);
      if (!ops[op].optional) requiredLinearized++;
      candidates = candidatesNow();
      candidate = 0;
      fresh = true;
    } else {
      // No candidate can take effect next: undo the last one and try its next alternative or the next candidate.
      if (stackNode.length === 0) return { verdict: 'not-linearizable', steps, cacheEntries: cache.size };
      const callNode = stackNode.pop()!;
      state = stackState.pop()!;
      stateKey = model.key(state);
      firstAlt = stackAlt.pop()! + 1;
      const op = opOf[callNode];
      if (!ops[op].optional) requiredLinearized--;
      words[op >>> 5] &= ~(1 << (op & 31));
      relink(returnNodeOf[op]);
      relink(callNode);
      candidates = candidatesNow();
      candidate = stackCandidate.pop()!;
      fresh = false;
      if (candidate === -1) {
        // A greedy read-only step failed: no other order from the configuration before it can succeed.
        candidate = candidates.length;
        firstAlt = 0;
      } else if (candidates[candidate] !== callNode) {
        throw new Error('linearizability search: candidate order changed across a backtrack (bug)');
      }
    }
  }
  return { verdict: 'linearizable', steps, cacheEntries: cache.size };
}

export interface ShrinkResult<T> {
  items: T[];
  /** Checks run while shrinking. */
  checks: number;
  /** False if the check budget ran out before the greedy pass finished (the result still fails, but may not be minimal). */
  minimal: boolean;
}

/**
 * Greedily removes items while `stillFails` holds: first the shortest failing
 * prefix (binary search), then chunks of halving size down to single items.
 * `stillFails(items)` must hold on entry. Bounded by `maxChecks` calls.
 */
export function shrinkFailing<T>(items: readonly T[], stillFails: (candidate: T[]) => boolean, maxChecks: number): ShrinkResult<T> {
  let checks = 0;
  const fails = (candidate: T[]): boolean => {
    checks++;
    return stillFails(candidate);
  };
  let current = [...items];
  // Shortest failing prefix: lo passes (or is empty), hi fails.
  let lo = 0;
  let hi = current.length;
  while (hi - lo > 1 && checks < maxChecks) {
    const mid = (lo + hi) >>> 1;
    if (fails(current.slice(0, mid))) hi = mid;
    else lo = mid;
  }
  current = current.slice(0, hi);

  let chunk = Math.max(1, current.length >>> 1);
  for (;;) {
    let removedAny = false;
    for (let start = current.length - chunk; start > -chunk; start -= chunk) {
      if (checks >= maxChecks) return { items: current, checks, minimal: false };
      const from = Math.max(0, start);
      const candidate = [...current.slice(0, from), ...current.slice(start + chunk)];
      if (candidate.length < current.length && fails(candidate)) {
        current = candidate;
        removedAny = true;
      }
    }
    if (chunk === 1 && !removedAny) break;
    if (chunk > 1) chunk = Math.max(1, chunk >>> 1);
  }
  return { items: current, checks, minimal: true };
}
