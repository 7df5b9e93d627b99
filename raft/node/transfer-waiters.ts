/**
 * Callers waiting for a leadership transfer to show up as a new leader.
 * Owns a small bounded list of waiters and their timeouts; must never touch
 * the core or settle a waiter twice.
 */
import { NodeId } from '../core/types';
import { NodeOverloadedError, RaftTimeoutError } from './pending';

interface TransferWaiter {
  target: NodeId;
  timer: NodeJS.Timeout;
  resolve: (leaderId: NodeId) => void;
  reject: (error: Error) => void;
}

export class TransferWaiters {
  private readonly waiters = new Set<TransferWaiter>();

  constructor(private readonly limit: number) {}

  add(target: NodeId, timeoutMs: number): Promise<NodeId> {
    if (this.waiters.size >= this.limit) return Promise.reject(new NodeOverloadedError('leadership transfers', this.limit));
    return new Promise<NodeId>((resolve, reject) => {
      const waiter: TransferWaiter = {
        target,
        resolve,
        reject,
        timer: setTimeout(() => {
          if (!this.waiters.delete(waiter)) return;
          reject(new RaftTimeoutError(`leadership transfer to ${target}`, timeoutMs));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** A leader was seen: waiters for that member resolve; a leader other than the target or self means the transfer was overtaken. */
  leaderSeen(leaderId: NodeId, selfId: NodeId): void {
    for (const waiter of this.waiters) {
      if (leaderId === selfId) continue;
      this.waiters.delete(waiter);
      clearTimeout(waiter.timer);
      if (leaderId === waiter.target) waiter.resolve(leaderId);
      else waiter.reject(new Error(`leadership transfer to ${waiter.target} was overtaken: ${leaderId} became leader`));
    }
  }

  rejectAll(error: Error): void {
    for (const waiter of this.waiters) {
      this.waiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }
}
