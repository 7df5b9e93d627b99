import * as fs from 'node:fs';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { BlockRepair } from './block-repair';
import { BlockReplicator } from './block-replicator';
import { BlockStore, blockIdOf } from './block-store';
import { TestPeer, randomBlock, startPeer, tempDir } from './testing';

async function* idsOf(ids: readonly string[]): AsyncGenerator<string> {
  for (const id of ids) yield id;
}

describe('BlockRepair: a member refills its store from its peers', () => {
  let peers: TestPeer[];
  let wipedDir: string;

  beforeEach(async () => {
    peers = [await startPeer(), await startPeer()];
    wipedDir = tempDir('handlefs-block-wiped-');
  });
  afterEach(() => {
    peers.forEach((peer) => peer.close());
    fs.rmSync(wipedDir, { recursive: true, force: true });
  });

  it('fetches every referenced block a wiped store lacks, and the next pass finds nothing missing', async () => {
    const blocks = Array.from({ length: 30 }, (_, i) => randomBlock(8 * 1024 + i, 1000 + i));
    const ids = blocks.map(blockIdOf);
    // Spread the blocks: every block on at least one peer, some on both.
    for (let i = 0; i < blocks.length; i++) {
      await peers[i % 2].store.put(ids[i], blocks[i]);
      if (i % 3 === 0) await peers[(i + 1) % 2].store.put(ids[i], blocks[i]);
    }
    const store = await BlockStore.open(wipedDir);
    await store.put(ids[0], blocks[0]); // one survived the wipe
    const fetcher = new BlockReplicator({ store, selfId: 'a', peers: new Map([['b', peers[0].address], ['c', peers[1].address]]) });
    const registry = new Registry();
    const repair = new BlockRepair({ store, fetcher, referencedIds: () => idsOf(['', ...ids, ids[5], '']), concurrency: 3, registry });
    try {
      expect(await repair.runOnce()).toEqual({ checked: 31, missing: 29, repaired: 29, failed: 0 });
      for (let i = 0; i < blocks.length; i++) expect(Buffer.from((await store.get(ids[i]))!).equals(Buffer.from(blocks[i]))).toBe(true);
      expect(store.stats().blocks).toBe(30);
      expect(await repair.runOnce()).toEqual({ checked: 31, missing: 0, repaired: 0, failed: 0 });
      expect(await registry.metrics()).toMatch(/handlefs_blocks_repaired_total 29/);
    } finally {
      fetcher.close();
    }
  });

  it('counts blocks no peer holds as failed, keeps going, and repairs them once a peer has them', async () => {
    const held = randomBlock(1000, 1);
    const lost = randomBlock(1000, 2);
    await peers[0].store.put(blockIdOf(held), held);
    const store = await BlockStore.open(wipedDir);
    const fetcher = new BlockReplicator({ store, selfId: 'a', peers: new Map([['b', peers[0].address], ['c', peers[1].address]]) });
    const repair = new BlockRepair({ store, fetcher, referencedIds: () => idsOf([blockIdOf(lost), 'not-a-block-id', blockIdOf(held)]) });
    try {
      expect(await repair.runOnce()).toEqual({ checked: 3, missing: 2, repaired: 1, failed: 2 });
      await peers[1].store.put(blockIdOf(lost), lost);
      expect(await repair.runOnce()).toEqual({ checked: 3, missing: 1, repaired: 1, failed: 1 });
      expect(await store.has(blockIdOf(lost))).toBe(true);
    } finally {
      fetcher.close();
    }
  });

  it('with scrub on, finds a rotten copy, quarantines it and fetches a good one', async () => {
    const bytes = randomBlock(4096, 31);
    const id = blockIdOf(bytes);
    await peers[0].store.put(id, bytes);
    const store = await BlockStore.open(wipedDir);
    await store.put(id, bytes);
    fs.writeFileSync(path.join(wipedDir, id.slice(0, 2), id.slice(2, 4), id), Buffer.from(randomBlock(4096, 32)));
    const fetcher = new BlockReplicator({ store, selfId: 'a', peers: new Map([['b', peers[0].address]]) });
    try {
      const plain = new BlockRepair({ store, fetcher, referencedIds: () => idsOf([id]) });
      expect(await plain.runOnce()).toEqual({ checked: 1, missing: 0, repaired: 0, failed: 0 }); // only looks for the file
      const scrubbing = new BlockRepair({ store, fetcher, referencedIds: () => idsOf([id]), scrub: true });
      expect(await scrubbing.runOnce()).toEqual({ checked: 1, missing: 1, repaired: 1, failed: 0 });
      expect(store.quarantinedCount()).toBe(1);
      expect(Buffer.from((await store.get(id))!).equals(Buffer.from(bytes))).toBe(true);
    } finally {
      fetcher.close();
    }
  });

  it('never has more fetches in flight than its concurrency, and shares a running pass', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => blockIdOf(randomBlock(100, 50 + i)));
    const blocks = new Map(Array.from({ length: 12 }, (_, i) => [ids[i], randomBlock(100, 50 + i)]));
    let inFlight = 0;
    let inFlightMax = 0;
    const fetcher = {
      fetch: async (id: string): Promise<Uint8Array> => {
        inFlight++;
        inFlightMax = Math.max(inFlightMax, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 15));
        inFlight--;
        return blocks.get(id)!;
      },
    };
    const store = await BlockStore.open(wipedDir);
    const repair = new BlockRepair({ store, fetcher, referencedIds: () => idsOf(ids), concurrency: 4 });
    const [first, second] = await Promise.all([repair.runOnce(), repair.runOnce()]);
    expect(first).toBe(second);
    expect(first).toEqual({ checked: 12, missing: 12, repaired: 12, failed: 0 });
    expect(inFlightMax).toBe(4);
  });

  it('runs in the background until stopped', async () => {
    const bytes = randomBlock(100, 77);
    await peers[0].store.put(blockIdOf(bytes), bytes);
    const store = await BlockStore.open(wipedDir);
    const fetcher = new BlockReplicator({ store, selfId: 'a', peers: new Map([['b', peers[0].address]]) });
    let passes = 0;
    const repair = new BlockRepair({
      store, fetcher, minPassIntervalMs: 20,
      referencedIds: () => {
        passes++;
        return idsOf([blockIdOf(bytes)]);
      },
    });
    try {
      repair.start();
      for (let i = 0; i < 200 && !(await store.has(blockIdOf(bytes))); i++) await new Promise((r) => setTimeout(r, 10));
      expect(await store.has(blockIdOf(bytes))).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      await repair.stop();
      const passesAtStop = passes;
      expect(passesAtStop).toBeGreaterThan(1);
      await new Promise((r) => setTimeout(r, 100));
      expect(passes).toBe(passesAtStop);
    } finally {
      await repair.stop();
      fetcher.close();
    }
  });
});
