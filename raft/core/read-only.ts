/**
 * The leader's queue of ReadIndex requests waiting for a quorum to confirm
 * its leadership (Raft thesis §6.4). A heartbeat round carries the newest
 * request's context; an acknowledgement of it confirms every earlier one too.
 */
import { NodeId } from './types';

export interface PendingRead {
  /** The commit index when the request arrived: the read is served once applied ≥ index. */
  index: number;
  context: Uint8Array;
  /** The member that asked (the leader itself or a follower). */
  requester: NodeId;
  acks: Set<NodeId>;
}

export function contextKey(context: Uint8Array): string {
  return Buffer.from(context.buffer, context.byteOffset, context.byteLength).toString('base64');
}

export class ReadOnlyQueue {
  private readonly queue: PendingRead[] = [];
  private readonly byKey = new Map<string, PendingRead>();

  constructor(private readonly maxPending: number) {}

  get size(): number {
    return this.queue.length;
  }

  /** Returns false if the queue is full or the context is already pending. */
  add(read: PendingRead): boolean {
    const key = contextKey(read.context);
    if (this.queue.length >= this.maxPending || this.byKey.has(key)) return false;
    this.queue.push(read);
    this.byKey.set(key, read);
    return true;
  }

  /** Records an acknowledgement of `context` from `from`; returns the number of acks it now has, or 0 if unknown. */
  ack(context: Uint8Array, from: NodeId): number {
    const read = this.byKey.get(contextKey(context));
    if (read === undefined) return 0;
    read.acks.add(from);
    return read.acks.size;
  }

  /** Removes and returns `context`'s request and every request queued before it. */
  releaseThrough(context: Uint8Array): PendingRead[] {
    const read = this.byKey.get(contextKey(context));
    if (read === undefined) return [];
    const position = this.queue.indexOf(read);
    const released = this.queue.splice(0, position + 1);
    for (const r of released) this.byKey.delete(contextKey(r.context));
    return released;
  }

  clear(): void {
    this.queue.length = 0;
    this.byKey.clear();
  }
}
