/**
 * --debug-unsafe no-dedup: the state machine applies a retried (session,
 * sequence) again instead of answering it from the stored result. Shown
 * directly by sending one request twice with the same header, as a client
 * retrying after a lost answer does: the Open makes two fhs (a double
 * effect), the exclusive Create answers EEXIST and the commit EINVAL the
 * second time (a success the client retried turns into a failure) — what the
 * "exactly once" and "no acknowledged write lost" checkers must report. The
 * control cluster without the switch answers each retry from the stored
 * result. Real processes; run `npx tsc -p .` first.
 */
import { Errno } from '../../metaserver/rules/errno';
import * as p from '../../proto/meta-proto';
import { MetaTestCluster, ROOT_HANDLE, TestSession } from '../../metaserver/server/testing';

const DEBUG_ENV = { HANDLEFS_DEBUG_UNSAFE: '1' };

interface Retried {
  createErrnos: number[];
  fhs: number[];
  commitVersions: number[];
  commitErrnos: number[];
  headVersion: number;
}

/** Each mutation is sent twice with one header, to the leader; what each send answered. */
async function retryTwice(cluster: MetaTestCluster, session: TestSession): Promise<Retried> {
  const leader = await cluster.leader();
  const twice = async <M extends p.MetaMethod>(method: M, request: Record<string, unknown>) => {
    const header = session.header();
    const answers = [];
    for (let send = 0; send < 2; send++) {
      const outcome = await cluster.call(leader, method, { ...request, header } as never);
      if (outcome.error) throw new Error(`${method}: ${outcome.error.message}`);
      answers.push(outcome.reply);
    }
    return answers;
  };
  const creates = await twice('Create', { parent: ROOT_HANDLE, name: 'retried', mode: 0o644, exclusive: true }) as p.EntryReply[];
  const handle = creates[0].attr!.handle;
  const opens = await twice('Open', { handle, read: true, write: true, append: false }) as p.OpenReply[];
  const fh = opens[0].fh;
  const commits = await twice('CommitVersion', { fh, baseVersion: opens[0].version, written: [{ offset: 0, data: Buffer.from('x') }], newSize: 1, policy: p.ConflictPolicy.LWW }) as p.CommitVersionReply[];
  const attr = await cluster.call(leader, 'GetAttr', { handle, generation: 0 });
  return {
    createErrnos: creates.map((r) => r.errno),
    fhs: opens.map((r) => r.fh),
    commitVersions: commits.map((r) => r.version),
    commitErrnos: commits.map((r) => r.errno),
    headVersion: attr.reply?.attr?.headVersion ?? -1,
  };
}

describe('no-dedup', () => {
  it('applies a retried sequence a second time', async () => {
    const cluster = await MetaTestCluster.start({ env: DEBUG_ENV, extraArgs: ['--debug-unsafe', 'no-dedup'] });
    try {
      const retried = await retryTwice(cluster, await cluster.openSession({ ttlMs: 30_000 }));
      expect(retried.createErrnos).toEqual([0, Errno.EEXIST]);
      expect(new Set(retried.fhs).size).toBe(2);
      // The commit is judged afresh against an fh that moved on: the client's retry of a success gets a failure.
      expect(retried.commitErrnos).toEqual([0, Errno.EINVAL]);
      expect(retried.headVersion).toBe(retried.commitVersions[0]);
    } finally {
      await cluster.destroy();
    }
  }, 40_000);

  it('answers the retry from the stored result without the switch (the control)', async () => {
    const cluster = await MetaTestCluster.start();
    try {
      const retried = await retryTwice(cluster, await cluster.openSession({ ttlMs: 30_000 }));
      expect(retried.createErrnos).toEqual([0, 0]);
      expect(new Set(retried.fhs).size).toBe(1);
      expect(retried.commitErrnos).toEqual([0, 0]);
      expect(retried.commitVersions[1]).toBe(retried.commitVersions[0]);
      expect(retried.headVersion).toBe(retried.commitVersions[0]);
    } finally {
      await cluster.destroy();
    }
  }, 40_000);
});
