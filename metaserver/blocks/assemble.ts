/**
 * Builds the blocks the state machine asked for (state/version-content.ts
 * buildContent → needs-assembly): each BlockToAssemble lists the pieces that
 * tile exactly one block of the new version, read from the head, the fh's
 * version or zeros; this copies them into the block, hashes it, and returns
 * its id and bytes. The state machine plans which blocks these are; this only
 * builds them. Pure except for readBlock; reads only the source blocks a piece
 * overlaps. Must never store anything (the caller replicates the built blocks
 * and proposes their ids), never return an id whose bytes it did not hash,
 * never decide which blocks need building, and never accept pieces or
 * sources that disagree with the sizes it was given.
 *
 * A built block that is all zeros is a hole (id '', no bytes): a reader sees
 * the same bytes and nothing is stored.
 */
import { BlockToAssemble, ContentSource } from '../state/version-content';
import { MAX_BLOCK_BYTES, blockIdOf, describeId, isBlockId } from './block-store';

/** One block of the new version: id '' and no bytes for a hole. */
export interface BuiltBlock {
  readonly index: number;
  readonly id: string;
  readonly bytes: Uint8Array;
}

export interface AssembleBlocksInput {
  readonly blocks: readonly BlockToAssemble[];
  /** The new version's size. */
  readonly sizeBytes: number;
  readonly blockSizeBytes: number;
  readonly head: ContentSource;
  readonly fh: ContentSource;
  /** A stored block's bytes (its hash and length are checked here). */
  readonly readBlock: (id: string) => Promise<Uint8Array>;
}

/** Source blocks kept read at most: neighbouring new blocks cut from one shifted source share its blocks. */
const READ_CACHE_BLOCKS_MAX = 4;

function fail(message: string): never {
  throw new Error(`assemble: ${message}`);
}

class SourceReader {
  private readonly cache = new Map<number, Uint8Array>();
  readonly sizeBytes: number;

  constructor(
    private readonly name: 'head' | 'fh',
    private readonly source: ContentSource,
    private readonly blockSizeBytes: number,
    private readonly readBlock: (id: string) => Promise<Uint8Array>,
  ) {
    if (typeof source !== 'object' || source === null) fail(`${name} source is not an object`);
    if (source.kind === 'inline') {
      if (!(source.bytes instanceof Uint8Array)) fail(`${name} inline content is not bytes`);
      this.sizeBytes = source.bytes.length;
      return;
    }
    if (source.kind !== 'blocks') fail(`${name} source has unknown kind ${String((source as { kind?: unknown }).kind)}`);
    if (!Array.isArray(source.blocks as unknown)) fail(`${name} blocks is not a list`);
    if (!Number.isSafeInteger(source.sizeBytes) || source.sizeBytes < 0) fail(`${name} size ${String(source.sizeBytes)} is not a non-negative integer`);
    const expected = Math.ceil(source.sizeBytes / blockSizeBytes);
    if (source.blocks.length !== expected) fail(`${name} has ${source.blocks.length} blocks, a size of ${source.sizeBytes} needs ${expected}`);
    source.blocks.forEach((id, i) => {
      if (id !== '' && !isBlockId(id)) fail(`${name} block ${i} has id ${describeId(id)}`);
    });
    this.sizeBytes = source.sizeBytes;
  }

  /** Copies source bytes [from, from + out.length) into out. */
  async copy(from: number, out: Uint8Array): Promise<void> {
    const to = from + out.length;
    if (!Number.isSafeInteger(from) || from < 0 || to > this.sizeBytes) fail(`${this.name} has ${this.sizeBytes} bytes, a piece needs [${String(from)}, ${to})`);
    if (this.source.kind === 'inline') {
      out.set(this.source.bytes.subarray(from, to));
      return;
    }
    const b = this.blockSizeBytes;
    for (let index = Math.floor(from / b); index * b < to; index++) {
      const start = index * b;
      const block = await this.block(index, this.source.blocks[index]);
      const lo = Math.max(from, start);
      const hi = Math.min(to, start + block.length);
      out.set(block.subarray(lo - start, hi - start), lo - from);
    }
  }

  private async block(index: number, id: string): Promise<Uint8Array> {
    const cached = this.cache.get(index);
    if (cached !== undefined) return cached;
    const lengthBytes = Math.min(this.blockSizeBytes, this.sizeBytes - index * this.blockSizeBytes);
    let bytes: Uint8Array;
    if (id === '') {
      bytes = new Uint8Array(lengthBytes);
    } else {
      bytes = await this.readBlock(id);
      if (!(bytes instanceof Uint8Array)) fail(`readBlock(${id}) did not return bytes`);
      if (bytes.length !== lengthBytes) fail(`${this.name} block ${index} (${id}) has ${bytes.length} bytes, expected ${lengthBytes}`);
      const actual = blockIdOf(bytes);
      if (actual !== id) fail(`${this.name} block ${index}: readBlock(${id}) returned bytes that hash to ${actual}`);
    }
    this.cache.set(index, bytes);
    if (this.cache.size > READ_CACHE_BLOCKS_MAX) this.cache.delete(this.cache.keys().next().value as number);
    return bytes;
  }
}

function isAllZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Builds the listed blocks of the new version, in the order given, one block in memory at a time. */
export async function assembleBlocks(input: AssembleBlocksInput): Promise<BuiltBlock[]> {
  const { blocks, sizeBytes, blockSizeBytes } = input;
  if (!Number.isSafeInteger(blockSizeBytes) || blockSizeBytes < 1 || blockSizeBytes > MAX_BLOCK_BYTES) fail(`block size ${String(blockSizeBytes)} is not in [1, ${MAX_BLOCK_BYTES}]`);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) fail(`size ${String(sizeBytes)} is not a non-negative integer`);
  if (!Array.isArray(blocks as unknown)) fail('blocks is not a list');
  if (typeof input.readBlock !== 'function') fail('readBlock is not a function');
  const sources = {
    head: new SourceReader('head', input.head, blockSizeBytes, input.readBlock),
    fh: new SourceReader('fh', input.fh, blockSizeBytes, input.readBlock),
  };
  const blockCount = Math.ceil(sizeBytes / blockSizeBytes);
  if (blocks.length > blockCount) fail(`${blocks.length} blocks to build, a size of ${sizeBytes} has ${blockCount}`);
  const seen = new Set<number>();
  const built: BuiltBlock[] = [];
  for (const block of blocks) {
    if (typeof block !== 'object' || block === null) fail(`block ${built.length} to build is not an object`);
    const { index } = block;
    if (!Number.isSafeInteger(index) || index < 0 || index >= blockCount) fail(`block index ${String(index)} is not in [0, ${blockCount}) for a size of ${sizeBytes}`);
    if (seen.has(index)) fail(`block ${index} is listed twice`);
    seen.add(index);
    const bytes = await buildBlock(block, blockSizeBytes, sizeBytes, sources);
    built.push(isAllZero(bytes) ? { index, id: '', bytes: new Uint8Array(0) } : { index, id: blockIdOf(bytes), bytes });
  }
  return built;
}

/** The bytes of block `index`, from pieces that must tile it exactly, in order. */
async function buildBlock(
  block: BlockToAssemble, blockSizeBytes: number, sizeBytes: number, sources: Record<'head' | 'fh', SourceReader>,
): Promise<Uint8Array> {
  const { index, pieces } = block;
  const blockStart = index * blockSizeBytes;
  const blockEnd = Math.min(blockStart + blockSizeBytes, sizeBytes);
  if (!Array.isArray(pieces as unknown) || pieces.length === 0) fail(`block ${index} has no pieces`);
  const bytes = new Uint8Array(blockEnd - blockStart);
  let at = blockStart;
  for (let p = 0; p < pieces.length; p++) {
    const piece = pieces[p];
    if (typeof piece !== 'object' || piece === null) fail(`block ${index}: piece ${p} is not an object`);
    const { offset, length, source, sourceOffset } = piece;
    if (offset !== at || !Number.isSafeInteger(length) || length <= 0 || at + length > blockEnd) {
      fail(`block ${index} [${blockStart}, ${blockEnd}): piece ${p} [${String(offset)}, +${String(length)}) does not continue at ${at} inside the block`);
    }
    if (source === 'head' || source === 'fh') {
      if (!Number.isSafeInteger(sourceOffset) || sourceOffset < 0) fail(`block ${index}: piece ${p} has source offset ${String(sourceOffset)}`);
      await sources[source].copy(sourceOffset, bytes.subarray(at - blockStart, at - blockStart + length));
    } else if (source !== 'zero') {
      fail(`block ${index}: piece ${p} has unknown source ${String(source)}`);
    }
    at += length;
  }
  if (at !== blockEnd) fail(`block ${index} [${blockStart}, ${blockEnd}): pieces end at ${at}`);
  return bytes;
}
