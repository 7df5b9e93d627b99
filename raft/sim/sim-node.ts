/**
 * One simulated member: the real RaftCore (or an injected stand-in) with its
 * fake durable store and durable state machine, driven through the Ready
 * contract with a persist that takes simulated time. Owns crash (the Ready in
 * flight is lost) and restart (rebuilt from the store only). Must never let
 * anything but a completed persist reach the store.
 */
import { InitialState } from '../core/api';
import { RaftConfig, seededRandom, withDefaults } from '../core/config';
import { RaftCore } from '../core/raft';
import { Entry, Membership, Message, NotLeaderError, ProposalRejectedError, ReadState, Ready, Snapshot } from '../core/types';
import { SafetyChecker, SafetyViolation } from './checker';
import { SimStateMachine } from './state-machine';
import { SimDurableStore } from './storage';
import { SimTrace } from './trace';

/** The part of RaftCore the simulator drives. */
export type SimCore = Pick<
  RaftCore,
  | 'tick' | 'step' | 'propose' | 'proposeMembershipChange' | 'readIndex' | 'transferLeadership'
  | 'hasReady' | 'ready' | 'advance' | 'compact' | 'reportUnreachable' | 'reportSnapshot' | 'status'
>;

export type CoreFactory = (config: RaftConfig, initial: InitialState) => SimCore;

export const realCoreFactory: CoreFactory = (config, initial) => new RaftCore(config, initial);

/** What a node needs from the world around it. */
export interface NodeWorld {
  readonly checker: SafetyChecker;
  readonly trace: SimTrace;
  now(): number;
  /** Puts a message on the wire (attaching snapshot data to Snap messages). */
  send(from: SimNode, message: Message): void;
  onApplied(node: SimNode, entry: Entry, opId: string | undefined): void;
  onReadState(node: SimNode, readState: ReadState): void;
  onLeaderSeen(node: SimNode, term: number): void;
}

/**
 * Wraps a call into the core: anything it throws, other than the API's own
 * NotLeaderError and ProposalRejectedError, is a core error named with the node and the call.
 */
export function callCore<T>(nodeId: string, what: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    if (err instanceof SafetyViolation || err instanceof NotLeaderError || err instanceof ProposalRejectedError) throw err;
    const e = err as Error;
    const where = (e.stack ?? '').split('\n').slice(1, 4).map((line) => line.trim()).join(' < ');
    throw new SafetyViolation('core-error', `${nodeId}.${what} threw ${e.name}: ${e.message} (at ${where})`);
  }
}

interface ReadyInFlight {
  ready: Ready;
  persistAtStep: number;
  /** Applying comes after the write, possibly steps later: a crash in between leaves the machine behind the store. */
  applyAtStep: number;
  persisted: boolean;
}

export class SimNode {
  core: SimCore | null = null;
  /** Bumped on every start; messages and snapshot reports carry it so a restarted core is not told about its predecessor's sends. */
  incarnation = 0;
  readonly store: SimDurableStore;
  readonly sm: SimStateMachine;
  private inFlight: ReadyInFlight | null = null;
  readiesHandled = 0;
  snapshotsRestored = 0;
  /** Persists that replaced or dropped stored entries beyond a snapshot (a follower's divergent tail). */
  logOverwrites = 0;

  constructor(
    readonly id: string,
    private readonly world: NodeWorld,
    storeMembership: Membership,
    clusterBootstrap: Membership,
    private readonly configOverrides: Partial<RaftConfig>,
    private readonly coreFactory: CoreFactory,
  ) {
    this.store = new SimDurableStore(id, storeMembership);
    this.sm = new SimStateMachine(id, clusterBootstrap);
  }

  isUp(): boolean {
    return this.core !== null;
  }

  hasReadyInFlight(): boolean {
    return this.inFlight !== null;
  }

  /**
   * Starts (or restarts) from durable state only. The state machine is
   * durable with its applied index, so `applied` is the machine's own.
   */
  start(coreSeed: number): void {
    if (this.core !== null) throw new Error(`sim: ${this.id} is already running`);
    const config = withDefaults({ ...this.configOverrides, id: this.id, random: seededRandom(coreSeed) });
    // A crash between writing a received snapshot and restoring it leaves the machine behind: restore from storage first.
    if (this.sm.applied < this.store.snapshot.metadata.index) this.restoreSnapshot(this.store.snapshot, this.store.hardState.term);
    const initial = this.store.initialState(this.sm.applied);
    this.core = callCore(this.id, 'constructor', () => this.coreFactory(config, initial));
    this.incarnation++;
  }

  /** Loses the core's memory and the Ready in flight (its write never completed). */
  crash(): void {
    this.core = null;
    this.inFlight = null;
  }

  /**
   * Takes a Ready if none is in flight. Its write completes `persistDelaySteps`
   * from now and its committed entries are applied `applyDelaySteps` after
   * that. Returns true if a Ready was taken.
   */
  pumpReady(persistDelaySteps: number, applyDelaySteps: number): boolean {
    const core = this.core;
    if (core === null || this.inFlight !== null) return false;
    if (!callCore(this.id, 'hasReady', () => core.hasReady())) return false;
    const ready = callCore(this.id, 'ready', () => core.ready());
    const now = this.world.now();
    if (ready.softState !== undefined && ready.softState.role === 'leader') this.world.onLeaderSeen(this, ready.softState.term);
    if (this.world.trace.enabled) this.world.trace.record(now, `${this.id} ready ${describeReady(ready)} persist+${persistDelaySteps} apply+${applyDelaySteps}`);
    for (const m of ready.messages) this.world.send(this, m);
    this.inFlight = { ready, persistAtStep: now + persistDelaySteps, applyAtStep: now + persistDelaySteps + applyDelaySteps, persisted: false };
    this.completeDueWork();
    return true;
  }

  /** Completes the write and then the applying of the Ready in flight, as far as they are due. Returns true if anything happened. */
  completeDueWork(): boolean {
    const inFlight = this.inFlight;
    const now = this.world.now();
    if (inFlight === null) return false;
    let progressed = false;
    if (!inFlight.persisted && inFlight.persistAtStep <= now) {
      this.completePersist(inFlight);
      progressed = true;
    }
    if (inFlight.persisted && inFlight.applyAtStep <= now) {
      this.completeApply(inFlight);
      progressed = true;
    }
    return progressed;
  }

  private completePersist(inFlight: ReadyInFlight): void {
    const rd = inFlight.ready;
    const outcome = this.store.persist({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, membership: rd.membership });
    if (outcome.overwrittenFrom !== undefined) this.logOverwrites++;
    if (outcome.overwrittenFrom !== undefined && outcome.overwrittenFrom <= this.sm.applied) {
      throw new SafetyViolation('state-machine-safety', `${this.id} overwrote its log from ${outcome.overwrittenFrom}, but its state machine applied up to ${this.sm.applied}`);
    }
    if (rd.entries.length > 0) this.world.checker.observeDurableEntries(this.id, rd.entries, this.store);
    inFlight.persisted = true;
    for (const m of rd.messagesAfterPersist) this.world.send(this, m);
  }

  private completeApply(inFlight: ReadyInFlight): void {
    const core = this.core;
    if (core === null) throw new Error(`sim: ${this.id} applies a Ready while down`);
    const rd = inFlight.ready;
    const applierTerm = this.store.hardState.term;
    if (rd.snapshot !== undefined) this.restoreSnapshot(rd.snapshot, applierTerm);
    for (const entry of rd.committedEntries) {
      const opId = this.sm.apply(entry);
      this.world.checker.observeApply(this.id, entry, this.sm.chain, applierTerm);
      this.world.onApplied(this, entry, opId);
    }
    for (const rs of rd.readStates) this.world.onReadState(this, rs);
    this.inFlight = null;
    this.readiesHandled++;
    callCore(this.id, 'advance', () => core.advance(rd));
  }

  private restoreSnapshot(snapshot: Snapshot, applierTerm: number): void {
    if (snapshot.metadata.index < this.sm.applied) {
      throw new SafetyViolation('state-machine-safety', `${this.id} was handed snapshot ${snapshot.metadata.index} to restore, behind its applied ${this.sm.applied}`);
    }
    this.sm.restore(snapshot);
    this.snapshotsRestored++;
    this.world.checker.observeSnapshotRestore(this.id, snapshot.metadata.index, snapshot.metadata.term, this.sm.chain, applierTerm);
    if (this.world.trace.enabled) this.world.trace.record(this.world.now(), `${this.id} restored snapshot ${snapshot.metadata.index}@${snapshot.metadata.term}`);
  }

  /**
   * Takes a local snapshot at the applied index and compacts: the store
   * first (durable), then the core. Keeps `trailingEntries` entries behind it
   * so slightly lagging followers still get entries. Returns false if there is
   * nothing new to snapshot.
   */
  takeLocalSnapshot(trailingEntries: number): boolean {
    const core = this.core;
    if (core === null) return false;
    const index = this.sm.applied;
    if (index <= this.store.snapshot.metadata.index) return false;
    const metadata = { index, term: this.sm.appliedTerm, membership: this.sm.membership };
    const compactIndex = Math.max(0, index - trailingEntries);
    this.store.saveLocalSnapshot({ metadata, data: this.sm.snapshotData() }, compactIndex);
    callCore(this.id, 'compact', () => core.compact(this.store.snapshot.metadata, compactIndex));
    if (this.world.trace.enabled) this.world.trace.record(this.world.now(), `${this.id} snapshot at ${index}@${metadata.term}, compacted to ${compactIndex}`);
    return true;
  }
}

function describeReady(rd: Ready): string {
  const parts: string[] = [];
  if (rd.softState) parts.push(`soft=${rd.softState.role}/t${rd.softState.term}/L=${rd.softState.leaderId || '-'}`);
  if (rd.hardState) parts.push(`hs=t${rd.hardState.term}/v=${rd.hardState.vote || '-'}/c${rd.hardState.commit}`);
  if (rd.entries.length) parts.push(`ents=${rd.entries[0].index}..${rd.entries[rd.entries.length - 1].index}@${rd.entries[rd.entries.length - 1].term}`);
  if (rd.snapshot) parts.push(`snap=${rd.snapshot.metadata.index}@${rd.snapshot.metadata.term}`);
  if (rd.committedEntries.length) parts.push(`apply=${rd.committedEntries[0].index}..${rd.committedEntries[rd.committedEntries.length - 1].index}`);
  if (rd.membership) parts.push(`members=${rd.membership.members.map((m) => (m.role === 'learner' ? `${m.id}(L)` : m.id)).join(',')}`);
  if (rd.readStates.length) parts.push(`reads=${rd.readStates.length}`);
  parts.push(`msgs=${rd.messages.length}+${rd.messagesAfterPersist.length}`);
  return parts.join(' ');
}
