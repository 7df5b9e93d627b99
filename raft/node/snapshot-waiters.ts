/**
 * Callers of RaftNode.snapshotNow() waiting for a local snapshot to be saved,
 * and the request flag that makes the next local snapshot start whatever the
 * threshold says. Owns a small bounded list of waiters; must never touch the
 * core, storage or state machine, nor settle a waiter twice (settle empties
 * the list before settling anyone).
 */
import { NodeOverloadedError } from './pending';

/** Where a snapshot taken on request landed. */
export interface TakenSnapshot {
  index: number;
  term: number;
  /** The log is kept from compactIndex + 1 on. */
  compactIndex: number;
  /** False when the state machine had applied nothing since the last snapshot, so none was taken. */
  taken: boolean;
}

interface SnapshotWaiter {
  resolve: (taken: TakenSnapshot) => void;
  reject: (error: Error) => void;
}

export class SnapshotWaiters {
  private waiters: SnapshotWaiter[] = [];
  /** Set by add(): take a local snapshot at the next chance whatever the threshold says. Cleared by settle(). */
  requested = false;

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`snapshot waiters: limit ${limit} is not an integer ≥ 1`);
  }

  get size(): number {
    return this.waiters.length;
  }

  /** The error a new request gets when the list is full, or undefined. */
  overloaded(): NodeOverloadedError | undefined {
    return this.waiters.length >= this.limit ? new NodeOverloadedError('snapshot requests', this.waiters.length) : undefined;
  }

  /** A caller waits for the next local snapshot saved (settle); the request flag is set. */
  add(): Promise<TakenSnapshot> {
    const overloaded = this.overloaded();
    if (overloaded) return Promise.reject(overloaded);
    this.requested = true;
    return new Promise<TakenSnapshot>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Every waiter resolves with `taken`, or rejects with `error` (a snapshot from the leader, a stop); the request is cleared. */
  settle(outcome: { taken: TakenSnapshot } | { error: Error }): void {
    const waiters = this.waiters;
    this.waiters = [];
    this.requested = false;
    for (const waiter of waiters) {
      if ('taken' in outcome) waiter.resolve(outcome.taken);
      else waiter.reject(outcome.error);
    }
  }
}
