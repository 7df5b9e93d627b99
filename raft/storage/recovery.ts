/**
 * Reads the raft storage back from LevelDB and verifies that it is exactly a
 * state this storage could have written: every value passes its CRC and
 * decodes, the log is contiguous from its first to its last index, terms never
 * decrease, the log joins the snapshot, the commit index is covered, and the
 * snapshot's chunks are all there. Anything else is a StorageCorruptError
 * naming the problem, never a silently shorter or empty log.
 * Owns: decoding stored state and every consistency check made at start.
 * Never: writes (level-storage.ts owns every write).
 */
import { Entry, HardState, Membership } from '../core/types';
import { InitialState } from '../core/api';
import { StorageCorruptError } from '../node/interfaces';
import {
  DecodeError,
  FORMAT_VERSION,
  LogBounds,
  StoredSnapshotMeta,
  dataCrc32,
  decodeChunk,
  decodeEntry,
  decodeFormatVersion,
  decodeHardState,
  decodeLogBounds,
  decodeMembership,
  decodeSnapshotMeta,
} from './codec';
import {
  KEY_FORMAT_VERSION,
  KEY_HARD_STATE,
  KEY_LOG_BOUNDS,
  KEY_MEMBERSHIP,
  KEY_SNAPSHOT_META,
  META_KEYS,
  PREFIX_ENTRY,
  PREFIX_META,
  PREFIX_SNAPSHOT_CHUNK,
  PREFIX_UNUSED_FIRST,
  describeKey,
  entryKey,
  parseChunkKey,
  parseEntryKey,
  prefixRange,
} from './keys';
import { LevelDb } from './open-level';

/** Entries (or chunks) fetched from LevelDB per iterator step while scanning. */
const SCAN_BATCH_ENTRIES = 512;

/**
 * What the storage keeps in memory so a write never needs a range scan.
 * Invariants (checkStoredState): firstIndex ≥ 1; lastIndex ≥ firstIndex - 1
 * (equal means an empty log); firstIndex - 1 ≤ snapshot.index ≤ lastIndex, so
 * the log always joins the snapshot and lastIndex is the last index overall;
 * commit ≤ lastIndex; snapshot.term ≤ lastTerm ≤ hardState.term.
 */
export interface StoredState {
  /** False for a store that has never been written (a brand-new member). */
  initialized: boolean;
  hardState: HardState;
  membership: Membership;
  /** Index 0 stands for "no snapshot yet"; its membership is the bootstrap membership. */
  snapshot: StoredSnapshotMeta;
  firstIndex: number;
  lastIndex: number;
  /** The term at lastIndex: the last entry's, or the snapshot's when the log is empty. */
  lastTerm: number;
}

export function emptyStoredState(membership: Membership): StoredState {
  return {
    initialized: false,
    hardState: { term: 0, vote: '', commit: 0 },
    membership,
    snapshot: { index: 0, term: 0, membership, dataSizeBytes: 0, chunkCount: 0, dataCrc32: 0 },
    firstIndex: 1,
    lastIndex: 0,
    lastTerm: 0,
  };
}

/** The first broken invariant of a stored state, or undefined when it is consistent. */
export function checkStoredState(s: StoredState): string | undefined {
  const snapshotIndex = s.snapshot.index;
  if (s.firstIndex < 1) return `the log's first index ${s.firstIndex} is below 1`;
  if (s.lastIndex < s.firstIndex - 1) return `the log's last index ${s.lastIndex} is below its first index ${s.firstIndex} minus one`;
  if (s.firstIndex - 1 > snapshotIndex) {
    return `the first log entry ${s.firstIndex} does not follow the snapshot index ${snapshotIndex} (entries ${snapshotIndex + 1}..${s.firstIndex - 1} are missing)`;
  }
  if (snapshotIndex > s.lastIndex) return `the log ends at index ${s.lastIndex}, before the snapshot index ${snapshotIndex}`;
  if (s.hardState.commit > s.lastIndex) {
    return `hard state commit ${s.hardState.commit} is beyond the last log index ${s.lastIndex} (and beyond the snapshot index ${snapshotIndex})`;
  }
  if (s.lastTerm < s.snapshot.term) return `the last log entry's term ${s.lastTerm} is below the snapshot's term ${s.snapshot.term}`;
  if (s.hardState.term < s.lastTerm) return `hard state term ${s.hardState.term} is below the last log entry's term ${s.lastTerm}`;
  return undefined;
}

function decodeOrCorrupt<T>(dataDir: string, what: string, value: Uint8Array, decode: (value: Uint8Array) => T): T {
  try {
    return decode(value);
  } catch (error) {
    if (error instanceof DecodeError) throw new StorageCorruptError(dataDir, `${what}: ${error.message}`);
    throw error;
  }
}

/** Reads and decodes one log entry; undefined when absent. Checks that the entry is the one its key names. */
export async function readEntry(db: LevelDb, dataDir: string, index: number): Promise<Entry | undefined> {
  const value = await db.get(entryKey(index));
  if (value === undefined) return undefined;
  const entry = decodeOrCorrupt(dataDir, `log entry ${index}`, value, decodeEntry);
  if (entry.index !== index) throw new StorageCorruptError(dataDir, `the log entry stored under index ${index} says its index is ${entry.index}`);
  return entry;
}

/**
 * Reads the small records (format version, hard state, membership, log
 * bounds, snapshot metadata) and the last entry's term: what writes need,
 * without scanning the log.
 */
export async function readStoredState(db: LevelDb, dataDir: string): Promise<StoredState> {
  const [versionValue, hardStateValue, membershipValue, boundsValue, snapshotValue] = await db.getMany([
    KEY_FORMAT_VERSION,
    KEY_HARD_STATE,
    KEY_MEMBERSHIP,
    KEY_LOG_BOUNDS,
    KEY_SNAPSHOT_META,
  ]);
  if (versionValue === undefined) {
    const anyKeys = await db.keys({ limit: 1 }).all();
    if (anyKeys.length > 0) throw new StorageCorruptError(dataDir, `the store holds data (key ${describeKey(anyKeys[0])}) but no format-version record`);
    return emptyStoredState({ members: [] });
  }
  const version = decodeOrCorrupt(dataDir, 'the format-version record', versionValue, decodeFormatVersion);
  if (version !== FORMAT_VERSION) throw new StorageCorruptError(dataDir, `unknown format version ${version} (this build reads version ${FORMAT_VERSION})`);
  const required = <T>(value: Buffer | undefined, what: string, decode: (value: Uint8Array) => T): T => {
    if (value === undefined) throw new StorageCorruptError(dataDir, `the ${what} record is missing although the store is initialized`);
    return decodeOrCorrupt(dataDir, `the ${what} record`, value, decode);
  };
  const hardState = required(hardStateValue, 'hard-state', decodeHardState);
  const membership = required(membershipValue, 'membership', decodeMembership);
  const bounds: LogBounds = required(boundsValue, 'log-bounds', decodeLogBounds);
  const snapshot = required(snapshotValue, 'snapshot-metadata', decodeSnapshotMeta);
  let lastTerm = snapshot.term;
  if (bounds.lastIndex >= bounds.firstIndex && bounds.firstIndex >= 1) {
    const last = await readEntry(db, dataDir, bounds.lastIndex);
    if (last === undefined) {
      throw new StorageCorruptError(dataDir, `log entry ${bounds.lastIndex} is missing although the log bounds say the log runs from ${bounds.firstIndex} to ${bounds.lastIndex}`);
    }
    lastTerm = last.term;
  }
  const state: StoredState = { initialized: true, hardState, membership, snapshot, firstIndex: bounds.firstIndex, lastIndex: bounds.lastIndex, lastTerm };
  const problem = checkStoredState(state);
  if (problem !== undefined) throw new StorageCorruptError(dataDir, problem);
  return state;
}

async function checkNoForeignKeys(db: LevelDb, dataDir: string): Promise<void> {
  const metaKeys = await db.keys({ ...prefixRange(PREFIX_META), limit: META_KEYS.length + 1 }).all();
  for (const key of metaKeys) {
    if (!META_KEYS.some((known) => known.equals(key))) throw new StorageCorruptError(dataDir, `unknown key ${describeKey(key)} among the metadata records`);
  }
  const foreign = await db.keys({ gte: Buffer.from([PREFIX_UNUSED_FIRST]), limit: 1 }).all();
  if (foreign.length > 0) throw new StorageCorruptError(dataDir, `unknown key ${describeKey(foreign[0])} outside this format's key space`);
}

/**
 * Scans every stored log entry, checking each against the bounds and its
 * predecessor. Returns the entries after the snapshot. Stops at the first
 * unexpected key, so it reads at most (lastIndex - firstIndex + 2) entries.
 */
async function scanLog(db: LevelDb, dataDir: string, state: StoredState): Promise<Entry[]> {
  const { firstIndex, lastIndex, snapshot } = state;
  const afterSnapshot: Entry[] = [];
  let expectedIndex = firstIndex;
  let previousTerm = 0;
  const iterator = db.iterator(prefixRange(PREFIX_ENTRY));
  try {
    for (;;) {
      const batch = await iterator.nextv(SCAN_BATCH_ENTRIES);
      if (batch.length === 0) break;
      for (const [key, value] of batch) {
        const index = parseEntryKey(key);
        if (index === undefined) throw new StorageCorruptError(dataDir, `malformed log key ${describeKey(key)}`);
        if (index < firstIndex) throw new StorageCorruptError(dataDir, `stray log entry ${index} before the log's first index ${firstIndex}`);
        if (index > lastIndex) throw new StorageCorruptError(dataDir, `stray log entry ${index} beyond the log's last index ${lastIndex}`);
        if (index !== expectedIndex) throw new StorageCorruptError(dataDir, `the log has a gap: entries ${expectedIndex}..${index - 1} are missing`);
        const entry = decodeOrCorrupt(dataDir, `log entry ${index}`, value, decodeEntry);
        if (entry.index !== index) throw new StorageCorruptError(dataDir, `the log entry stored under index ${index} says its index is ${entry.index}`);
        if (entry.term < previousTerm) {
          throw new StorageCorruptError(dataDir, `log entry ${index} has term ${entry.term}, below its predecessor's term ${previousTerm}`);
        }
        if (index === snapshot.index && entry.term !== snapshot.term) {
          throw new StorageCorruptError(dataDir, `log entry ${index} has term ${entry.term} but the snapshot at that index has term ${snapshot.term}`);
        }
        if (index === snapshot.index + 1 && entry.term < snapshot.term) {
          throw new StorageCorruptError(dataDir, `log entry ${index} has term ${entry.term}, below the term ${snapshot.term} of the snapshot it follows`);
        }
        if (index > snapshot.index) afterSnapshot.push(entry);
        previousTerm = entry.term;
        expectedIndex = index + 1;
      }
    }
  } finally {
    await iterator.close();
  }
  if (expectedIndex !== lastIndex + 1) {
    throw new StorageCorruptError(dataDir, `log entries ${expectedIndex}..${lastIndex} are missing (the log bounds say the log runs from ${firstIndex} to ${lastIndex})`);
  }
  return afterSnapshot;
}

/** Reassembles the snapshot's data from its chunks, verifying each chunk, the count, the size and the whole-data CRC. */
export async function readSnapshotData(db: LevelDb, dataDir: string, meta: StoredSnapshotMeta): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let totalBytes = 0;
  const iterator = db.iterator(prefixRange(PREFIX_SNAPSHOT_CHUNK));
  try {
    for (;;) {
      const batch = await iterator.nextv(SCAN_BATCH_ENTRIES);
      if (batch.length === 0) break;
      for (const [key, value] of batch) {
        const chunkNumber = parseChunkKey(key);
        if (chunkNumber === undefined) throw new StorageCorruptError(dataDir, `malformed snapshot chunk key ${describeKey(key)}`);
        if (chunkNumber >= meta.chunkCount) {
          throw new StorageCorruptError(dataDir, `stray snapshot chunk ${chunkNumber} (the snapshot at index ${meta.index} has ${meta.chunkCount} chunks)`);
        }
        if (chunkNumber !== chunks.length) {
          throw new StorageCorruptError(dataDir, `snapshot chunks ${chunks.length}..${chunkNumber - 1} of the snapshot at index ${meta.index} are missing`);
        }
        const chunk = decodeOrCorrupt(dataDir, `snapshot chunk ${chunkNumber}`, value, decodeChunk);
        totalBytes += chunk.byteLength;
        if (totalBytes > meta.dataSizeBytes) {
          throw new StorageCorruptError(dataDir, `snapshot chunks hold more than the ${meta.dataSizeBytes} bytes its metadata records`);
        }
        chunks.push(chunk);
      }
    }
  } finally {
    await iterator.close();
  }
  if (chunks.length !== meta.chunkCount) {
    throw new StorageCorruptError(dataDir, `snapshot chunks ${chunks.length}..${meta.chunkCount - 1} of the snapshot at index ${meta.index} are missing`);
  }
  if (totalBytes !== meta.dataSizeBytes) {
    throw new StorageCorruptError(dataDir, `snapshot data is ${totalBytes} bytes but its metadata records ${meta.dataSizeBytes}`);
  }
  const joined = Buffer.concat(chunks, totalBytes);
  const data = new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength);
  if (dataCrc32(data) !== meta.dataCrc32) throw new StorageCorruptError(dataDir, `snapshot data at index ${meta.index} fails its whole-data CRC`);
  return data;
}

/** Reads and verifies everything: what load() returns, plus the state writes continue from. */
export async function recover(db: LevelDb, dataDir: string): Promise<{ state: StoredState; initial: InitialState }> {
  const state = await readStoredState(db, dataDir);
  if (state.initialized) {
    await checkNoForeignKeys(db, dataDir);
    await readSnapshotData(db, dataDir, state.snapshot);
  }
  const entries = state.initialized ? await scanLog(db, dataDir, state) : [];
  const initial: InitialState = {
    hardState: { ...state.hardState },
    membership: state.membership,
    snapshot: { index: state.snapshot.index, term: state.snapshot.term, membership: state.snapshot.membership },
    entries,
    applied: 0,
  };
  return { state, initial };
}
