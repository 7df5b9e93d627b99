/**
 * The node driver's apply pipeline: committed entries (and snapshots received
 * from the leader) go to the StateMachine strictly in log order, one task at
 * a time, while the Ready loop goes on persisting the next batch (as etcd's
 * server applies beside its raft loop). Owns the applied index, term and
 * membership, and settles proposals and reads as entries apply.
 * Must never apply an entry twice, skip one, run two state machine calls at
 * once, or keep going after a failure (it reports it as fatal).
 */
import { applyMembershipChange, decodeMembershipChange } from '../core/membership';
import { Entry, EntryType, Membership, Snapshot } from '../core/types';
import { StateMachine } from './interfaces';
import { NodeMetrics } from './node-metrics';
import { RaftLogger } from './node-logger';
import { PendingProposals, PendingReads } from './pending';
import { performance } from 'node:perf_hooks';

type Task =
  | { kind: 'entries'; entries: Entry[] }
  | { kind: 'restore'; snapshot: Snapshot }
  | { kind: 'quiet'; run: (applied: AppliedState) => Promise<void> };

export interface AppliedState {
  index: number;
  term: number;
  membership: Membership;
}

export class ApplyPipeline {
  private applied: AppliedState;
  /** The last index handed to the pipeline (applied or queued). */
  private enqueuedIndex: number;
  private readonly queue: Task[] = [];
  private running = false;
  private failed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    initial: AppliedState,
    private readonly stateMachine: StateMachine,
    private readonly proposals: PendingProposals,
    private readonly reads: PendingReads,
    private readonly metrics: NodeMetrics,
    private readonly logger: RaftLogger,
    private readonly onFatal: (error: Error) => void,
  ) {
    this.applied = initial;
    this.enqueuedIndex = initial.index;
  }

  get appliedIndex(): number {
    return this.applied.index;
  }

  /** Index, term and membership as of the applied index (valid for a snapshot only while idle). */
  get state(): AppliedState {
    return this.applied;
  }

  /** Tasks queued or running: the Ready loop waits when this grows (backpressure). */
  get backlog(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  /** Queues committed entries; those at or below what is already applied or queued are skipped. */
  enqueueEntries(committed: Entry[]): void {
    let first = 0;
    while (first < committed.length && committed[first].index <= this.enqueuedIndex) first++;
    if (first === committed.length) return;
    const entries = first === 0 ? committed : committed.slice(first);
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].index !== this.enqueuedIndex + 1 + i) {
        throw new Error(`invariant: committed entries skip: after index ${this.enqueuedIndex} expected ${this.enqueuedIndex + 1 + i}, got ${entries[i].index}`);
      }
    }
    this.enqueuedIndex = entries[entries.length - 1].index;
    this.push({ kind: 'entries', entries });
  }

  /** Queues a snapshot received from the leader; it replaces the state machine once earlier tasks are done. */
  enqueueRestore(snapshot: Snapshot): void {
    if (snapshot.metadata.index <= this.enqueuedIndex) {
      throw new Error(`invariant: snapshot at index ${snapshot.metadata.index} does not advance past the applied/queued index ${this.enqueuedIndex}`);
    }
    this.enqueuedIndex = snapshot.metadata.index;
    this.push({ kind: 'restore', snapshot });
  }

  /** Runs `run` between two state machine calls, with nothing applying meanwhile (e.g. reading a snapshot of the machine). */
  enqueueQuiet(run: (applied: AppliedState) => Promise<void>): void {
    this.push({ kind: 'quiet', run });
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.backlog === 0 || this.failed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private push(task: Task): void {
    if (this.failed) return;
    this.queue.push(task);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let task = this.queue.shift(); task && !this.failed; task = this.queue.shift()) {
        if (task.kind === 'entries') await this.apply(task.entries);
        else if (task.kind === 'restore') await this.restore(task.snapshot);
        else await task.run(this.applied);
      }
    } catch (error) {
      this.failed = true;
      this.queue.length = 0;
      this.onFatal(error as Error);
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private async apply(entries: Entry[]): Promise<void> {
    if (entries[0].index !== this.applied.index + 1) {
      throw new Error(`invariant: applying index ${entries[0].index} but the applied index is ${this.applied.index}`);
    }
    const startedAtMs = performance.now();
    const results = await this.stateMachine.apply(entries);
    const doneAtMs = performance.now();
    this.metrics.applyLatencySeconds.observe((doneAtMs - startedAtMs) / 1000);
    if (!Array.isArray(results) || results.length !== entries.length) {
      throw new Error(`invariant: stateMachine.apply returned ${Array.isArray(results) ? results.length : typeof results} results for ${entries.length} entries`);
    }
    let membership = this.applied.membership;
    for (const entry of entries) {
      if (entry.type === EntryType.MembershipChange) membership = applyMembershipChange(membership, decodeMembershipChange(entry.data));
    }
    const last = entries[entries.length - 1];
    this.applied = { index: last.index, term: last.term, membership };
    this.metrics.appliedIndex.set(last.index);
    for (let i = 0; i < entries.length; i++) {
      const outcome = this.proposals.settleApplied(entries[i], results[i]);
      if (!outcome) continue;
      if (outcome.ok) this.metrics.commitLatencySeconds.observe((doneAtMs - outcome.startedAtMs) / 1000);
      else this.metrics.proposalFailed('dropped');
    }
    this.metrics.pendingProposals.set(this.proposals.size);
    this.resolveReads();
  }

  private async restore(snapshot: Snapshot): Promise<void> {
    const { index, term, membership } = snapshot.metadata;
    if (index <= this.applied.index) throw new Error(`invariant: restoring snapshot ${index} at or below the applied index ${this.applied.index}`);
    await this.stateMachine.restore(snapshot);
    const rejected = this.proposals.rejectUpTo(index, new Error(`proposal outcome unknown: this member restored a snapshot at index ${index} that covers it`));
    if (rejected > 0) this.logger.warn('proposals covered by a received snapshot', { rejected, index });
    this.applied = { index, term, membership };
    this.metrics.appliedIndex.set(index);
    this.logger.info('restored snapshot from leader', { index, term });
    this.resolveReads();
  }

  /** Reads whose confirmed index is now applied may go ahead. */
  resolveReads(): void {
    const now = performance.now();
    for (const startedAtMs of this.reads.resolveApplied(this.applied.index)) {
      this.metrics.readIndexLatencySeconds.observe((now - startedAtMs) / 1000);
    }
  }
}
