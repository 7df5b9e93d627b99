/**
 * The node driver's bookkeeping of callers waiting on the log: proposals
 * (settled when the entry at their index is applied), linearizable reads
 * (settled when their ReadState is seen and applied ≥ its index).
 * Owns the bounded waiting maps and their timeouts; must never touch the core,
 * the storage or the state machine, and never settle a caller twice.
 */
import { Entry } from '../core/types';

/** Rejects a caller whose entry lost its slot in the log to another leader's entry. */
export class ProposalDroppedError extends Error {
  readonly code = 'PROPOSAL_DROPPED';
  constructor(index: number, proposedTerm: number, appliedTerm: number) {
    super(`proposal dropped (leadership changed): index ${index} was proposed in term ${proposedTerm} but term ${appliedTerm}'s entry was committed there`);
  }
}

/** The caller stopped waiting; the entry may still commit later (its outcome is unknown). */
export class RaftTimeoutError extends Error {
  readonly code = 'RAFT_TIMEOUT';
  constructor(what: string, timeoutMs: number) {
    super(`${what} did not complete within ${timeoutMs} ms (outcome unknown: it may still take effect)`);
  }
}

/** Too many callers are waiting already; the caller should back off. */
export class NodeOverloadedError extends Error {
  readonly code = 'NODE_OVERLOADED';
  constructor(what: string, limit: number) {
    super(`too many pending ${what} on this member (limit ${limit}); retry later`);
  }
}

export class NodeStoppedError extends Error {
  readonly code = 'NODE_STOPPED';
  constructor(reason: string) {
    super(`raft node stopped: ${reason}`);
  }
}

interface ProposalWaiter {
  term: number;
  startedAtMs: number;
  timer: NodeJS.Timeout;
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
}

export interface ProposalOutcome {
  /** performance.now() when the proposal was made, for the commit latency metric. */
  startedAtMs: number;
  ok: boolean;
}

/** Proposals by log index. At most one waiter per index: a newer term's proposal at the same index means the older one was dropped. */
export class PendingProposals {
  private readonly byIndex = new Map<number, ProposalWaiter>();

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.byIndex.size;
  }

  hasRoom(): boolean {
    return this.byIndex.size < this.limit;
  }

  /** Registers a waiter for the entry proposed at (index, term). */
  add(index: number, term: number, timeoutMs: number, startedAtMs: number, onTimeout: () => void): Promise<unknown> {
    const previous = this.byIndex.get(index);
    if (previous) {
      // Only a new leader term can reuse an index, and it truncated the old entry first.
      if (previous.term >= term) throw new Error(`invariant: two proposals at index ${index} with terms ${previous.term} and ${term}`);
      this.byIndex.delete(index);
      clearTimeout(previous.timer);
      previous.reject(new ProposalDroppedError(index, previous.term, term));
    }
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.byIndex.get(index)?.timer !== timer) return;
        this.byIndex.delete(index);
        onTimeout();
        reject(new RaftTimeoutError(`proposal at index ${index}`, timeoutMs));
      }, timeoutMs);
      this.byIndex.set(index, { term, startedAtMs, timer, resolve, reject });
    });
  }

  /** Settles the waiter (if any) at the applied entry's index. Returns what happened, or undefined if nobody waited. */
  settleApplied(entry: Entry, result: unknown): ProposalOutcome | undefined {
    const waiter = this.byIndex.get(entry.index);
    if (!waiter) return undefined;
    this.byIndex.delete(entry.index);
    clearTimeout(waiter.timer);
    if (waiter.term === entry.term) {
      waiter.resolve(result);
      return { startedAtMs: waiter.startedAtMs, ok: true };
    }
    waiter.reject(new ProposalDroppedError(entry.index, waiter.term, entry.term));
    return { startedAtMs: waiter.startedAtMs, ok: false };
  }

  /** Rejects every waiter at or below `index` (e.g. the state machine jumped past them by restoring a snapshot). */
  rejectUpTo(index: number, error: Error): number {
    let rejected = 0;
    for (const [waiterIndex, waiter] of this.byIndex) {
      if (waiterIndex > index) continue;
      this.byIndex.delete(waiterIndex);
      clearTimeout(waiter.timer);
      waiter.reject(error);
      rejected++;
    }
    return rejected;
  }

  rejectAll(error: Error): number {
    return this.rejectUpTo(Number.MAX_SAFE_INTEGER, error);
  }
}

interface ReadWaiter {
  /** The read index once the leader confirmed it; undefined before. */
  readIndex: number | undefined;
  startedAtMs: number;
  timer: NodeJS.Timeout;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Linearizable reads by their unique request context (hex). */
export class PendingReads {
  private readonly byContext = new Map<string, ReadWaiter>();
  /** How many waiters have a read index and wait only for apply; lets resolveApplied skip the scan when none do. */
  private confirmedCount = 0;

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.byContext.size;
  }

  hasRoom(): boolean {
    return this.byContext.size < this.limit;
  }

  add(contextKey: string, timeoutMs: number, startedAtMs: number): Promise<void> {
    if (this.byContext.has(contextKey)) throw new Error(`invariant: read context ${contextKey} reused`);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const waiter = this.byContext.get(contextKey);
        if (waiter?.timer !== timer) return;
        this.remove(contextKey, waiter);
        reject(new RaftTimeoutError('linearizable read', timeoutMs));
      }, timeoutMs);
      this.byContext.set(contextKey, { readIndex: undefined, startedAtMs, timer, resolve, reject });
    });
  }

  /** The leader confirmed a read point for this context. Unknown contexts (timed out, or from before a restart) are ignored. */
  confirm(contextKey: string, readIndex: number): void {
    const waiter = this.byContext.get(contextKey);
    if (!waiter || waiter.readIndex !== undefined) return;
    waiter.readIndex = readIndex;
    this.confirmedCount++;
  }

  /** Resolves every confirmed read whose index is applied. Returns their start times for the latency metric. */
  resolveApplied(appliedIndex: number): number[] {
    if (this.confirmedCount === 0) return [];
    const startedAtMs: number[] = [];
    for (const [key, waiter] of this.byContext) {
      if (waiter.readIndex === undefined || waiter.readIndex > appliedIndex) continue;
      this.remove(key, waiter);
      startedAtMs.push(waiter.startedAtMs);
      waiter.resolve();
    }
    return startedAtMs;
  }

  reject(contextKey: string, error: Error): void {
    const waiter = this.byContext.get(contextKey);
    if (!waiter) return;
    this.remove(contextKey, waiter);
    waiter.reject(error);
  }

  rejectAll(error: Error): void {
    for (const [key, waiter] of this.byContext) {
      this.remove(key, waiter);
      waiter.reject(error);
    }
  }

  private remove(key: string, waiter: ReadWaiter): void {
    this.byContext.delete(key);
    clearTimeout(waiter.timer);
    if (waiter.readIndex !== undefined) this.confirmedCount--;
  }
}
