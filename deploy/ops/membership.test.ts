/**
 * Changing the members of a live cluster with the operator commands, under a
 * small write load through the SDK (every write must succeed): a fourth
 * member added as a learner, refused promotion before it runs, started with
 * --join, promoted once caught up (progress on stderr), then the old leader
 * removed (it hands leadership over first). Real processes; run
 * `npx tsc -p .` first.
 */
import { MetaTestCluster, eventually } from '../../metaserver/server/testing';
import type { ClusterStatus } from './cluster-status';
import { Joiner, WriteLoad, handlefs, newJoiner, startJoiner, stopJoiner } from './testing';

describe('membership changes under a write load', () => {
  let cluster: MetaTestCluster;
  let joiner: Joiner;
  let load: WriteLoad | undefined;
  let servers: string;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
    joiner = await newJoiner('m4');
    servers = [...cluster.members.map((m) => m.clientAddress), joiner.clientAddress].join(',');
    load = await WriteLoad.start(servers.split(','), 'load');
    await load.writeMore(20, 10_000);
  }, 40_000);

  afterAll(async () => {
    await load?.stop();
    await cluster?.destroy();
    if (joiner) await stopJoiner(joiner);
  });

  const statusJson = async (): Promise<ClusterStatus> => JSON.parse((await handlefs(['status', '--servers', servers, '--json'])).stdout) as ClusterStatus;

  it('adds a fourth member as a learner and says how to start it', async () => {
    const run = await handlefs(['member', 'add', 'm4', '--peer-address', joiner.peerAddress, '--client-address', joiner.clientAddress, '--servers', servers]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`added m4 as a learner (peer ${joiner.peerAddress}, client ${joiner.clientAddress})`);
    expect(run.stdout).toMatch(/handlefs server --id m4 .* --join\n/);
    const list = await handlefs(['member', 'list', '--servers', servers, '--json']);
    const members = (JSON.parse(list.stdout) as { members: Array<{ id: string; role: string }> }).members;
    expect(members.map((m) => `${m.id}:${m.role}`).sort()).toEqual(['m1:voter', 'm2:voter', 'm3:voter', 'm4:learner']);
  });

  it('refuses to promote the learner before it runs, and changes nothing', async () => {
    const run = await handlefs(['member', 'promote', 'm4', '--servers', servers]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^handlefs member promote: .*learner m4 is not caught up: the leader has never heard from it .*nothing changed\n$/);
    const report = await statusJson();
    expect(report.members.find((m) => m.id === 'm4')?.role).toBe('unreachable');
    expect(report.health).toBe('degraded');
  });

  it('promotes it once it has caught up after starting with --join, progress on stderr', async () => {
    await startJoiner(cluster, joiner);
    const run = await handlefs(['member', 'promote', 'm4', '--wait', '30', '--servers', servers]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/m4 catching up \[[#.]+\] \d+% /);
    expect(run.stdout).toMatch(/^promoted m4 to voter; members: .*m4 \(voter\)/);
    await load!.writeMore(20, 15_000);
    const report = await eventually('a healthy cluster of four', 10_000, async () => {
      const status = await statusJson();
      return status.health === 'healthy' && status;
    });
    expect(report.summary).toMatch(/^healthy: leader m\d \(term \d+\), 4\/4 members, max lag \d+$/);
    expect(report.members.find((m) => m.id === 'm4')).toMatchObject({ role: 'follower', clientAddress: joiner.clientAddress });
  });

  it('removes the old leader with no failed client operation', async () => {
    const oldLeader = await cluster.leader();
    const run = await handlefs(['member', 'remove', oldLeader.id, '--servers', servers]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^removed ${oldLeader.id}; members: .*; leader m\\d\n`));
    // The operator stops the removed member, as the command says.
    await cluster.terminate(oldLeader);
    await load!.writeMore(30, 20_000);
    const remaining = servers.split(',').filter((address) => address !== oldLeader.clientAddress).join(',');
    const report = await eventually('a healthy cluster of three', 10_000, async () => {
      const status = JSON.parse((await handlefs(['status', '--servers', remaining, '--json'])).stdout) as ClusterStatus;
      return status.health === 'healthy' && status;
    });
    expect(report.members.map((m) => m.id).sort()).toEqual(['m1', 'm2', 'm3', 'm4'].filter((id) => id !== oldLeader.id));
    expect(report.summary).toMatch(/^healthy: leader m\d \(term \d+\), 3\/3 members, max lag \d+$/);
    expect(report.leaderId).not.toBe(oldLeader.id);
    const stopped = load!;
    load = undefined;
    await stopped.stop();
    expect(stopped.failures).toEqual([]);
    expect(stopped.written).toBeGreaterThanOrEqual(70);
  });
});
