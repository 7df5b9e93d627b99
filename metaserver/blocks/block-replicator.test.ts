import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { blockPeerService } from '../../proto/blocks-proto';
import { BlockFetchError, BlockReplicationError, BlockReplicator } from './block-replicator';
import { BlockHashMismatchError, BlockStore, blockIdOf } from './block-store';
import { PeerProcess, TestPeer, randomBlock, startPeer, startPeerProcess, tempDir } from './testing';

const soon = (ms = 3_000): number => Date.now() + ms;

describe('BlockReplicator with three members serving BlockPeer on loopback', () => {
  let leaderDir: string;
  let leaderStore: BlockStore;
  let peers: TestPeer[];
  let replicator: BlockReplicator;
  let appliedOnC = 0;

  beforeEach(async () => {
    appliedOnC = 0;
    leaderDir = tempDir('handlefs-block-leader-');
    leaderStore = await BlockStore.open(leaderDir);
    peers = [
      await startPeer(),
      // Member c answers only once its applied index reaches what the leader asks for.
      await startPeer({
        waitApplied: async (index, deadlineMs) => {
          while (appliedOnC < index) {
            if (Date.now() >= deadlineMs) throw new Error(`applied index ${appliedOnC}`);
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        },
      }),
    ];
    replicator = new BlockReplicator({ store: leaderStore, selfId: 'a', peers: new Map([['b', peers[0].address], ['c', peers[1].address]]) });
  });
  afterEach(() => {
    replicator.close();
    peers.forEach((peer) => peer.close());
    fs.rmSync(leaderDir, { recursive: true, force: true });
  });

  it('acknowledges a block once a majority holds it, and the rest follow in the background', async () => {
    const bytes = randomBlock(64 * 1024, 1);
    const id = blockIdOf(bytes);
    appliedOnC = 10;
    await replicator.replicate(id, bytes, 10, soon());
    expect(await leaderStore.has(id)).toBe(true);
    // The majority is a and whichever peer answered first; give the other its moment (its file lands before its answer does).
    for (let i = 0; i < 200 && !(await peers[0].store.has(id) && await peers[1].store.has(id) && replicator.holdersOf(id).length === 3); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await peers[0].store.has(id)).toBe(true);
    expect(Buffer.from((await peers[1].store.get(id))!).equals(Buffer.from(bytes))).toBe(true);
    expect(replicator.holdersOf(id).sort()).toEqual(['a', 'b', 'c']);
  });

  it('does not wait for a member that lags behind the applied index', async () => {
    const bytes = randomBlock(1000, 2);
    const id = blockIdOf(bytes);
    const started = Date.now();
    await replicator.replicate(id, bytes, 50, soon(2_000)); // c is at 0
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(await peers[1].store.has(id)).toBe(false);
    appliedOnC = 50; // c catches up before the deadline: the background send lands
    for (let i = 0; i < 200 && !(await peers[1].store.has(id)); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await peers[1].store.has(id)).toBe(true);
  });

  it('refuses bytes that do not hash to the id before sending anything', async () => {
    const id = blockIdOf(randomBlock(10, 3));
    await expect(replicator.replicate(id, randomBlock(10, 4), 0, soon())).rejects.toBeInstanceOf(BlockHashMismatchError);
    expect(await peers[0].store.has(id)).toBe(false);
  });

  it('answers which blocks a majority holds, asking peers about ids it does not know', async () => {
    const both = randomBlock(100, 5);
    const onlyLeader = randomBlock(100, 6);
    const onlyC = randomBlock(100, 7);
    const nowhere = randomBlock(100, 8);
    await leaderStore.put(blockIdOf(both), both);
    await peers[0].store.put(blockIdOf(both), both);
    await leaderStore.put(blockIdOf(onlyLeader), onlyLeader);
    await peers[1].store.put(blockIdOf(onlyC), onlyC);
    const ids = [both, onlyLeader, onlyC, nowhere].map(blockIdOf);
    expect(await replicator.majorityHolds(ids, soon())).toEqual([true, false, false, false]);
    await peers[0].store.put(blockIdOf(onlyC), onlyC);
    expect(await replicator.majorityHolds(ids, soon())).toEqual([true, false, true, false]);
    // Known holders are remembered: the answer stands while the peers are down.
    peers.forEach((peer) => peer.stop());
    expect(await replicator.majorityHolds([ids[0], ids[2], ids[3]], soon(1_000))).toEqual([true, true, false]);
  });

  it('fetches a block from a member holding it, and says who lacked it when none does', async () => {
    const bytes = randomBlock(5000, 9);
    const id = blockIdOf(bytes);
    await peers[1].store.put(id, bytes);
    expect(Buffer.from(await replicator.fetch(id, soon())).equals(Buffer.from(bytes))).toBe(true);
    const missing = blockIdOf(randomBlock(10, 10));
    const error = await replicator.fetch(missing, soon()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BlockFetchError);
    expect((error as Error).message).toMatch(/b: does not hold it/);
    expect((error as Error).message).toMatch(/c: does not hold it/);
  });

  it('does not serve a corrupt copy: the holder quarantines it and the fetch goes to the next member', async () => {
    const bytes = randomBlock(5000, 11);
    const id = blockIdOf(bytes);
    await peers[0].store.put(id, bytes);
    await peers[1].store.put(id, bytes);
    const onB = path.join(peers[0].dir, id.slice(0, 2), id.slice(2, 4), id);
    fs.writeFileSync(onB, Buffer.from(randomBlock(5000, 12)));
    expect(Buffer.from(await replicator.fetch(id, soon())).equals(Buffer.from(bytes))).toBe(true);
    expect(peers[0].store.quarantinedCount()).toBe(1);
  });

  it('follows membership: with one peer left the cluster of two needs both', async () => {
    replicator.setPeers(new Map([['b', peers[0].address]]));
    expect(replicator.majority()).toBe(2);
    const bytes = randomBlock(100, 13);
    await replicator.replicate(blockIdOf(bytes), bytes, 0, soon());
    expect(await peers[0].store.has(blockIdOf(bytes))).toBe(true);
    expect(await peers[1].store.has(blockIdOf(bytes))).toBe(false);
    peers[0].stop();
    const other = randomBlock(100, 14);
    await expect(replicator.replicate(blockIdOf(other), other, 0, soon())).rejects.toThrow(/reached 1 of the 2 members a majority needs .* b: UNAVAILABLE/);
    expect(() => replicator.setPeers(new Map([['a', 'x:1']]))).toThrow(/include this member a/);
  });

  it('keeps at most knownHoldersMax ids in its holder cache', async () => {
    const small = new BlockReplicator({ store: leaderStore, selfId: 'a', peers: new Map([['b', peers[0].address], ['c', peers[1].address]]), knownHoldersMax: 3 });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const bytes = randomBlock(50, 100 + i);
        ids.push(blockIdOf(bytes));
        await small.replicate(ids[i], bytes, 0, soon());
      }
      expect(small.holdersOf(ids[0])).toEqual([]);
      expect(small.holdersOf(ids[4])).toContain('a');
    } finally {
      small.close();
    }
  });

  it('rejects a fetched block whose bytes do not hash to the id (a lying member)', async () => {
    const liar = new grpc.Server();
    liar.addService(blockPeerService, {
      FetchBlock: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { found: true, bytes: Buffer.from('not the block') }),
      HasBlocks: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { present: [] }),
      StoreReplica: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, {}),
    });
    const port = await new Promise<number>((resolve, reject) => liar.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const lying = new BlockReplicator({ store: leaderStore, selfId: 'a', peers: new Map([['liar', `127.0.0.1:${port}`]]) });
    try {
      const id = blockIdOf(randomBlock(10, 15));
      await expect(lying.fetch(id, soon())).rejects.toThrow(/liar: sent bytes that hash to/);
      // A reply that does not match the question is not a vote either.
      expect(await lying.majorityHolds([id], soon())).toEqual([false]);
    } finally {
      lying.close();
      liar.forceShutdown();
    }
  });
});

describe('BlockReplicator when member processes are killed (SIGKILL)', () => {
  let leaderDir: string;
  let processes: PeerProcess[] = [];

  afterEach(async () => {
    await Promise.all(processes.map((p) => p.close()));
    processes = [];
    fs.rmSync(leaderDir, { recursive: true, force: true });
  });

  it('still reaches a majority with 2 of 3 members, fails naming both with 1 of 3, and recovers when one restarts', async () => {
    leaderDir = tempDir('handlefs-block-leader-');
    const store = await BlockStore.open(leaderDir);
    processes = await Promise.all([startPeerProcess(), startPeerProcess()]);
    const replicator = new BlockReplicator({ store, selfId: 'a', peers: new Map([['b', processes[0].address], ['c', processes[1].address]]) });
    try {
      const first = randomBlock(256 * 1024, 21);
      await replicator.replicate(blockIdOf(first), first, 0, soon());

      await processes[1].kill();
      const second = randomBlock(256 * 1024, 22);
      await replicator.replicate(blockIdOf(second), second, 0, soon());
      expect(replicator.holdersOf(blockIdOf(second)).sort()).toEqual(['a', 'b']);
      // What b stored is on its disk: a fresh store over its folder finds it.
      const bStore = await BlockStore.open(processes[0].dir);
      expect(await bStore.has(blockIdOf(second))).toBe(true);

      await processes[0].kill();
      const third = randomBlock(256 * 1024, 23);
      const started = Date.now();
      const error = await replicator.replicate(blockIdOf(third), third, 0, soon(5_000)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BlockReplicationError);
      const message = (error as Error).message;
      expect(message).toMatch(/reached 1 of the 2 members a majority needs \(held by a\)/);
      expect(message).toMatch(/b: UNAVAILABLE/);
      expect(message).toMatch(/c: UNAVAILABLE/);
      expect(Date.now() - started).toBeLessThan(5_000);
      // A block only the leader holds is not one a commit may reference.
      expect(await replicator.majorityHolds([blockIdOf(second), blockIdOf(third)], soon(1_000))).toEqual([true, false]);

      // b restarts on its folder and port: it still has what it stored, and the next block reaches a majority again.
      processes[0] = await startPeerProcess({ dir: processes[0].dir, listen: processes[0].address });
      const fourth = randomBlock(1024, 24);
      await replicator.replicate(blockIdOf(fourth), fourth, 0, soon(5_000));
      expect(replicator.holdersOf(blockIdOf(fourth)).sort()).toEqual(['a', 'b']);
      const restarted = await BlockStore.open(processes[0].dir);
      expect(await restarted.has(blockIdOf(second))).toBe(true);
    } finally {
      replicator.close();
    }
  });
});
