/**
 * RaftNode scenarios in one process with the real pieces: LevelRaftStorage,
 * GrpcTransport on loopback and the KV state machine on classic-level.
 * (Separate processes and kill -9 are in cluster.integration.test.ts.)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { Member, MessageType, NotLeaderError, emptyMessage } from '../core/types';
import { LevelRaftStorage } from '../storage/level-storage';
import { GrpcTransport } from '../transport/grpc-transport';
import { KvResult, KvStateMachine, encodeKvCommand } from './kv-state-machine';
import { NodeOverloadedError, ProposalDroppedError } from './pending';
import { StateMachine } from './interfaces';
import { RaftNode, RaftNodeOptions } from './raft-node';
import { freePort } from './process-cluster';

jest.setTimeout(30_000);

const TICK_MS = 20;
const ELECTION_TICKS = 10;
const quietTransportLogger = { info: () => {}, warn: () => {} };

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = probe();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

const put = (key: string, value: string) => encodeKvCommand({ op: 'put', key, value: Buffer.from(value) });

interface Member_ {
  member: Member;
  dir: string;
  node?: RaftNode;
  kv?: KvStateMachine;
  registry: Registry;
}

class InProcessCluster {
  readonly members = new Map<string, Member_>();
  /** Members whose every message, in or out, is dropped by the transports' fault hooks (a network partition). */
  readonly isolated = new Set<string>();
  private readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'raft-node-test-'));

  async addMember(id: string, role: Member['role'] = 'voter'): Promise<Member> {
    const member: Member = { id, address: `127.0.0.1:${await freePort()}`, role };
    this.members.set(id, { member, dir: path.join(this.root, id), registry: new Registry() });
    return member;
  }

  /** `wrap` puts a layer over the member's KV machine (e.g. to hold its snapshot reads). */
  async start(id: string, startOptions: Partial<RaftNodeOptions> & { bootstrap?: boolean; wrap?: (kv: KvStateMachine) => StateMachine } = {}): Promise<RaftNode> {
    const { wrap, ...options } = startOptions;
    const m = this.members.get(id)!;
    const storage = await LevelRaftStorage.open(path.join(m.dir, 'raft'));
    m.kv = await KvStateMachine.open(path.join(m.dir, 'kv'));
    const transport = new GrpcTransport({
      localId: id,
      listenAddress: m.member.address,
      logger: quietTransportLogger,
      faultHook: (message) => (this.isolated.has(message.from) || this.isolated.has(message.to) ? 'drop' : 'deliver'),
    });
    const voters = [...this.members.values()].map((x) => x.member).filter((x) => x.role === 'voter');
    m.node = await RaftNode.start({
      config: { id, electionTicks: ELECTION_TICKS },
      tickIntervalMs: TICK_MS,
      storage,
      transport,
      stateMachine: wrap ? wrap(m.kv) : m.kv,
      bootstrapMembership: options.bootstrap === false ? undefined : { members: voters },
      joinPeers: voters,
      registry: m.registry,
      ...options,
    });
    return m.node;
  }

  node(id: string): RaftNode {
    return this.members.get(id)!.node!;
  }

  kv(id: string): KvStateMachine {
    return this.members.get(id)!.kv!;
  }

  running(): RaftNode[] {
    return [...this.members.values()].flatMap((m) => (m.node ? [m.node] : []));
  }

  async leader(timeoutMs = 5_000): Promise<RaftNode> {
    return waitFor('a leader', () => this.running().find((n) => n.status().role === 'leader'), timeoutMs);
  }

  async stop(id: string, graceful = false): Promise<void> {
    const m = this.members.get(id)!;
    await m.node?.stop({ graceful });
    await m.kv?.close();
    m.node = undefined;
    m.kv = undefined;
  }

  async destroy(): Promise<void> {
    for (const id of this.members.keys()) await this.stop(id).catch(() => {});
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * The real KV machine, whose snapshot reads can be held at their start until
 * released, so a test can act while a local snapshot is in progress.
 */
class HeldSnapshots {
  readsStarted = 0;
  private held: Promise<void> | undefined;
  private releaseHeld: () => void = () => {};

  wrap(kv: KvStateMachine): StateMachine {
    return {
      apply: (entries) => kv.apply(entries),
      appliedIndex: () => kv.appliedIndex(),
      restore: (snapshot) => kv.restore(snapshot),
      snapshot: async () => {
        this.readsStarted++;
        if (this.held) await this.held;
        return kv.snapshot();
      },
    };
  }

  hold(): void {
    this.held = new Promise((resolve) => { this.releaseHeld = resolve; });
  }

  release(): void {
    this.held = undefined;
    this.releaseHeld();
  }
}

let cluster: InProcessCluster;
afterEach(async () => {
  await cluster?.destroy();
});

describe('a single-member RaftNode', () => {
  it('counts and logs a request from a node outside the membership, and keeps serving', async () => {
    cluster = new InProcessCluster();
    const solo = await cluster.addMember('solo');
    const warnings: string[] = [];
    const node = await cluster.start('solo', { logger: { info: () => {}, warn: (message) => warnings.push(message), error: () => {} } });
    await cluster.leader();
    const stranger = new GrpcTransport({ localId: 'stranger', listenAddress: `127.0.0.1:${await freePort()}`, logger: quietTransportLogger });
    await stranger.start(() => {});
    stranger.setPeers([solo]);
    stranger.send([{ ...emptyMessage(MessageType.ReadIndex, 'stranger', 'solo', 99), context: Buffer.from('x') }]);
    const registry = cluster.members.get('solo')!.registry;
    await waitFor('the drop to be counted', () => node.status().role === 'leader' && warnings.includes('raft core dropped messages'));
    const text = await registry.getSingleMetricAsString('handlefs_raft_messages_dropped_total');
    expect(text).toMatch(/handlefs_raft_messages_dropped_total\{member_id="solo",reason="unknown_sender"\} 1/);
    await stranger.close();
    await expect(node.propose(put('still', 'serving'))).resolves.toBeDefined();
  });

  it('elects itself, applies proposals in order and answers each with the state machine result', async () => {
    cluster = new InProcessCluster();
    await cluster.addMember('solo');
    const node = await cluster.start('solo');
    await cluster.leader();
    const results = (await Promise.all(Array.from({ length: 50 }, (_, i) => node.propose(put(`k${i}`, `v${i}`))))) as KvResult[];
    const indexes = results.map((r) => r.index);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(new Set(indexes).size).toBe(50);
    expect(Buffer.from((await cluster.kv('solo').get('k49'))!).toString()).toBe('v49');
    await node.readIndex();
    const metrics = await cluster.members.get('solo')!.registry.getSingleMetricAsString('handlefs_raft_persist_batch_entries');
    expect(metrics).toMatch(/handlefs_raft_persist_batch_entries_count\{member_id="solo"\} \d+/);
  });

  it('after a restart neither repeats nor skips an entry', async () => {
    cluster = new InProcessCluster();
    await cluster.addMember('solo');
    let node = await cluster.start('solo');
    await cluster.leader();
    for (let i = 0; i < 10; i++) await node.propose(put(`k${i}`, `first-${i}`));
    const appliedBefore = node.status().appliedIndex;
    await cluster.stop('solo');

    node = await cluster.start('solo');
    expect(node.status().appliedIndex).toBe(appliedBefore);
    await cluster.leader();
    const result = (await node.propose(put('after', 'restart'))) as KvResult;
    expect(result.index).toBeGreaterThan(appliedBefore);
    expect(await cluster.kv('solo').appliedIndex()).toBe(node.status().appliedIndex);
    expect(Buffer.from((await cluster.kv('solo').get('k9'))!).toString()).toBe('first-9');
  });

  it('rejects proposals beyond its pending limit with a clear error', async () => {
    cluster = new InProcessCluster();
    await cluster.addMember('solo');
    const node = await cluster.start('solo', { maxPendingProposals: 2 });
    await cluster.leader();
    const calls = [node.propose(put('a', '1')), node.propose(put('b', '2')), node.propose(put('c', '3'))];
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect((outcomes[2] as PromiseRejectedResult).reason).toBeInstanceOf(NodeOverloadedError);
  });

  it('takes local snapshots every N applied entries and restarts from them', async () => {
    cluster = new InProcessCluster();
    await cluster.addMember('solo');
    let node = await cluster.start('solo', { snapshotThresholdEntries: 20, snapshotTrailingEntries: 5 });
    await cluster.leader();
    for (let i = 0; i < 70; i++) await node.propose(put(`k${i}`, `v${i}`));
    const status = node.status();
    expect(status.snapshotIndex).toBeGreaterThanOrEqual(60);
    expect(status.firstIndex).toBeGreaterThan(1);
    const snapshots = await cluster.members.get('solo')!.registry.getSingleMetricAsString('handlefs_raft_local_snapshots_total');
    expect(snapshots).toMatch(/handlefs_raft_local_snapshots_total\{member_id="solo"\} 3/);
    await cluster.stop('solo');
    node = await cluster.start('solo', { snapshotThresholdEntries: 20, snapshotTrailingEntries: 5 });
    await cluster.leader();
    await node.propose(put('after', 'snapshot'));
    expect(Buffer.from((await cluster.kv('solo').get('k0'))!).toString()).toBe('v0');
  });
});

describe('a three-member cluster in one process', () => {
  it('answers proposals on a follower with NotLeaderError naming the leader, and serves reads on any member', async () => {
    cluster = new InProcessCluster();
    for (const id of ['a', 'b', 'c']) await cluster.addMember(id);
    await Promise.all(['a', 'b', 'c'].map((id) => cluster.start(id)));
    const leader = await cluster.leader();
    const leaderId = leader.status().id;
    await leader.propose(put('x', '1'));
    const follower = cluster.running().find((n) => n !== leader)!;
    await waitFor('the follower to know the leader', () => follower.status().leaderId === leaderId);
    const error = await follower.propose(put('y', '2')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotLeaderError);
    expect((error as NotLeaderError).leaderId).toBe(leaderId);
    expect((error as NotLeaderError).leaderAddress).toBe(cluster.members.get(leaderId)!.member.address);
    // A follower's read waits until it has applied what the leader had committed when the read was confirmed.
    await follower.readIndex();
    const followerId = follower.status().id;
    expect(Buffer.from((await cluster.kv(followerId).get('x'))!).toString()).toBe('1');
    // The leader reports each peer's lag; a follower reports none.
    const peerIds = ['a', 'b', 'c'].filter((id) => id !== leaderId);
    await waitFor('both peers caught up', async () => /peer_lag_entries\{[^}]*\} 0\n[\s\S]*peer_lag_entries\{[^}]*\} 0/.test(await cluster.members.get(leaderId)!.registry.getSingleMetricAsString('handlefs_raft_peer_lag_entries')));
    const onLeader = await cluster.members.get(leaderId)!.registry.getSingleMetricAsString('handlefs_raft_peer_lag_entries');
    for (const peer of peerIds) expect(onLeader).toContain(`peer="${peer}"`);
    expect(await cluster.members.get(followerId)!.registry.getSingleMetricAsString('handlefs_raft_peer_lag_entries')).not.toMatch(/peer="/);
  });

  it('restarts a follower whose stored commit index lags its applied index, and snapshots at once without tripping the storage', async () => {
    cluster = new InProcessCluster();
    for (const id of ['a', 'b', 'c']) await cluster.addMember(id);
    await Promise.all(['a', 'b', 'c'].map((id) => cluster.start(id, { snapshotThresholdEntries: 1_000 })));
    const leader = await cluster.leader();
    for (let i = 0; i < 10; i++) await leader.propose(put(`k${i}`, `v${i}`));
    const followerId = ['a', 'b', 'c'].find((id) => id !== leader.status().id)!;
    await waitFor('the follower to apply everything', () => cluster.node(followerId).status().appliedIndex === leader.status().appliedIndex);
    const applied = cluster.node(followerId).status().appliedIndex;
    await cluster.stop(followerId); // its last commit-only hard state was never written: the stored commit lags

    const fatal: Error[] = [];
    const follower = await cluster.start(followerId, { snapshotThresholdEntries: 5, onFatalError: (error) => fatal.push(error) });
    await waitFor('a local snapshot at the applied index', () => follower.status().snapshotIndex >= applied || fatal.length > 0);
    expect(fatal.map((e) => e.message)).toEqual([]);
    await leader.propose(put('after', 'restart'));
    await waitFor('the follower to apply the next entry', () => follower.status().appliedIndex > applied);
  });

  it('hands leadership over on request and on a graceful stop', async () => {
    cluster = new InProcessCluster();
    for (const id of ['a', 'b', 'c']) await cluster.addMember(id);
    await Promise.all(['a', 'b', 'c'].map((id) => cluster.start(id)));
    const leader = await cluster.leader();
    await leader.propose(put('x', '1'));
    const target = ['a', 'b', 'c'].find((id) => id !== leader.status().id)!;
    await expect(leader.transferLeadership(target)).resolves.toBe(target);
    await waitFor('the target to lead', () => cluster.node(target).status().role === 'leader');

    const startedAt = Date.now();
    await cluster.stop(target, true);
    const next = await cluster.leader();
    const stallMs = Date.now() - startedAt;
    expect(next.status().id).not.toBe(target);
    expect(stallMs).toBeLessThan(2 * ELECTION_TICKS * TICK_MS + 1_000);
    await next.propose(put('after', 'handover'));
  });

  it('adds a learner that catches up from a snapshot, then promotes it to voter', async () => {
    cluster = new InProcessCluster();
    for (const id of ['a', 'b', 'c']) await cluster.addMember(id);
    const snapshotOptions = { snapshotThresholdEntries: 30, snapshotTrailingEntries: 2 };
    await Promise.all(['a', 'b', 'c'].map((id) => cluster.start(id, snapshotOptions)));
    const leader = await cluster.leader();
    for (let i = 0; i < 80; i++) await leader.propose(put(`k${i}`, `v${i}`));
    expect(leader.status().firstIndex).toBeGreaterThan(1);

    const learner = await cluster.addMember('d', 'learner');
    await cluster.start('d', { ...snapshotOptions, bootstrap: false });
    await leader.addLearner('d', learner.address);
    await waitFor('the learner to catch up', () => cluster.node('d').status().appliedIndex >= leader.status().commit, 10_000);
    expect(Buffer.from((await cluster.kv('d').get('k0'))!).toString()).toBe('v0');
    await leader.promoteLearner('d');
    const membership = leader.status().membership.members.map((m) => `${m.id}:${m.role}`);
    expect(membership).toEqual(['a:voter', 'b:voter', 'c:voter', 'd:voter']);
  });
});

describe('a leader cut off from its followers', () => {
  it('rejects its proposal with "proposal dropped" once another leader\'s entry takes that index', async () => {
    cluster = new InProcessCluster();
    for (const id of ['a', 'b', 'c']) await cluster.addMember(id);
    await Promise.all(['a', 'b', 'c'].map((id) => cluster.start(id)));
    const oldLeader = await cluster.leader();
    await oldLeader.propose(put('before', 'cut'));
    const oldId = oldLeader.status().id;

    cluster.isolated.add(oldId);
    const lost = oldLeader.propose(put('lost', 'x'), { timeoutMs: 10_000 });
    const others = cluster.running().filter((n) => n !== oldLeader);
    const newLeader = await waitFor('a leader among the others', () => others.find((n) => n.status().role === 'leader'));
    for (let i = 0; i < 5; i++) await newLeader.propose(put(`after-${i}`, 'cut'));

    cluster.isolated.delete(oldId);
    const error = await lost.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProposalDroppedError);
    expect((error as Error).message).toMatch(/proposal dropped \(leadership changed\)/);
    await waitFor('the old leader to apply the new leader\'s entries', () => oldLeader.status().appliedIndex >= newLeader.status().commit);
    expect(await cluster.kv(oldId).get('lost')).toBeUndefined();
    expect(Buffer.from((await cluster.kv(oldId).get('after-4'))!).toString()).toBe('cut');
  });
});

describe('snapshots on request (snapshotNow) meeting other snapshots', () => {
  it('a request made while an automatic snapshot is being read is answered by that snapshot once saved', async () => {
    cluster = new InProcessCluster();
    await cluster.addMember('solo');
    const snapshots = new HeldSnapshots();
    snapshots.hold();
    const node = await cluster.start('solo', { snapshotThresholdEntries: 20, snapshotTrailingEntries: 5, wrap: (kv) => snapshots.wrap(kv) });
    await cluster.leader();
    // The threshold (20 + up to 2 of jitter) is crossed: the automatic snapshot starts and is held while read.
    let last: Promise<unknown> = Promise.resolve();
    for (let i = 0; i < 40 && snapshots.readsStarted === 0; i++) {
      // A proposal applied after the held read waits for it: race each against the read starting.
      last = node.propose(put(`k${i}`, `v${i}`));
      await Promise.race([last, waitFor('the automatic snapshot to start', () => snapshots.readsStarted > 0, 10_000)]);
    }
    expect(snapshots.readsStarted).toBe(1);
    const appliedAtRequest = node.status().appliedIndex;
    const requested = node.snapshotNow();
    snapshots.release();
    const taken = await requested;
    await last;
    // The snapshot in progress covers the request; one more is taken only if entries applied meanwhile (the raced proposal).
    expect(taken.taken).toBe(true);
    expect(taken.index).toBeGreaterThanOrEqual(appliedAtRequest);
    expect(taken.compactIndex).toBe(taken.index - 5);
    expect(taken.term).toBeGreaterThan(0);
    expect(snapshots.readsStarted).toBe(taken.index === appliedAtRequest ? 1 : 2);
    expect(node.status().snapshotIndex).toBe(taken.index);
    expect(await node.snapshotNow()).toMatchObject({ taken: node.status().appliedIndex > taken.index, index: node.status().appliedIndex });
  });

  it('a request overtaken by a snapshot from the leader is refused with a reason, and asking again works', async () => {
    cluster = new InProcessCluster();
    for (const id of ['a', 'b', 'c']) await cluster.addMember(id);
    const snapshotOptions = { snapshotThresholdEntries: 10_000, snapshotTrailingEntries: 0 };
    const snapshots = new HeldSnapshots();
    await Promise.all(['a', 'b'].map((id) => cluster.start(id, snapshotOptions)));
    await cluster.start('c', { ...snapshotOptions, wrap: (kv) => snapshots.wrap(kv) });
    let leader = await cluster.leader();
    if (leader === cluster.node('c')) {
      await leader.transferLeadership('a');
      leader = await waitFor('a to lead', () => cluster.node('a').status().role === 'leader' && cluster.node('a'));
    }
    for (let i = 0; i < 5; i++) await leader.propose(put(`k${i}`, `v${i}`));
    const follower = cluster.node('c');
    await waitFor('c to apply', () => follower.status().appliedIndex >= leader.status().commit);

    // c is cut off and starts a snapshot on request, held while it is read.
    cluster.isolated.add('c');
    snapshots.hold();
    const requested = follower.snapshotNow();
    const outcome = requested.then(() => 'resolved', (error: Error) => error.message);
    await waitFor('c to start reading its snapshot', () => snapshots.readsStarted === 1);
    // Meanwhile the others move on and compact their logs, so c can only catch up from the leader's snapshot.
    for (let i = 5; i < 15; i++) await leader.propose(put(`k${i}`, `v${i}`));
    const leaderSnapshot = await leader.snapshotNow();
    expect(leaderSnapshot.taken).toBe(true);
    expect(leader.status().firstIndex).toBeGreaterThan(follower.status().lastIndex);
    cluster.isolated.delete('c');
    // The leader's snapshot reaches c's core; its Ready waits for the read in progress, which is then released.
    await waitFor('the leader\'s snapshot to reach c', () => follower.status().snapshotIndex >= leaderSnapshot.index);
    expect(follower.status().appliedIndex).toBeLessThan(leaderSnapshot.index);
    snapshots.release();
    expect(await outcome).toMatch(/a snapshot from the leader replaced the local one in progress; ask again/);
    await waitFor('c to catch up from the snapshot', () => follower.status().appliedIndex >= leader.status().commit, 10_000);
    expect(Buffer.from((await cluster.kv('c').get('k14'))!).toString()).toBe('v14');
    const again = await follower.snapshotNow();
    expect(again.index).toBeGreaterThanOrEqual(leader.status().snapshotIndex);
  });
});
