/**
 * LevelRaftStorage: one member's durable Raft state in its own LevelDB folder.
 * Every write (bootstrap, persist, saveLocalSnapshot) is planned against the
 * first/last index kept in memory and committed as ONE
 * `batch(ops, {sync: true})`, so a crash leaves either all of it or none of it,
 * and the promise resolves only once it is on disk. Operations run one at a
 * time, in call order.
 * Owns: planning writes (overwriting a log suffix, dropping entries covered by
 * a snapshot, chunking snapshot data) and the invariants they must keep.
 * Never: interprets entry or snapshot data, scans the log on the write path,
 * or touches anything outside its folder. Reading back and verifying the store
 * is recovery.ts; byte layouts are codec.ts and keys.ts.
 */
import { constants as bufferConstants } from 'buffer';
import { InitialState } from '../core/api';
import { Entry, HardState, Membership, Snapshot } from '../core/types';
import { PersistBatch, RaftStorage, StorageCorruptError } from '../node/interfaces';
import {
  FORMAT_VERSION,
  StoredSnapshotMeta,
  dataCrc32,
  encodeChunk,
  encodeEntry,
  encodeFormatVersion,
  encodeHardState,
  encodeLogBounds,
  encodeMembership,
  encodeSnapshotMeta,
} from './codec';
import { KEY_FORMAT_VERSION, KEY_HARD_STATE, KEY_LOG_BOUNDS, KEY_MEMBERSHIP, KEY_SNAPSHOT_META, chunkKey, entryKey } from './keys';
import { LevelDb, openLevel } from './open-level';
import { StoredState, checkStoredState, emptyStoredState, readEntry, readSnapshotData, readStoredState, recover } from './recovery';

export interface LevelRaftStorageOptions {
  /** Snapshot data is stored split into values of at most this size. Default 1 MiB. */
  snapshotChunkSizeBytes?: number;
  /** Calls waiting behind the one in progress; beyond this, calls are refused. Default 1024. */
  pendingOperationsMax?: number;
  /** Entries one persist() may carry. Default 100,000. */
  entriesPerPersistMax?: number;
  /**
   * debug-unsafe (the chaos slow-disk nemesis, --debug-fsync-delay-ms): asked before every synced
   * write, which then waits this many ms first, as a slow fsync would. Default: none.
   */
  debugWriteDelayMs?: () => number;
}

const DEFAULT_OPTIONS: Required<LevelRaftStorageOptions> = {
  snapshotChunkSizeBytes: 1024 * 1024,
  pendingOperationsMax: 1024,
  entriesPerPersistMax: 100_000,
  debugWriteDelayMs: () => 0,
};
const SNAPSHOT_CHUNK_SIZE_BYTES_MAX = 64 * 1024 * 1024;
const SNAPSHOT_CHUNK_COUNT_MAX = 0xffff_ffff;

type WriteOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** Which records a write replaces besides those it can tell by comparing numbers. */
interface Touched {
  membership: boolean;
  snapshot: boolean;
}

function requireSafeInteger(value: unknown, what: string, minimum: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < minimum) {
    throw new Error(`${what} must be a safe integer ≥ ${minimum}, got ${String(value)}`);
  }
}

function cloneState(state: StoredState): StoredState {
  return { ...state, hardState: { ...state.hardState } };
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export class LevelRaftStorage implements RaftStorage {
  /** What is on disk, as far as writes need to know; undefined until first read. */
  private state: StoredState | undefined;
  private closed = false;
  /** Set when a batch failed: the disk may no longer match `state`, so nothing more runs until reopened. */
  private writeFailure: Error | undefined;
  private queueTail: Promise<unknown> = Promise.resolve();
  private pendingOperations = 0;

  private constructor(
    readonly dataDir: string,
    private readonly db: LevelDb,
    private readonly options: Required<LevelRaftStorageOptions>,
  ) {}

  /** Opens (creating if needed) the member's folder. Corruption is reported by load(), not here. */
  static async open(dataDir: string, options: LevelRaftStorageOptions = {}): Promise<LevelRaftStorage> {
    const resolved = { ...DEFAULT_OPTIONS, ...options };
    requireSafeInteger(resolved.snapshotChunkSizeBytes, 'snapshotChunkSizeBytes', 1);
    if (resolved.snapshotChunkSizeBytes > SNAPSHOT_CHUNK_SIZE_BYTES_MAX) {
      throw new Error(`snapshotChunkSizeBytes must be at most ${SNAPSHOT_CHUNK_SIZE_BYTES_MAX}, got ${resolved.snapshotChunkSizeBytes}`);
    }
    requireSafeInteger(resolved.pendingOperationsMax, 'pendingOperationsMax', 1);
    requireSafeInteger(resolved.entriesPerPersistMax, 'entriesPerPersistMax', 1);
    const db = await openLevel(dataDir);
    return new LevelRaftStorage(dataDir, db, resolved);
  }

  load(): Promise<InitialState> {
    return this.exclusive('load', async () => {
      const { state, initial } = await recover(this.db, this.dataDir);
      this.state = state;
      return initial;
    });
  }

  isEmpty(): Promise<boolean> {
    return this.exclusive('check whether it is empty', async () => !(await this.current()).initialized);
  }

  bootstrap(membership: Membership): Promise<void> {
    return this.exclusive('bootstrap', async () => {
      const prev = await this.current();
      if (prev.initialized) {
        throw new Error(
          `refusing to bootstrap raft storage at ${this.dataDir}: it is not empty (term ${prev.hardState.term}, last index ${prev.lastIndex}); bootstrap is only for a brand-new member`,
        );
      }
      const next = emptyStoredState(membership);
      const ops: WriteOp[] = [];
      this.planMetadata(prev, next, ops, { membership: true, snapshot: true });
      await this.commit(ops, next);
    });
  }

  persist(batch: PersistBatch): Promise<void> {
    return this.exclusive('persist', async () => {
      if (!Array.isArray(batch.entries)) throw new Error('persist: batch.entries must be an array');
      if (batch.entries.length > this.options.entriesPerPersistMax) {
        throw new Error(`persist: ${batch.entries.length} entries exceeds entriesPerPersistMax ${this.options.entriesPerPersistMax}`);
      }
      if (batch.entries.length === 0 && !batch.hardState && !batch.snapshot && !batch.membership) return;
      const prev = await this.current();
      const next = cloneState(prev);
      const ops: WriteOp[] = [];
      const touched: Touched = { membership: false, snapshot: false };
      if (batch.snapshot) {
        await this.planReceivedSnapshot(batch.snapshot, next, ops);
        touched.snapshot = true;
        // A received snapshot carries the newest committed membership unless the batch names one.
        next.membership = batch.snapshot.metadata.membership;
        touched.membership = true;
      }
      if (batch.entries.length > 0) await this.planAppend(batch.entries, next, ops);
      if (batch.hardState) this.planHardState(batch.hardState, next);
      if (batch.membership) {
        next.membership = batch.membership;
        touched.membership = true;
      }
      this.planMetadata(prev, next, ops, touched);
      await this.commit(ops, next);
    });
  }

  saveLocalSnapshot(snapshot: Snapshot, compactIndex: number): Promise<void> {
    return this.exclusive('save a local snapshot', async () => {
      const prev = await this.current();
      if (!prev.initialized) throw new Error(`cannot save a snapshot into raft storage at ${this.dataDir}: it was never bootstrapped`);
      const { index, term } = snapshot.metadata;
      requireSafeInteger(index, 'local snapshot index', 1);
      requireSafeInteger(term, 'local snapshot term', 1);
      requireSafeInteger(compactIndex, 'compactIndex', 0);
      if (compactIndex > index) throw new Error(`compactIndex ${compactIndex} is beyond the snapshot index ${index}`);
      if (index < prev.snapshot.index) throw new Error(`refusing a local snapshot at index ${index}: older than the stored snapshot at index ${prev.snapshot.index}`);
      if (index > prev.hardState.commit) throw new Error(`refusing a local snapshot at index ${index}: beyond the commit index ${prev.hardState.commit}`);
      const termAtIndex = await this.termAt(index, prev);
      if (termAtIndex !== term) throw new Error(`refusing a local snapshot at index ${index} with term ${term}: the log holds term ${String(termAtIndex)} there`);
      const next = cloneState(prev);
      const ops: WriteOp[] = [];
      next.snapshot = this.planSnapshotData(snapshot, prev.snapshot.chunkCount, ops);
      if (compactIndex >= next.firstIndex) {
        this.deleteEntries(next.firstIndex, Math.min(compactIndex, next.lastIndex), ops);
        next.firstIndex = compactIndex + 1;
      }
      this.planMetadata(prev, next, ops, { membership: false, snapshot: true });
      await this.commit(ops, next);
    });
  }

  loadSnapshot(): Promise<Snapshot | undefined> {
    return this.exclusive('load the snapshot', async () => {
      const state = await this.current();
      if (state.snapshot.index === 0) return undefined;
      const data = await readSnapshotData(this.db, this.dataDir, state.snapshot);
      const { index, term, membership } = state.snapshot;
      return { metadata: { index, term, membership }, data };
    });
  }

  /** Waits for the calls already accepted, then closes the database. Calling it again is a no-op. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queueTail;
    await this.db.close();
  }

  // --- planning ---

  /** The term at `index` if the state knows it: the snapshot's, the cached last term, or one read of the stored entry. */
  private async termAt(index: number, state: StoredState): Promise<number | undefined> {
    if (index === state.snapshot.index) return state.snapshot.term;
    if (index === state.lastIndex) return state.lastTerm;
    if (index < state.firstIndex || index > state.lastIndex) return undefined;
    const entry = await readEntry(this.db, this.dataDir, index);
    if (entry === undefined) throw new StorageCorruptError(this.dataDir, `log entry ${index} is missing inside the log bounds ${state.firstIndex}..${state.lastIndex}`);
    return entry.term;
  }

  private deleteEntries(fromIndex: number, toIndex: number, ops: WriteOp[]): void {
    for (let index = fromIndex; index <= toIndex; index++) ops.push({ type: 'del', key: entryKey(index) });
  }

  /** A snapshot from the leader: keep the log after it if the log holds its last entry, else drop the whole log. */
  private async planReceivedSnapshot(snapshot: Snapshot, next: StoredState, ops: WriteOp[]): Promise<void> {
    const { index, term } = snapshot.metadata;
    requireSafeInteger(index, 'received snapshot index', 1);
    requireSafeInteger(term, 'received snapshot term', 1);
    if (index < next.snapshot.index) throw new Error(`refusing a received snapshot at index ${index}: older than the stored snapshot at index ${next.snapshot.index}`);
    const termAtIndex = await this.termAt(index, next);
    if (termAtIndex === term) {
      this.deleteEntries(next.firstIndex, index, ops);
      next.firstIndex = Math.max(next.firstIndex, index + 1);
    } else {
      this.deleteEntries(next.firstIndex, next.lastIndex, ops);
      next.firstIndex = index + 1;
      next.lastIndex = index;
      next.lastTerm = term;
    }
    next.snapshot = this.planSnapshotData(snapshot, next.snapshot.chunkCount, ops);
  }

  private planSnapshotData(snapshot: Snapshot, previousChunkCount: number, ops: WriteOp[]): StoredSnapshotMeta {
    const data = snapshot.data;
    if (!(data instanceof Uint8Array)) throw new Error('snapshot data must be a Uint8Array');
    if (data.byteLength > bufferConstants.MAX_LENGTH) throw new Error(`snapshot data of ${data.byteLength} bytes exceeds the largest buffer`);
    const chunkSizeBytes = this.options.snapshotChunkSizeBytes;
    const chunkCount = Math.ceil(data.byteLength / chunkSizeBytes);
    if (chunkCount > SNAPSHOT_CHUNK_COUNT_MAX) throw new Error(`snapshot data needs ${chunkCount} chunks, more than ${SNAPSHOT_CHUNK_COUNT_MAX}`);
    for (let chunkNumber = chunkCount; chunkNumber < previousChunkCount; chunkNumber++) ops.push({ type: 'del', key: chunkKey(chunkNumber) });
    for (let chunkNumber = 0; chunkNumber < chunkCount; chunkNumber++) {
      const start = chunkNumber * chunkSizeBytes;
      ops.push({ type: 'put', key: chunkKey(chunkNumber), value: encodeChunk(data.subarray(start, Math.min(start + chunkSizeBytes, data.byteLength))) });
    }
    const { index, term, membership } = snapshot.metadata;
    return { index, term, membership, dataSizeBytes: data.byteLength, chunkCount, dataCrc32: dataCrc32(data) };
  }

  /** Appends entries; an entry at or below the last index replaces it and the rest of the suffix is deleted. */
  private async planAppend(entries: Entry[], next: StoredState, ops: WriteOp[]): Promise<void> {
    const firstNewIndex = entries[0].index;
    requireSafeInteger(firstNewIndex, 'first entry index', 1);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (entry.index !== firstNewIndex + i) {
        throw new Error(`a persist batch's entries must be consecutive: entry ${i} has index ${entry.index}, expected ${firstNewIndex + i}`);
      }
      requireSafeInteger(entry.term, `term of entry ${entry.index}`, 1);
      if (i > 0 && entry.term < entries[i - 1].term) throw new Error(`entry ${entry.index} has term ${entry.term}, below its predecessor's term ${entries[i - 1].term}`);
    }
    if (firstNewIndex <= next.snapshot.index) {
      throw new Error(`refusing to write log entry ${firstNewIndex}: the snapshot at index ${next.snapshot.index} already covers it`);
    }
    if (firstNewIndex > next.lastIndex + 1) {
      throw new Error(`refusing to append entries from index ${firstNewIndex}: the log ends at ${next.lastIndex}, which would leave a gap`);
    }
    const previousTerm = await this.termAt(firstNewIndex - 1, next);
    if (previousTerm === undefined) throw new Error(`storage bug: no term known at index ${firstNewIndex - 1} inside ${next.snapshot.index}..${next.lastIndex}`);
    if (entries[0].term < previousTerm) {
      throw new Error(`refusing to append entry ${firstNewIndex} with term ${entries[0].term} after an entry of term ${previousTerm}`);
    }
    const newLastIndex = entries[entries.length - 1].index;
    this.deleteEntries(newLastIndex + 1, next.lastIndex, ops);
    for (const entry of entries) ops.push({ type: 'put', key: entryKey(entry.index), value: encodeEntry(entry) });
    next.lastIndex = newLastIndex;
    next.lastTerm = entries[entries.length - 1].term;
  }

  private planHardState(hardState: HardState, next: StoredState): void {
    requireSafeInteger(hardState.term, 'hard state term', 0);
    requireSafeInteger(hardState.commit, 'hard state commit', 0);
    if (typeof hardState.vote !== 'string') throw new Error('hard state vote must be a string');
    const prev = next.hardState;
    if (hardState.term < prev.term) throw new Error(`refusing to persist hard state: the term would go back from ${prev.term} to ${hardState.term}`);
    if (hardState.term === prev.term && prev.vote !== '' && hardState.vote !== prev.vote) {
      throw new Error(`refusing to persist hard state: the vote in term ${prev.term} would change from ${prev.vote} to ${hardState.vote || '(none)'}`);
    }
    if (hardState.commit < prev.commit) throw new Error(`refusing to persist hard state: commit would go back from ${prev.commit} to ${hardState.commit}`);
    next.hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
  }

  /** Checks the planned state, then adds puts for every small record it changes (all of them for a first write). */
  private planMetadata(prev: StoredState, next: StoredState, ops: WriteOp[], touched: Touched): void {
    const problem = checkStoredState(next);
    if (problem !== undefined) throw new Error(`refusing to write raft storage at ${this.dataDir}: afterwards ${problem}`);
    const everything = !prev.initialized;
    if (everything) ops.push({ type: 'put', key: KEY_FORMAT_VERSION, value: encodeFormatVersion(FORMAT_VERSION) });
    if (everything || !sameHardState(prev.hardState, next.hardState)) ops.push({ type: 'put', key: KEY_HARD_STATE, value: encodeHardState(next.hardState) });
    if (everything || touched.membership) ops.push({ type: 'put', key: KEY_MEMBERSHIP, value: encodeMembership(next.membership) });
    if (everything || prev.firstIndex !== next.firstIndex || prev.lastIndex !== next.lastIndex) {
      ops.push({ type: 'put', key: KEY_LOG_BOUNDS, value: encodeLogBounds({ firstIndex: next.firstIndex, lastIndex: next.lastIndex }) });
    }
    if (everything || touched.snapshot) ops.push({ type: 'put', key: KEY_SNAPSHOT_META, value: encodeSnapshotMeta(next.snapshot) });
    next.initialized = true;
  }

  // --- committing and sequencing ---

  private async commit(ops: WriteOp[], next: StoredState): Promise<void> {
    if (ops.length > 0) {
      // debug-unsafe: a slow disk on purpose (bounded by the flag's own limit); 0 unless --debug-fsync-delay-ms is given.
      const delayMs = this.options.debugWriteDelayMs();
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      try {
        // The chained form is one WriteBatch like the array form but costs ~0.8 µs per op instead of ~5 µs
        // (the array form clones and validates every op): it matters on the leader's hot path.
        const batch = this.db.batch();
        for (const op of ops) {
          if (op.type === 'put') batch.put(op.key, op.value);
          else batch.del(op.key);
        }
        await batch.write({ sync: true });
      } catch (error) {
        const message = (error as { message?: unknown } | undefined)?.message;
        this.writeFailure = new Error(typeof message === 'string' ? message : String(error));
        throw new Error(`raft storage at ${this.dataDir}: a synchronous write failed (${this.writeFailure.message}); it refuses every call until reopened`);
      }
    }
    this.state = next;
  }

  private async current(): Promise<StoredState> {
    if (this.state === undefined) this.state = await readStoredState(this.db, this.dataDir);
    return this.state;
  }

  /** Runs `operation` after every call accepted before it, so writes are planned against the state the previous write left. */
  private exclusive<T>(what: string, operation: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`raft storage at ${this.dataDir} is closed; cannot ${what}`));
    if (this.pendingOperations >= this.options.pendingOperationsMax) {
      return Promise.reject(new Error(`raft storage at ${this.dataDir} has ${this.pendingOperations} calls queued (the limit); cannot ${what}`));
    }
    this.pendingOperations++;
    const run = this.queueTail.then(async () => {
      try {
        if (this.writeFailure) throw new Error(`raft storage at ${this.dataDir} had a failed write (${this.writeFailure.message}); reopen it before trying to ${what}`);
        return await operation();
      } finally {
        this.pendingOperations--;
      }
    });
    this.queueTail = run.catch(() => undefined);
    return run;
  }
}
