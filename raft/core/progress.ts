/**
 * The leader's view of one follower: how much of the log it matches, what to
 * send next, and the window of unacknowledged appends (by count and bytes).
 * Modeled on etcd-io/raft's tracker: probe → replicate → snapshot states.
 */
import { NodeId } from './types';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A bounded FIFO of in-flight appends, each remembered by its last index and payload size. */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizesBytes: number[] = [];
  private bytesTotal = 0;

  constructor(private readonly maxCount: number, private readonly maxBytes: number) {}

  get count(): number {
    return this.lastIndexes.length;
  }

  get bytes(): number {
    return this.bytesTotal;
  }

  isFull(): boolean {
    return this.lastIndexes.length >= this.maxCount || this.bytesTotal >= this.maxBytes;
  }

  add(lastIndex: number, sizeBytes: number): void {
    if (this.isFull()) throw new Error(`invariant: inflight window full (count ${this.count}, bytes ${this.bytesTotal})`);
    const previous = this.lastIndexes[this.lastIndexes.length - 1];
    if (previous !== undefined && lastIndex < previous) throw new Error(`invariant: inflight indexes must not decrease (${lastIndex} after ${previous})`);
    this.lastIndexes.push(lastIndex);
    this.sizesBytes.push(sizeBytes);
    this.bytesTotal += sizeBytes;
  }

  /** Frees every append whose last index is ≤ index (they are acknowledged). */
  freeUpTo(index: number): void {
    let freed = 0;
    while (freed < this.lastIndexes.length && this.lastIndexes[freed] <= index) {
      this.bytesTotal -= this.sizesBytes[freed];
      freed++;
    }
    if (freed > 0) {
      this.lastIndexes.splice(0, freed);
      this.sizesBytes.splice(0, freed);
    }
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizesBytes.length = 0;
    this.bytesTotal = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an append is out and we wait for its answer (or a heartbeat answer) before sending another. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshotIndex = 0;
  /** The match index when the previous heartbeat answer came; unchanged across two answers means replication is stuck. */
  matchAtLastHeartbeat = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(readonly id: NodeId, nextIndex: number, public isLearner: boolean, maxInflightAppends: number, maxInflightBytes: number) {
    this.next = nextIndex;
    this.inflights = new Inflights(maxInflightAppends, maxInflightBytes);
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it; otherwise right after what we know matches.
    if (this.state === 'snapshot') {
      const snapshotIndex = this.pendingSnapshotIndex;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, snapshotIndex + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshotIndex = snapshotIndex;
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshotIndex = 0;
    this.inflights.reset();
  }

  /** An acknowledgement that the follower holds the log up to `index`. Returns true if it moved match forward. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** Optimistically records that entries up to lastIndex are on their way (replicate state). */
  sentEntries(lastIndex: number, sizeBytes: number): void {
    if (this.state === 'replicate') {
      this.next = lastIndex + 1;
      this.inflights.add(lastIndex, sizeBytes);
    } else if (this.state === 'probe') {
      this.probeSent = true;
    } else {
      throw new Error(`invariant: sending entries to ${this.id} in snapshot state`);
    }
  }

  /**
   * The follower rejected an append at `rejectedIndex`; `nextHint` is where the
   * leader believes the logs may agree. Returns false for a stale rejection.
   */
  maybeDecreaseTo(rejectedIndex: number, nextHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejectedIndex <= this.match) return false; // stale: we already know it matches there
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejectedIndex) return false; // stale: not the probe we sent last
    this.next = Math.max(Math.min(rejectedIndex, nextHint), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader should hold back new appends to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.isFull();
      case 'snapshot':
        return true;
    }
  }
}
