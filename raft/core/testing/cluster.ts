/**
 * A synchronous, in-memory cluster of RaftCores for the core's unit tests:
 * each node's Ready is persisted to a plain object and its messages are
 * delivered at once, unless the link is cut. No randomness beyond the seeded
 * one, no time beyond tick(). (The fault-injecting simulator is raft/sim/.)
 */
import { RaftConfig, seededRandom, withDefaults } from '../config';
import { InitialState, emptyInitialState } from '../api';
import { RaftCore } from '../raft';
import { Entry, EntryType, HardState, Member, Membership, Message, MessageType, NodeId, ReadState, Snapshot } from '../types';

export interface DurableState {
  hardState: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  membership: Membership;
}

export function membershipOf(ids: NodeId[], learners: NodeId[] = []): Membership {
  const members: Member[] = [...ids.map((id) => ({ id, address: `addr-${id}`, role: 'voter' as const })), ...learners.map((id) => ({ id, address: `addr-${id}`, role: 'learner' as const }))];
  members.sort((a, b) => (a.id < b.id ? -1 : 1));
  return { members };
}

const MAX_STABILIZE_ROUNDS = 10_000;

export class TestCluster {
  readonly cores = new Map<NodeId, RaftCore>();
  readonly durable = new Map<NodeId, DurableState>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly appliedIndex = new Map<NodeId, number>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** Every message handed out, in order, for assertions on traffic. */
  readonly sent: Message[] = [];
  /** Links that drop messages, as "from->to". */
  private readonly cut = new Set<string>();
  /** Nodes that do not handle their Readies (their persist "hangs"). */
  readonly stalled = new Set<NodeId>();
  private readonly configOverrides: Partial<RaftConfig>;

  constructor(ids: NodeId[], configOverrides: Partial<RaftConfig> = {}, learners: NodeId[] = []) {
    this.configOverrides = configOverrides;
    const membership = membershipOf(ids, learners);
    for (const id of [...ids, ...learners]) this.addNode(id, emptyInitialState(membership));
  }

  config(id: NodeId, seed = 1): RaftConfig {
    return withDefaults({ electionTicks: 10, heartbeatTicks: 1, ...this.configOverrides, id, random: seededRandom(seed + id.charCodeAt(id.length - 1)) });
  }

  addNode(id: NodeId, initial: InitialState): RaftCore {
    const core = new RaftCore(this.config(id), initial);
    this.cores.set(id, core);
    this.durable.set(id, { hardState: { ...initial.hardState }, entries: [...initial.entries], membership: initial.membership });
    if (!this.applied.has(id)) this.applied.set(id, []);
    this.readStates.set(id, []);
    return core;
  }

  /** A node that joins later: empty log, no membership, waits for the leader. */
  addBlankNode(id: NodeId): RaftCore {
    return this.addNode(id, emptyInitialState({ members: [] }));
  }

  /** Rebuilds a node from what it made durable, as after a crash. The state machine is rebuilt by re-applying. */
  restart(id: NodeId): RaftCore {
    const d = this.durable.get(id)!;
    const snapshotMeta = d.snapshot?.metadata ?? { index: 0, term: 0, membership: d.membership };
    this.applied.set(id, this.applied.get(id)!.filter((e) => e.index <= snapshotMeta.index));
    this.appliedIndex.set(id, snapshotMeta.index);
    const core = new RaftCore(this.config(id, 7), { hardState: { ...d.hardState }, membership: d.membership, snapshot: snapshotMeta, entries: [...d.entries], applied: snapshotMeta.index });
    this.cores.set(id, core);
    return core;
  }

  core(id: NodeId): RaftCore {
    const core = this.cores.get(id);
    if (core === undefined) throw new Error(`no node ${id}`);
    return core;
  }

  isolate(id: NodeId): void {
    for (const other of this.cores.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}->${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.core(id).tick();
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) for (const core of this.cores.values()) core.tick();
  }

  /** Campaigns on `id` and runs the cluster until quiet. */
  elect(id: NodeId): void {
    this.core(id).campaign();
    this.stabilize();
  }

  /** Ticks only `ids` until one of them leads (the others stay silent); returns the leader. */
  electAmong(ids: NodeId[], maxTicks = 200): NodeId {
    for (let i = 0; i < maxTicks; i++) {
      const leader = ids.find((id) => this.core(id).status().role === 'leader');
      if (leader !== undefined) return leader;
      for (const id of ids) this.core(id).tick();
      this.stabilize();
    }
    throw new Error(`none of ${ids.join(',')} became leader within ${maxTicks} ticks`);
  }

  leaderId(): NodeId | undefined {
    const leaders = [...this.cores.values()].filter((c) => c.status().role === 'leader');
    const top = leaders.sort((a, b) => b.status().term - a.status().term)[0];
    return top?.id;
  }

  /** Handles one Ready of `id` fully (persist, collect messages, apply, advance). Returns its messages. */
  handleReady(id: NodeId): Message[] {
    const core = this.core(id);
    if (this.stalled.has(id) || !core.hasReady()) return [];
    const rd = core.ready();
    const d = this.durable.get(id)!;
    if (rd.snapshot !== undefined) {
      d.snapshot = rd.snapshot;
      const kept = d.entries.filter((e) => e.index > rd.snapshot!.metadata.index);
      const consistent = kept.length === 0 || kept[0].index === rd.snapshot.metadata.index + 1;
      d.entries = consistent ? kept : [];
      this.applied.set(id, [...this.applied.get(id)!.filter((e) => e.index <= rd.snapshot!.metadata.index)]);
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      d.entries = d.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    if (rd.hardState !== undefined) d.hardState = { ...rd.hardState };
    if (rd.membership !== undefined) d.membership = rd.membership;
    if (rd.snapshot !== undefined) this.appliedIndex.set(id, rd.snapshot.metadata.index);
    for (const e of rd.committedEntries) {
      const expected = (this.appliedIndex.get(id) ?? 0) + 1;
      if (e.index !== expected) throw new Error(`${id} was handed entry ${e.index} to apply, expected ${expected}`);
      this.applied.get(id)!.push(e);
      this.appliedIndex.set(id, e.index);
    }
    this.readStates.get(id)!.push(...rd.readStates);
    core.advance(rd);
    const out = [...rd.messages, ...rd.messagesAfterPersist];
    this.sent.push(...out);
    return out;
  }

  deliver(messages: Message[]): void {
    for (const m of messages) {
      if (this.cut.has(`${m.from}->${m.to}`)) continue;
      const target = this.cores.get(m.to);
      if (target === undefined) continue;
      if (m.type === MessageType.Snap && m.snapshot !== undefined && m.snapshot.data.byteLength === 0) {
        const stored = this.durable.get(m.from)?.snapshot;
        if (stored !== undefined && stored.metadata.index === m.snapshot.metadata.index) m.snapshot = stored;
      }
      target.step(m);
    }
  }

  /** Runs every node's Readies and delivers messages until nothing moves. */
  stabilize(): void {
    for (let round = 0; round < MAX_STABILIZE_ROUNDS; round++) {
      let moved = false;
      for (const id of this.cores.keys()) {
        const messages = this.handleReady(id);
        if (messages.length > 0) moved = true;
        this.deliver(messages);
      }
      if (!moved && ![...this.cores.keys()].some((id) => !this.stalled.has(id) && this.core(id).hasReady())) return;
    }
    throw new Error(`cluster did not stabilize within ${MAX_STABILIZE_ROUNDS} rounds`);
  }

  /** Takes a local snapshot of `id`'s state machine at its applied index and compacts its log. */
  snapshotAndCompact(id: NodeId, compactIndex?: number): Snapshot {
    const core = this.core(id);
    const status = core.status();
    const applied = this.applied.get(id)!;
    const index = status.applied;
    const term = applied.find((e) => e.index === index)?.term ?? this.durable.get(id)!.snapshot?.metadata.term ?? 0;
    const snapshot: Snapshot = { metadata: { index, term, membership: status.membership }, data: Buffer.from(JSON.stringify(this.appliedData(id))) };
    const d = this.durable.get(id)!;
    d.snapshot = snapshot;
    const upTo = compactIndex ?? index;
    d.entries = d.entries.filter((e) => e.index > upTo);
    core.compact(snapshot.metadata, upTo);
    return snapshot;
  }

  /** The Normal entries' data applied on `id`, as strings. */
  appliedData(id: NodeId): string[] {
    const d = this.durable.get(id)!;
    const fromSnapshot: string[] = d.snapshot !== undefined ? JSON.parse(Buffer.from(d.snapshot.data).toString()) : [];
    const after = this.applied.get(id)!.filter((e) => e.type === EntryType.Normal && e.index > (d.snapshot?.metadata.index ?? 0));
    return [...fromSnapshot, ...after.map((e) => Buffer.from(e.data).toString())];
  }
}

export function bytes(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}
