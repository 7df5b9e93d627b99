/**
 * An fh's write buffer against a model byte array: random writes,
 * truncations and seals of full blocks; every read and every commit plan
 * must give exactly the model's bytes. A failure prints the seed.
 */
import { createHash } from 'node:crypto';
import { WriteBuffer } from './write-buffer';

const BLOCK = 16;
const INLINE = 40;

function rng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

const idOf = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The server's view of a commit: inline = base cut or zero-extended to newSize with the written bytes on top; blocks = the listed content. */
function committed(plan: Awaited<ReturnType<WriteBuffer['plan']>>, base: Uint8Array, store: Map<string, Uint8Array>): Uint8Array {
  const out = new Uint8Array(plan.newSize);
  if (plan.kind === 'inline') {
    out.set(base.subarray(0, Math.min(base.length, plan.newSize)));
    for (const w of plan.written) out.set(w.data, w.offset);
    return out;
  }
  // '' is a hole: zeros, already there.
  plan.blocks.forEach((block, index) => out.set('id' in block ? (block.id === '' ? new Uint8Array(0) : store.get(block.id)!) : block.upload, index * BLOCK));
  return out;
}

describe('an fh\'s write buffer', () => {
  it('reads back its own writes over the base, and plans commits that hold exactly the written file (300 seeds)', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const random = rng(seed);
      const baseSize = Math.floor(random() * 90);
      const base = Uint8Array.from({ length: baseSize }, (_, i) => (i * 7 + seed) & 0xff);
      const store = new Map<string, Uint8Array>();
      // Base blocks are stored when the base is over the inline limit.
      const baseBlocks = baseSize > INLINE ? Array.from({ length: Math.ceil(baseSize / BLOCK) }, (_, i) => {
        const bytes = base.subarray(i * BLOCK, Math.min(baseSize, (i + 1) * BLOCK));
        store.set(idOf(bytes), bytes);
        return idOf(bytes);
      }) : undefined;
      let model = Uint8Array.from(base);
      const buffer = new WriteBuffer(baseSize, BLOCK, 64 * BLOCK);
      const readBase = async (offset: number, length: number) => base.subarray(offset, offset + length);
      const readSealed = async (id: string) => store.get(id)!;
      try {
        for (let step = 0; step < 12; step++) {
          if (random() < 0.7) {
            const offset = Math.floor(random() * 100);
            const data = Uint8Array.from({ length: 1 + Math.floor(random() * 40) }, () => Math.floor(random() * 256));
            for (const s of buffer.sealedIn(offset, offset + data.length)) buffer.reloadSealed(s.index, store.get(s.id)!);
            const full = buffer.write(offset, data);
            const grown = new Uint8Array(Math.max(model.length, offset + data.length));
            grown.set(model);
            grown.set(data, offset);
            model = grown;
            for (const index of full) {
              const bytes = Uint8Array.from(buffer.fullBlock(index));
              store.set(idOf(bytes), bytes);
              buffer.seal(index, idOf(bytes));
            }
          } else {
            const size = Math.floor(random() * 100);
            for (const s of buffer.sealedIn(size, size + 1)) buffer.reloadSealed(s.index, store.get(s.id)!);
            buffer.truncate(size);
            const next = new Uint8Array(size);
            next.set(model.subarray(0, size));
            model = next;
          }
          expect(buffer.size).toBe(model.length);
          expect(Buffer.from(await buffer.read(0, 200, readBase, readSealed)).equals(Buffer.from(model))).toBe(true);
        }
        const plan = await buffer.plan(INLINE, { blocks: baseBlocks }, readBase, readSealed);
        expect(Buffer.from(committed(plan, base, store)).equals(Buffer.from(model))).toBe(true);
        if (plan.kind === 'blocks') {
          // Every written byte is claimed, so the server's rebase rules see it.
          for (const e of buffer.writtenExtents()) expect(e.offset + e.length).toBeLessThanOrEqual(model.length);
        }
      } catch (error) {
        throw new Error(`seed ${seed}: ${(error as Error).message}`);
      }
    }
  });

  it('refuses a write past its dirty limit until a full block is sealed', () => {
    const buffer = new WriteBuffer(0, BLOCK, 2 * BLOCK);
    expect(buffer.write(0, new Uint8Array(BLOCK))).toEqual([0]);
    buffer.write(BLOCK, new Uint8Array(4));
    expect(buffer.fits(2 * BLOCK, 1)).toBe(false);
    expect(() => buffer.write(2 * BLOCK, new Uint8Array(1))).toThrow(/limit/);
    buffer.seal(0, 'a'.repeat(64));
    expect(buffer.heldBytes).toBe(BLOCK);
    expect(buffer.fits(2 * BLOCK, 1)).toBe(true);
  });

  it('plans a sparse file as holes: one byte written far past the end uploads one block, not every block before it', async () => {
    const buffer = new WriteBuffer(0, BLOCK, 64 * BLOCK);
    buffer.write(1_000 * BLOCK + 3, Uint8Array.of(7));
    let reads = 0;
    const plan = await buffer.plan(INLINE, { blocks: [] }, async () => { reads++; return new Uint8Array(); }, async () => new Uint8Array());
    if (plan.kind !== 'blocks') throw new Error('expected the block form');
    expect(plan.blocks).toHaveLength(1_001);
    expect(plan.blocks.slice(0, 1_000).every((b) => 'id' in b && b.id === '')).toBe(true);
    expect(plan.blocks[1_000]).toEqual({ upload: Uint8Array.of(0, 0, 0, 7) });
    expect(reads).toBe(0);
  });
});
