/**
 * --debug-unsafe no-session-expiry: the leader never expires a session that
 * ran out, so a client that died keeps its session and fhs for ever — what
 * the runner's session-expiry check (chaos-tests/session-expiry.ts, reported
 * by the versions checker) must report. Shown directly: a session opened with
 * a 1 s TTL and never kept alive is still listed, overdue, 3 s later; the
 * control cluster has expired it. Real processes; run `npx tsc -p .` first.
 */
import { MetaTestCluster } from '../../metaserver/server/testing';
import { listSessions } from '../../deploy/ops/admin-client';

const DEBUG_ENV = { HANDLEFS_DEBUG_UNSAFE: '1' };
const TTL_MS = 1_000;
const WAIT_MS = 3_000;

/** Opens a session with a 1 s TTL, never keeps it alive, and lists the sessions 3 s later: that session's entry, if any. */
async function abandonedSession(cluster: MetaTestCluster) {
  const session = await cluster.openSession({ ttlMs: TTL_MS, name: 'abandoned' });
  await new Promise((resolve) => setTimeout(resolve, WAIT_MS));
  const listing = await listSessions(cluster.members.map((m) => m.clientAddress));
  return listing.sessions.find((s) => s.id === session.id);
}

describe('no-session-expiry', () => {
  it('keeps a session that ran out, listed as overdue', async () => {
    const cluster = await MetaTestCluster.start({ env: DEBUG_ENV, extraArgs: ['--debug-unsafe', 'no-session-expiry'] });
    try {
      const left = await abandonedSession(cluster);
      expect(left).toMatchObject({ clientName: 'abandoned', ttlMs: TTL_MS, tracked: true });
      expect(left!.expiresInMs).toBeLessThan(0);
    } finally {
      await cluster.destroy();
    }
  }, 30_000);

  it('expires it on a normal cluster (the control)', async () => {
    const cluster = await MetaTestCluster.start();
    try {
      expect(await abandonedSession(cluster)).toBeUndefined();
    } finally {
      await cluster.destroy();
    }
  }, 30_000);
});
