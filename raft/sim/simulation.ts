/**
 * One deterministic simulated run: nodes running the real RaftCore, the
 * seeded network, fault injection and clients, stepped in logical time; then
 * every fault healed and the cluster given time to settle; then the final
 * checks. Owns the step order and the snapshot "transport". A seed fully
 * determines the run: never Math.random, Date, or unordered iteration.
 */
import { Entry, Membership, Message, MessageType, ReadState } from '../core/types';
import { FinalMemberState, SafetyChecker, SafetyViolation } from './checker';
import { FaultInjector, FaultStats } from './faults';
import { corruptMessage } from './garbage';
import { NO_NETWORK_FAULTS, NetworkStats, SimNetwork, cloneMessage } from './network';
import { SimRandom } from './random';
import { MAX_DELAY_STEPS, SPARE_NODE_COUNT, SimRunConfig, drawRunConfig } from './run-config';
import { CoreFactory, NodeWorld, SimNode, callCore, realCoreFactory } from './sim-node';
import { SimTrace, formatMessage } from './trace';
import { Workload, WorkloadStats } from './workload';

export interface SimOptions {
  seed: number;
  nodeCount: number;
  steps: number;
  /** Keep a text trace of the last traceLines events (slower). */
  trace?: boolean;
  traceLines?: number;
  /** Tests only: replace the real core. */
  coreFactory?: CoreFactory;
  /** Tests only: adjust the drawn config (e.g. no faults). */
  adjustConfig?: (config: SimRunConfig) => SimRunConfig;
}

export interface SimStats {
  network: NetworkStats;
  faults: FaultStats;
  workload: WorkloadStats;
  leaderTerms: number;
  maxCommittedIndex: number;
  settleSteps: number;
  snapshotSendsRefused: number;
  snapshotsInstalled: number;
  logOverwrites: number;
  malformedDelivered: number;
}

export interface SimResult {
  ok: boolean;
  config: SimRunConfig;
  violation?: SafetyViolation | Error;
  /** The step at which the run stopped (failure) or ended. */
  stoppedAtStep: number;
  stats: SimStats;
  /** A digest of the final state of every node: equal for two runs of one seed. */
  fingerprint: string;
  traceLines: string[];
  traceFingerprint: string;
}

/** Ready handling repeats at most this many rounds per step (a zero-delay persist can free the next Ready). */
const MAX_READY_ROUNDS_PER_STEP = 8;
const MAX_IN_FLIGHT_MESSAGES = 50_000;
/** Settling is checked every this many steps. */
const SETTLE_CHECK_EVERY_STEPS = 10;

interface PendingSnapshotReport {
  atStep: number;
  from: string;
  incarnation: number;
  to: string;
  ok: boolean;
}

interface ObservedStatus {
  role: string;
  term: number;
}

export class Simulation implements NodeWorld {
  readonly config: SimRunConfig;
  readonly random: SimRandom;
  readonly network: SimNetwork;
  readonly checker = new SafetyChecker();
  readonly trace: SimTrace;
  readonly nodes = new Map<string, SimNode>();
  readonly bootstrapIds: string[];
  readonly spareIds: string[];
  readonly workload: Workload;
  readonly faults: FaultInjector;
  private readonly bootstrapMembership: Membership;
  private readonly coreFactory: CoreFactory;
  private readonly tickPhase = new Map<string, number>();
  private readonly observed = new Map<string, ObservedStatus>();
  private snapshotReports: PendingSnapshotReport[] = [];
  private snapshotSendsRefused = 0;
  private garbageDelivered = 0;
  private currentStep = 0;
  private settleSteps = 0;

  constructor(options: SimOptions) {
    const drawn = drawRunConfig(options.seed, options.nodeCount, options.steps);
    this.config = options.adjustConfig ? options.adjustConfig(drawn) : drawn;
    this.random = new SimRandom(options.seed);
    this.trace = new SimTrace(options.trace === true, options.traceLines ?? 200);
    this.coreFactory = options.coreFactory ?? realCoreFactory;
    this.network = new SimNetwork(this.random, this.config.network, MAX_DELAY_STEPS, MAX_IN_FLIGHT_MESSAGES);
    this.bootstrapIds = Array.from({ length: this.config.nodeCount }, (_, i) => `n${i + 1}`);
    this.spareIds = Array.from({ length: SPARE_NODE_COUNT }, (_, i) => `n${this.config.nodeCount + i + 1}`);
    this.bootstrapMembership = { members: this.bootstrapIds.map((id) => ({ id, address: this.addressOf(id), role: 'voter' as const })) };
    for (const id of this.bootstrapIds) this.createNode(id, this.bootstrapMembership);
    this.workload = new Workload(this);
    this.faults = new FaultInjector(this);
  }

  addressOf(id: string): string {
    return `sim-${id}:1`;
  }

  now(): number {
    return this.currentStep;
  }

  note(line: string): void {
    if (this.trace.enabled) this.trace.record(this.currentStep, line);
  }

  private createNode(id: string, storeMembership: Membership): SimNode {
    const node = new SimNode(id, this, storeMembership, this.bootstrapMembership, this.config.raft, this.coreFactory);
    this.nodes.set(id, node);
    this.tickPhase.set(id, this.random.int(0, this.config.tickEverySteps - 1));
    node.start(this.random.deriveSeed());
    this.note(`${id} started (new, ${storeMembership.members.length} members known)`);
    return node;
  }

  /** A node about to be added: started empty, with no membership, waiting for the leader. */
  ensureNodeStarted(id: string): void {
    if (!this.nodes.has(id)) this.createNode(id, { members: [] });
  }

  crashNode(id: string): void {
    const node = this.requireNode(id);
    node.crash();
    this.observed.delete(id);
    this.note(`${id} CRASHED (unsynced writes lost)`);
  }

  restartNode(id: string): void {
    const node = this.requireNode(id);
    if (node.isUp()) return;
    node.start(this.random.deriveSeed());
    this.note(`${id} restarted from disk: term=${node.store.hardState.term} vote=${node.store.hardState.vote || '-'} commit=${node.store.hardState.commit} last=${node.store.lastIndex()} snap=${node.store.snapshot.metadata.index} applied=${node.sm.applied}`);
  }

  private requireNode(id: string): SimNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`sim: no node ${id}`);
    return node;
  }

  upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.isUp());
  }

  /** The up node that last reported itself leader in the highest term, if any. */
  currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const [id, status] of this.observed) {
      if (status.role === 'leader' && status.term > bestTerm) {
        const node = this.nodes.get(id);
        if (node?.isUp()) {
          best = node;
          bestTerm = status.term;
        }
      }
    }
    return best;
  }

  // ---------------------------------------------------------------- NodeWorld

  send(from: SimNode, message: Message): void {
    if (message.to === from.id) throw new SafetyViolation('core-error', `${from.id} sent ${MessageType[message.type]} to itself`);
    let outgoing = message;
    let extraDelaySteps = 0;
    if (message.type === MessageType.Snap) {
      const meta = message.snapshot?.metadata;
      const stored = from.store.snapshot;
      if (meta === undefined || stored.metadata.index !== meta.index || stored.metadata.term !== meta.term) {
        // The transport can only stream what storage holds; the core hears it failed.
        this.snapshotSendsRefused++;
        this.note(`${from.id} snapshot send to ${message.to} refused: storage holds ${stored.metadata.index}@${stored.metadata.term}, message wants ${meta?.index}@${meta?.term}`);
        this.scheduleSnapshotReport(from, message.to, false, 1);
        return;
      }
      outgoing = { ...message, snapshot: { metadata: meta, data: stored.data } };
      extraDelaySteps = this.random.int(0, 5);
    }
    const sent = this.network.send(this.currentStep, outgoing, from.incarnation, extraDelaySteps);
    if (this.trace.enabled) this.trace.record(this.currentStep, `send ${formatMessage(outgoing)}${sent ? '' : ' LOST'}`);
    if (!sent && message.type === MessageType.Snap) this.scheduleSnapshotReport(from, message.to, false, this.random.int(1, 10));
  }

  private scheduleSnapshotReport(from: SimNode, to: string, ok: boolean, afterSteps: number): void {
    this.snapshotReports.push({ atStep: this.currentStep + afterSteps, from: from.id, incarnation: from.incarnation, to, ok });
  }

  onApplied(node: SimNode, entry: Entry, opId: string | undefined): void {
    this.workload.onApplied(node, entry, opId);
  }

  onReadState(node: SimNode, readState: ReadState): void {
    this.workload.onReadState(node, readState);
  }

  onLeaderSeen(node: SimNode, term: number): void {
    this.checker.observeLeader(node.id, term);
  }

  // ---------------------------------------------------------------- the run

  run(): SimResult {
    let violation: SafetyViolation | Error | undefined;
    try {
      for (; this.currentStep < this.config.steps; this.currentStep++) this.stepOnce(true);
      this.note(`=== healing every fault; settling (a stall of ${this.config.settleStallStepsMax} steps fails) ===`);
      this.faults.healAll();
      this.network.faults = NO_NETWORK_FAULTS;
      this.workload.markHealed();
      this.settle();
      this.finalCheck();
    } catch (err) {
      violation = err as Error;
      this.note(`!!! ${violation.message}`);
    }
    return {
      ok: violation === undefined,
      config: this.config,
      violation,
      stoppedAtStep: this.currentStep,
      stats: {
        network: { ...this.network.stats },
        faults: { ...this.faults.stats },
        workload: { ...this.workload.stats },
        leaderTerms: this.countLeaderTerms(),
        maxCommittedIndex: this.checker.maxCommittedIndex(),
        settleSteps: this.settleSteps,
        snapshotSendsRefused: this.snapshotSendsRefused,
        snapshotsInstalled: this.sumOverNodes((n) => n.snapshotsRestored),
        logOverwrites: this.sumOverNodes((n) => n.logOverwrites),
        malformedDelivered: this.garbageDelivered,
      },
      fingerprint: this.fingerprint(),
      traceLines: this.trace.lastLines(),
      traceFingerprint: this.trace.fingerprint(),
    };
  }

  private sumOverNodes(count: (node: SimNode) => number): number {
    let total = 0;
    for (const node of this.nodes.values()) total += count(node);
    return total;
  }

  /** Steps the healed cluster until it settles; throws a liveness violation on a stall or when out of steps. */
  private settle(): void {
    let problem: string | undefined = 'not checked yet';
    let lastProgressStep = this.currentStep;
    let appliedTotal = this.appliedTotal();
    for (let s = 1; s <= this.config.settleStepsMax; s++, this.currentStep++) {
      this.stepOnce(false);
      this.settleSteps = s;
      if (s % SETTLE_CHECK_EVERY_STEPS !== 0) continue;
      problem = this.settleProblem();
      if (problem === undefined) return;
      const total = this.appliedTotal();
      if (total > appliedTotal) {
        appliedTotal = total;
        lastProgressStep = this.currentStep;
      } else if (this.currentStep - lastProgressStep >= this.config.settleStallStepsMax) {
        throw new SafetyViolation('liveness', `nothing applied anywhere for ${this.config.settleStallStepsMax} steps after healing (${s} steps in): ${problem}`);
      }
    }
    throw new SafetyViolation('liveness', `not settled ${this.config.settleStepsMax} steps after healing: ${problem}`);
  }

  private appliedTotal(): number {
    return this.sumOverNodes((n) => n.sm.applied);
  }

  private countLeaderTerms(): number {
    let count = 0;
    for (let t = 1; t <= this.maxObservedTerm(); t++) if (this.checker.leaderOfTerm(t) !== undefined) count++;
    return count;
  }

  private maxObservedTerm(): number {
    let max = 0;
    for (const node of this.nodes.values()) max = Math.max(max, node.store.hardState.term);
    return max;
  }

  private stepOnce(faulty: boolean): void {
    const now = this.currentStep;
    if (faulty) this.faults.step();
    else if (now % SETTLE_CHECK_EVERY_STEPS === 0) this.faults.step(); // healed: only local snapshots
    const order = [...this.nodes.values()];
    this.random.shuffleInPlace(order);
    for (const node of order) {
      const core = node.core;
      if (core === null) continue;
      if ((now + (this.tickPhase.get(node.id) ?? 0)) % this.config.tickEverySteps !== 0) continue;
      if (faulty && this.random.chance(this.config.clockSkipRate)) continue; // a slow clock
      callCore(node.id, 'tick', () => core.tick());
      if (faulty && this.random.chance(this.config.clockSkipRate)) callCore(node.id, 'tick', () => core.tick()); // a fast one
    }
    this.deliverDue(now);
    this.workload.step();
    for (let round = 0; round < MAX_READY_ROUNDS_PER_STEP; round++) {
      let progressed = false;
      for (const node of order) {
        if (node.completeDueWork()) progressed = true;
        if (!node.hasReadyInFlight() && node.isUp() && node.pumpReady(this.faults.persistDelaySteps(), this.faults.applyDelaySteps())) progressed = true;
      }
      if (!progressed) break;
    }
    this.deliverSnapshotReports(now);
    this.observeRoles();
  }

  private deliverDue(now: number): void {
    const { deliver, cut } = this.network.takeDue(now);
    for (const item of cut) {
      const m = item.message;
      if (this.trace.enabled) this.trace.record(now, `cut  ${formatMessage(m)}`);
      const sender = this.nodes.get(m.from);
      if (sender === undefined || sender.incarnation !== item.senderIncarnation) continue;
      if (m.type === MessageType.Snap) this.scheduleSnapshotReport(sender, m.to, false, 1);
      else if (sender.core !== null && this.random.chance(this.config.reportUnreachableRate)) {
        const core = sender.core;
        callCore(sender.id, 'reportUnreachable', () => core.reportUnreachable(m.to));
      }
    }
    for (const item of deliver) {
      const m = item.message;
      const dest = this.nodes.get(m.to);
      const sender = this.nodes.get(m.from);
      const core = dest?.core ?? null;
      if (core === null) {
        if (this.trace.enabled) this.trace.record(now, `down ${formatMessage(m)}`);
        if (m.type === MessageType.Snap && sender !== undefined && sender.incarnation === item.senderIncarnation) this.scheduleSnapshotReport(sender, m.to, false, 1);
        continue;
      }
      if (this.trace.enabled) this.trace.record(now, `recv ${formatMessage(m)}`);
      if (this.random.chance(this.config.garbageRate)) {
        // A damaged twin arrives first: the core must drop it, not crash and not trust it.
        const garbage = corruptMessage(cloneMessage(m), this.random);
        this.garbageDelivered++;
        callCore(m.to, `step(malformed copy of ${MessageType[m.type]} from ${m.from})`, () => core.step(garbage));
      }
      callCore(m.to, `step(${MessageType[m.type]} from ${m.from})`, () => core.step(m));
      if (m.type === MessageType.Snap && sender !== undefined && sender.incarnation === item.senderIncarnation) this.scheduleSnapshotReport(sender, m.to, true, 1);
    }
  }

  private deliverSnapshotReports(now: number): void {
    if (this.snapshotReports.length === 0) return;
    const due = this.snapshotReports.filter((r) => r.atStep <= now);
    this.snapshotReports = this.snapshotReports.filter((r) => r.atStep > now);
    for (const report of due) {
      const node = this.nodes.get(report.from);
      const core = node?.core ?? null;
      if (node === undefined || core === null || node.incarnation !== report.incarnation) continue;
      this.note(`${report.from} snapshot to ${report.to} ${report.ok ? 'delivered' : 'FAILED'}`);
      callCore(report.from, 'reportSnapshot', () => core.reportSnapshot(report.to, report.ok));
    }
  }

  private observeRoles(): void {
    for (const node of this.nodes.values()) {
      const core = node.core;
      if (core === null) continue;
      const status = callCore(node.id, 'status', () => core.status());
      const previous = this.observed.get(node.id);
      if (previous === undefined || previous.role !== status.role || previous.term !== status.term) {
        this.observed.set(node.id, { role: status.role, term: status.term });
        this.note(`${node.id} is ${status.role} in term ${status.term} (commit ${status.commit}, last ${status.lastIndex})`);
      }
      if (status.role === 'leader') this.checker.observeLeader(node.id, status.term);
    }
  }

  /** Why the healed cluster is not settled yet, or undefined when it is. */
  private settleProblem(): string | undefined {
    const leader = this.currentLeader();
    if (leader === undefined || leader.core === null) return 'no leader';
    const status = leader.core.status();
    for (const node of this.upNodes()) {
      const other = this.observed.get(node.id);
      if (other !== undefined && other.term > status.term && status.membership.members.some((m) => m.id === node.id)) {
        return `leader ${leader.id} is in term ${status.term} but member ${node.id} is in term ${other.term}`;
      }
    }
    if (!this.workload.everyClientAckedAfterHeal()) return 'some client has not had a write acknowledged since healing';
    if (status.commit !== status.lastIndex) return `leader ${leader.id} has uncommitted entries (commit ${status.commit}, last ${status.lastIndex})`;
    for (const member of status.membership.members) {
      const node = this.nodes.get(member.id);
      if (node === undefined || !node.isUp()) return `member ${member.id} is not running`;
      if (node.sm.applied < this.checker.maxCommittedIndex()) return `member ${member.id} applied ${node.sm.applied} < ${this.checker.maxCommittedIndex()}`;
    }
    return undefined;
  }

  private finalCheck(): void {
    const leader = this.currentLeader();
    const status = leader?.core?.status();
    const liveMembers: FinalMemberState[] = [];
    if (leader !== undefined && status !== undefined) {
      const smMembers = JSON.stringify(leader.sm.membership.members.map((m) => [m.id, m.role]));
      const coreMembers = JSON.stringify(status.membership.members.map((m) => [m.id, m.role]));
      if (smMembers !== coreMembers) {
        throw new SafetyViolation('state-machine-safety', `leader ${leader.id}'s membership ${coreMembers} differs from the one its applied log gives ${smMembers}`);
      }
      for (const member of status.membership.members) {
        const node = this.requireNode(member.id);
        liveMembers.push({ id: node.id, applied: node.sm.applied, ops: node.sm.ops });
      }
    }
    this.checker.finalCheck({
      leaderId: leader?.id ?? '',
      liveMembers,
      acknowledged: this.workload.acknowledged,
      logs: [...this.nodes.values()].map((n) => ({ id: n.id, log: n.store })),
    });
  }

  private fingerprint(): string {
    const parts: string[] = [];
    for (const node of this.nodes.values()) {
      const hs = node.store.hardState;
      parts.push(`${node.id}:${node.sm.applied}:${node.sm.chain}:${hs.term}:${hs.vote}:${hs.commit}:${node.store.lastIndex()}:${node.readiesHandled}`);
    }
    const s = this.network.stats;
    parts.push(`net:${s.sent}/${s.delivered}/${s.lost}/${s.duplicated}/${s.cutByPartition}`, `step:${this.currentStep}`);
    return parts.join(' ');
  }
}

/** Runs one seed. */
export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(options).run();
}
