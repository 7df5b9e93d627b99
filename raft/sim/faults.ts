/**
 * Fault injection for one run, all drawn from the run's seeded stream:
 * crashes and restarts, symmetric and one-way partitions, slow disks, local
 * snapshots, membership changes and leadership transfers. Decides what
 * happens; the simulation carries it out. Stops injecting once healed.
 */
import { MembershipChange, MembershipChangeType, NotLeaderError, ProposalRejectedError } from '../core/types';
import { callCore } from './sim-node';
import type { Simulation } from './simulation';

/** Voters never drop below this through the simulator's own removals. */
const MIN_VOTERS = 3;

export interface FaultStats {
  crashes: number;
  restarts: number;
  partitions: number;
  snapshots: number;
  membershipProposed: number;
  membershipRefused: number;
  transfersRequested: number;
}

export class FaultInjector {
  private readonly restartAt = new Map<string, number>();
  private partitionHealAt: number | null = null;
  /** Nodes ever proposed for removal: never added back under the same id. */
  private readonly retired = new Set<string>();
  private healed = false;
  readonly stats: FaultStats = { crashes: 0, restarts: 0, partitions: 0, snapshots: 0, membershipProposed: 0, membershipRefused: 0, transfersRequested: 0 };

  constructor(private readonly sim: Simulation) {}

  /** How long the next Ready's write takes, in steps. */
  persistDelaySteps(): number {
    const c = this.sim.config;
    if (this.healed) return this.sim.random.int(0, Math.min(2, c.persistDelayStepsMax));
    if (this.sim.random.chance(c.slowDiskRate)) return this.sim.random.int(0, c.slowDiskStepsMax);
    return this.sim.random.int(0, c.persistDelayStepsMax);
  }

  /** How long after its write a Ready's committed entries are applied, in steps. */
  applyDelaySteps(): number {
    if (this.healed || !this.sim.random.chance(this.sim.config.slowApplyRate)) return 0;
    return this.sim.random.int(1, 10);
  }

  step(): void {
    const now = this.sim.now();
    const c = this.sim.config;
    const r = this.sim.random;
    for (const [id, at] of this.restartAt) {
      if (at <= now) {
        this.restartAt.delete(id);
        this.sim.restartNode(id);
        this.stats.restarts++;
      }
    }
    for (const node of this.sim.nodes.values()) {
      if (node.isUp() && r.chance(c.snapshotRatePerStep) && node.takeLocalSnapshot(r.int(0, c.trailingEntriesMax))) this.stats.snapshots++;
    }
    if (this.healed) return;
    if (r.chance(c.crashRatePerStep) && this.restartAt.size < c.maxDownNodes) {
      const up = this.sim.upNodes();
      if (up.length > 0) {
        const victim = r.pick(up);
        this.sim.crashNode(victim.id);
        this.restartAt.set(victim.id, now + r.int(c.restartAfterSteps[0], c.restartAfterSteps[1]));
        this.stats.crashes++;
      }
    }
    if (this.partitionHealAt !== null && now >= this.partitionHealAt) {
      this.sim.network.healAll();
      this.partitionHealAt = null;
      this.sim.note('partition healed');
    } else if (this.partitionHealAt === null && r.chance(c.partitionRatePerStep)) {
      this.partition();
      this.partitionHealAt = now + r.int(c.partitionSteps[0], c.partitionSteps[1]);
    }
    if (r.chance(c.membershipChangeRatePerStep)) this.changeMembership();
    if (r.chance(c.transferRatePerStep)) this.transferLeadership();
  }

  /** Heals every fault and restarts every crashed node; no new faults afterwards. */
  healAll(): void {
    this.healed = true;
    for (const id of [...this.restartAt.keys()]) {
      this.sim.restartNode(id);
      this.stats.restarts++;
    }
    this.restartAt.clear();
    this.sim.network.healAll();
    this.partitionHealAt = null;
  }

  private partition(): void {
    const r = this.sim.random;
    const ids = [...this.sim.nodes.keys()];
    const leader = this.sim.currentLeader();
    const focus = leader !== undefined && r.chance(0.5) ? leader.id : r.pick(ids);
    this.stats.partitions++;
    if (r.chance(this.sim.config.asymmetricShare)) {
      const others = ids.filter((id) => id !== focus);
      const kind = r.int(0, 2);
      if (kind === 0) for (const o of others) this.sim.network.cut(focus, o); // it hears but is not heard
      else if (kind === 1) for (const o of others) this.sim.network.cut(o, focus); // it is heard but hears nothing
      else for (let i = r.int(1, ids.length); i > 0; i--) this.sim.network.cut(r.pick(ids), r.pick(ids));
    } else {
      const shuffled = ids.filter((id) => id !== focus);
      r.shuffleInPlace(shuffled);
      const side = [focus, ...shuffled.slice(0, r.int(0, Math.floor(ids.length / 2) - 1))];
      this.sim.network.partition(side, ids.filter((id) => !side.includes(id)));
    }
    this.sim.note(`partition: ${this.sim.network.describeCuts()}`);
  }

  private changeMembership(): void {
    const leader = this.sim.currentLeader();
    const core = leader?.core;
    if (leader === undefined || core === undefined || core === null) return;
    const r = this.sim.random;
    const members = callCore(leader.id, 'status', () => core.status()).membership.members;
    const voters = members.filter((m) => m.role === 'voter').map((m) => m.id);
    const learners = members.filter((m) => m.role === 'learner').map((m) => m.id);
    const addable = this.sim.spareIds.filter((id) => !this.retired.has(id) && !members.some((m) => m.id === id));
    const options: MembershipChange[] = [];
    for (const id of learners) {
      options.push({ type: MembershipChangeType.PromoteLearner, id, address: '' }, { type: MembershipChangeType.PromoteLearner, id, address: '' });
      options.push({ type: MembershipChangeType.RemoveMember, id, address: '' });
    }
    if (addable.length > 0 && members.length < this.sim.config.nodeCount + 2) {
      const id = r.pick(addable);
      options.push({ type: MembershipChangeType.AddLearner, id, address: this.sim.addressOf(id) });
      options.push({ type: MembershipChangeType.AddVoter, id, address: this.sim.addressOf(id) });
    }
    if (voters.length > MIN_VOTERS) for (const id of voters) options.push({ type: MembershipChangeType.RemoveMember, id, address: '' });
    if (options.length === 0) return;
    const change = r.pick(options);
    if (change.type === MembershipChangeType.AddLearner || change.type === MembershipChangeType.AddVoter) this.sim.ensureNodeStarted(change.id);
    try {
      const ticket = callCore(leader.id, 'proposeMembershipChange', () => core.proposeMembershipChange(change));
      this.stats.membershipProposed++;
      if (change.type === MembershipChangeType.RemoveMember) this.retired.add(change.id);
      this.sim.note(`${leader.id} proposed ${MembershipChangeType[change.type]} ${change.id} -> ${ticket?.index}@${ticket?.term}`);
    } catch (err) {
      if (!(err instanceof NotLeaderError) && !(err instanceof ProposalRejectedError)) throw err;
      this.stats.membershipRefused++;
      this.sim.note(`${leader.id} refused ${MembershipChangeType[change.type]} ${change.id}: ${err.message}`);
    }
  }

  private transferLeadership(): void {
    const leader = this.sim.currentLeader();
    const leaderCore = leader?.core;
    if (leader === undefined || leaderCore === undefined || leaderCore === null) return;
    const r = this.sim.random;
    const voters = callCore(leader.id, 'status', () => leaderCore.status()).membership.members.filter((m) => m.role === 'voter' && m.id !== leader.id);
    if (voters.length === 0) return;
    const target = r.pick(voters).id;
    // Sometimes ask a follower, which forwards the request to the leader.
    const asked = r.chance(0.3) ? r.pick(this.sim.upNodes()) : leader;
    const core = asked.core;
    if (core === null) return;
    try {
      callCore(asked.id, 'transferLeadership', () => core.transferLeadership(target));
      this.stats.transfersRequested++;
      this.sim.note(`transfer leadership to ${target} asked of ${asked.id}`);
    } catch (err) {
      if (!(err instanceof NotLeaderError) && !(err instanceof ProposalRejectedError)) throw err;
    }
  }
}
