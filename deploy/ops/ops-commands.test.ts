/**
 * `handlefs status`, `leader transfer`, `snapshot` and every refusal of bad
 * input, as a user runs them (node bin/handlefs.js) against a live
 * three-member metadata cluster of real processes; a killed member shows as
 * unreachable and the health as degraded. Run `npx tsc -p .` first.
 */
import { MetaTestCluster } from '../../metaserver/server/testing';
import type { ClusterStatus } from './cluster-status';
import { freePort } from '../../raft/node/process-cluster';
import { handlefs } from './testing';

const VERSION = /^\d+\.\d+\.\d+/;

describe('operator commands on a live three-member cluster', () => {
  let cluster: MetaTestCluster;
  let servers: string;

  const statusJson = async (): Promise<{ code: number; report: ClusterStatus; stderr: string }> => {
    const run = await handlefs(['status', '--servers', servers, '--json']);
    return { code: run.code, report: JSON.parse(run.stdout) as ClusterStatus, stderr: run.stderr };
  };
  const membersOf = async (): Promise<string> => (await handlefs(['member', 'list', '--servers', servers])).stdout;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
    servers = cluster.members.map((m) => m.clientAddress).join(',');
  }, 30_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('prints a table of every member and one healthy line, exit 0', async () => {
    const leader = await cluster.leader();
    const run = await handlefs(['status', '--servers', servers]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^id\s+address\s+role\s+term\s+commit\/applied\s+lag\s+last contact\s+version$/);
    expect(lines).toHaveLength(5);
    for (const member of cluster.members) {
      const row = lines.find((line) => line.startsWith(`${member.id} `))!;
      expect(row).toContain(member.clientAddress);
      expect(row).toMatch(member === leader ? /\sleader\s/ : /\sfollower\s/);
      expect(row).toMatch(/\s\d+\/\d+\s/);
      expect(row).toMatch(member === leader ? /\s0\s+-\s/ : /\s\d+\s+\d+ ms\s/);
      expect(row).toMatch(/\d+\.\d+\.\d+$/);
    }
    expect(lines[4]).toMatch(new RegExp(`^healthy: leader ${leader.id} \\(term \\d+\\), 3/3 members, max lag \\d+$`));
  });

  it('gives the same as JSON for scripts', async () => {
    const leader = await cluster.leader();
    const { code, report } = await statusJson();
    expect(code).toBe(0);
    expect(report.health).toBe('healthy');
    expect(report.leaderId).toBe(leader.id);
    expect(report.unreachable).toEqual([]);
    expect(report.members.map((m) => m.id).sort()).toEqual(['m1', 'm2', 'm3']);
    for (const row of report.members) {
      expect(row).toMatchObject({ answered: true, leaderId: leader.id, version: expect.stringMatching(VERSION), clientAddress: cluster.member(row.id).clientAddress });
      expect(row.appliedIndex).toBeLessThanOrEqual(row.commitIndex!);
      if (row.id !== leader.id) expect(row.lastContactMs).toBeGreaterThanOrEqual(0);
    }
  });

  it('moves leadership to the member named and waits until it leads', async () => {
    const leader = await cluster.leader();
    const target = cluster.members.find((m) => m !== leader)!;
    const run = await handlefs(['leader', 'transfer', '--to', target.id, '--servers', servers]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^leadership moved from ${leader.id} to ${target.id} \\(term \\d+\\) in \\d+ ms\n$`));
    // In place when the command returns: the target itself says it leads.
    expect((await statusJson()).report.leaderId).toBe(target.id);
    const again = await handlefs(['leader', 'transfer', '--to', target.id, '--servers', servers]);
    expect(again.stdout).toMatch(new RegExp(`^${target.id} already leads`));
    const any = await handlefs(['leader', 'transfer', '--servers', servers]);
    expect(any.code).toBe(0);
    expect(any.stdout).toMatch(new RegExp(`^leadership moved from ${target.id} to m\\d`));
  });

  it('takes a snapshot on the member named', async () => {
    const member = cluster.members[2];
    const run = await handlefs(['snapshot', '--member', member.id, '--servers', servers]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^${member.id}: (snapshot at index \\d+ \\(term \\d+\\), log compacted up to \\d+, in \\d+ ms|nothing applied since the snapshot at index \\d+; no new snapshot taken)\n$`));
  });

  describe('given one member\'s address only, every command finds the others and follows the leader', () => {
    it('moves leadership away from the member named and waits until the new leader is in place', async () => {
      const leader = await cluster.leader();
      const run = await handlefs(['leader', 'transfer', '--servers', leader.clientAddress]);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^leadership moved from ${leader.id} to m\\d \\(term \\d+\\) in \\d+ ms\n$`));
      expect((await cluster.leader()).id).not.toBe(leader.id);
    }, 30_000);

    it('sends a membership change to the leader from a follower\'s address, and answers its refusal', async () => {
      const follower = (await cluster.followers())[0];
      const run = await handlefs(['member', 'remove', 'm9', '--servers', follower.clientAddress]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^handlefs member remove: .*member m9 is not in the cluster \(members: m1, m2, m3\); nothing changed\n$/);
    }, 30_000);

    it('shows every member in status and lists them, from a follower\'s address', async () => {
      const follower = (await cluster.followers())[0];
      const status = await handlefs(['status', '--servers', follower.clientAddress, '--json']);
      expect(status.code).toBe(0);
      const report = JSON.parse(status.stdout) as ClusterStatus;
      expect(report.health).toBe('healthy');
      expect(report.members.map((m) => `${m.id}=${m.clientAddress}`).sort()).toEqual(cluster.members.map((m) => `${m.id}=${m.clientAddress}`).sort());
      const list = await handlefs(['member', 'list', '--servers', follower.clientAddress]);
      expect(list.code).toBe(0);
      for (const member of cluster.members) expect(list.stdout).toContain(member.clientAddress);
    }, 30_000);

    it('takes a snapshot on a member whose address was not given', async () => {
      const [given, other] = cluster.members;
      const run = await handlefs(['snapshot', '--member', other.id, '--servers', given.clientAddress]);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^${other.id}: `));
    }, 30_000);
  });

  describe('bad input: a message naming the problem, exit code ≠ 0, nothing changed', () => {
    it.each([
      [['status'], 2, /--servers HOST:PORT,\.\.\. is required/],
      [['status', '--servers', '127.0.0.1'], 2, /--servers: address "127.0.0.1" is not "host:port"/],
      [['status', '--servers', '127.0.0.1:1,127.0.0.1:1'], 2, /--servers: 127.0.0.1:1 given twice/],
      [['member', 'add', 'm4', '--client-address', '127.0.0.1:5', '--servers', '127.0.0.1:1'], 2, /--peer-address HOST:PORT is required/],
      [['member', 'add', 'm4', '--peer-address', 'x:y', '--client-address', '127.0.0.1:5', '--servers', '127.0.0.1:1'], 2, /--peer-address: address "x:y" is not "host:port"/],
      [['member', 'add', 'bad/id', '--peer-address', '127.0.0.1:4', '--client-address', '127.0.0.1:5', '--servers', '127.0.0.1:1'], 2, /member id "bad\/id" must be/],
      [['member', 'promote', 'm4', '--wait', 'soon', '--servers', '127.0.0.1:1'], 2, /--wait must be a whole number of seconds/],
      [['member', 'rename', 'm4'], 2, /member needs list, add, promote or remove, got "rename"/],
      [['leader', 'elect'], 2, /leader needs transfer, got "elect"/],
      [['snapshot', '--servers', '127.0.0.1:1'], 2, /snapshot --member needs a member id/],
    ])('handlefs %j exits %i', async (args, code, message) => {
      const run = await handlefs(args as string[]);
      expect(run.code).toBe(code);
      expect(run.stderr).toMatch(message);
      expect(run.stdout).toBe('');
    });

    it('refuses a member add of an id already present', async () => {
      const before = await membersOf();
      const run = await handlefs(['member', 'add', 'm2', '--peer-address', `127.0.0.1:${await freePort()}`, '--client-address', `127.0.0.1:${await freePort()}`, '--servers', servers]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^handlefs member add: .*member m2 is already in the cluster \(a voter at 127\.0\.0\.1:\d+\); nothing changed\n$/);
      expect(await membersOf()).toBe(before);
    });

    it('refuses unknown ids for promote, remove, transfer and snapshot', async () => {
      const before = await membersOf();
      const runs = await Promise.all([
        handlefs(['member', 'promote', 'm9', '--servers', servers]),
        handlefs(['member', 'remove', 'm9', '--servers', servers]),
        handlefs(['leader', 'transfer', '--to', 'm9', '--servers', servers]),
        handlefs(['snapshot', '--member', 'm9', '--servers', servers]),
      ]);
      for (const run of runs) {
        expect(run.code).toBe(1);
        expect(run.stderr).toMatch(/member m9 is not in the cluster \(members: m1, m2, m3\); nothing changed\n$/);
      }
      expect(await membersOf()).toBe(before);
    });

    it('names every address of an unreachable cluster', async () => {
      const dead = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
      const status = await handlefs(['status', '--servers', dead.join(',')]);
      expect(status.code).toBe(1);
      expect(status.stdout).toMatch(/^no quorum: no server answers \(2 asked\); unreachable: /m);
      for (const address of dead) expect(status.stderr).toContain(`${address} is unreachable`);
      const remove = await handlefs(['member', 'remove', 'm2', '--servers', dead.join(',')]);
      expect(remove.code).toBe(1);
      expect(remove.stderr).toMatch(/the cluster is unreachable: no server answered/);
      for (const address of dead) expect(remove.stderr).toContain(address);
    });
  });

  it('shows a killed member as unreachable and the cluster as degraded, exit 1', async () => {
    const leader = await cluster.leader();
    const victim = cluster.members.find((m) => m !== leader)!;
    await cluster.kill9(victim);
    const { code, report, stderr } = await statusJson();
    expect(code).toBe(1);
    expect(report.health).toBe('degraded');
    expect(report.summary).toMatch(new RegExp(`^degraded: leader ${leader.id} \\(term \\d+\\), 2/3 members, .*unreachable: ${victim.id} at ${victim.clientAddress.replace(/\./g, '\\.')}$`));
    expect(report.members.find((m) => m.id === victim.id)).toMatchObject({ role: 'unreachable', answered: false });
    expect(report.unreachable).toEqual([{ address: victim.clientAddress, id: victim.id, error: expect.stringContaining('unreachable') }]);
    expect(stderr).toContain(`member ${victim.id}: ${victim.clientAddress} is unreachable`);
    const table = await handlefs(['status', '--servers', servers]);
    expect(table.code).toBe(1);
    expect(table.stdout).toMatch(new RegExp(`^${victim.id}\\s+${victim.clientAddress.replace(/\./g, '\\.')}\\s+unreachable\\s`, 'm'));
  });
});
