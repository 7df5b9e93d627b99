/**
 * The mount's cache of block contents: content-addressed, so an entry never
 * goes stale; bounded by bytes (LRU); concurrent reads of one block share one
 * fetch. Owns only memory; must never hold more than maxBytes of blocks.
 */
export class BlockCache {
  private readonly blocks = new Map<string, Uint8Array>();
  private readonly inFlight = new Map<string, Promise<Uint8Array>>();
  private bytes = 0;

  constructor(private readonly fetch: (id: string) => Promise<Uint8Array>, private readonly maxBytes: number) {
    if (!(maxBytes > 0)) throw new Error(`block cache size ${maxBytes}`);
  }

  /** Bytes of block contents held now. */
  get sizeBytes(): number {
    return this.bytes;
  }

  get(id: string): Promise<Uint8Array> {
    const cached = this.blocks.get(id);
    if (cached) {
      this.blocks.delete(id);
      this.blocks.set(id, cached);
      return Promise.resolve(cached);
    }
    let pending = this.inFlight.get(id);
    if (!pending) {
      pending = this.fetch(id).then((bytes) => {
        this.remember(id, bytes);
        return bytes;
      }).finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, pending);
    }
    return pending;
  }

  /** Starts fetching a block a sequential reader will want next; errors are left to the real read. */
  prefetch(id: string): void {
    if (id === '' || this.blocks.has(id) || this.inFlight.has(id)) return;
    this.get(id).catch(() => undefined);
  }

  /** A block this mount just uploaded: its bytes are known. */
  put(id: string, bytes: Uint8Array): void {
    this.remember(id, bytes);
  }

  private remember(id: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.maxBytes / 4 || this.blocks.has(id)) return;
    this.blocks.set(id, bytes);
    this.bytes += bytes.byteLength;
    // Bounded: each turn evicts the least recently used block.
    for (const [oldest, value] of this.blocks) {
      if (this.bytes <= this.maxBytes) break;
      this.blocks.delete(oldest);
      this.bytes -= value.byteLength;
    }
  }
}
