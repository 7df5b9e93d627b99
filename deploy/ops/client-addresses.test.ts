/**
 * Member client addresses travel in the replicated Raft membership: a fourth
 * member added with `member add --client-address` (given one old member's
 * address only), promoted, then made leader, is named with its client address
 * by every old member — in Status, in the NotLeader hints an SDK client
 * follows, and after an old member restarts from its disk. None of the old
 * members was configured with it. Real processes; run `npx tsc -p .` first.
 */
import { MetaClient } from '../../client/sdk';
import { MetaTestCluster, eventually } from '../../metaserver/server/testing';
import { AdminClient } from './admin-client';
import { Joiner, handlefs, newJoiner, startJoiner, stopJoiner } from './testing';

describe('a new member\'s client address, replicated with the membership', () => {
  let cluster: MetaTestCluster;
  let joiner: Joiner;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
    joiner = await newJoiner('m4');
  }, 30_000);

  afterAll(async () => {
    await cluster?.destroy();
    if (joiner) await stopJoiner(joiner);
  });

  /** What an old member answers about the leader, asked directly (no sweep). */
  const leaderSeenBy = async (address: string): Promise<{ leaderId: string; leaderClientAddress: string; m4: string }> => {
    const admin = new AdminClient([address]);
    try {
      const outcome = await admin.call(address, 'Status', {}, 2_000);
      if (outcome.error) throw outcome.error;
      const m4 = outcome.reply.members.find((m) => m.id === 'm4')?.clientAddress ?? '(not a member)';
      return { leaderId: outcome.reply.leaderId, leaderClientAddress: outcome.reply.leaderClientAddress, m4 };
    } finally {
      admin.close();
    }
  };

  it('adds, starts and promotes m4 with a client address, given one old member\'s address', async () => {
    const one = cluster.members[0].clientAddress;
    const added = await handlefs(['member', 'add', 'm4', '--peer-address', joiner.peerAddress, '--client-address', joiner.clientAddress, '--servers', one]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    await startJoiner(cluster, joiner);
    const promoted = await handlefs(['member', 'promote', 'm4', '--wait', '30', '--servers', one]);
    expect(promoted.code).toBe(0);
    // Every old member holds m4's client address in its membership, not only the leader that added it.
    for (const member of cluster.members) {
      await eventually(`${member.id} knowing m4's client address`, 10_000, async () => (await leaderSeenBy(member.clientAddress)).m4 === joiner.clientAddress);
    }
  }, 60_000);

  it('moves leadership to m4, and every old member then hints clients to m4\'s client address', async () => {
    const moved = await handlefs(['leader', 'transfer', '--to', 'm4', '--servers', cluster.members[1].clientAddress]);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    for (const member of cluster.members) {
      const seen = await eventually(`${member.id} following m4`, 10_000, async () => {
        const status = await leaderSeenBy(member.clientAddress);
        return status.leaderId === 'm4' && status;
      });
      expect(seen.leaderClientAddress).toBe(joiner.clientAddress);
    }
  }, 30_000);

  it('lets an SDK client given only an old member\'s address follow the hint to m4 and write', async () => {
    for (const member of cluster.members) {
      const client = await MetaClient.connect({ servers: [member.clientAddress], deadlineMs: 10_000 });
      try {
        // Only the leader (m4) accepts a write: it succeeds only if the hint named m4's address.
        await client.writeFile(`/via-${member.id}`, Buffer.from(`written through ${member.id}`));
        expect(Buffer.from(await client.readFile(`/via-${member.id}`)).toString()).toBe(`written through ${member.id}`);
      } finally {
        await client.close();
      }
    }
  }, 40_000);

  it('keeps the address across an old member\'s restart (persisted in its Raft storage)', async () => {
    const member = cluster.members[2];
    await cluster.terminate(member);
    await cluster.restart(member);
    const seen = await eventually(`${member.id} following m4 after its restart`, 15_000, async () => {
      const status = await leaderSeenBy(member.clientAddress).catch(() => undefined);
      return status?.leaderId === 'm4' && status;
    });
    expect(seen).toMatchObject({ leaderClientAddress: joiner.clientAddress, m4: joiner.clientAddress });
  }, 40_000);
});
