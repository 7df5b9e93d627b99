/**
 * RaftNode: the driver that wires the pure RaftCore to storage, transport,
 * timers and the application's StateMachine, and gives callers promises
 * (propose, readIndex, membership changes, leadership transfer).
 * Owns the Ready loop (exactly one Ready outstanding: send, persist, send
 * after persist, hand committed entries to the apply pipeline, advance), the
 * tick timer, the pending-caller maps and the local snapshot policy.
 * Group commit falls out of the loop: messages and proposals that arrive
 * while a write is in flight are stepped at once and leave in the next Ready.
 * Must never: make protocol decisions (the core does), apply an entry twice
 * or out of order, answer a vote before its persist is durable, or keep going
 * after a broken invariant (it stops loudly instead).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { seededRandom, withDefaults } from '../core/config';
import { InitialState, RaftStatus } from '../core/api';
import { RaftCore } from '../core/raft';
import {
  HardState, Member, Membership, MembershipChange, MembershipChangeType, Message, MessageType, NodeId, NotLeaderError,
  ProposalRejectedError, Ready, Snapshot, SoftState,
} from '../core/types';
import { PersistBatch, RaftStorage, StateMachine, Transport } from './interfaces';
import { ApplyPipeline } from './apply-pipeline';
import { levelStateMachine } from './level-state-machine';
import { NodeMetrics } from './node-metrics';
import { RaftLogger, silentLogger } from './node-logger';
import { NodeOverloadedError, NodeStoppedError, PendingProposals, PendingReads, RaftTimeoutError } from './pending';
import { SnapshotWaiters, TakenSnapshot } from './snapshot-waiters';
import { TransferWaiters } from './transfer-waiters';
import { CallOptions, RaftNodeOptions, RaftNodeStatus, resolveNodeSettings } from './raft-node-options';

export type { CallOptions, RaftNodeOptions, RaftNodeStatus, TakenSnapshot };

/** A bound on the Ready loop's iterations before it yields to the event loop (timers, I/O). */
const MAX_READIES_PER_TURN = 1_000;
const MAX_PENDING_TRANSFERS = 16;
/** Apply tasks (each ≤ one Ready's committed entries) queued before the Ready loop waits for the state machine. */
const MAX_APPLY_BACKLOG_TASKS = 8;
/** Messages the core refuses are logged as one summary at most this often. */
const DROP_LOG_INTERVAL_MS = 10_000;
/** Senders whose last message time is kept (members are at most 64; a few more for joiners and removed members). */
const MAX_TRACKED_PEERS = 128;
/** Messages only a leader sends: their arrival is contact with a leader. */
const LEADER_MESSAGE_TYPES: ReadonlySet<MessageType> = new Set([MessageType.App, MessageType.Heartbeat, MessageType.Snap]);
/** Callers of snapshotNow() waiting at once. */
const MAX_SNAPSHOT_WAITERS = 16;

/** When this member last heard from a peer (for operators: a follower's "last contact" as its leader sees it). */
export interface PeerContact {
  id: NodeId;
  /** Milliseconds since a message from the peer arrived; undefined when none arrived since this node started. */
  lastContactAgoMs: number | undefined;
}

/** Up to a tenth of the threshold. */
function randomSnapshotJitter(thresholdEntries: number): number {
  return randomInt(0, Math.floor(thresholdEntries / 10) + 1);
}


export class RaftNode {
  private readonly id: NodeId;
  private readonly tickIntervalMs: number;
  private readonly electionTimeoutMs: number;
  private readonly snapshotThresholdEntries: number;
  private readonly snapshotTrailingEntries: number;
  private readonly defaultTimeoutMs: number;
  private readonly proposals: PendingProposals;
  private readonly reads: PendingReads;
  private readonly transfers = new TransferWaiters(MAX_PENDING_TRANSFERS);
  private readonly metrics: NodeMetrics;
  private readonly logger: RaftLogger;
  private readonly onFatalError: (error: Error) => void;
  private readonly joinPeers: Member[];

  private tickTimer: NodeJS.Timeout | undefined;
  private loopRunning = false;
  private loopScheduled = false;
  private readyOutstanding = false;
  private loopIdle: Promise<void> = Promise.resolve();
  private signalLoopIdle: () => void = () => {};
  private stopped = false;
  private fatal: Error | undefined;
  private stopPromise: Promise<void> | undefined;

  private readonly applier: ApplyPipeline;
  private lastSnapshotIndex: number;
  /** The newest membership the core reported (committed); transport peers and leader addresses come from it. */
  private membership: Membership;
  /** The hard state last written to storage. */
  private syncedHardState: HardState;
  /**
   * A hard state whose only change is a higher commit index, not yet written:
   * the commit index is recoverable (Raft keeps it volatile), so it rides with
   * the next write instead of costing an fsync of its own.
   */
  private unsyncedHardState: HardState | undefined;
  /** The last log index durable in storage (committed entries up to it may apply before the next write finishes). */
  private persistedLastIndex: number;
  private soft: SoftState = { leaderId: '', role: 'follower', term: 0 };
  /** The newest snapshot in storage, kept so Snap messages need no disk read. */
  private cachedSnapshot: Snapshot | undefined;
  /** A prefix that makes read contexts unique across restarts; the suffix is a counter. */
  private readonly readContextPrefix = randomBytes(8);
  private readContextCounter = 0;
  /** A local snapshot is being read or waits to be saved; never two at once. */
  private localSnapshotInProgress = false;
  private localSnapshotToSave: Snapshot | undefined;
  private localSnapshotReadMs = 0;
  /** Added to the threshold so members do not all pause for a snapshot at the same index. */
  private snapshotJitterEntries: number;
  /** Core drops not yet logged, by reason, and when they were last logged. */
  private dropsSinceLog: Record<string, number> = {};
  private dropsLoggedAtMs = -Infinity;
  /** performance.now() of the last message only a leader sends (append, heartbeat, snapshot) of the current term or newer; the start at first. */
  private leaderContactAtMs = performance.now();
  /** Peer id → performance.now() of its last message (bounded by MAX_TRACKED_PEERS). */
  private readonly lastHeardAtMs = new Map<NodeId, number>();
  /** snapshotNow() callers waiting for the local snapshot in progress to be saved, and the request flag. */
  private readonly snapshotWaiters = new SnapshotWaiters(MAX_SNAPSHOT_WAITERS);

  private constructor(
    private readonly core: RaftCore,
    private readonly storage: RaftStorage,
    private readonly transport: Transport,
    private readonly stateMachine: StateMachine,
    options: RaftNodeOptions,
    electionTicks: number,
    initial: InitialState,
    level: { appliedTerm: number; appliedMembership: Membership },
    storedHardState: HardState,
  ) {
    this.id = options.config.id;
    const settings = resolveNodeSettings(options);
    this.tickIntervalMs = settings.tickIntervalMs;
    this.electionTimeoutMs = electionTicks * this.tickIntervalMs;
    this.snapshotThresholdEntries = settings.snapshotThresholdEntries;
    this.snapshotTrailingEntries = settings.snapshotTrailingEntries;
    this.defaultTimeoutMs = settings.defaultTimeoutMs;
    this.proposals = new PendingProposals(settings.maxPendingProposals);
    this.reads = new PendingReads(settings.maxPendingReads);
    this.metrics = new NodeMetrics(options.registry, this.id);
    this.metrics.watchPeers(() => this.status());
    this.metrics.watchLastContact(() => this.lastLeaderContactSeconds());
    this.logger = options.logger ?? silentLogger;
    this.joinPeers = options.joinPeers ?? [];
    this.onFatalError = options.onFatalError ?? ((error) => setImmediate(() => { throw error; }));
    this.lastSnapshotIndex = initial.snapshot.index;
    this.snapshotJitterEntries = randomSnapshotJitter(this.snapshotThresholdEntries);
    this.membership = initial.membership;
    this.syncedHardState = storedHardState;
    // The commit index raised to the applied index at start is written with the next persist (the storage refuses a snapshot beyond its commit).
    if (initial.hardState.commit !== storedHardState.commit) this.unsyncedHardState = initial.hardState;
    this.persistedLastIndex = initial.entries.length > 0 ? initial.entries[initial.entries.length - 1].index : initial.snapshot.index;
    this.applier = new ApplyPipeline(
      { index: initial.applied, term: level.appliedTerm, membership: level.appliedMembership },
      stateMachine, this.proposals, this.reads, this.metrics, this.logger, (error) => this.die(error),
    );
    this.metrics.appliedIndex.set(initial.applied);
    this.metrics.commitIndex.set(initial.hardState.commit);
    this.metrics.term.set(initial.hardState.term);
  }

  /** Loads storage, brings the state machine level with it, starts the core, the transport and the tick timer. */
  static async start(options: RaftNodeOptions): Promise<RaftNode> {
    resolveNodeSettings(options); // fails fast, naming the bad option, before anything is opened
    // The core is deterministic given its seed; the node picks a fresh seed so members' election jitter differs.
    const config = withDefaults({ ...options.config, random: seededRandom(randomInt(0, 2 ** 31)) });
    if (config.forwardProposals) {
      throw new Error('raft node: config.forwardProposals is not supported by RaftNode (it tracks proposals by their ticket); callers follow NotLeaderError instead');
    }

    const { storage, stateMachine } = options;
    if (options.bootstrapMembership && (await storage.isEmpty())) {
      await storage.bootstrap(options.bootstrapMembership);
    }
    const initial = await storage.load();
    // What storage holds, before levelling may raise the commit index in memory to the applied index.
    const storedHardState = { ...initial.hardState };
    const level = await levelStateMachine(initial, storage, stateMachine);
    const core = new RaftCore(config, initial);
    const node = new RaftNode(core, storage, options.transport, stateMachine, options, config.electionTicks, initial, level, storedHardState);
    await node.startIo();
    return node;
  }

  private async startIo(): Promise<void> {
    this.transport.onUnreachable((peer) => this.guard(() => { this.core.reportUnreachable(peer); this.scheduleLoop(); }));
    this.transport.onSnapshotStatus((peer, ok) => this.guard(() => { this.core.reportSnapshot(peer, ok); this.scheduleLoop(); }));
    await this.transport.start((message) => this.onMessage(message));
    this.transport.setPeers(this.membership.members.length > 0 ? this.peersOf(this.membership) : this.peersOf({ members: this.joinPeers }));
    this.tickTimer = setInterval(() => this.guard(() => {
      this.core.tick();
      this.recordDroppedMessages();
      this.scheduleLoop();
    }), this.tickIntervalMs);
    this.logger.info('raft node started', { appliedIndex: this.applier.appliedIndex, members: this.membership.members.map((m) => m.id), electionTimeoutMs: this.electionTimeoutMs });
    this.scheduleLoop();
  }

  /** Counts what the core refused in the metric, and logs it at most once per DROP_LOG_INTERVAL_MS. */
  private recordDroppedMessages(): void {
    const grown = this.metrics.syncCoreDrops(this.core.droppedMessages());
    for (const [reason, count] of Object.entries(grown)) this.dropsSinceLog[reason] = (this.dropsSinceLog[reason] ?? 0) + count;
    const now = performance.now();
    if (Object.keys(this.dropsSinceLog).length === 0 || now - this.dropsLoggedAtMs < DROP_LOG_INTERVAL_MS) return;
    this.logger.warn('raft core dropped messages', { byReason: this.dropsSinceLog });
    this.dropsSinceLog = {};
    this.dropsLoggedAtMs = now;
  }

  // ---- public API -------------------------------------------------------

  /** Proposes application data; resolves with the state machine's result once the entry is applied on this member. */
  propose(data: Uint8Array, options: CallOptions = {}): Promise<unknown> {
    return this.proposeWith(() => this.core.propose(data), 'proposal', options);
  }

  /**
   * debug-unsafe (the metaserver's --debug-unsafe ack-before-commit; never
   * on a normal path): proposes as propose() does, and also hands back the
   * entry's log index at once (0 when the proposal was refused: `applied`
   * then rejects), so a caller can answer before the entry is committed.
   */
  debugProposeUncommitted(data: Uint8Array, options: CallOptions = {}): { index: number; applied: Promise<unknown> } {
    let ticket: { index: number; term: number } | null = null;
    const applied = this.proposeWith(() => (ticket = this.core.propose(data)), 'proposal', options);
    return { index: (ticket as { index: number } | null)?.index ?? 0, applied };
  }

  /** `clientAddress` is the application's, replicated with the membership and returned by status() (raft never uses it). */
  addLearner(id: NodeId, address: string, options: CallOptions & { clientAddress?: string } = {}): Promise<void> {
    return this.changeMembership({ type: MembershipChangeType.AddLearner, id, address, clientAddress: options.clientAddress || undefined }, options);
  }

  promoteLearner(id: NodeId, options: CallOptions = {}): Promise<void> {
    return this.changeMembership({ type: MembershipChangeType.PromoteLearner, id, address: '' }, options);
  }

  addVoter(id: NodeId, address: string, options: CallOptions & { clientAddress?: string } = {}): Promise<void> {
    return this.changeMembership({ type: MembershipChangeType.AddVoter, id, address, clientAddress: options.clientAddress || undefined }, options);
  }

  removeMember(id: NodeId, options: CallOptions = {}): Promise<void> {
    return this.changeMembership({ type: MembershipChangeType.RemoveMember, id, address: '' }, options);
  }

  /** Resolves once a read of this member's state machine is linearizable (ReadIndex confirmed by a quorum and applied). */
  async readIndex(options: CallOptions = {}): Promise<void> {
    this.throwIfStopped();
    if (!this.reads.hasRoom()) throw new NodeOverloadedError('reads', this.reads.size);
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const context = Buffer.alloc(12);
    this.readContextPrefix.copy(context, 0);
    context.writeUInt32BE(++this.readContextCounter % 0x1_0000_0000, 8);
    const key = context.toString('hex');
    const startedAtMs = performance.now();
    const waiting = this.reads.add(key, timeoutMs, startedAtMs);
    try {
      this.core.readIndex(context);
    } catch (error) {
      this.reads.reject(key, error as Error);
    }
    this.scheduleLoop();
    return waiting;
  }

  /** Hands leadership to `to` (default: the most caught-up voter); resolves when this member sees the new leader. */
  async transferLeadership(to?: NodeId, options: CallOptions = {}): Promise<NodeId> {
    this.throwIfStopped();
    const timeoutMs = options.timeoutMs ?? 2 * this.electionTimeoutMs;
    const status = this.core.status();
    if (status.role !== 'leader' && !to) throw this.notLeader();
    const target = to ?? this.mostCaughtUpVoter(status);
    if (!target) throw new Error('leadership transfer: there is no other voter to hand leadership to');
    if (status.leaderId === target) return target;
    const waiting = this.transfers.add(target, timeoutMs);
    try {
      this.core.transferLeadership(target);
    } catch (error) {
      this.transfers.rejectAll(error as Error);
    }
    this.scheduleLoop();
    return waiting;
  }

  status(): RaftNodeStatus {
    const status = this.core.status();
    return {
      ...status,
      appliedIndex: this.applier.appliedIndex,
      leaderAddress: this.addressOf(status.leaderId),
      electionTimeoutMs: this.electionTimeoutMs,
      pendingProposals: this.proposals.size,
      pendingReads: this.reads.size,
    };
  }

  /** How long ago each peer of the current membership was last heard from (a leader hears every follower each heartbeat). */
  peerContacts(): PeerContact[] {
    const now = performance.now();
    return this.membership.members.filter((m) => m.id !== this.id).map((m) => {
      const at = this.lastHeardAtMs.get(m.id);
      return { id: m.id, lastContactAgoMs: at === undefined ? undefined : Math.max(0, Math.round(now - at)) };
    });
  }

  /**
   * Takes a local snapshot now (whatever the threshold) and compacts the log
   * behind it as the automatic ones do; resolves once it is saved. With
   * nothing applied since the last snapshot it resolves at once (taken: false).
   */
  snapshotNow(): Promise<TakenSnapshot> {
    this.throwIfStopped();
    const overloaded = this.snapshotWaiters.overloaded();
    if (overloaded) return Promise.reject(overloaded);
    if (!this.localSnapshotInProgress && this.applier.appliedIndex <= this.lastSnapshotIndex) {
      const index = this.lastSnapshotIndex;
      return Promise.resolve({ index, term: this.cachedSnapshot?.metadata.index === index ? this.cachedSnapshot.metadata.term : 0, compactIndex: Math.max(0, index - this.snapshotTrailingEntries), taken: false });
    }
    // One in progress already covers most of what is applied; the request makes the next one start right after it.
    const waiting = this.snapshotWaiters.add();
    this.maybeStartLocalSnapshot();
    return waiting;
  }

  get metricsRegistry(): Registry {
    return this.metrics.registry;
  }

  /**
   * Stops the node. Graceful: a leader first hands leadership to the most
   * caught-up voter (waiting at most two election timeouts) so the cluster
   * stalls briefly instead of waiting for an election timeout.
   * Then: timers stop, the in-flight Ready finishes, pending callers are
   * rejected, the transport and the storage close. The state machine is the
   * caller's to close afterwards.
   */
  stop(options: { graceful?: boolean } = {}): Promise<void> {
    if (!this.stopPromise) this.stopPromise = this.doStop(options.graceful ?? true);
    return this.stopPromise;
  }

  private async doStop(graceful: boolean): Promise<void> {
    if (graceful && !this.stopped && this.soft.role === 'leader' && this.mostCaughtUpVoter(this.core.status())) {
      try {
        const newLeader = await this.transferLeadership(undefined, { timeoutMs: 2 * this.electionTimeoutMs });
        this.logger.info('leadership handed over before stopping', { newLeader });
      } catch (error) {
        this.logger.warn('leadership transfer before stopping failed; stopping anyway', { error: (error as Error).message });
      }
    }
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = undefined;
    await this.loopIdle;
    await this.applier.idle();
    this.rejectAllPending(this.fatal ?? new NodeStoppedError('stop() was called'));
    await this.transport.close();
    await this.storage.close();
    this.logger.info('raft node stopped', { appliedIndex: this.applier.appliedIndex });
  }

  /** Seconds since a leader was last heard from: 0 on the leader (the metric handlefs_raft_last_contact_seconds). */
  private lastLeaderContactSeconds(): number {
    if (this.soft.role === 'leader') return 0;
    return Math.max(0, performance.now() - this.leaderContactAtMs) / 1000;
  }

  // ---- inputs -----------------------------------------------------------

  private onMessage(message: Message): void {
    if (this.stopped) return;
    const now = performance.now();
    if (this.lastHeardAtMs.has(message.from) || this.lastHeardAtMs.size < MAX_TRACKED_PEERS) this.lastHeardAtMs.set(message.from, now);
    if (LEADER_MESSAGE_TYPES.has(message.type) && message.term >= this.soft.term) this.leaderContactAtMs = now;
    this.guard(() => {
      this.core.step(message);
      this.scheduleLoop();
    });
  }

  private proposeWith(make: () => { index: number; term: number } | null, what: string, options: CallOptions): Promise<unknown> {
    if (this.stopped) return Promise.reject(this.fatal ?? new NodeStoppedError('stop() was called'));
    this.metrics.proposals.inc();
    if (!this.proposals.hasRoom()) {
      this.metrics.proposalFailed('overloaded');
      return Promise.reject(new NodeOverloadedError('proposals', this.proposals.size));
    }
    const startedAtMs = performance.now();
    let ticket: { index: number; term: number } | null;
    try {
      ticket = make();
    } catch (error) {
      this.metrics.proposalFailed(error instanceof NotLeaderError ? 'not_leader' : 'rejected');
      if (error instanceof NotLeaderError || error instanceof ProposalRejectedError) return Promise.reject(error);
      return Promise.reject(error as Error);
    }
    if (ticket === null) {
      this.metrics.proposalFailed('rejected');
      return Promise.reject(new Error(`raft node: the core forwarded a ${what} instead of returning a ticket; RaftNode requires forwardProposals=false`));
    }
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const waiting = this.proposals.add(ticket.index, ticket.term, timeoutMs, startedAtMs, () => this.metrics.proposalFailed('timeout'));
    this.metrics.pendingProposals.set(this.proposals.size);
    this.scheduleLoop();
    return waiting;
  }

  private async changeMembership(change: MembershipChange, options: CallOptions): Promise<void> {
    await this.proposeWith(() => this.core.proposeMembershipChange(change), 'membership change', options);
  }

  // ---- the Ready loop ---------------------------------------------------

  /** Runs the loop soon, after the I/O already queued this turn has been stepped in (so it lands in the same Ready). */
  private scheduleLoop(): void {
    if (this.loopScheduled || this.loopRunning || this.stopped) return;
    this.loopScheduled = true;
    setImmediate(() => {
      this.loopScheduled = false;
      void this.runLoop();
    });
  }

  private async runLoop(): Promise<void> {
    if (this.loopRunning || this.stopped) return;
    this.loopRunning = true;
    this.loopIdle = new Promise((resolve) => { this.signalLoopIdle = resolve; });
    let readies = 0;
    try {
      while (!this.stopped && readies < MAX_READIES_PER_TURN && (this.core.hasReady() || this.localSnapshotToSave)) {
        if (this.localSnapshotToSave) await this.saveLocalSnapshot(this.localSnapshotToSave);
        if (!this.core.hasReady()) continue;
        if (this.readyOutstanding) throw new Error('invariant: a second Ready was taken before the first was advanced');
        const ready = this.core.ready();
        this.readyOutstanding = true;
        await this.handleReady(ready);
        this.core.advance(ready);
        this.readyOutstanding = false;
        readies++;
        // Backpressure: the state machine is behind; let it catch up before taking more work.
        while (this.applier.backlog > MAX_APPLY_BACKLOG_TASKS && !this.stopped) await this.applier.idle();
        this.maybeStartLocalSnapshot();
      }
    } catch (error) {
      this.die(error as Error);
    } finally {
      this.loopRunning = false;
      this.signalLoopIdle();
    }
    if (readies >= MAX_READIES_PER_TURN) this.scheduleLoop();
  }

  /**
   * One Ready, in the order Raft needs: messages that promise nothing go at
   * once; the write is one synchronous batch; acknowledgements and votes go
   * only after it. Committed entries go to the apply pipeline, which applies
   * them beside the Ready loop: before this Ready's write when they are
   * durable already (always on a leader), else right after it.
   */
  private async handleReady(ready: Ready): Promise<void> {
    if (ready.membership) {
      // Before sending, so messages to a member added by this Ready have a connection to go to.
      this.membership = ready.membership;
      this.transport.setPeers(this.peersOf(ready.membership));
      for (const id of [...this.lastHeardAtMs.keys()]) if (!ready.membership.members.some((m) => m.id === id)) this.lastHeardAtMs.delete(id);
    }
    if (ready.softState) this.onSoftState(ready.softState);
    if (ready.messages.length > 0) this.send(ready.messages);
    if (ready.snapshot) {
      // A received snapshot replaces the state machine and the stored snapshot: nothing older may still be applying or saving.
      await this.applier.idle();
      if (this.localSnapshotToSave) this.logger.info('dropping a local snapshot overtaken by one from the leader', { index: this.localSnapshotToSave.metadata.index });
      this.localSnapshotToSave = undefined;
      this.localSnapshotInProgress = false;
      this.snapshotWaiters.settle({ error: new Error('a snapshot from the leader replaced the local one in progress; ask again') });
    }

    // Committed entries already durable here (always so on a leader) apply while this Ready is written. Not when
    // this Ready rewrites any of their indexes: the stored entry there is a stale one from an old leader, and a crash
    // before the write would leave the state machine ahead of a log that disagrees with it.
    const committed = ready.committedEntries;
    const lastCommittedIndex = committed.length > 0 ? committed[committed.length - 1].index : 0;
    const rewritesCommitted = ready.entries.length > 0 && ready.entries[0].index <= lastCommittedIndex;
    const applyNow = !ready.snapshot && committed.length > 0 && lastCommittedIndex <= this.persistedLastIndex && !rewritesCommitted;
    if (applyNow) this.applier.enqueueEntries(committed);

    const hardState = ready.hardState;
    const onlyCommitChanged = hardState !== undefined && hardState.term === this.syncedHardState.term && hardState.vote === this.syncedHardState.vote;
    if (ready.entries.length > 0 || ready.snapshot || ready.membership || (hardState && !onlyCommitChanged)) {
      await this.persist({ hardState: hardState ?? this.unsyncedHardState, entries: ready.entries, snapshot: ready.snapshot, membership: ready.membership });
      if (ready.snapshot) this.cachedSnapshot = ready.snapshot;
    } else if (hardState) {
      this.unsyncedHardState = hardState;
    }
    if (hardState) {
      this.metrics.commitIndex.set(hardState.commit);
      this.metrics.term.set(hardState.term);
    }
    if (ready.messagesAfterPersist.length > 0) this.send(ready.messagesAfterPersist);

    if (ready.snapshot) this.applier.enqueueRestore(ready.snapshot);
    if (committed.length > 0 && !applyNow) this.applier.enqueueEntries(committed);
    for (const readState of ready.readStates) {
      this.reads.confirm(Buffer.from(readState.context).toString('hex'), readState.index);
    }
    if (ready.readStates.length > 0) this.applier.resolveReads();
  }

  private async persist(batch: PersistBatch): Promise<void> {
    const startedAtMs = performance.now();
    await this.storage.persist(batch);
    this.metrics.persistLatencySeconds.observe((performance.now() - startedAtMs) / 1000);
    this.metrics.persistBatchEntries.observe(batch.entries.length);
    if (batch.snapshot) this.persistedLastIndex = batch.snapshot.metadata.index;
    // Entries replace the stored suffix from their first index, so the last one written is the new end of the log.
    if (batch.entries.length > 0) this.persistedLastIndex = batch.entries[batch.entries.length - 1].index;
    if (batch.hardState) {
      this.syncedHardState = batch.hardState;
      this.unsyncedHardState = undefined;
    }
  }

  private send(messages: Message[]): void {
    let plain = messages;
    if (messages.some((m) => m.type === MessageType.Snap)) {
      plain = messages.filter((m) => m.type !== MessageType.Snap);
      for (const message of messages) if (message.type === MessageType.Snap) void this.sendSnapshot(message);
    }
    if (plain.length > 0) this.transport.send(plain);
  }

  /** The core names the snapshot by metadata; the data comes from storage (cached after the first read). */
  private async sendSnapshot(message: Message): Promise<void> {
    const wantedIndex = message.snapshot?.metadata.index ?? -1;
    try {
      let snapshot = this.cachedSnapshot;
      if (snapshot?.metadata.index !== wantedIndex) {
        snapshot = await this.storage.loadSnapshot();
        // Another snapshot may have been cached while this one was read: keep the newer.
        if (snapshot && snapshot.metadata.index > (this.cachedSnapshot?.metadata.index ?? -1)) this.cachedSnapshot = snapshot;
      }
      if (!snapshot || snapshot.metadata.index !== wantedIndex) {
        throw new Error(`storage holds snapshot ${snapshot ? snapshot.metadata.index : 'none'} but the core asked to send ${wantedIndex}`);
      }
      if (this.stopped) return;
      this.transport.send([{ ...message, snapshot }]);
    } catch (error) {
      this.logger.warn('could not send snapshot', { to: message.to, error: (error as Error).message });
      if (this.stopped) return;
      this.guard(() => { this.core.reportSnapshot(message.to, false); this.scheduleLoop(); });
    }
  }

  /**
   * Local snapshots, in two steps so the Ready loop keeps replicating while
   * the state machine is read: the apply pipeline reads it between two
   * applies (its index, term and membership are then exact), and the Ready
   * loop saves it between two Readies.
   */
  private maybeStartLocalSnapshot(): void {
    if (this.localSnapshotInProgress || this.stopped) return;
    const dueEntries = this.snapshotWaiters.requested ? 1 : this.snapshotThresholdEntries + this.snapshotJitterEntries;
    if (this.applier.appliedIndex - this.lastSnapshotIndex < dueEntries) return;
    this.localSnapshotInProgress = true;
    this.snapshotWaiters.requested = false;
    this.applier.enqueueQuiet(async (applied) => {
      const startedAtMs = performance.now();
      const { index, data } = await this.stateMachine.snapshot();
      if (index !== applied.index) {
        throw new Error(`invariant: stateMachine.snapshot() returned index ${index} but the applied index is ${applied.index}`);
      }
      if (!this.localSnapshotInProgress) return; // overtaken by a snapshot from the leader meanwhile
      this.localSnapshotToSave = { metadata: { index, term: applied.term, membership: applied.membership }, data };
      this.localSnapshotReadMs = performance.now() - startedAtMs;
      this.scheduleLoop();
    });
  }

  /** Between Readies: the storage must already hold a commit index covering the snapshot. */
  private async saveLocalSnapshot(snapshot: Snapshot): Promise<void> {
    const startedAtMs = performance.now();
    const { metadata } = snapshot;
    if (this.syncedHardState.commit < metadata.index) {
      if (!this.unsyncedHardState || this.unsyncedHardState.commit < metadata.index) {
        throw new Error(`invariant: local snapshot at ${metadata.index} is beyond the known commit index ${this.unsyncedHardState?.commit ?? this.syncedHardState.commit}`);
      }
      await this.persist({ hardState: this.unsyncedHardState, entries: [] });
    }
    const compactIndex = Math.max(0, metadata.index - this.snapshotTrailingEntries);
    await this.storage.saveLocalSnapshot(snapshot, compactIndex);
    this.core.compact(metadata, compactIndex);
    this.cachedSnapshot = snapshot;
    this.lastSnapshotIndex = metadata.index;
    this.localSnapshotToSave = undefined;
    this.localSnapshotInProgress = false;
    this.snapshotJitterEntries = randomSnapshotJitter(this.snapshotThresholdEntries);
    // A request that arrived while this snapshot was being read, with entries applied since, waits for the next one.
    if (this.snapshotWaiters.requested && this.applier.appliedIndex > metadata.index) this.maybeStartLocalSnapshot();
    else this.snapshotWaiters.settle({ taken: { index: metadata.index, term: metadata.term, compactIndex, taken: true } });
    const saveMs = performance.now() - startedAtMs;
    this.metrics.localSnapshots.inc();
    this.metrics.localSnapshotSeconds.observe((this.localSnapshotReadMs + saveMs) / 1000);
    this.logger.info('took local snapshot', {
      index: metadata.index, term: metadata.term, compactIndex, sizeBytes: snapshot.data.byteLength,
      readMs: Math.round(this.localSnapshotReadMs), saveMs: Math.round(saveMs),
    });
  }

  private onSoftState(soft: SoftState): void {
    const leaderChanged = soft.leaderId !== this.soft.leaderId;
    if (leaderChanged) {
      this.metrics.leaderChanges.inc();
      this.logger.info('leader changed', { from: this.soft.leaderId, to: soft.leaderId, term: soft.term });
      if (soft.leaderId) this.transfers.leaderSeen(soft.leaderId, this.id);
    }
    this.soft = soft;
    // Reads waiting on the old leader's confirmation (forwarded to it, or its own heartbeat round)
    // may never hear back: a follower whose leader was killed held them to their deadline (5 s
    // client stalls in the chaos runs). They fail now, naming the new leader, and are asked again.
    if (leaderChanged && this.reads.size > 0) this.reads.rejectAll(this.notLeader());
    this.metrics.isLeader.set(soft.role === 'leader' ? 1 : 0);
    this.metrics.term.set(soft.term);
  }

  // ---- helpers ----------------------------------------------------------

  /** Runs an input into the core; a throw there is a broken invariant, which stops the node. */
  private guard(fn: () => void): void {
    if (this.stopped) return;
    try {
      fn();
    } catch (error) {
      this.die(error as Error);
    }
  }

  private die(error: Error): void {
    if (this.fatal) return;
    this.fatal = error;
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = undefined;
    this.logger.error('raft node hit a fatal error and stopped', { error: error.message, stack: error.stack });
    this.rejectAllPending(new NodeStoppedError(`fatal error: ${error.message}`));
    this.onFatalError(error);
  }

  private rejectAllPending(error: Error): void {
    const proposals = this.proposals.rejectAll(error);
    for (let i = 0; i < proposals; i++) this.metrics.proposalFailed('stopped');
    this.reads.rejectAll(error);
    this.transfers.rejectAll(error);
    this.snapshotWaiters.settle({ error });
  }

  private throwIfStopped(): void {
    if (this.stopped) throw this.fatal ?? new NodeStoppedError('stop() was called');
  }

  private notLeader(): NotLeaderError {
    const leaderId = this.soft.leaderId === this.id ? '' : this.soft.leaderId;
    return new NotLeaderError(leaderId, this.addressOf(leaderId));
  }

  private mostCaughtUpVoter(status: RaftStatus): NodeId | undefined {
    let best: { id: NodeId; match: number } | undefined;
    for (const progress of status.progress) {
      if (progress.id === this.id || progress.isLearner) continue;
      if (!best || progress.match > best.match) best = { id: progress.id, match: progress.match };
    }
    return best?.id;
  }

  private addressOf(id: NodeId): string {
    if (!id) return '';
    return this.membership.members.find((m) => m.id === id)?.address ?? '';
  }

  private peersOf(membership: Membership) {
    return membership.members.filter((m) => m.id !== this.id);
  }
}

export { NotLeaderError, ProposalRejectedError, RaftTimeoutError };
