/**
 * --debug-unsafe ack-before-commit: a leader answers a mutation before a
 * majority holds its entry. Shown directly: with both followers down the
 * leader still acknowledges a create (a correct one cannot: it has no
 * quorum), the leader is killed, the followers come back and elect one of
 * their own, and the acknowledged file is not there — exactly the lost
 * acknowledged write the chaos checker must report. Real processes; run
 * `npx tsc -p .` first.
 */
import { Errno } from '../../metaserver/rules/errno';
import { MetaTestCluster, ROOT_CALLER, ROOT_HANDLE, TestSession } from '../../metaserver/server/testing';

const DEBUG_ENV = { HANDLEFS_DEBUG_UNSAFE: '1' };
/** Tries of the whole scenario at most (it is deterministic; the bound covers an unlucky election). */
const TRIES_MAX = 3;
/** A 1 s election timeout (20 ms ticks): the lone leader keeps leading while the create is sent. */
const ELECTION_TICKS = 50;

let cluster: MetaTestCluster | undefined;
let session: TestSession;

beforeAll(async () => {
  cluster = await MetaTestCluster.start({ env: DEBUG_ENV, extraArgs: ['--debug-unsafe', 'ack-before-commit'], electionTicks: ELECTION_TICKS });
  session = await cluster.openSession({ ttlMs: 30_000, keepAliveEveryMs: 1_000 });
}, 30_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe('ack-before-commit', () => {
  it('still gives exact answers while the cluster is healthy (clients go on normally)', async () => {
    const created = await session.mutate('Create', { parent: ROOT_HANDLE, name: 'healthy', mode: 0o644, exclusive: true, open: { read: true, write: true, append: false } });
    expect(created.error).toBeUndefined();
    expect(created.reply!.errno).toBe(0);
    expect(created.reply!.created).toBe(true);
    expect(created.reply!.opened!.fh).toBeGreaterThan(0);
    const found = await cluster!.onLeader('Lookup', { caller: ROOT_CALLER, parent: ROOT_HANDLE, name: 'healthy' });
    expect(found.reply?.attr?.handle).toBe(created.reply!.attr!.handle);
  });

  it('says loudly at start that the member is wrong on purpose', () => {
    for (const member of cluster!.members) {
      expect(member.stderrTail.some((line) => line.includes('DEBUG-UNSAFE fault switches ON (ack-before-commit'))).toBe(true);
    }
  });

  it('loses a create the leader acknowledged when the leader dies before its followers stored it', async () => {
    const c = cluster!;
    const outcomes: string[] = [];
    let lost = false;
    for (let attempt = 1; attempt <= TRIES_MAX && !lost; attempt++) {
      const leader = await c.leader();
      const followers = c.running().filter((m) => m !== leader);
      await Promise.all(followers.map((f) => c.kill9(f)));
      const name = `acked-then-lost-${attempt}`;
      const startedAtMs = Date.now();
      const created = await c.call(leader, 'Create', { header: session.header(), parent: ROOT_HANDLE, name, mode: 0o644, exclusive: true }, 3_000);
      const answeredMs = Date.now() - startedAtMs;
      const acknowledged = !created.error && created.reply.errno === 0 && created.reply.created && created.reply.attr!.handle > ROOT_HANDLE;
      await c.kill9(leader);
      await Promise.all(followers.map((f) => c.restart(f)));
      await c.leader(); // one of the two that never had the entry
      await c.restart(leader);
      await c.caughtUp(leader);
      const found = await c.onLeader('Lookup', { caller: ROOT_CALLER, parent: ROOT_HANDLE, name });
      const missing = !found.error && found.reply.errno === Errno.ENOENT;
      outcomes.push(`attempt ${attempt}: acknowledged=${acknowledged} in ${answeredMs} ms (${created.error?.message ?? `errno ${created.reply!.errno}`}), afterwards ${missing ? 'missing' : 'present'}`);
      lost = acknowledged && missing;
    }
    if (!lost) throw new Error(`no acknowledged create was lost:\n${outcomes.join('\n')}\n${c.stderrReport()}`);
    // The member that acknowledged it was brought level with the new leader: every member agrees it is gone.
    for (const member of c.running()) {
      await c.caughtUp(member);
    }
  }, 50_000);
});
