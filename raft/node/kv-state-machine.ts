/**
 * A small replicated key-value StateMachine on its own classic-level folder,
 * for raft/'s tests, the demo server and the bench (metaserver/ has its own).
 * Owns the command encoding, the data keys and the durable applied index,
 * written in the same synchronous batch as the data so a restart neither
 * skips nor repeats an entry. Must never throw on a malformed entry (every
 * member must apply the same log the same way): it records an error result.
 */
import { ClassicLevel } from 'classic-level';
import { Entry, EntryType, Snapshot } from '../core/types';
import { StateMachine } from './interfaces';

export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1024 * 1024;
/** A snapshot is built in memory; refuse to build one bigger than this. */
const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;
/** Keys read per native call while dumping or restoring. */
const ITERATOR_BATCH_KEYS = 1_000;
/** Keys read per native call while snapshotting: fewer round trips to the thread pool. */
const SNAPSHOT_BATCH_KEYS = 10_000;

const OP_PUT = 1;
const OP_DELETE = 2;
const COMMAND_HEADER_BYTES = 3;
const APPLIED_KEY = Buffer.from('m:applied');
const DATA_PREFIX = Buffer.from('d:');
const SNAPSHOT_MAGIC = Buffer.from('KVS1');

export type KvCommand = { op: 'put'; key: string; value: Uint8Array } | { op: 'delete'; key: string };

/** What apply returns for a Normal entry. */
export interface KvResult {
  index: number;
  /** Set when the entry was not a valid command (nothing was written). */
  error?: string;
}

function checkKey(key: string): Buffer {
  const keyBytes = Buffer.from(key, 'utf8');
  if (keyBytes.length === 0 || keyBytes.length > MAX_KEY_BYTES) throw new Error(`kv: key must be 1..${MAX_KEY_BYTES} bytes, got ${keyBytes.length}`);
  return keyBytes;
}

/** [op u8][key length u16 BE][key utf8][value]: compact, so a 256 B value costs 256 + a few bytes in the log. */
export function encodeKvCommand(command: KvCommand): Uint8Array {
  const keyBytes = checkKey(command.key);
  const value = command.op === 'put' ? command.value : new Uint8Array(0);
  if (value.byteLength > MAX_VALUE_BYTES) throw new Error(`kv: value must be at most ${MAX_VALUE_BYTES} bytes, got ${value.byteLength}`);
  const out = Buffer.allocUnsafe(COMMAND_HEADER_BYTES + keyBytes.length + value.byteLength);
  out[0] = command.op === 'put' ? OP_PUT : OP_DELETE;
  out.writeUInt16BE(keyBytes.length, 1);
  keyBytes.copy(out, COMMAND_HEADER_BYTES);
  out.set(value, COMMAND_HEADER_BYTES + keyBytes.length);
  return out;
}

export function decodeKvCommand(data: Uint8Array): KvCommand | string {
  if (data.byteLength < COMMAND_HEADER_BYTES) return `command too short (${data.byteLength} bytes)`;
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const keyLength = buffer.readUInt16BE(1);
  if (keyLength === 0 || keyLength > MAX_KEY_BYTES || COMMAND_HEADER_BYTES + keyLength > buffer.length) return `bad key length ${keyLength}`;
  const key = buffer.toString('utf8', COMMAND_HEADER_BYTES, COMMAND_HEADER_BYTES + keyLength);
  const value = buffer.subarray(COMMAND_HEADER_BYTES + keyLength);
  if (buffer[0] === OP_PUT) return { op: 'put', key, value };
  if (buffer[0] === OP_DELETE) return value.length === 0 ? { op: 'delete', key } : 'delete carries a value';
  return `unknown op ${buffer[0]}`;
}

function dataKey(key: string): Buffer {
  return Buffer.concat([DATA_PREFIX, Buffer.from(key, 'utf8')]);
}

function encodeIndex(index: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(index));
  return out;
}

function decodeIndex(bytes: Uint8Array): number {
  if (bytes.byteLength !== 8) throw new Error(`kv: applied index record has ${bytes.byteLength} bytes, expected 8`);
  const value = Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64BE();
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`kv: applied index ${value} is out of range`);
  return Number(value);
}

export class KvStateMachine implements StateMachine {
  private applied = 0;
  private applying = false;

  private constructor(private readonly db: ClassicLevel<Buffer, Uint8Array>, readonly dataDir: string) {}

  static async open(dataDir: string): Promise<KvStateMachine> {
    const db = new ClassicLevel<Buffer, Uint8Array>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'view' });
    await db.open();
    const machine = new KvStateMachine(db, dataDir);
    const stored = await db.get(APPLIED_KEY);
    machine.applied = stored ? decodeIndex(stored) : 0;
    return machine;
  }

  async appliedIndex(): Promise<number> {
    return this.applied;
  }

  async apply(entries: Entry[]): Promise<unknown[]> {
    if (this.applying) throw new Error('kv: apply called while another apply is in flight');
    if (entries.length === 0) return [];
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].index !== this.applied + 1 + i) throw new Error(`kv: apply of index ${entries[i].index} but the applied index is ${this.applied} (entry ${i} of the batch)`);
    }
    this.applying = true;
    try {
      // The chained form costs ~0.8 µs per op against ~5 µs for the array form (classic-level 3.0, measured here).
      const batch = this.db.batch();
      const results: unknown[] = [];
      for (const entry of entries) {
        if (entry.type !== EntryType.Normal) {
          results.push(undefined);
          continue;
        }
        const command = decodeKvCommand(entry.data);
        if (typeof command === 'string') {
          results.push({ index: entry.index, error: `malformed entry: ${command}` } satisfies KvResult);
          continue;
        }
        if (command.op === 'put') batch.put(dataKey(command.key), command.value);
        else batch.del(dataKey(command.key));
        results.push({ index: entry.index } satisfies KvResult);
      }
      const last = entries[entries.length - 1].index;
      batch.put(APPLIED_KEY, encodeIndex(last));
      await batch.write({ sync: true });
      this.applied = last;
      return results;
    } finally {
      this.applying = false;
    }
  }

  /** A local (not linearizable) read; callers make it linearizable with RaftNode.readIndex first. */
  async get(key: string): Promise<Uint8Array | undefined> {
    return this.db.get(dataKey(key));
  }

  /** Every key and value in key order, at most `limit`. */
  async dump(limit: number): Promise<{ appliedIndex: number; entries: Array<{ key: string; value: Uint8Array }>; truncated: boolean }> {
    const iterator = this.db.iterator();
    const entries: Array<{ key: string; value: Uint8Array }> = [];
    let appliedIndex = 0;
    let truncated = false;
    try {
      for (;;) {
        const batch = await iterator.nextv(ITERATOR_BATCH_KEYS);
        if (batch.length === 0) break;
        for (const [key, value] of batch) {
          if (key.equals(APPLIED_KEY)) appliedIndex = decodeIndex(value);
          else if (key.subarray(0, DATA_PREFIX.length).equals(DATA_PREFIX)) {
            if (entries.length >= limit) { truncated = true; continue; }
            entries.push({ key: key.toString('utf8', DATA_PREFIX.length), value });
          }
        }
      }
    } finally {
      await iterator.close();
    }
    return { appliedIndex, entries, truncated };
  }

  /** The whole keyspace as of the applied index (the iterator reads one LevelDB snapshot). */
  async snapshot(): Promise<{ index: number; data: Uint8Array }> {
    const iterator = this.db.iterator();
    const batches: Array<Array<[Buffer, Uint8Array]>> = [];
    let sizeBytes = SNAPSHOT_MAGIC.length;
    let index = 0;
    try {
      for (;;) {
        const batch = await iterator.nextv(SNAPSHOT_BATCH_KEYS);
        if (batch.length === 0) break;
        for (const [key, value] of batch) sizeBytes += 8 + key.length + value.byteLength;
        if (sizeBytes > MAX_SNAPSHOT_BYTES) throw new Error(`kv: snapshot exceeds ${MAX_SNAPSHOT_BYTES} bytes`);
        batches.push(batch);
      }
    } finally {
      await iterator.close();
    }
    // One pass to size, one copy into a single buffer: cheaper than concatenating a chunk per record.
    const out = Buffer.allocUnsafe(sizeBytes);
    let offset = SNAPSHOT_MAGIC.copy(out, 0);
    for (const batch of batches) {
      for (const [key, value] of batch) {
        if (key.equals(APPLIED_KEY)) {
          index = decodeIndex(value);
          continue;
        }
        offset = out.writeUInt32BE(key.length, offset);
        offset = out.writeUInt32BE(value.byteLength, offset);
        offset += key.copy(out, offset);
        out.set(value, offset);
        offset += value.byteLength;
      }
    }
    return { index, data: out.subarray(0, offset) };
  }

  /** Replaces everything with the snapshot's keys and sets the applied index, in one synchronous batch. */
  async restore(snapshot: Snapshot): Promise<void> {
    const incoming = parseSnapshot(snapshot.data);
    const batch = this.db.batch();
    const iterator = this.db.keys();
    try {
      for (;;) {
        const keys = await iterator.nextv(ITERATOR_BATCH_KEYS);
        if (keys.length === 0) break;
        for (const key of keys) batch.del(key);
      }
    } catch (error) {
      await batch.close();
      throw error;
    } finally {
      await iterator.close();
    }
    for (const { key, value } of incoming) batch.put(key, value);
    batch.put(APPLIED_KEY, encodeIndex(snapshot.metadata.index));
    await batch.write({ sync: true });
    this.applied = snapshot.metadata.index;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

function parseSnapshot(data: Uint8Array): Array<{ key: Buffer; value: Buffer }> {
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buffer.length < SNAPSHOT_MAGIC.length || !buffer.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
    throw new Error('kv: snapshot data does not start with the KVS1 magic');
  }
  const records: Array<{ key: Buffer; value: Buffer }> = [];
  let offset = SNAPSHOT_MAGIC.length;
  while (offset < buffer.length) {
    if (offset + 8 > buffer.length) throw new Error(`kv: snapshot record header truncated at byte ${offset}`);
    const keyLength = buffer.readUInt32BE(offset);
    const valueLength = buffer.readUInt32BE(offset + 4);
    offset += 8;
    if (offset + keyLength + valueLength > buffer.length) throw new Error(`kv: snapshot record truncated at byte ${offset}`);
    const key = buffer.subarray(offset, offset + keyLength);
    if (!key.subarray(0, DATA_PREFIX.length).equals(DATA_PREFIX)) throw new Error(`kv: snapshot holds a key outside the data range at byte ${offset}`);
    records.push({ key, value: buffer.subarray(offset + keyLength, offset + keyLength + valueLength) });
    offset += keyLength + valueLength;
  }
  return records;
}
