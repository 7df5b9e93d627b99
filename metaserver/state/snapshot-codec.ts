/**
 * The metadata state machine's snapshot: every key and value except the
 * applied index (that travels as snapshot metadata), framed as
 * "HMS1" then [key length u32][value length u32][key][value]... in key order.
 * Owns the format and its validation; must never touch LevelDB.
 */
import { APPLIED_KEY } from './records';

const SNAPSHOT_MAGIC = Buffer.from('HMS1');
/** A snapshot is built in memory; refuse to build or read one bigger than this. */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;
/** Key prefixes a snapshot may hold (meta 00, inodes 10, dirents 20, xattrs 30, sessions 40). */
const KNOWN_PREFIXES = new Set([0x00, 0x10, 0x20, 0x30, 0x40]);

export class SnapshotTooLargeError extends Error {
  constructor(sizeBytes: number, maxBytes: number) {
    super(`metastate: the state is more than ${maxBytes} bytes (reached ${sizeBytes}); snapshots are built in memory and refuse to grow past that`);
  }
}

/** maxBytes is a parameter only so tests can reach the limit; production uses the default. */
export function encodeSnapshot(batches: Array<Array<[Buffer, Uint8Array]>>, maxBytes = MAX_SNAPSHOT_BYTES): Buffer {
  let sizeBytes = SNAPSHOT_MAGIC.length;
  for (const batch of batches) {
    for (const [key, value] of batch) if (!key.equals(APPLIED_KEY)) sizeBytes += 8 + key.length + value.byteLength;
  }
  if (sizeBytes > maxBytes) throw new SnapshotTooLargeError(sizeBytes, maxBytes);
  const out = Buffer.allocUnsafe(sizeBytes);
  let offset = SNAPSHOT_MAGIC.copy(out, 0);
  for (const batch of batches) {
    for (const [key, value] of batch) {
      if (key.equals(APPLIED_KEY)) continue;
      offset = out.writeUInt32BE(key.length, offset);
      offset = out.writeUInt32BE(value.byteLength, offset);
      offset += key.copy(out, offset);
      out.set(value, offset);
      offset += value.byteLength;
    }
  }
  if (offset !== sizeBytes) throw new Error(`metastate: snapshot sized ${sizeBytes} bytes but wrote ${offset}`);
  return out;
}

export function decodeSnapshot(data: Uint8Array, maxBytes = MAX_SNAPSHOT_BYTES): Array<{ key: Buffer; value: Buffer }> {
  if (data.byteLength > maxBytes) throw new SnapshotTooLargeError(data.byteLength, maxBytes);
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buffer.length < SNAPSHOT_MAGIC.length || !buffer.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
    throw new Error('metastate: snapshot data does not start with the HMS1 magic');
  }
  const records: Array<{ key: Buffer; value: Buffer }> = [];
  let offset = SNAPSHOT_MAGIC.length;
  while (offset < buffer.length) {
    if (offset + 8 > buffer.length) throw new Error(`metastate: snapshot record header truncated at byte ${offset}`);
    const keyLength = buffer.readUInt32BE(offset);
    const valueLength = buffer.readUInt32BE(offset + 4);
    offset += 8;
    if (keyLength === 0 || offset + keyLength + valueLength > buffer.length) throw new Error(`metastate: snapshot record truncated or empty at byte ${offset}`);
    const key = buffer.subarray(offset, offset + keyLength);
    if (!KNOWN_PREFIXES.has(key[0]) || key.equals(APPLIED_KEY)) throw new Error(`metastate: snapshot holds an unexpected key ${key.subarray(0, 16).toString('hex')} at byte ${offset}`);
    records.push({ key, value: buffer.subarray(offset + keyLength, offset + keyLength + valueLength) });
    offset += keyLength + valueLength;
  }
  return records;
}
