/**
 * Uncommitted writes over LevelDB while one apply batch runs: a batch-level
 * overlay (everything the batch's entries changed, so a later entry sees an
 * earlier one's effects) and a per-command Scope above it that is merged only
 * when the command succeeds — a failing command leaves nothing behind. Owns
 * read-your-writes and the typed access to records; must never decide whether
 * an operation is allowed (that is namespace-ops.ts with rules/).
 */
import { ClassicLevel } from 'classic-level';
import { COUNTERS_KEY, Counters, Inode, decodeDirent, decodeRecord, direntKey, encodeDirent, encodeRecord, inodeKey } from './records';

/** Guards against a runaway batch: an apply batch of Raft entries never writes more keys than this. */
const MAX_OVERLAY_KEYS = 1_000_000;

type Db = ClassicLevel<Buffer, Uint8Array>;

/** Where the bottom overlay reads committed records from (record-cache.ts in the machine). */
export interface PointReader {
  get(key: Buffer): Promise<Uint8Array | undefined>;
}

export class Overlay {
  /** hex key → value, or null for a delete. */
  private readonly writesByKey = new Map<string, Uint8Array | null>();

  constructor(
    private readonly reader: PointReader,
    private readonly below?: Overlay,
  ) {}

  async get(key: Buffer): Promise<Uint8Array | undefined> {
    const hex = key.toString('hex');
    if (this.writesByKey.has(hex)) return this.writesByKey.get(hex) ?? undefined;
    if (this.below) return this.below.get(key);
    return this.reader.get(key);
  }

  put(key: Buffer, value: Uint8Array): void {
    this.set(key.toString('hex'), value);
  }

  del(key: Buffer): void {
    this.set(key.toString('hex'), null);
  }

  /** Moves this overlay's writes into the one below it (the command succeeded). */
  mergeDown(): void {
    if (!this.below) throw new Error('metastate: mergeDown on the bottom overlay');
    for (const [hex, value] of this.writesByKey) this.below.set(hex, value);
    this.writesByKey.clear();
  }

  /** hex key → value (null = deleted): what the batch wrote, for the record cache once it is durable. */
  writes(): IterableIterator<[string, Uint8Array | null]> {
    return this.writesByKey.entries();
  }

  /** Adds every write to a LevelDB chained batch. */
  writeTo(batch: ReturnType<Db['batch']>): void {
    for (const [hex, value] of this.writesByKey) {
      const key = Buffer.from(hex, 'hex');
      if (value === null) batch.del(key);
      else batch.put(key, value);
    }
  }

  private set(hex: string, value: Uint8Array | null): void {
    if (this.writesByKey.size >= MAX_OVERLAY_KEYS && !this.writesByKey.has(hex)) throw new Error(`metastate: one apply batch wrote more than ${MAX_OVERLAY_KEYS} keys`);
    this.writesByKey.set(hex, value);
  }
}

/**
 * One command's view: inodes are decoded once and shared by identity (so a
 * rename inside one directory updates a single record), then written back
 * when the command succeeds.
 */
export class Scope {
  private readonly inodes = new Map<number, Inode | null>();
  private readonly dirty = new Set<number>();
  private countersCache?: Counters;

  constructor(readonly overlay: Overlay) {}

  async inode(handle: number): Promise<Inode | undefined> {
    if (this.inodes.has(handle)) return this.inodes.get(handle) ?? undefined;
    const bytes = await this.overlay.get(inodeKey(handle));
    const inode = bytes ? decodeRecord<Inode>(bytes, 'inode') : undefined;
    if (inode && inode.handle !== handle) throw new Error(`metastate: inode record under handle ${handle} names handle ${inode.handle}`);
    this.inodes.set(handle, inode ?? null);
    return inode;
  }

  saveInode(inode: Inode): void {
    if (inode.nlink < 0) throw new Error(`metastate: inode ${inode.handle} would have nlink ${inode.nlink}`);
    this.inodes.set(inode.handle, inode);
    this.dirty.add(inode.handle);
  }

  deleteInode(handle: number): void {
    this.inodes.set(handle, null);
    this.dirty.add(handle);
  }

  async lookup(parent: number, name: string): Promise<number | undefined> {
    const bytes = await this.overlay.get(direntKey(parent, name));
    return bytes ? decodeDirent(bytes).handle : undefined;
  }

  putDirent(parent: number, name: string, child: Inode): void {
    this.overlay.put(direntKey(parent, name), encodeDirent(child.handle, child.type));
  }

  delDirent(parent: number, name: string): void {
    this.overlay.del(direntKey(parent, name));
  }

  async counters(): Promise<Counters> {
    if (!this.countersCache) {
      const bytes = await this.overlay.get(COUNTERS_KEY);
      this.countersCache = bytes ? decodeRecord<Counters>(bytes, 'counters') : { nextHandle: 1, inodesInUse: 0, sessionsOpen: 0 };
    }
    return this.countersCache;
  }

  /** Writes the dirty inodes and counters into the overlay (call once, on success). */
  flush(): void {
    for (const handle of this.dirty) {
      const inode = this.inodes.get(handle);
      if (inode) this.overlay.put(inodeKey(handle), encodeRecord(inode));
      else this.overlay.del(inodeKey(handle));
    }
    if (this.countersCache) this.overlay.put(COUNTERS_KEY, encodeRecord(this.countersCache));
  }
}
