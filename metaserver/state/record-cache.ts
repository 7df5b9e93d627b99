/**
 * A read-through cache of the state's LevelDB records for point reads, shared
 * by apply (overlay.ts) and the queries. Why: apply awaits several single-key
 * gets per command, each a trip through LevelDB's thread pool, which left the
 * leader idle half the time; the machine is the only writer of its folder, so
 * the cache can be kept exact by writing each applied batch through it.
 * Owns the cache's bounds and its consistency rule; must never serve a value
 * older than LevelDB's committed one: a read that raced a batch write is not
 * cached (the write epoch moved while it was in flight), and restore clears it.
 */
import { ClassicLevel } from 'classic-level';

type Db = ClassicLevel<Buffer, Uint8Array>;

export interface RecordCacheLimits {
  maxEntries: number;
  maxBytes: number;
}

export const DEFAULT_RECORD_CACHE_LIMITS: RecordCacheLimits = Object.freeze({ maxEntries: 200_000, maxBytes: 64 * 1024 * 1024 });
/** What an entry costs besides its value: the hex key and the Map's own overhead, roughly. */
const ENTRY_OVERHEAD_BYTES = 96;

export class RecordCache {
  /** hex key → value, or null for "known absent". Insertion order is recency order (a hit re-inserts). */
  private readonly entries = new Map<string, Uint8Array | null>();
  private bytes = 0;
  /** Moves with every committed batch and every restore; a read started under an older epoch is not cached. */
  private epoch = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly db: Db, private readonly limits: RecordCacheLimits = DEFAULT_RECORD_CACHE_LIMITS) {
    if (!(limits.maxEntries >= 1 && limits.maxBytes >= 1)) throw new Error(`record cache limits must be positive, got ${JSON.stringify(limits)}`);
  }

  async get(key: Buffer): Promise<Uint8Array | undefined> {
    const hex = key.toString('hex');
    const cached = this.entries.get(hex);
    if (cached !== undefined) {
      this.hits += 1;
      this.entries.delete(hex);
      this.entries.set(hex, cached);
      return cached ?? undefined;
    }
    this.misses += 1;
    const epoch = this.epoch;
    const value = await this.db.get(key);
    if (epoch === this.epoch) this.remember(hex, value ?? null);
    return value;
  }

  /**
   * Loads the keys not cached yet in one LevelDB call (absent ones as "known
   * absent"). Apply prefetches what a batch's commands name, so a batch of
   * creates costs one trip through LevelDB's thread pool instead of one per
   * new name. At most maxEntries keys; more are left to read on demand.
   */
  async prefetch(keys: readonly Buffer[]): Promise<void> {
    const wanted = new Map<string, Buffer>();
    for (const key of keys) {
      if (wanted.size >= this.limits.maxEntries) break;
      const hex = key.toString('hex');
      if (!this.entries.has(hex)) wanted.set(hex, key);
    }
    if (wanted.size === 0) return;
    const epoch = this.epoch;
    const values = await this.db.getMany([...wanted.values()]);
    if (epoch !== this.epoch) return;
    let i = 0;
    for (const hex of wanted.keys()) this.remember(hex, values[i++] ?? null);
  }

  /** Writes a committed batch's values through (call after the batch is durable). */
  committed(writes: Iterable<[string, Uint8Array | null]>): void {
    this.epoch += 1;
    for (const [hex, value] of writes) this.remember(hex, value);
  }

  /** Forgets everything (the keyspace was replaced). */
  clear(): void {
    this.epoch += 1;
    this.entries.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.entries.size;
  }

  private remember(hex: string, value: Uint8Array | null): void {
    this.forget(hex);
    const cost = ENTRY_OVERHEAD_BYTES + hex.length + (value?.byteLength ?? 0);
    if (cost > this.limits.maxBytes / 16) return; // one huge record must not flush the whole cache
    this.entries.set(hex, value);
    this.bytes += cost;
    // Bounded: each turn removes the least recently used entry.
    for (const [oldest] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) break;
      this.forget(oldest);
    }
  }

  private forget(hex: string): void {
    const old = this.entries.get(hex);
    if (old === undefined) return;
    this.entries.delete(hex);
    this.bytes -= ENTRY_OVERHEAD_BYTES + hex.length + (old?.byteLength ?? 0);
  }
}
