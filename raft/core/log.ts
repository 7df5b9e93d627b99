/**
 * The in-memory Raft log since the last compaction: which entries exist,
 * which are durable, committed and handed out for applying. The storage
 * holds the durable copy; this class only tracks what the core knows.
 *
 * Indexes: `offsetIndex`/`offsetTerm` describe the entry just before the
 * first one kept in memory (the compaction point or the snapshot).
 *   offsetIndex < firstIndex() ≤ persistedIndex+1 ≤ lastIndex()+1
 *   applied ≤ committed ≤ lastIndex()
 */
import { Entry, Snapshot, SnapshotMetadata } from './types';

export class RaftLog {
  private entries: Entry[] = [];
  private offsetIndex: number;
  private offsetTerm: number;
  /** The most recent snapshot (local or received) that followers can be sent. */
  latestSnapshot: SnapshotMetadata;
  /** A snapshot received from the leader and not yet persisted. */
  pendingSnapshot: Snapshot | undefined;
  committed: number;
  /** The last index handed out to be applied (in a Ready). */
  applied: number;
  /** The last index known durable in local storage. */
  persistedIndex: number;
  /** Entries after this index have not yet been handed to storage in a Ready. */
  private handedToStorageIndex: number;

  constructor(snapshot: SnapshotMetadata, entries: Entry[], committed: number, applied: number) {
    this.latestSnapshot = snapshot;
    this.offsetIndex = snapshot.index;
    this.offsetTerm = snapshot.term;
    // Entries kept behind the snapshot (trailing entries) are committed and covered by it; drop them.
    const kept = entries.filter((e) => e.index > snapshot.index);
    for (let i = 0; i < kept.length; i++) {
      const expected = snapshot.index + 1 + i;
      if (kept[i].index !== expected) throw new Error(`invariant: log entries not contiguous: expected index ${expected}, got ${kept[i].index}`);
    }
    this.entries = kept;
    // Whatever the state machine applied was committed, even if the commit index on disk lags behind it.
    this.committed = Math.max(committed, snapshot.index, applied);
    if (this.committed > this.lastIndex()) throw new Error(`invariant: commit index ${this.committed} beyond last log index ${this.lastIndex()}`);
    // The driver restores the state machine from the snapshot first, so it is never behind it.
    if (applied < snapshot.index) throw new Error(`invariant: state machine applied index ${applied} is behind the snapshot at ${snapshot.index}; restore it from the snapshot first`);
    this.applied = applied;
    if (this.applied > this.committed) throw new Error(`invariant: applied index ${applied} beyond commit index ${this.committed}`);
    this.persistedIndex = this.lastIndex();
    this.handedToStorageIndex = this.lastIndex();
  }

  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.offsetIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1].term : this.offsetTerm;
  }

  /** The term of the entry at index, or undefined if it is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1].term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  entryAt(index: number): Entry {
    const entry = this.entries[index - this.offsetIndex - 1];
    if (entry === undefined || entry.index !== index) throw new Error(`invariant: no entry at index ${index} (log holds ${this.firstIndex()}..${this.lastIndex()})`);
    return entry;
  }

  /** Raft §5.4.1: is a log ending at (lastTerm, lastIndex) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm() || (lastTerm === this.lastTerm() && lastIndex >= this.lastIndex());
  }

  /**
   * Entries in [lo, hi] limited to maxCount entries and maxBytes of payload
   * (at least one entry when the range is not empty). lo must not be compacted.
   */
  slice(lo: number, hi: number, maxCount: number, maxBytes: number): Entry[] {
    if (lo <= this.offsetIndex) throw new Error(`invariant: slice from ${lo} reaches compacted entries (first is ${this.firstIndex()})`);
    const end = Math.min(hi, this.lastIndex(), lo + maxCount - 1);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= end; i++) {
      const entry = this.entries[i - this.offsetIndex - 1];
      if (out.length > 0 && bytes + entry.data.byteLength > maxBytes) break;
      out.push(entry);
      bytes += entry.data.byteLength;
    }
    return out;
  }

  /** Appends entries that directly follow the last one (the leader's own proposals). */
  append(entries: Entry[]): void {
    for (const entry of entries) {
      if (entry.index !== this.lastIndex() + 1) throw new Error(`invariant: appending index ${entry.index} after last index ${this.lastIndex()}`);
      if (entry.term < this.lastTerm()) throw new Error(`invariant: appending term ${entry.term} after term ${this.lastTerm()}`);
      this.entries.push(entry);
    }
  }

  /**
   * The follower's side of AppendEntries once (prevIndex, prevTerm) matched:
   * skips entries already present, truncates at the first conflict, appends
   * the rest. Returns the index of the last entry the message covers.
   */
  appendFromLeader(prevIndex: number, entries: Entry[]): number {
    const lastNewIndex = prevIndex + entries.length;
    let conflictAt = -1;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (entry.index <= this.offsetIndex) continue; // covered by our snapshot, committed
      if (!this.matchTerm(entry.index, entry.term)) {
        conflictAt = i;
        break;
      }
    }
    if (conflictAt === -1) return lastNewIndex;
    const firstNew = entries[conflictAt];
    if (firstNew.index <= this.committed) {
      throw new Error(`invariant: leader entry ${firstNew.index}/${firstNew.term} conflicts with committed index ${this.committed}`);
    }
    this.truncateFrom(firstNew.index);
    this.append(entries.slice(conflictAt));
    return lastNewIndex;
  }

  private truncateFrom(index: number): void {
    if (index > this.lastIndex()) return;
    this.entries.length = index - this.offsetIndex - 1;
    this.persistedIndex = Math.min(this.persistedIndex, index - 1);
    this.handedToStorageIndex = Math.min(this.handedToStorageIndex, index - 1);
  }

  /**
   * For a rejection hint: the largest index ≤ index whose term is ≤ term, so
   * the leader can skip a whole term of mismatching entries in one round trip.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    for (; i > this.offsetIndex; i--) {
      const t = this.entries[i - this.offsetIndex - 1].term;
      if (t <= term) return { index: i, term: t };
    }
    return { index: this.offsetIndex, term: this.offsetTerm };
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    if (index > this.lastIndex()) throw new Error(`invariant: commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Entries not yet handed to storage; marks them handed. */
  takeUnpersisted(): Entry[] {
    const from = this.handedToStorageIndex + 1;
    if (from > this.lastIndex()) return [];
    const out = this.entries.slice(from - this.offsetIndex - 1);
    this.handedToStorageIndex = this.lastIndex();
    return out;
  }

  hasUnpersisted(): boolean {
    return this.handedToStorageIndex < this.lastIndex();
  }

  /** Storage finished writing `written`: the prefix of it still in our log is durable. */
  persisted(written: readonly Entry[]): void {
    for (let i = written.length - 1; i >= 0; i--) {
      const entry = written[i];
      if (this.matchTerm(entry.index, entry.term)) {
        this.persistedIndex = Math.max(this.persistedIndex, entry.index);
        return;
      }
    }
  }

  hasCommittedToApply(): boolean {
    return this.committed > this.applied;
  }

  /** Committed entries not yet handed out for applying, at most maxCount; marks them handed out. */
  takeCommittedToApply(maxCount: number): Entry[] {
    if (!this.hasCommittedToApply()) return [];
    const from = this.applied + 1;
    const to = Math.min(this.committed, from + maxCount - 1);
    const out = this.entries.slice(from - this.offsetIndex - 1, to - this.offsetIndex);
    if (out.length !== to - from + 1) throw new Error(`invariant: committed entries ${from}..${to} are not all in memory (log ${this.firstIndex()}..${this.lastIndex()})`);
    this.applied = to;
    return out;
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  restore(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index <= this.committed) throw new Error(`invariant: restoring snapshot ${index} at or below commit ${this.committed}`);
    this.entries = [];
    this.offsetIndex = index;
    this.offsetTerm = term;
    this.latestSnapshot = snapshot.metadata;
    this.pendingSnapshot = snapshot;
    this.committed = index;
    this.applied = index;
    this.persistedIndex = Math.min(this.persistedIndex, index);
    this.handedToStorageIndex = index;
  }

  snapshotPersisted(metadata: SnapshotMetadata): void {
    if (this.pendingSnapshot !== undefined && this.pendingSnapshot.metadata.index === metadata.index) this.pendingSnapshot = undefined;
    this.persistedIndex = Math.max(this.persistedIndex, metadata.index);
  }

  /** A local snapshot at metadata.index is durable; drop in-memory entries up to compactIndex. */
  compact(metadata: SnapshotMetadata, compactIndex: number): void {
    if (metadata.index > this.applied) throw new Error(`invariant: snapshot ${metadata.index} beyond applied ${this.applied}`);
    if (compactIndex > metadata.index) throw new Error(`invariant: compaction ${compactIndex} beyond snapshot ${metadata.index}`);
    if (metadata.index > this.latestSnapshot.index) this.latestSnapshot = metadata;
    if (compactIndex <= this.offsetIndex) return;
    const compactTerm = this.term(compactIndex);
    if (compactTerm === undefined) throw new Error(`invariant: compaction point ${compactIndex} not in log`);
    this.entries = this.entries.slice(compactIndex - this.offsetIndex);
    this.offsetIndex = compactIndex;
    this.offsetTerm = compactTerm;
  }

  /** Uncommitted entries of the given type range, for scanning pending membership changes. */
  entriesAfter(index: number, maxCount: number): Entry[] {
    const from = Math.max(index + 1, this.firstIndex());
    return this.entries.slice(from - this.offsetIndex - 1, from - this.offsetIndex - 1 + maxCount);
  }
}
