/**
 * The content-addressed block store on one member's disk: a block is a file
 * dir/aa/bb/<id>, where id is the lowercase hex SHA-256 of its bytes and aa, bb
 * are the id's first two bytes. Owns the files, their durability (a put
 * resolves only after the file and its folder are fsynced), the hash check on
 * every write and read, quarantine of corrupt files, and the in-memory
 * {blocks, bytes} count. Must never hold a block whose bytes do not hash to its
 * name, never keep a block over MAX_BLOCK_BYTES, and never decide which
 * blocks are referenced (the state machine does).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_BLOCK_SIZE_BYTES } from '../rules/commit';
import { BLOCK_ID_PATTERN } from '../rules/retention';
import { Counter, Gauge, Registry } from 'prom-client';
import { RaftLogger, silentLogger } from '../../raft/node/node-logger';

/** The largest block any member stores or sends. */
export const MAX_BLOCK_BYTES = DEFAULT_BLOCK_SIZE_BYTES;
const TEMP_PREFIX = '.tmp-';
const QUARANTINE_DIR = 'quarantine';

export function blockIdOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function isBlockId(value: unknown): value is string {
  return typeof value === 'string' && BLOCK_ID_PATTERN.test(value);
}

/** A short, printable form of a value that should have been a block id. */
export function describeId(value: unknown): string {
  if (typeof value !== 'string') return `(${typeof value})`;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

export class BlockHashMismatchError extends Error {
  constructor(readonly expectedId: string, readonly actualId: string) {
    super(`block bytes hash to ${actualId}, not to the id ${expectedId}`);
    this.name = 'BlockHashMismatchError';
  }
}

export class BlockTooLargeError extends Error {
  constructor(readonly sizeBytes: number) {
    super(`block of ${sizeBytes} bytes exceeds the ${MAX_BLOCK_BYTES}-byte limit`);
    this.name = 'BlockTooLargeError';
  }
}

export class BadBlockIdError extends Error {
  constructor(value: unknown) {
    super(`block id ${describeId(value)} is not 64 lowercase hex digits (a SHA-256)`);
    this.name = 'BadBlockIdError';
  }
}

export interface BlockStoreStats {
  blocks: number;
  bytes: number;
}

export interface BlockStoreOptions {
  logger?: RaftLogger;
  /** Registers handlefs_blocks_stored, handlefs_blocks_stored_bytes and handlefs_blocks_quarantined_total when given. */
  registry?: Registry;
}

function requireId(id: unknown): asserts id is string {
  if (!isBlockId(id)) throw new BadBlockIdError(id);
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

export class BlockStore {
  private blockCount = 0;
  private byteCount = 0;
  private quarantined = 0;
  private tempCounter = 0;
  /** Per-id tail of the operations on it, so put/delete/quarantine of one id never interleave (bounded by the callers' concurrency). */
  private readonly idLocks = new Map<string, Promise<void>>();
  private quarantinedTotal: Counter | undefined;

  private constructor(readonly dir: string, private readonly logger: RaftLogger) {}

  private registerMetrics(registry: Registry): void {
    const stats = (): BlockStoreStats => this.stats();
    new Gauge({ name: 'handlefs_blocks_stored', help: 'Blocks in this member\'s block store', registers: [registry], collect() { this.set(stats().blocks); } });
    new Gauge({ name: 'handlefs_blocks_stored_bytes', help: 'Bytes of the blocks in this member\'s block store', registers: [registry], collect() { this.set(stats().bytes); } });
    this.quarantinedTotal = new Counter({ name: 'handlefs_blocks_quarantined_total', help: 'Block files that failed their hash check and were moved to quarantine', registers: [registry] });
  }

  /** Opens (creating) the store at dir: removes temp files a crash left, counts the blocks. */
  static async open(dir: string, options: BlockStoreOptions = {}): Promise<BlockStore> {
    if (typeof dir !== 'string' || dir === '') throw new Error('block store folder is not a path');
    const store = new BlockStore(path.resolve(dir), options.logger ?? silentLogger);
    await fs.promises.mkdir(path.join(store.dir, QUARANTINE_DIR), { recursive: true });
    await store.scan();
    if (options.registry !== undefined) store.registerMetrics(options.registry);
    return store;
  }

  private async scan(): Promise<void> {
    let tempsRemoved = 0;
    for await (const entry of this.walk()) {
      if (entry.name.startsWith(TEMP_PREFIX)) {
        await fs.promises.rm(entry.full, { force: true });
        tempsRemoved++;
        continue;
      }
      if (!isBlockId(entry.name) || this.pathOf(entry.name) !== entry.full) {
        this.logger.warn('block store: ignoring a file that is not a block', { file: entry.full });
        continue;
      }
      const stat = await fs.promises.stat(entry.full);
      this.blockCount++;
      this.byteCount += stat.size;
    }
    if (tempsRemoved > 0) this.logger.warn('block store: removed temp files left by a crash', { dir: this.dir, tempsRemoved });
  }

  /** Every regular file two levels under dir/aa/bb (quarantine excluded), one folder open at a time. */
  private async *walk(): AsyncGenerator<{ name: string; full: string }> {
    const fanOut = /^[0-9a-f]{2}$/;
    for await (const top of await fs.promises.opendir(this.dir)) {
      if (!top.isDirectory() || !fanOut.test(top.name)) continue;
      const topPath = path.join(this.dir, top.name);
      for await (const mid of await fs.promises.opendir(topPath)) {
        if (!mid.isDirectory() || !fanOut.test(mid.name)) continue;
        const midPath = path.join(topPath, mid.name);
        for await (const file of await fs.promises.opendir(midPath)) {
          if (file.isFile()) yield { name: file.name, full: path.join(midPath, file.name) };
        }
      }
    }
  }

  private pathOf(id: string): string {
    return path.join(this.dir, id.slice(0, 2), id.slice(2, 4), id);
  }

  private async withIdLock<T>(id: string, run: () => Promise<T>): Promise<T> {
    const previous = this.idLocks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.idLocks.set(id, tail);
    await previous;
    try {
      return await run();
    } finally {
      release();
      if (this.idLocks.get(id) === tail) this.idLocks.delete(id);
    }
  }

  /** Stores bytes under id durably; a no-op when the block is already here. Throws BlockHashMismatchError, BlockTooLargeError, BadBlockIdError. */
  async put(id: string, bytes: Uint8Array): Promise<void> {
    requireId(id);
    if (!(bytes instanceof Uint8Array)) throw new Error(`block ${id}: bytes are not a Uint8Array`);
    if (bytes.length > MAX_BLOCK_BYTES) throw new BlockTooLargeError(bytes.length);
    const actualId = blockIdOf(bytes);
    if (actualId !== id) throw new BlockHashMismatchError(id, actualId);
    await this.withIdLock(id, async () => {
      const file = this.pathOf(id);
      // A file already here is kept only if it is good: a rotten copy must not make this put a no-op.
      const present = await this.readIfPresent(file);
      if (present !== undefined) {
        const presentId = blockIdOf(present);
        if (presentId === id) return;
        await this.quarantineLocked(id, `bytes hash to ${presentId} (found while storing a good copy)`);
      }
      const folder = path.dirname(file);
      const created = await fs.promises.mkdir(folder, { recursive: true });
      const temp = path.join(folder, `${TEMP_PREFIX}${id}-${process.pid}-${++this.tempCounter}`);
      try {
        const handle = await fs.promises.open(temp, 'wx');
        try {
          await handle.writeFile(bytes);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await fs.promises.rename(temp, file);
      } catch (error) {
        await fs.promises.rm(temp, { force: true });
        throw error;
      }
      await fsyncDir(folder);
      // A fan-out folder made just now must itself be durable in its parents.
      if (created !== undefined) {
        await fsyncDir(path.dirname(folder));
        await fsyncDir(this.dir);
      }
      this.blockCount++;
      this.byteCount += bytes.length;
    });
  }

  /** The block's bytes, or undefined if it is not here. A file that fails the hash check is quarantined and reported missing. */
  async get(id: string): Promise<Uint8Array | undefined> {
    requireId(id);
    const file = this.pathOf(id);
    let bytes: Buffer;
    try {
      const stat = await fs.promises.stat(file);
      if (stat.size > MAX_BLOCK_BYTES) {
        await this.quarantine(id, `file has ${stat.size} bytes, over the ${MAX_BLOCK_BYTES}-byte limit`);
        return undefined;
      }
      bytes = await fs.promises.readFile(file);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    const actualId = blockIdOf(bytes);
    if (actualId !== id) {
      await this.quarantine(id, `bytes hash to ${actualId}`);
      return undefined;
    }
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  private async readIfPresent(file: string): Promise<Buffer | undefined> {
    try {
      const stat = await fs.promises.stat(file);
      // An oversized file is corrupt; reading one byte past the limit shows that without reading it all.
      if (stat.size > MAX_BLOCK_BYTES) return Buffer.alloc(MAX_BLOCK_BYTES + 1);
      return await fs.promises.readFile(file);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Quarantines id's file if it is still corrupt once no other operation on id runs (a put may have just replaced it). */
  private async quarantine(id: string, why: string): Promise<void> {
    await this.withIdLock(id, async () => {
      const present = await this.readIfPresent(this.pathOf(id));
      if (present === undefined || blockIdOf(present) === id) return;
      await this.quarantineLocked(id, why);
    });
  }

  /** Moves a corrupt block file to dir/quarantine (for an operator to look at) and forgets it. Holds id's lock. */
  private async quarantineLocked(id: string, why: string): Promise<void> {
    const file = this.pathOf(id);
    const sizeBytes = (await fs.promises.stat(file)).size;
    const target = path.join(this.dir, QUARANTINE_DIR, `${id}.${Date.now()}.${++this.tempCounter}`);
    await fs.promises.rename(file, target);
    await fsyncDir(path.dirname(file));
    this.blockCount--;
    this.byteCount -= sizeBytes;
    this.quarantined++;
    this.quarantinedTotal?.inc();
    this.logger.error('block store: corrupt block quarantined', { id, why, movedTo: target });
  }

  private async exists(file: string): Promise<boolean> {
    try {
      await fs.promises.stat(file);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** Whether a file for id is here (its bytes are checked only when read). */
  async has(id: string): Promise<boolean> {
    requireId(id);
    return this.exists(this.pathOf(id));
  }

  /** Removes the block; a no-op when it is not here. */
  async delete(id: string): Promise<void> {
    requireId(id);
    await this.withIdLock(id, async () => {
      const file = this.pathOf(id);
      let sizeBytes: number;
      try {
        sizeBytes = (await fs.promises.stat(file)).size;
        await fs.promises.unlink(file);
      } catch (error) {
        if (isNotFound(error)) return;
        throw error;
      }
      await fsyncDir(path.dirname(file));
      this.blockCount--;
      this.byteCount -= sizeBytes;
    });
  }

  /** Every block id here, walking one folder at a time (memory does not grow with the store). */
  async *list(): AsyncGenerator<string> {
    for await (const entry of this.walk()) {
      if (isBlockId(entry.name) && this.pathOf(entry.name) === entry.full) yield entry.name;
    }
  }

  /** How long ago the block's file was written, or undefined when it is not stored. */
  async ageMs(id: string, nowMs = Date.now()): Promise<number | undefined> {
    try {
      return nowMs - (await fs.promises.stat(this.pathOf(id))).mtimeMs;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  stats(): BlockStoreStats {
    if (this.blockCount < 0 || this.byteCount < 0) throw new Error(`block store counts went negative: ${this.blockCount} blocks, ${this.byteCount} bytes`);
    return { blocks: this.blockCount, bytes: this.byteCount };
  }

  /** Corrupt files moved to quarantine since open. */
  quarantinedCount(): number {
    return this.quarantined;
  }
}
