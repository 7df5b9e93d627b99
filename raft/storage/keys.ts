/**
 * The key layout of the LevelDB raft storage: one prefix byte per kind of
 * record, then a fixed-width big-endian number so LevelDB's byte order is
 * numeric order (log entries sort by index, snapshot chunks by number).
 * Owns: building and parsing keys. Never: values, I/O.
 *
 *   00 01            format version
 *   00 02            hard state (term, vote, commit)
 *   00 03            membership
 *   00 04            log bounds (first and last index)
 *   00 05            snapshot metadata
 *   01 <u64 index>   log entry
 *   02 <u32 number>  snapshot data chunk
 */

export const PREFIX_META = 0x00;
export const PREFIX_ENTRY = 0x01;
export const PREFIX_SNAPSHOT_CHUNK = 0x02;
/** The first prefix byte this format does not use: any key at or above it is foreign. */
export const PREFIX_UNUSED_FIRST = 0x03;

export const KEY_FORMAT_VERSION = Buffer.from([PREFIX_META, 0x01]);
export const KEY_HARD_STATE = Buffer.from([PREFIX_META, 0x02]);
export const KEY_MEMBERSHIP = Buffer.from([PREFIX_META, 0x03]);
export const KEY_LOG_BOUNDS = Buffer.from([PREFIX_META, 0x04]);
export const KEY_SNAPSHOT_META = Buffer.from([PREFIX_META, 0x05]);
export const META_KEYS: readonly Buffer[] = [KEY_FORMAT_VERSION, KEY_HARD_STATE, KEY_MEMBERSHIP, KEY_LOG_BOUNDS, KEY_SNAPSHOT_META];

const ENTRY_KEY_BYTES = 9;
const CHUNK_KEY_BYTES = 5;
const TWO_POW_32 = 0x1_0000_0000;

/** [gte, lt) bounds covering every key of one prefix. */
export function prefixRange(prefix: number): { gte: Buffer; lt: Buffer } {
  return { gte: Buffer.from([prefix]), lt: Buffer.from([prefix + 1]) };
}

export function entryKey(index: number): Buffer {
  if (!Number.isSafeInteger(index) || index < 1) throw new Error(`log index must be a positive safe integer, got ${index}`);
  const key = Buffer.allocUnsafe(ENTRY_KEY_BYTES);
  key[0] = PREFIX_ENTRY;
  key.writeUInt32BE(Math.floor(index / TWO_POW_32), 1);
  key.writeUInt32BE(index >>> 0, 5);
  return key;
}

/** The index a log key names, or undefined when the key is not a well-formed log key. */
export function parseEntryKey(key: Uint8Array): number | undefined {
  if (key.byteLength !== ENTRY_KEY_BYTES || key[0] !== PREFIX_ENTRY) return undefined;
  const view = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const index = view.readUInt32BE(1) * TWO_POW_32 + view.readUInt32BE(5);
  return Number.isSafeInteger(index) && index >= 1 ? index : undefined;
}

export function chunkKey(chunkNumber: number): Buffer {
  if (!Number.isInteger(chunkNumber) || chunkNumber < 0 || chunkNumber >= TWO_POW_32) throw new Error(`snapshot chunk number out of range: ${chunkNumber}`);
  const key = Buffer.allocUnsafe(CHUNK_KEY_BYTES);
  key[0] = PREFIX_SNAPSHOT_CHUNK;
  key.writeUInt32BE(chunkNumber, 1);
  return key;
}

/** The chunk number a chunk key names, or undefined when the key is not a well-formed chunk key. */
export function parseChunkKey(key: Uint8Array): number | undefined {
  if (key.byteLength !== CHUNK_KEY_BYTES || key[0] !== PREFIX_SNAPSHOT_CHUNK) return undefined;
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).readUInt32BE(1);
}

export function describeKey(key: Uint8Array): string {
  return `0x${Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')}`;
}
