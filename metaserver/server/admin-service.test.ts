/**
 * The admin service (proto/admin.proto) on real metadata server processes:
 * what Status tells on the leader and on a follower, membership calls that
 * follow the leader, every refusal of bad input (nothing changed after it),
 * a learner that never started refused promotion, a snapshot on request, and
 * the quorum checks (a removal that would lose the quorum, the last voter).
 * Run `npx tsc -p .` first.
 */
import * as grpc from '@grpc/grpc-js';
import * as a from '../../proto/admin-proto';
import { MetaTestCluster, ROOT_HANDLE } from './testing';
import { packageVersion } from './admin-service';
import { ProcessMember } from '../../raft/node/process-cluster';

type Client = InstanceType<typeof a.AdminGrpcClient>;
type Unary = (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: unknown) => void) => void;
interface Outcome<T> { reply?: T; error?: grpc.ServiceError }

const TRAILING_ENTRIES = 5;

describe('the admin service on a three-member metadata cluster', () => {
  let cluster: MetaTestCluster;
  const clients = new Map<string, Client>();

  function call<T>(member: ProcessMember, method: a.AdminMethod, request: object, deadlineMs = 10_000): Promise<Outcome<T>> {
    let client = clients.get(member.id);
    if (!client) {
      client = new a.AdminGrpcClient(member.clientAddress, grpc.credentials.createInsecure()) as Client;
      clients.set(member.id, client);
    }
    const fn = (client as unknown as Record<string, Unary>)[method];
    return new Promise((resolve) => fn.call(client, request, { deadline: Date.now() + deadlineMs }, (error, reply) => resolve(error ? { error } : { reply: reply as T })));
  }

  async function membersOnLeader(): Promise<string[]> {
    const status = await call<a.StatusReply>(await cluster.leader(), 'Status', {});
    return status.reply!.members.map((m) => `${m.id}:${m.role}`).sort();
  }

  beforeAll(async () => {
    // A short trailing log, so a snapshot on request visibly compacts it.
    cluster = await MetaTestCluster.start({ extraArgs: ['--snapshot-trailing-entries', String(TRAILING_ENTRIES)] });
    const session = await cluster.openSession();
    for (let i = 0; i < 20; i++) {
      const made = await session.mutate('Mkdir', { parent: ROOT_HANDLE, name: `d${i}`, mode: 0o755 });
      expect(made.reply?.errno).toBe(0);
    }
  }, 40_000);

  afterAll(async () => {
    for (const client of clients.values()) client.close();
    await cluster?.destroy();
  });

  it('tells on the leader its followers\' progress, lag and last contact, and the version', async () => {
    const leader = await cluster.leader();
    const { reply } = await call<a.StatusReply>(leader, 'Status', {});
    expect(reply!.role).toBe('leader');
    expect(reply!.id).toBe(leader.id);
    expect(reply!.version).toBe(packageVersion());
    expect(reply!.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(reply!.clientAddress).toBe(leader.clientAddress);
    expect(reply!.members.map((m) => m.clientAddress).sort()).toEqual(cluster.members.map((m) => m.clientAddress).sort());
    expect(reply!.progress.map((p) => p.id).sort()).toEqual(cluster.members.filter((m) => m !== leader).map((m) => m.id).sort());
    for (const progress of reply!.progress) {
      expect(progress.lagEntries).toBeLessThanOrEqual(5);
      expect(progress.lastContactMs).toBeGreaterThanOrEqual(0);
      expect(progress.lastContactMs).toBeLessThan(reply!.electionTimeoutMs);
    }
  });

  it('tells on a follower who leads, where its client API is, and no progress', async () => {
    const leader = await cluster.leader();
    const follower = (await cluster.followers())[0];
    const { reply } = await call<a.StatusReply>(follower, 'Status', {});
    expect(reply!.role).toBe('follower');
    expect(reply!.leaderId).toBe(leader.id);
    expect(reply!.leaderClientAddress).toBe(leader.clientAddress);
    expect(reply!.progress).toEqual([]);
    expect(reply!.leaderContactMs).toBeGreaterThanOrEqual(0);
  });

  it('answers a membership change on a follower with the leader\'s id and client address', async () => {
    const leader = await cluster.leader();
    const follower = (await cluster.followers())[0];
    const { error } = await call(follower, 'MemberRemove', { id: follower.id });
    expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error?.metadata.get(a.LEADER_ID_METADATA)).toEqual([leader.id]);
    expect(error?.metadata.get(a.LEADER_ADDRESS_METADATA)).toEqual([leader.clientAddress]);
  });

  it('refuses bad input with a status naming the problem, and changes nothing', async () => {
    const leader = await cluster.leader();
    const m2 = cluster.members.find((m) => m !== leader)!;
    const before = await membersOnLeader();
    const cases: Array<[a.AdminMethod, object, grpc.status, RegExp]> = [
      ['MemberAdd', { id: 'bad id!', peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:2' }, grpc.status.INVALID_ARGUMENT, /id "bad id!" must be/],
      ['MemberAdd', { id: 'm9', peerAddress: 'nowhere', clientAddress: '127.0.0.1:2' }, grpc.status.INVALID_ARGUMENT, /peer address: .*"nowhere" is not "host:port"/],
      ['MemberAdd', { id: 'm9', peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:99999' }, grpc.status.INVALID_ARGUMENT, /client address: .*outside 1..65535/],
      ['MemberAdd', { id: m2.id, peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:2' }, grpc.status.ALREADY_EXISTS, new RegExp(`member ${m2.id} is already in the cluster`)],
      ['MemberAdd', { id: 'm9', peerAddress: m2.raftAddress, clientAddress: '127.0.0.1:2' }, grpc.status.ALREADY_EXISTS, new RegExp(`peer address ${m2.raftAddress} is already member ${m2.id}'s`)],
      ['MemberAdd', { id: 'm9', peerAddress: '127.0.0.1:1', clientAddress: m2.clientAddress }, grpc.status.ALREADY_EXISTS, new RegExp(`client address ${m2.clientAddress} is already member ${m2.id}'s`)],
      ['MemberPromote', { id: 'm9' }, grpc.status.NOT_FOUND, /member m9 is not in the cluster/],
      ['MemberPromote', { id: m2.id }, grpc.status.FAILED_PRECONDITION, /already a voter/],
      ['MemberRemove', { id: 'm9' }, grpc.status.NOT_FOUND, /member m9 is not in the cluster/],
      ['LeaderTransfer', { to: 'm9', timeoutMs: 1_000 }, grpc.status.NOT_FOUND, /member m9 is not in the cluster/],
    ];
    for (const [method, request, code, message] of cases) {
      const { error } = await call(leader, method, request);
      expect({ method, request, code: error?.code, details: error?.details }).toEqual({ method, request, code, details: expect.stringMatching(message) });
    }
    expect(await membersOnLeader()).toEqual(before);
  });

  it('refuses to promote a learner the leader never heard from, and removes it', async () => {
    const leader = await cluster.leader();
    const added = await call<a.MemberReply>(leader, 'MemberAdd', { id: 'ghost', peerAddress: '127.0.0.1:9', clientAddress: '127.0.0.1:10' });
    expect(added.error).toBeUndefined();
    expect(added.reply!.members.find((m) => m.id === 'ghost')).toEqual({ id: 'ghost', peerAddress: '127.0.0.1:9', role: 'learner', clientAddress: '127.0.0.1:10' });
    const promoted = await call(leader, 'MemberPromote', { id: 'ghost' });
    expect(promoted.error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(promoted.error?.details).toMatch(/learner ghost is not caught up: the leader has never heard from it .*nothing changed/);
    const removed = await call<a.MemberReply>(leader, 'MemberRemove', { id: 'ghost' });
    expect(removed.error).toBeUndefined();
    expect(removed.reply!.members.map((m) => m.id)).not.toContain('ghost');
  });

  it('takes a snapshot on one member now and compacts its log behind it; a second one right after has nothing new to take', async () => {
    const follower = (await cluster.followers())[0];
    const before = (await call<a.StatusReply>(follower, 'Status', {})).reply!;
    const first = await call<a.SnapshotReply>(follower, 'Snapshot', {});
    expect(first.error).toBeUndefined();
    expect(first.reply).toMatchObject({ id: follower.id, taken: true });
    expect(first.reply!.index).toBeGreaterThanOrEqual(before.appliedIndex);
    const after = (await call<a.StatusReply>(follower, 'Status', {})).reply!;
    expect(after.snapshotIndex).toBe(first.reply!.index);
    expect(first.reply!.compactIndex).toBe(first.reply!.index - TRAILING_ENTRIES);
    expect(after.firstIndex).toBe(first.reply!.compactIndex + 1);
    expect(before.firstIndex).toBe(1);
    const second = await call<a.SnapshotReply>(follower, 'Snapshot', {});
    if (second.reply!.taken) expect(second.reply!.index).toBeGreaterThan(first.reply!.index); // a keepalive or duty applied meanwhile
    else expect(second.reply!.index).toBe(first.reply!.index);
  });

  it('refuses a removal that would leave the reachable voters short of a quorum', async () => {
    const leader = await cluster.leader();
    const [down, up] = await cluster.followers();
    await cluster.kill9(down);
    const before = await membersOnLeader();
    // Wait until the leader's last contact with the killed member is older than two election timeouts.
    const electionTimeoutMs = (await call<a.StatusReply>(leader, 'Status', {})).reply!.electionTimeoutMs;
    await new Promise((resolve) => setTimeout(resolve, 2 * electionTimeoutMs + 200));
    const { error } = await call(leader, 'MemberRemove', { id: up.id });
    expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error?.details).toMatch(new RegExp(`removing ${up.id} would leave 1 of 2 voters reachable, short of a quorum of 2.*nothing changed`));
    expect(await membersOnLeader()).toEqual(before);
  });
});

describe('the admin service on a one-member cluster', () => {
  let cluster: MetaTestCluster;
  let client: Client;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start({ size: 1 });
    client = new a.AdminGrpcClient(cluster.members[0].clientAddress, grpc.credentials.createInsecure()) as Client;
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await cluster?.destroy();
  });

  it('never removes the last voter', async () => {
    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      (client as unknown as Record<string, Unary>).MemberRemove.call(client, { id: 'm1' }, { deadline: Date.now() + 5_000 }, (e) => resolve(e));
    });
    expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error?.details).toBe('member m1 is the last voter: removing it would leave no cluster; nothing changed');
  });
});
