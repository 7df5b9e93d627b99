/**
 * The plumbing every classic-level StateMachine shares: one LevelDB folder
 * whose whole keyspace is the machine's state, with the applied index stored
 * (u64 big-endian) under one key and written in the same synced batch as the
 * data; the one-apply-at-a-time and contiguous-entries checks; and the
 * snapshot format ("<magic>" then [key length u32][value length u32][key]
 * [value]... in key order, the applied index left out: it travels as snapshot
 * metadata) with whole-keyspace snapshot and restore. Must never interpret an
 * entry or a data key: the machine decides what a command does and which keys
 * are its own (KeyspaceLayout.isStateKey).
 */
import { ClassicLevel } from 'classic-level';
import { Entry, Snapshot } from '../core/types';

export type LevelDb = ClassicLevel<Buffer, Uint8Array>;
export type LevelBatch = ReturnType<LevelDb['batch']>;

/** A snapshot is built in memory; refuse to build or read one bigger than this. */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;
/** Keys read per native call while snapshotting or clearing: fewer round trips to the thread pool. */
const ITERATOR_BATCH_KEYS = 10_000;
const SNAPSHOT_MAGIC_BYTES = 4;
const RECORD_HEADER_BYTES = 8;
const APPLIED_INDEX_BYTES = 8;

/** What a machine tells the shared plumbing about its keyspace. */
export interface KeyspaceLayout {
  /** Starts every error message, so the operator knows which machine spoke ('kv', 'metastate'). */
  readonly label: string;
  readonly appliedKey: Buffer;
  /** 4 bytes opening every snapshot: a snapshot of another machine is refused by name. */
  readonly snapshotMagic: Buffer;
  /** Whether a key may appear in a snapshot (the applied key never may). */
  isStateKey(key: Buffer): boolean;
}

export class SnapshotTooLargeError extends Error {
  constructor(label: string, sizeBytes: number, maxBytes: number) {
    super(`${label}: the state is more than ${maxBytes} bytes (reached ${sizeBytes}); snapshots are built in memory and refuse to grow past that`);
  }
}

export function encodeAppliedIndex(index: number, label: string): Buffer {
  if (!Number.isSafeInteger(index) || index < 0) throw new Error(`${label}: applied index ${String(index)} is not a u64 this machine can store`);
  const out = Buffer.allocUnsafe(APPLIED_INDEX_BYTES);
  out.writeBigUInt64BE(BigInt(index));
  return out;
}

export function decodeAppliedIndex(bytes: Uint8Array, label: string): number {
  if (bytes.byteLength !== APPLIED_INDEX_BYTES) throw new Error(`${label}: applied index record has ${bytes.byteLength} bytes, expected ${APPLIED_INDEX_BYTES}`);
  const value = Buffer.from(bytes.buffer, bytes.byteOffset, APPLIED_INDEX_BYTES).readBigUInt64BE();
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${label}: applied index ${value} is out of range`);
  return Number(value);
}

function checkLayout(layout: KeyspaceLayout): void {
  if (layout.snapshotMagic.length !== SNAPSHOT_MAGIC_BYTES) throw new Error(`${layout.label}: snapshot magic must be ${SNAPSHOT_MAGIC_BYTES} bytes`);
  if (layout.isStateKey(layout.appliedKey)) throw new Error(`${layout.label}: the applied key must not count as a state key`);
}

/** maxBytes is a parameter only so tests can reach the limit; production uses the default. */
export function encodeSnapshot(layout: KeyspaceLayout, batches: Array<Array<[Buffer, Uint8Array]>>, maxBytes = MAX_SNAPSHOT_BYTES): Buffer {
  let sizeBytes = SNAPSHOT_MAGIC_BYTES;
  for (const batch of batches) {
    for (const [key, value] of batch) if (!key.equals(layout.appliedKey)) sizeBytes += RECORD_HEADER_BYTES + key.length + value.byteLength;
  }
  if (sizeBytes > maxBytes) throw new SnapshotTooLargeError(layout.label, sizeBytes, maxBytes);
  // One pass to size, one copy into a single buffer: cheaper than concatenating a chunk per record.
  const out = Buffer.allocUnsafe(sizeBytes);
  let offset = layout.snapshotMagic.copy(out, 0);
  for (const batch of batches) {
    for (const [key, value] of batch) {
      if (key.equals(layout.appliedKey)) continue;
      offset = out.writeUInt32BE(key.length, offset);
      offset = out.writeUInt32BE(value.byteLength, offset);
      offset += key.copy(out, offset);
      out.set(value, offset);
      offset += value.byteLength;
    }
  }
  if (offset !== sizeBytes) throw new Error(`${layout.label}: snapshot sized ${sizeBytes} bytes but wrote ${offset}`);
  return out;
}

export function decodeSnapshot(layout: KeyspaceLayout, data: Uint8Array, maxBytes = MAX_SNAPSHOT_BYTES): Array<{ key: Buffer; value: Buffer }> {
  const { label, snapshotMagic } = layout;
  if (data.byteLength > maxBytes) throw new SnapshotTooLargeError(label, data.byteLength, maxBytes);
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buffer.length < SNAPSHOT_MAGIC_BYTES || !buffer.subarray(0, SNAPSHOT_MAGIC_BYTES).equals(snapshotMagic)) {
    throw new Error(`${label}: snapshot data does not start with the ${snapshotMagic.toString('latin1')} magic`);
  }
  const records: Array<{ key: Buffer; value: Buffer }> = [];
  let offset = SNAPSHOT_MAGIC_BYTES;
  while (offset < buffer.length) {
    if (offset + RECORD_HEADER_BYTES > buffer.length) throw new Error(`${label}: snapshot record header truncated at byte ${offset}`);
    const keyLength = buffer.readUInt32BE(offset);
    const valueLength = buffer.readUInt32BE(offset + 4);
    offset += RECORD_HEADER_BYTES;
    if (keyLength === 0 || offset + keyLength + valueLength > buffer.length) throw new Error(`${label}: snapshot record truncated or empty at byte ${offset}`);
    const key = buffer.subarray(offset, offset + keyLength);
    if (!layout.isStateKey(key) || key.equals(layout.appliedKey)) throw new Error(`${label}: snapshot holds an unexpected key ${key.subarray(0, 16).toString('hex')} at byte ${offset}`);
    records.push({ key, value: buffer.subarray(offset + keyLength, offset + keyLength + valueLength) });
    offset += keyLength + valueLength;
  }
  return records;
}

/** A machine's LevelDB folder with its durable applied index and the one-apply-at-a-time guard. */
export class LevelKeyspace {
  private applied = 0;
  private applying = false;

  private constructor(readonly db: LevelDb, private readonly layout: KeyspaceLayout) {}

  static async open(dataDir: string, layout: KeyspaceLayout): Promise<LevelKeyspace> {
    checkLayout(layout);
    const db = new ClassicLevel<Buffer, Uint8Array>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'view' });
    await db.open();
    const keyspace = new LevelKeyspace(db, layout);
    try {
      const stored = await db.get(layout.appliedKey);
      keyspace.applied = stored ? decodeAppliedIndex(stored, layout.label) : 0;
    } catch (error) {
      await db.close();
      throw error;
    }
    return keyspace;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  /**
   * Runs `fill` as the only apply in flight, for entries that follow the
   * applied index without a gap; fill adds the data writes to the batch, which
   * is then written synced together with the new applied index.
   */
  async applyEntries<R>(entries: Entry[], fill: (batch: LevelBatch) => Promise<R[]> | R[]): Promise<R[]> {
    const { label } = this.layout;
    if (this.applying) throw new Error(`${label}: apply called while another apply is in flight`);
    if (entries.length === 0) return [];
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].index !== this.applied + 1 + i) throw new Error(`${label}: apply of index ${entries[i].index} but the applied index is ${this.applied} (entry ${i} of the batch)`);
    }
    this.applying = true;
    // The chained form costs ~0.8 µs per op against ~5 µs for the array form (classic-level 3.0, measured here).
    const batch = this.db.batch();
    try {
      const results = await fill(batch);
      const last = entries[entries.length - 1].index;
      batch.put(this.layout.appliedKey, encodeAppliedIndex(last, label));
      await batch.write({ sync: true });
      this.applied = last;
      return results;
    } catch (error) {
      await batch.close(); // idempotent: a failed write has already closed it
      throw error;
    } finally {
      this.applying = false;
    }
  }

  /** Hands every key and value, in key order and in batches, to `visit`; one iterator, so one LevelDB snapshot. */
  async scan(visit: (batch: Array<[Buffer, Uint8Array]>) => void): Promise<void> {
    const iterator = this.db.iterator();
    try {
      for (;;) {
        const batch = await iterator.nextv(ITERATOR_BATCH_KEYS);
        if (batch.length === 0) return;
        visit(batch);
      }
    } finally {
      await iterator.close();
    }
  }

  /** The whole keyspace as of the applied index. */
  async snapshot(maxBytes = MAX_SNAPSHOT_BYTES): Promise<{ index: number; data: Uint8Array }> {
    const batches: Array<Array<[Buffer, Uint8Array]>> = [];
    let index = 0;
    let sizeBytes = SNAPSHOT_MAGIC_BYTES;
    await this.scan((batch) => {
      for (const [key, value] of batch) {
        if (key.equals(this.layout.appliedKey)) index = decodeAppliedIndex(value, this.layout.label);
        sizeBytes += RECORD_HEADER_BYTES + key.length + value.byteLength;
      }
      // Refuse before reading the rest of a state that cannot fit anyway.
      if (sizeBytes > maxBytes) throw new SnapshotTooLargeError(this.layout.label, sizeBytes, maxBytes);
      batches.push(batch);
    });
    return { index, data: encodeSnapshot(this.layout, batches, maxBytes) };
  }

  /** Replaces everything with the snapshot's keys and sets the applied index, in one synchronous batch. */
  async restore(snapshot: Snapshot): Promise<void> {
    if (this.applying) throw new Error(`${this.layout.label}: restore called while an apply is in flight`);
    const incoming = decodeSnapshot(this.layout, snapshot.data);
    const index = snapshot.metadata.index;
    const batch = this.db.batch();
    const iterator = this.db.keys();
    try {
      for (;;) {
        const keys = await iterator.nextv(ITERATOR_BATCH_KEYS);
        if (keys.length === 0) break;
        for (const key of keys) batch.del(key);
      }
      for (const { key, value } of incoming) batch.put(key, value);
      batch.put(this.layout.appliedKey, encodeAppliedIndex(index, this.layout.label));
    } catch (error) {
      await batch.close();
      throw error;
    } finally {
      await iterator.close();
    }
    await batch.write({ sync: true });
    this.applied = index;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
