/**
 * Direct block uploads against a real 3-member cluster (dist/metaserver/server):
 * the client pins through the leader and stores on every member itself, the
 * pins of concurrent uploads share log entries, a dead member costs nothing
 * while a majority stands, and with one member known the leader carries the
 * bytes. Run `npx tsc -p .` first.
 */
import * as grpc from '@grpc/grpc-js';
import { HasBlocksReply, blockPeerService } from '../../proto/blocks-proto';
import { MetaTestCluster, patternBytes } from '../../metaserver/server/testing';
import { MetaClient, MetaError, ROOT_HANDLE } from './index';

const DEADLINE_MS = 15_000;

/** Which of ids one member holds, asked over BlockPeer.HasBlocks on its client port. */
async function holds(address: string, ids: string[]): Promise<boolean[]> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    const reply = await new Promise<HasBlocksReply>((resolve, reject) => {
      const m = blockPeerService.HasBlocks;
      client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { ids }, { deadline: Date.now() + 5_000 }, (e, r) => (e ? reject(e) : resolve(r as HasBlocksReply)));
    });
    return reply.present;
  } finally {
    client.close();
  }
}

async function commitBlocks(client: MetaClient, dir: number, name: string, ids: string[], sizeBytes: number): Promise<void> {
  const created = await client.create(dir, name, 0o644, { exclusive: true, open: { read: false, write: true, append: false } });
  await client.commit(created.opened!.fh, created.opened!.version, { kind: 'blocks', blocks: ids, writtenExtents: [{ offset: 0, length: sizeBytes }], newSize: sizeBytes }, { release: true });
}

describe('block uploads from the client straight to the members', () => {
  let cluster: MetaTestCluster;
  let client: MetaClient;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
    client = await MetaClient.connect({ servers: cluster.members.map((m) => m.clientAddress), deadlineMs: DEADLINE_MS, clientName: 'uploader-test' });
  }, 30_000);

  afterAll(async () => {
    await client?.close();
    await cluster?.destroy();
  });

  it('stores every block on every member without the leader forwarding bytes, and the file reads back', async () => {
    const blocks = [0, 1, 2].map((i) => patternBytes(1 << 20, 100 + i));
    const before = { ...client.stats.uploads };
    const ids = await Promise.all(blocks.map((b) => client.putBlock(b)));
    expect(client.stats.uploads.direct - before.direct).toBe(3);
    expect(client.stats.uploads.viaLeader - before.viaLeader).toBe(0);
    expect(client.stats.calls.attempts.PutBlock ?? 0).toBe(0);
    // A majority answered before putBlock returned; the last member follows within its store attempt.
    const deadline = Date.now() + 5_000;
    for (const member of cluster.members) {
      while (!(await holds(member.clientAddress, ids)).every(Boolean)) {
        if (Date.now() > deadline) throw new Error(`member ${member.id} does not hold every uploaded block`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const dir = (await client.mkdir(ROOT_HANDLE, 'direct', 0o755)).handle;
    await commitBlocks(client, dir, 'three', ids, 3 << 20);
    expect(Buffer.from(await client.readFile('/direct/three')).equals(Buffer.concat(blocks))).toBe(true);
  });

  it('pins the blocks of concurrent uploads in fewer log entries than blocks', async () => {
    const before = client.stats.uploads.pinCalls;
    await Promise.all(Array.from({ length: 16 }, (_, i) => client.putBlock(patternBytes(64 * 1024, 200 + i))));
    const pinCalls = client.stats.uploads.pinCalls - before;
    expect(pinCalls).toBeGreaterThanOrEqual(1);
    expect(pinCalls).toBeLessThan(16);
  });

  it('pins a block uploaded twice at once once, counting its bytes once', async () => {
    const block = patternBytes(1 << 20, 300);
    const [a, b] = await Promise.all([client.putBlock(block), client.putBlock(block)]);
    expect(a).toBe(b);
  });

  it('goes through the leader when it knows only one member', async () => {
    const leader = await cluster.leader();
    const single = await MetaClient.connect({ servers: [leader.clientAddress], deadlineMs: DEADLINE_MS, clientName: 'uploader-single' });
    try {
      const id = await single.putBlock(patternBytes(200_000, 400));
      expect(single.stats.uploads.viaLeader).toBe(1);
      expect(single.stats.uploads.direct).toBe(0);
      const held = await Promise.all(cluster.members.map((m) => holds(m.clientAddress, [id])));
      expect(held.filter(([h]) => h).length).toBeGreaterThanOrEqual(2);
    } finally {
      await single.close();
    }
  });

  it('refuses a PinBlocks with no ids, too many ids, a bad id or more bytes than its blocks hold, and pins nothing', async () => {
    const session = await cluster.openSession();
    const good = '0'.repeat(64);
    const cases: Array<[object, RegExp]> = [
      [{ ids: [], newBytes: 0 }, /names no block/],
      [{ ids: Array.from({ length: 65 }, (_, i) => i.toString(16).padStart(64, '0')), newBytes: 0 }, /ids/],
      [{ ids: ['not-hex'], newBytes: 0 }, /ids/],
      [{ ids: [good], newBytes: (1 << 20) + 1 }, /new_bytes/],
    ];
    for (const [body, message] of cases) {
      const outcome = await session.mutate('PinBlocks', body as never, 10_000);
      expect(outcome.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(outcome.error?.details).toMatch(message);
    }
  });
});

describe('block uploads while a member is down', () => {
  let cluster: MetaTestCluster;
  let client: MetaClient;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
    client = await MetaClient.connect({ servers: cluster.members.map((m) => m.clientAddress), deadlineMs: DEADLINE_MS, clientName: 'uploader-down' });
  }, 30_000);

  afterAll(async () => {
    // No quorum is left: the client's CloseSession runs out its deadline.
    await client?.close();
    await cluster?.destroy();
  }, 40_000);

  it('stores on the two live members and commits; the restarted member gets the blocks back by repair', async () => {
    const [follower] = await cluster.followers();
    await cluster.kill9(follower);
    const blocks = [0, 1].map((i) => patternBytes(1 << 20, 500 + i));
    const ids = await Promise.all(blocks.map((b) => client.putBlock(b)));
    expect(client.stats.uploads.direct).toBe(2);
    const dir = (await client.mkdir(ROOT_HANDLE, 'down', 0o755)).handle;
    await commitBlocks(client, dir, 'two', ids, 2 << 20);
    expect(Buffer.from(await client.readFile('/down/two')).equals(Buffer.concat(blocks))).toBe(true);
    await cluster.restart(follower);
    await cluster.caughtUp(follower);
  }, 60_000);

  it('fails the upload with a MetaError, never success, when no majority is up', async () => {
    const followers = await cluster.followers();
    for (const f of followers) await cluster.kill9(f);
    const lonely = await MetaClient.connect({ servers: cluster.members.map((m) => m.clientAddress), deadlineMs: 3_000, clientName: 'uploader-lonely' }).catch((e: unknown) => e);
    // The leader may step down before or after the session opens: either way no block is acknowledged.
    if (lonely instanceof MetaClient) {
      const failure = await lonely.putBlock(patternBytes(1 << 20, 600)).catch((e: unknown) => e);
      await lonely.close();
      expect(failure).toBeInstanceOf(MetaError);
    } else {
      expect(lonely).toBeInstanceOf(MetaError);
    }
  }, 60_000);
});
