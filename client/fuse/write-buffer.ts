/**
 * One open file handle's unflushed writes over the version it pins: bytes
 * written at offsets, truncations, and full blocks already uploaded (sealed),
 * with reads that see them over the base, and the content of a commit built
 * from them. Pure: no I/O — the base's bytes come from a reader the caller
 * passes, uploads are the caller's. Must never lose a written byte before the
 * caller has committed it, and never hold more than maxDirtyBytes of
 * unsealed data (write() refuses, the caller commits or seals first).
 *
 * Why blocks: content over 4 KiB is stored as 1 MiB content-addressed blocks
 * (proto/metaserver.proto, CommitVersion's block form). A block the writes
 * fill completely is sealed (uploaded) as soon as it fills, so a large
 * sequential write streams to the servers with bounded memory.
 */

export interface Extent {
  offset: number;
  length: number;
}

/** Reads `length` bytes of the pinned version at `offset` (shorter at its end). */
export type BaseReader = (offset: number, length: number) => Promise<Uint8Array>;

interface DirtyBlock {
  /** Block-sized buffer; undefined once sealed. */
  bytes?: Buffer;
  /** Written ranges inside the block, sorted, disjoint, merged. */
  ranges: Extent[];
  /** Set once uploaded: the id of the whole block's content. */
  sealedId?: string;
}

export interface CommitPlanInline {
  kind: 'inline';
  written: Array<{ offset: number; data: Uint8Array }>;
  newSize: number;
}

export interface CommitPlanBlocks {
  kind: 'blocks';
  newSize: number;
  /** Every block of the new version: an id to reuse (base or sealed), or bytes the caller uploads. */
  blocks: Array<{ id: string } | { upload: Uint8Array }>;
  writtenExtents: Extent[];
}

function mergeInto(ranges: Extent[], add: Extent): Extent[] {
  const out: Extent[] = [];
  let start = add.offset;
  let end = add.offset + add.length;
  let placed = false;
  for (const r of ranges) {
    const rEnd = r.offset + r.length;
    if (rEnd < start) out.push(r);
    else if (r.offset > end) {
      if (!placed) {
        out.push({ offset: start, length: end - start });
        placed = true;
      }
      out.push(r);
    } else {
      start = Math.min(start, r.offset);
      end = Math.max(end, rEnd);
    }
  }
  if (!placed) out.push({ offset: start, length: end - start });
  return out;
}

function cut(ranges: Extent[], limit: number): Extent[] {
  return ranges.filter((r) => r.offset < limit).map((r) => ({ offset: r.offset, length: Math.min(r.length, limit - r.offset) }));
}

export class WriteBuffer {
  private readonly blocks = new Map<number, DirtyBlock>();
  private sizeBytes: number;
  /** Bytes of the base below this are still the file's; above it (after a truncation) the file holds zeros unless written. */
  private keptBaseBytes: number;
  private unsealedBytes = 0;
  /** The lowest truncation at or below the base's size, if any (see truncatedTo). */
  private lowestCut: number | undefined;
  private changed = false;

  constructor(
    private readonly baseSizeBytes: number,
    readonly blockSizeBytes: number,
    private readonly maxDirtyBytes: number,
  ) {
    if (!(blockSizeBytes > 0) || !(maxDirtyBytes >= blockSizeBytes)) throw new Error(`write buffer: block size ${blockSizeBytes}, dirty limit ${maxDirtyBytes}`);
    this.sizeBytes = baseSizeBytes;
    this.keptBaseBytes = baseSizeBytes;
  }

  get size(): number {
    return this.sizeBytes;
  }

  /**
   * The lowest size a truncation cut the file to, when at or below the base's size (the commit's
   * truncatedTo: it claims everything from there, whatever was written afterwards); else undefined.
   */
  get truncatedTo(): number | undefined {
    return this.lowestCut;
  }

  /** Whether anything was written or truncated since the base. */
  get dirty(): boolean {
    return this.changed;
  }

  /** Memory held by unsealed blocks (what maxDirtyBytes bounds). */
  get heldBytes(): number {
    return this.unsealedBytes;
  }

  /** Whether a write of `length` bytes at `offset` fits under the dirty limit (else seal or commit first). */
  fits(offset: number, length: number): boolean {
    let extra = 0;
    const b = this.blockSizeBytes;
    for (let index = Math.floor(offset / b); index * b < offset + length; index++) {
      const block = this.blocks.get(index);
      if (!block || block.sealedId !== undefined) extra += b;
    }
    return this.unsealedBytes + extra <= this.maxDirtyBytes;
  }

  /**
   * Records a write; returns the indexes of blocks it left completely written
   * (ready to seal: upload, then seal()). Throws when it does not fit.
   */
  write(offset: number, data: Uint8Array): number[] {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(offset + data.length)) throw new RangeError(`write at ${offset} of ${data.length} bytes is out of range`);
    if (data.length === 0) return [];
    if (!this.fits(offset, data.length)) throw new Error(`write buffer: ${this.unsealedBytes} bytes held, the limit ${this.maxDirtyBytes} is reached`);
    const b = this.blockSizeBytes;
    const end = offset + data.length;
    const full: number[] = [];
    for (let index = Math.floor(offset / b); index * b < end; index++) {
      const blockStart = index * b;
      const from = Math.max(offset, blockStart);
      const to = Math.min(end, blockStart + b);
      const block = this.unsealed(index);
      block.bytes!.set(data.subarray(from - offset, to - offset), from - blockStart);
      block.ranges = mergeInto(block.ranges, { offset: from - blockStart, length: to - from });
      if (block.ranges.length === 1 && block.ranges[0].offset === 0 && block.ranges[0].length === b) full.push(index);
    }
    this.sizeBytes = Math.max(this.sizeBytes, end);
    this.changed = true;
    return full;
  }

  /** The bytes of a completely written block, to upload before seal(). */
  fullBlock(index: number): Uint8Array {
    const block = this.blocks.get(index);
    if (!block?.bytes || !(block.ranges.length === 1 && block.ranges[0].length === this.blockSizeBytes)) throw new Error(`write buffer: block ${index} is not completely written`);
    return block.bytes;
  }

  /** Whether block `index` is still completely written and unsealed (an upload of it may seal it). */
  canSeal(index: number): boolean {
    const block = this.blocks.get(index);
    return block?.bytes !== undefined && block.ranges.length === 1 && block.ranges[0].offset === 0 && block.ranges[0].length === this.blockSizeBytes;
  }

  /** Block `index` (completely written) is uploaded as `id`: its bytes are released. */
  seal(index: number, id: string): void {
    const block = this.blocks.get(index);
    if (!block?.bytes) throw new Error(`write buffer: block ${index} has nothing to seal`);
    block.sealedId = id;
    block.bytes = undefined;
    this.unsealedBytes -= this.blockSizeBytes;
  }

  truncate(newSize: number): void {
    if (!Number.isSafeInteger(newSize) || newSize < 0) throw new RangeError(`truncate to ${newSize}`);
    const b = this.blockSizeBytes;
    for (const [index, block] of this.blocks) {
      if (index * b >= newSize) this.drop(index);
      else if ((index + 1) * b > newSize) {
        if (block.sealedId !== undefined) throw new Error(`write buffer: block ${index} is sealed; reloadSealed() it before cutting it`);
        block.ranges = cut(block.ranges, newSize - index * b);
        block.bytes!.fill(0, newSize - index * b);
      }
    }
    this.keptBaseBytes = Math.min(this.keptBaseBytes, newSize);
    if (newSize <= this.baseSizeBytes) this.lowestCut = Math.min(this.lowestCut ?? newSize, newSize);
    this.sizeBytes = newSize;
    this.changed = true;
  }

  /**
   * Bytes [offset, offset + length) as this fh sees them: the base where it is
   * kept, zeros past it, written bytes on top; sealed blocks are read through
   * readSealed (the caller's block cache).
   */
  async read(offset: number, length: number, readBase: BaseReader, readSealed: (id: string) => Promise<Uint8Array>): Promise<Uint8Array> {
    const end = Math.min(this.sizeBytes, offset + length);
    if (offset >= end) return new Uint8Array();
    const out = new Uint8Array(end - offset);
    const baseEnd = Math.min(end, this.keptBaseBytes);
    if (offset < baseEnd) out.set((await readBase(offset, baseEnd - offset)).subarray(0, baseEnd - offset));
    const b = this.blockSizeBytes;
    for (let index = Math.floor(offset / b); index * b < end; index++) {
      const block = this.blocks.get(index);
      if (!block) continue;
      const blockStart = index * b;
      if (block.sealedId !== undefined) {
        const bytes = await readSealed(block.sealedId);
        const from = Math.max(offset, blockStart);
        const to = Math.min(end, blockStart + bytes.length);
        out.set(bytes.subarray(from - blockStart, to - blockStart), from - offset);
        continue;
      }
      for (const r of block.ranges) {
        const from = Math.max(offset, blockStart + r.offset);
        const to = Math.min(end, blockStart + r.offset + r.length);
        if (from < to) out.set(block.bytes!.subarray(from - blockStart, to - blockStart), from - offset);
      }
    }
    return out;
  }

  /** What the fh changed relative to its base, for the commit: written ranges plus zeroed ranges truncations left inside the new size. */
  writtenExtents(): Extent[] {
    let extents: Extent[] = [];
    for (const [index, block] of this.blocks) {
      const blockStart = index * this.blockSizeBytes;
      const ranges = block.sealedId !== undefined ? [{ offset: 0, length: this.blockSizeBytes }] : block.ranges;
      for (const r of ranges) extents = mergeInto(extents, { offset: blockStart + r.offset, length: r.length });
    }
    const zeroedEnd = Math.min(this.baseSizeBytes, this.sizeBytes);
    if (this.keptBaseBytes < zeroedEnd) extents = mergeInto(extents, { offset: this.keptBaseBytes, length: zeroedEnd - this.keptBaseBytes });
    return cut(extents.sort((a, c) => a.offset - c.offset), this.sizeBytes).filter((e) => e.length > 0);
  }

  /**
   * The commit's content. Inline when the new size and the base fit the
   * inline limit (the server then needs the written bytes only); else every
   * block of the new version: the base's id where nothing changed, a sealed
   * id, or bytes (base + zeros + writes) to upload.
   */
  async plan(inlineLimitBytes: number, base: { blocks?: string[] }, readBase: BaseReader, readSealed: (id: string) => Promise<Uint8Array>): Promise<CommitPlanInline | CommitPlanBlocks> {
    const written = this.writtenExtents();
    if (this.sizeBytes <= inlineLimitBytes && !base.blocks && this.baseSizeBytes <= inlineLimitBytes) {
      const pieces = await Promise.all(written.map(async (e) => ({ offset: e.offset, data: await this.read(e.offset, e.length, readBase, readSealed) })));
      return { kind: 'inline', written: pieces, newSize: this.sizeBytes };
    }
    const b = this.blockSizeBytes;
    const count = Math.ceil(this.sizeBytes / b);
    const blocks: CommitPlanBlocks['blocks'] = [];
    for (let index = 0; index < count; index++) {
      const start = index * b;
      const length = Math.min(b, this.sizeBytes - start);
      const sealed = this.blocks.get(index)?.sealedId;
      const touched = written.some((e) => e.offset < start + length && e.offset + e.length > start);
      const baseId = base.blocks?.[index];
      const sameExtentAsBase = baseId !== undefined && Math.min(b, this.baseSizeBytes - start) === length && start + length <= this.keptBaseBytes;
      // Zeros nobody wrote (past what is kept of the base, or a hole there) stay a hole: a sparse file must not be read, built or uploaded block by block.
      const unwrittenZeros = !touched && sealed === undefined && (start >= this.keptBaseBytes || (baseId === '' && base.blocks !== undefined));
      if (sealed !== undefined && length === b) blocks.push({ id: sealed });
      else if (!touched && sameExtentAsBase) blocks.push({ id: baseId });
      else if (unwrittenZeros) blocks.push({ id: '' });
      else blocks.push({ upload: await this.read(start, length, readBase, readSealed) });
    }
    return { kind: 'blocks', newSize: this.sizeBytes, blocks, writtenExtents: written };
  }

  private unsealed(index: number): DirtyBlock {
    let block = this.blocks.get(index);
    if (!block) {
      block = { bytes: Buffer.alloc(this.blockSizeBytes), ranges: [] };
      this.blocks.set(index, block);
      this.unsealedBytes += this.blockSizeBytes;
    } else if (block.sealedId !== undefined) {
      throw new Error(`write buffer: block ${index} is sealed; reloadSealed() it before writing into it`);
    }
    return block;
  }

  /** Gives a sealed block its bytes back so it can change again (a rewrite of a block already uploaded). */
  reloadSealed(index: number, bytes: Uint8Array): void {
    const block = this.blocks.get(index);
    if (!block || block.sealedId === undefined) throw new Error(`write buffer: block ${index} is not sealed`);
    block.bytes = Buffer.alloc(this.blockSizeBytes);
    block.bytes.set(bytes.subarray(0, this.blockSizeBytes));
    block.sealedId = undefined;
    block.ranges = [{ offset: 0, length: this.blockSizeBytes }];
    this.unsealedBytes += this.blockSizeBytes;
  }

  /** Sealed blocks a write or truncation at [offset, end) would change: reload them first. */
  sealedIn(offset: number, end: number): Array<{ index: number; id: string }> {
    const b = this.blockSizeBytes;
    const out: Array<{ index: number; id: string }> = [];
    for (const [index, block] of this.blocks) {
      if (block.sealedId !== undefined && index * b < end && (index + 1) * b > offset) out.push({ index, id: block.sealedId });
    }
    return out;
  }

  private drop(index: number): void {
    const block = this.blocks.get(index);
    if (!block) return;
    if (block.bytes) this.unsealedBytes -= this.blockSizeBytes;
    this.blocks.delete(index);
  }
}
