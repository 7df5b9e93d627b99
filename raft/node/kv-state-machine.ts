/**
 * A small replicated key-value StateMachine on its own classic-level folder,
 * for raft/'s tests, the demo server and the bench (metaserver/ has its own).
 * Owns the command encoding and the data keys; the durable applied index
 * (written in the same synced batch as the data, so a restart neither skips
 * nor repeats an entry), snapshot and restore are level-keyspace.ts's.
 * Must never throw on a malformed entry (every member must apply the same
 * log the same way): it records an error result.
 */
import { Entry, EntryType, Snapshot } from '../core/types';
import { StateMachine } from './interfaces';
import { KeyspaceLayout, LevelKeyspace, decodeAppliedIndex } from './level-keyspace';

export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1024 * 1024;

const OP_PUT = 1;
const OP_DELETE = 2;
const COMMAND_HEADER_BYTES = 3;
const DATA_PREFIX = Buffer.from('d:');

const KV_KEYSPACE: KeyspaceLayout = {
  label: 'kv',
  appliedKey: Buffer.from('m:applied'),
  snapshotMagic: Buffer.from('KVS1'),
  isStateKey: (key) => key.subarray(0, DATA_PREFIX.length).equals(DATA_PREFIX),
};

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

export class KvStateMachine implements StateMachine {
  private constructor(private readonly keyspace: LevelKeyspace, readonly dataDir: string) {}

  static async open(dataDir: string): Promise<KvStateMachine> {
    return new KvStateMachine(await LevelKeyspace.open(dataDir, KV_KEYSPACE), dataDir);
  }

  async appliedIndex(): Promise<number> {
    return this.keyspace.appliedIndex;
  }

  async apply(entries: Entry[]): Promise<unknown[]> {
    return this.keyspace.applyEntries(entries, (batch) => {
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
      return results;
    });
  }

  /** A local (not linearizable) read; callers make it linearizable with RaftNode.readIndex first. */
  async get(key: string): Promise<Uint8Array | undefined> {
    return this.keyspace.db.get(dataKey(key));
  }

  /** Every key and value in key order, at most `limit`. */
  async dump(limit: number): Promise<{ appliedIndex: number; entries: Array<{ key: string; value: Uint8Array }>; truncated: boolean }> {
    const entries: Array<{ key: string; value: Uint8Array }> = [];
    let appliedIndex = 0;
    let truncated = false;
    await this.keyspace.scan((batch) => {
      for (const [key, value] of batch) {
        if (key.equals(KV_KEYSPACE.appliedKey)) appliedIndex = decodeAppliedIndex(value, KV_KEYSPACE.label);
        else if (KV_KEYSPACE.isStateKey(key)) {
          if (entries.length >= limit) { truncated = true; continue; }
          entries.push({ key: key.toString('utf8', DATA_PREFIX.length), value });
        }
      }
    });
    return { appliedIndex, entries, truncated };
  }

  /** The whole keyspace as of the applied index. */
  async snapshot(): Promise<{ index: number; data: Uint8Array }> {
    return this.keyspace.snapshot();
  }

  /** Replaces everything with the snapshot's keys and sets the applied index, in one synchronous batch. */
  async restore(snapshot: Snapshot): Promise<void> {
    await this.keyspace.restore(snapshot);
  }

  async close(): Promise<void> {
    await this.keyspace.close();
  }
}
