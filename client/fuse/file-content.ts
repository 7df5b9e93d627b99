/**
 * The content side of the mount's open files: reading an fh's pinned version
 * (inline bytes, or blocks through the block cache with one block of
 * read-ahead) under its unflushed writes, buffering writes (full blocks
 * stream to the servers as they fill), and committing the buffer as a new
 * version — the inline form, or the block form with the changed blocks
 * uploaded first. Owns OpenFile's content fields; the paths, the fh table
 * and what the kernel sees are meta-backend.ts's. Must never report a commit
 * done before the servers acknowledged it.
 */
import { BLOCK_SIZE_BYTES, INLINE_LIMIT_BYTES, MAX_FILE_SIZE_BYTES, MetaClient, MetaError, boundedParallel } from '../sdk';
import type { Policy } from '../sdk';
import { BlockCache } from './block-cache';
import { fsError } from './filesystem';
import { WriteBuffer } from './write-buffer';

/** Unsealed written bytes one open file holds before it commits on its own (a version mid-write). */
const MAX_DIRTY_BYTES_PER_FH = 64 * 1024 * 1024;
/** An uploaded block committed later than this after its upload is pinned again first (the servers' pin lasts 10 min). */
const REPIN_AFTER_MS = 5 * 60 * 1000;
/** Uploads of one commit in flight at once. */
const UPLOAD_PARALLELISM = 4;
/** Full blocks of one fh streaming to the servers at once while the application keeps writing. */
const STREAMING_UPLOADS_PER_FH = 8;

export interface OpenFile {
  handle: number;
  serverFh: number;
  /** The version reads see and the next commit is based on. */
  version: number;
  baseSizeBytes: number;
  /** The base version's content: its block ids, or its inline bytes; fetched on first need. */
  base?: Promise<{ blocks?: string[]; inline?: Uint8Array }>;
  flags: { read: boolean; write: boolean; append: boolean };
  buffer?: WriteBuffer;
  /** When each sealed block was uploaded, to pin it again before a late commit. */
  sealedAtMs: Map<string, number>;
  /** An fh on a version under /.versions: read-only, no fh on the servers. */
  versionView?: boolean;
  /** Full blocks uploading in the background (block index → the upload); a block is sealed when its upload ends. */
  uploading?: Map<number, Promise<void>>;
}

export class FileContent {
  constructor(private readonly sdk: MetaClient, private readonly blockCache: BlockCache, private readonly policy: Policy) {}

  /** Bytes the block cache holds now. */
  get cachedBytes(): number {
    return this.blockCache.sizeBytes;
  }

  bufferOf(file: OpenFile): WriteBuffer {
    file.buffer ??= new WriteBuffer(file.baseSizeBytes, BLOCK_SIZE_BYTES, MAX_DIRTY_BYTES_PER_FH);
    return file.buffer;
  }

  /** The base version's content description (as the mount's trusted root: the fh already passed its permission check at open). */
  private baseOf(file: OpenFile): Promise<{ blocks?: string[]; inline?: Uint8Array }> {
    file.base ??= this.sdk.versionInfo(file.handle, file.version).then(({ info, inlineContent }) =>
      info.blocks.length > 0 || info.sizeBytes > INLINE_LIMIT_BYTES ? { blocks: info.blocks } : { inline: inlineContent });
    return file.base;
  }

  /** Bytes of the fh's base version (shorter at its end). */
  private readBase(file: OpenFile): (offset: number, length: number) => Promise<Uint8Array> {
    return async (offset, length) => {
      const end = Math.min(file.baseSizeBytes, offset + length);
      if (offset >= end) return new Uint8Array();
      const base = await this.baseOf(file);
      if (!base.blocks) return (base.inline ?? new Uint8Array()).subarray(offset, end);
      const out = new Uint8Array(end - offset);
      const b = BLOCK_SIZE_BYTES;
      const last = Math.floor((end - 1) / b);
      for (let index = Math.floor(offset / b); index <= last; index++) {
        const id = base.blocks[index];
        if (id === undefined) throw fsError('EIO', `version ${file.version} of handle ${file.handle} lists no block ${index}`);
        if (id === '') continue; // a hole: zeros
        const bytes = await this.blockCache.get(id);
        const from = Math.max(offset, index * b);
        const to = Math.min(end, index * b + bytes.byteLength);
        out.set(bytes.subarray(from - index * b, to - index * b), from - offset);
      }
      // Sequential readers want the next block next.
      const ahead = base.blocks[last + 1];
      if (ahead) this.blockCache.prefetch(ahead);
      return out;
    };
  }

  private readonly readSealed = (id: string): Promise<Uint8Array> => this.blockCache.get(id);

  /** Bytes [position, position + length) as the fh sees them (its own writes included). */
  async read(file: OpenFile, position: number, length: number): Promise<Uint8Array> {
    if (file.buffer?.dirty) return file.buffer.read(position, length, this.readBase(file), this.readSealed);
    return this.readBase(file)(position, Math.max(0, Math.min(length, file.baseSizeBytes - position)));
  }

  /**
   * Makes blocks [fromBlock, toBlock] changeable again: waits for their
   * uploads, and gives sealed ones their bytes back (from the block cache).
   */
  private async unsealRange(file: OpenFile, buffer: WriteBuffer, from: number, end: number): Promise<void> {
    const b = BLOCK_SIZE_BYTES;
    for (let index = Math.floor(from / b); index * b < end; index++) await file.uploading?.get(index);
    for (const sealed of buffer.sealedIn(from, end)) buffer.reloadSealed(sealed.index, await this.blockCache.get(sealed.id));
  }

  /** Every background upload of the fh has ended (a failed one left its block unsealed: the commit uploads it). */
  private async uploadsDone(file: OpenFile): Promise<void> {
    // Bounded: each turn awaits the uploads present at its start; new ones start only from write().
    while (file.uploading && file.uploading.size > 0) await Promise.all([...file.uploading.values()]);
  }

  /** Buffers a write; full blocks stream to the servers in the background; a buffer at its limit is committed first. */
  async write(file: OpenFile, data: Uint8Array, positionBytes: number): Promise<void> {
    if (!file.flags.write) throw fsError('EBADF', 'not open for writing');
    const buffer = this.bufferOf(file);
    const position = file.flags.append ? buffer.size : positionBytes;
    requireFileSize(position + data.length);
    await this.unsealRange(file, buffer, position, position + data.length);
    if (!buffer.fits(position, data.length)) {
      // Too much unsealed data (scattered small writes, or uploads behind): wait for the uploads, else commit a version now.
      await this.uploadsDone(file);
      if (!buffer.fits(position, data.length)) await this.commit(file, false);
      await this.write(file, data, positionBytes);
      return;
    }
    // Copied into the buffer's blocks here; the kernel's buffer is not kept.
    const full = buffer.write(position, data);
    for (const index of full) this.upload(file, buffer, index);
    // Bounded: the application waits while STREAMING_UPLOADS_PER_FH blocks are on their way.
    while ((file.uploading?.size ?? 0) >= STREAMING_UPLOADS_PER_FH) await Promise.race(file.uploading!.values());
  }

  /** Starts uploading a full block; once the servers hold it, it is sealed (its memory freed). */
  private upload(file: OpenFile, buffer: WriteBuffer, index: number): void {
    // Not copied (a copy per MiB written kept the mount's GC busy): writes and truncations that touch an
    // uploading block wait for its upload (unsealRange), and once sealed the buffer lets go of these bytes.
    const bytes = buffer.fullBlock(index);
    file.uploading ??= new Map();
    const upload = this.sdk.putBlock(bytes).then((id) => {
      // A truncation may have dropped the block meanwhile: then there is nothing to seal, and the bytes are not cached
      // (only a sealed block's bytes are the cache's alone).
      if (file.buffer === buffer && buffer.canSeal(index)) {
        buffer.seal(index, id);
        file.sealedAtMs.set(id, Date.now());
        this.blockCache.put(id, bytes);
      }
    }, () => {
      // Left unsealed: the commit uploads it again and reports a failure then.
    }).finally(() => file.uploading?.delete(index));
    file.uploading.set(index, upload);
  }

  async truncate(file: OpenFile, sizeBytes: number): Promise<void> {
    requireFileSize(sizeBytes);
    const buffer = this.bufferOf(file);
    await this.unsealRange(file, buffer, sizeBytes, sizeBytes + 1);
    buffer.truncate(sizeBytes);
  }

  /**
   * One commit of the fh's buffer: the inline form, or the block form with
   * the changed blocks uploaded first. Afterwards the fh is based on the new
   * version and the buffer is empty. EBUSY under policy reject: the content
   * is kept as a conflict copy on the servers and the buffer is dropped.
   */
  async commit(file: OpenFile, release: boolean): Promise<void> {
    await this.uploadsDone(file);
    const buffer = file.buffer;
    if (!buffer) return;
    const base = await this.baseOf(file);
    const plan = await buffer.plan(INLINE_LIMIT_BYTES, { blocks: base.blocks }, this.readBase(file), this.readSealed);
    try {
      let outcome;
      if (plan.kind === 'inline') {
        outcome = await this.sdk.commit(file.serverFh, file.version, { kind: 'inline', written: plan.written, newSize: plan.newSize, truncatedTo: buffer.truncatedTo }, { policy: this.policy, release });
      } else {
        const ids = await this.uploadPlan(file, plan.blocks);
        outcome = await this.sdk.commit(file.serverFh, file.version, { kind: 'blocks', blocks: ids, writtenExtents: plan.writtenExtents, newSize: plan.newSize, truncatedTo: buffer.truncatedTo }, { policy: this.policy, release });
      }
      // The new version may differ from what this fh sent (the servers may have rebased it): its content is fetched when needed.
      file.version = outcome.version;
      file.baseSizeBytes = outcome.sizeBytes;
      file.base = undefined;
    } catch (error) {
      if (error instanceof MetaError && error.code === 'EBUSY') {
        // Rejected: the servers kept this content as a conflict copy; the fh stays on its base.
        file.buffer = undefined;
        file.sealedAtMs.clear();
      }
      throw error;
    }
    file.buffer = undefined;
    file.sealedAtMs.clear();
  }

  private async uploadPlan(file: OpenFile, blocks: Array<{ id: string } | { upload: Uint8Array }>): Promise<string[]> {
    const ids: string[] = new Array<string>(blocks.length);
    const nowMs = Date.now();
    await boundedParallel(blocks.map((block, i) => async () => {
      if ('id' in block) {
        const sealedAt = file.sealedAtMs.get(block.id);
        if (sealedAt !== undefined && nowMs - sealedAt > REPIN_AFTER_MS && !(await this.sdk.pinBlock(block.id))) {
          throw fsError('EIO', `uploaded block ${block.id} was collected before its commit`);
        }
        ids[i] = block.id;
      } else if (block.upload.every((byte) => byte === 0)) {
        ids[i] = '';
      } else {
        ids[i] = await this.sdk.putBlock(block.upload);
        this.blockCache.put(ids[i], block.upload);
      }
    }), UPLOAD_PARALLELISM);
    return ids;
  }
}

/**
 * EFBIG for a size past what a version can hold (checked before anything is
 * buffered: a 1-byte write at 1 TiB must not become a million-block commit).
 * The kernel's offsets past 2^53 arrive rounded; they are far past it too.
 */
export function requireFileSize(sizeBytes: number): void {
  if (!(sizeBytes <= MAX_FILE_SIZE_BYTES)) throw fsError('EFBIG', `size ${sizeBytes} is past the ${MAX_FILE_SIZE_BYTES}-byte limit of a handlefs file`);
}
