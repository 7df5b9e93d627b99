import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { BadBlockIdError, BlockHashMismatchError, BlockStore, BlockTooLargeError, MAX_BLOCK_BYTES, blockIdOf } from './block-store';

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function fileOf(dir: string, id: string): string {
  return path.join(dir, id.slice(0, 2), id.slice(2, 4), id);
}

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const id of iterable) out.push(id);
  return out;
}

describe('BlockStore on a real folder', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-blocks-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('stores a block under aa/bb/<id> and reads the same bytes back', async () => {
    const store = await BlockStore.open(dir);
    const bytes = bytesOf('hello blocks');
    const id = blockIdOf(bytes);
    await store.put(id, bytes);
    expect(fs.existsSync(fileOf(dir, id))).toBe(true);
    expect(Buffer.from((await store.get(id))!).toString()).toBe('hello blocks');
    expect(await store.has(id)).toBe(true);
    expect(store.stats()).toEqual({ blocks: 1, bytes: bytes.length });
  });

  it('answers undefined and false for a block it does not hold', async () => {
    const store = await BlockStore.open(dir);
    const id = blockIdOf(bytesOf('absent'));
    expect(await store.get(id)).toBeUndefined();
    expect(await store.has(id)).toBe(false);
  });

  it('refuses bytes that do not hash to the id, naming both ids, and stores nothing', async () => {
    const store = await BlockStore.open(dir);
    const claimed = blockIdOf(bytesOf('one'));
    const actual = blockIdOf(bytesOf('two'));
    const error = await store.put(claimed, bytesOf('two')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BlockHashMismatchError);
    expect((error as Error).message).toContain(claimed);
    expect((error as Error).message).toContain(actual);
    expect(await store.has(claimed)).toBe(false);
    expect(store.stats()).toEqual({ blocks: 0, bytes: 0 });
  });

  it('refuses a block over 1 MiB and a malformed id with clear errors', async () => {
    const store = await BlockStore.open(dir);
    const big = new Uint8Array(MAX_BLOCK_BYTES + 1);
    await expect(store.put(blockIdOf(big), big)).rejects.toBeInstanceOf(BlockTooLargeError);
    await expect(store.put(blockIdOf(big), big)).rejects.toThrow(/exceeds the 1048576-byte limit/);
    await expect(store.put('ABC', bytesOf('x'))).rejects.toBeInstanceOf(BadBlockIdError);
    await expect(store.get('../../etc/passwd')).rejects.toThrow(/not 64 lowercase hex digits/);
    await expect(store.has('A'.repeat(64))).rejects.toBeInstanceOf(BadBlockIdError);
    const exact = new Uint8Array(MAX_BLOCK_BYTES).fill(7);
    await store.put(blockIdOf(exact), exact);
    expect(store.stats()).toEqual({ blocks: 1, bytes: MAX_BLOCK_BYTES });
  });

  it('is idempotent: putting a block twice (even concurrently) counts it once', async () => {
    const store = await BlockStore.open(dir);
    const bytes = bytesOf('same');
    const id = blockIdOf(bytes);
    await Promise.all([store.put(id, bytes), store.put(id, bytes), store.put(id, bytes)]);
    await store.put(id, bytes);
    expect(store.stats()).toEqual({ blocks: 1, bytes: 4 });
    expect(fs.readdirSync(path.dirname(fileOf(dir, id)))).toEqual([id]);
  });

  it('deletes idempotently and keeps the counts right', async () => {
    const store = await BlockStore.open(dir);
    const a = bytesOf('aaaa');
    const b = bytesOf('bbbbbbbb');
    await store.put(blockIdOf(a), a);
    await store.put(blockIdOf(b), b);
    await store.delete(blockIdOf(a));
    await store.delete(blockIdOf(a));
    expect(await store.has(blockIdOf(a))).toBe(false);
    expect(store.stats()).toEqual({ blocks: 1, bytes: 8 });
  });

  it('lists every block and counts them again after a reopen', async () => {
    const store = await BlockStore.open(dir);
    const ids: string[] = [];
    let bytesTotal = 0;
    for (let i = 0; i < 50; i++) {
      const bytes = bytesOf(`block number ${i}`);
      ids.push(blockIdOf(bytes));
      bytesTotal += bytes.length;
      await store.put(blockIdOf(bytes), bytes);
    }
    expect((await collect(store.list())).sort()).toEqual([...ids].sort());
    const reopened = await BlockStore.open(dir);
    expect(reopened.stats()).toEqual({ blocks: 50, bytes: bytesTotal });
    expect((await collect(reopened.list())).length).toBe(50);
  });

  it('removes temp files a crash left behind at open, and ignores them in counts', async () => {
    const store = await BlockStore.open(dir);
    const bytes = bytesOf('kept');
    const id = blockIdOf(bytes);
    await store.put(id, bytes);
    // What a crash between write and rename leaves: a temp file beside the blocks.
    const folder = path.dirname(fileOf(dir, id));
    const leftover = path.join(folder, `.tmp-${id}-999-1`);
    fs.writeFileSync(leftover, 'half a blo');
    const otherFolder = path.join(dir, 'ff', 'ee');
    fs.mkdirSync(otherFolder, { recursive: true });
    fs.writeFileSync(path.join(otherFolder, `.tmp-${'f'.repeat(64)}-1-1`), 'x');
    const reopened = await BlockStore.open(dir);
    expect(fs.existsSync(leftover)).toBe(false);
    expect(fs.readdirSync(otherFolder)).toEqual([]);
    expect(reopened.stats()).toEqual({ blocks: 1, bytes: 4 });
    expect(await collect(reopened.list())).toEqual([id]);
  });

  it('quarantines a corrupt file on read, reports it missing, and lets repair store it again', async () => {
    const store = await BlockStore.open(dir);
    const bytes = bytesOf('precious data');
    const id = blockIdOf(bytes);
    await store.put(id, bytes);
    fs.writeFileSync(fileOf(dir, id), 'precious dat4'); // a flipped byte on disk
    expect(await store.get(id)).toBeUndefined();
    expect(store.quarantinedCount()).toBe(1);
    expect(await store.has(id)).toBe(false);
    expect(store.stats()).toEqual({ blocks: 0, bytes: 0 });
    const quarantined = fs.readdirSync(path.join(dir, 'quarantine'));
    expect(quarantined).toHaveLength(1);
    expect(quarantined[0].startsWith(id)).toBe(true);
    await store.put(id, bytes);
    expect(Buffer.from((await store.get(id))!).toString()).toBe('precious data');
    expect((await collect(store.list()))).toEqual([id]);
  });

  it('quarantines a truncated (empty) file too', async () => {
    const store = await BlockStore.open(dir);
    const bytes = bytesOf('will be truncated');
    const id = blockIdOf(bytes);
    await store.put(id, bytes);
    fs.truncateSync(fileOf(dir, id), 0);
    expect(await store.get(id)).toBeUndefined();
    expect(store.quarantinedCount()).toBe(1);
  });

  it('replaces a corrupt file when the block is put again (a rotten copy never makes put a no-op)', async () => {
    const store = await BlockStore.open(dir);
    const bytes = bytesOf('good copy');
    const id = blockIdOf(bytes);
    await store.put(id, bytes);
    fs.writeFileSync(fileOf(dir, id), 'rotten!!!');
    await store.put(id, bytes);
    expect(store.quarantinedCount()).toBe(1);
    expect(Buffer.from((await store.get(id))!).toString()).toBe('good copy');
    expect(store.stats()).toEqual({ blocks: 1, bytes: 9 });
  });

  it('quarantines an oversized file without trusting it', async () => {
    const store = await BlockStore.open(dir);
    const bytes = bytesOf('small');
    const id = blockIdOf(bytes);
    await store.put(id, bytes);
    fs.writeFileSync(fileOf(dir, id), Buffer.alloc(MAX_BLOCK_BYTES + 10));
    expect(await store.get(id)).toBeUndefined();
    expect(store.quarantinedCount()).toBe(1);
  });

  it('exports its counts and quarantines as prom-client metrics', async () => {
    const registry = new Registry();
    const store = await BlockStore.open(dir, { registry });
    const bytes = bytesOf('metered');
    const id = blockIdOf(bytes);
    await store.put(id, bytes);
    fs.writeFileSync(fileOf(dir, id), 'meterex');
    await store.get(id);
    await store.put(blockIdOf(bytesOf('other block')), bytesOf('other block'));
    const text = await registry.metrics();
    expect(text).toMatch(/handlefs_blocks_stored 1\n/);
    expect(text).toMatch(/handlefs_blocks_stored_bytes 11\n/);
    expect(text).toMatch(/handlefs_blocks_quarantined_total 1\n/);
  });

  it('stores the empty block (a zero-length last block is never made, but it must not break)', async () => {
    const store = await BlockStore.open(dir);
    const empty = new Uint8Array(0);
    await store.put(blockIdOf(empty), empty);
    expect((await store.get(blockIdOf(empty)))!.length).toBe(0);
  });
});
