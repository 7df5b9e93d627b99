/**
 * --debug-unsafe stale-reads: reads skip ReadIndex and any member answers
 * from what it has applied. Shown directly: a file created (and committed)
 * through the leader is looked up on a follower right after the answer, and
 * the follower says it does not exist — a stale read the linearizability
 * checker must report. --debug-follower-apply-delay-ms widens the follower's
 * lag so the loop is short and bounded. A control cluster without the switch
 * shows the same loop never reads stale (ReadIndex waits for the follower to
 * catch up). Real processes; run `npx tsc -p .` first.
 */
import { Errno } from '../../metaserver/rules/errno';
import { MetaTestCluster, ROOT_CALLER, ROOT_HANDLE } from '../../metaserver/server/testing';
import { MetaClient } from '../../client/sdk';

const DEBUG_ENV = { HANDLEFS_DEBUG_UNSAFE: '1' };
const WRITES = 15;
const FOLLOWER_APPLY_DELAY_MS = 100;

/** Creates WRITES files through the leader; each, once answered, is looked up on a follower at once. Returns how many lookups missed it. */
async function staleLookups(cluster: MetaTestCluster, label: string): Promise<{ stale: number; seen: number }> {
  const session = await cluster.openSession({ ttlMs: 30_000 });
  const follower = (await cluster.followers())[0];
  await cluster.caughtUp(follower);
  let stale = 0;
  let seen = 0;
  for (let i = 0; i < WRITES; i++) {
    const name = `${label}-${i}`;
    const created = await session.mutate('Create', { parent: ROOT_HANDLE, name, mode: 0o644, exclusive: true });
    if (created.error || created.reply.errno !== 0) throw new Error(`Create ${name}: ${created.error?.message ?? created.reply!.message}`);
    const found = await cluster.call(follower, 'Lookup', { caller: ROOT_CALLER, parent: ROOT_HANDLE, name });
    if (found.error) throw new Error(`Lookup ${name} on ${follower.id}: ${found.error.message}`);
    if (found.reply.errno === Errno.ENOENT) stale++;
    else if (found.reply.errno === 0 && found.reply.attr?.handle === created.reply.attr!.handle) seen++;
    else throw new Error(`Lookup ${name} on ${follower.id} answered errno ${found.reply.errno}: ${found.reply.message}`);
  }
  return { stale, seen };
}

/** An SDK client that lists a follower first and reads from it: each value it writes, read back at once. Returns the stale reads. */
async function staleSdkReads(cluster: MetaTestCluster): Promise<{ stale: number; fresh: number }> {
  const follower = (await cluster.followers())[0];
  const others = cluster.members.filter((m) => m.id !== follower.id).map((m) => m.clientAddress);
  const client = await MetaClient.connect({ servers: [follower.clientAddress, ...others], deadlineMs: 10_000, readFrom: 'first-listed' });
  let stale = 0;
  let fresh = 0;
  try {
    for (let i = 0; i < WRITES; i++) {
      const value = `value ${i}`;
      await client.writeFile('/sdk-register', Buffer.from(value));
      const read = Buffer.from(await client.readFile('/sdk-register', { version: 'head' }).catch(() => Buffer.from('(missing)'))).toString();
      if (read === value) fresh++;
      else stale++;
    }
  } finally {
    await client.close();
  }
  return { stale, fresh };
}

describe('stale-reads', () => {
  it('lets a follower answer a read from its own state, missing a write the leader already acknowledged', async () => {
    const cluster = await MetaTestCluster.start({
      env: DEBUG_ENV, extraArgs: ['--debug-unsafe', 'stale-reads', '--debug-follower-apply-delay-ms', String(FOLLOWER_APPLY_DELAY_MS)],
    });
    try {
      const { stale } = await staleLookups(cluster, 'unsafe');
      expect(stale).toBeGreaterThanOrEqual(1);
      // Stale, not broken: the follower does catch up.
      const follower = (await cluster.followers())[0];
      await cluster.caughtUp(follower);
      const late = await cluster.call(follower, 'Lookup', { caller: ROOT_CALLER, parent: ROOT_HANDLE, name: `unsafe-${WRITES - 1}` });
      expect(late.reply?.errno).toBe(0);
    } finally {
      await cluster.destroy();
    }
  }, 40_000);

  it('never reads stale on the same loop without the switch (the control)', async () => {
    const cluster = await MetaTestCluster.start();
    try {
      const { stale, seen } = await staleLookups(cluster, 'safe');
      expect(stale).toBe(0);
      expect(seen).toBe(WRITES);
    } finally {
      await cluster.destroy();
    }
  }, 40_000);

  describe('an SDK client reading from its first listed member (readFrom first-listed), that member a lagging follower', () => {
    it('reads values older than its own acknowledged write under the switch', async () => {
      const cluster = await MetaTestCluster.start({
        env: DEBUG_ENV, extraArgs: ['--debug-unsafe', 'stale-reads', '--debug-follower-apply-delay-ms', String(FOLLOWER_APPLY_DELAY_MS)],
      });
      try {
        expect((await staleSdkReads(cluster)).stale).toBeGreaterThanOrEqual(1);
      } finally {
        await cluster.destroy();
      }
    }, 40_000);

    it('reads every acknowledged write with the same lag but without the switch (the control)', async () => {
      const cluster = await MetaTestCluster.start({ env: DEBUG_ENV, extraArgs: ['--debug-follower-apply-delay-ms', String(FOLLOWER_APPLY_DELAY_MS)] });
      try {
        expect(await staleSdkReads(cluster)).toEqual({ stale: 0, fresh: WRITES });
      } finally {
        await cluster.destroy();
      }
    }, 40_000);
  });
});
