/**
 * A node's fake durable Raft storage: hard state, membership, the latest
 * snapshot (with its data) and the log, as a completed `persist` leaves them.
 * It holds only completed writes: a crash simply never calls persist for the
 * Ready in flight. It enforces the storage contract the core relies on and
 * throws SafetyViolation('storage-contract') when a Ready breaks it; it must
 * never repair a bad write.
 */
import { InitialState } from '../core/api';
import { Entry, HardState, Membership, Snapshot } from '../core/types';
import { PersistBatch } from '../node/interfaces';
import { LogView, SafetyViolation } from './checker';

export function cloneMembership(membership: Membership): Membership {
  return { members: membership.members.map((m) => ({ id: m.id, address: m.address, role: m.role })) };
}

export function cloneEntry(entry: Entry): Entry {
  return { term: entry.term, index: entry.index, type: entry.type, data: entry.data.slice() };
}

export function cloneSnapshot(snapshot: Snapshot): Snapshot {
  return {
    metadata: { index: snapshot.metadata.index, term: snapshot.metadata.term, membership: cloneMembership(snapshot.metadata.membership) },
    data: snapshot.data.slice(),
  };
}

export interface PersistOutcome {
  /** The lowest index whose stored entry was replaced or deleted, if any. */
  overwrittenFrom: number | undefined;
}

export class SimDurableStore implements LogView {
  hardState: HardState = { term: 0, vote: '', commit: 0 };
  membership: Membership;
  /** Index 0 means no snapshot; its membership is the bootstrap one then. */
  snapshot: Snapshot;
  /** Contiguous. May start at or below snapshot.metadata.index (trailing entries kept by local compaction). */
  private entries: Entry[] = [];

  constructor(readonly nodeId: string, initialMembership: Membership) {
    this.membership = cloneMembership(initialMembership);
    this.snapshot = { metadata: { index: 0, term: 0, membership: cloneMembership(initialMembership) }, data: new Uint8Array(0) };
  }

  firstKnownIndex(): number {
    const snapshotIndex = this.snapshot.metadata.index;
    return this.entries.length > 0 ? Math.min(this.entries[0].index, snapshotIndex) : snapshotIndex;
  }

  lastIndex(): number {
    const lastEntry = this.entries.length > 0 ? this.entries[this.entries.length - 1].index : 0;
    return Math.max(lastEntry, this.snapshot.metadata.index);
  }

  termAt(index: number): number | undefined {
    if (index === 0) return 0;
    if (this.entries.length > 0) {
      const offset = index - this.entries[0].index;
      if (offset >= 0 && offset < this.entries.length) return this.entries[offset].term;
    }
    if (index === this.snapshot.metadata.index) return this.snapshot.metadata.term;
    return undefined;
  }

  entryCount(): number {
    return this.entries.length;
  }

  private violation(problem: string): SafetyViolation {
    return new SafetyViolation('storage-contract', `${this.nodeId}: ${problem}`);
  }

  /** One atomic synchronous write of a Ready's durable parts. */
  persist(batch: PersistBatch): PersistOutcome {
    let overwrittenFrom: number | undefined;
    if (batch.snapshot !== undefined) {
      const meta = batch.snapshot.metadata;
      if (meta.index <= this.snapshot.metadata.index) {
        throw this.violation(`asked to persist snapshot ${meta.index}@${meta.term}, not newer than the stored ${this.snapshot.metadata.index}@${this.snapshot.metadata.term}`);
      }
      // Entries the snapshot covers are dropped, not overwritten: only losing entries beyond it counts.
      if (this.termAt(meta.index) === meta.term) {
        this.entries = this.entries.filter((e) => e.index > meta.index);
      } else {
        if (this.lastIndex() > meta.index) overwrittenFrom = meta.index + 1;
        this.entries = [];
      }
      this.snapshot = cloneSnapshot(batch.snapshot);
    }
    if (batch.entries.length > 0) {
      const from = this.appendEntries(batch.entries);
      if (from !== undefined && (overwrittenFrom === undefined || from < overwrittenFrom)) overwrittenFrom = from;
    }
    if (batch.hardState !== undefined) this.persistHardState(batch.hardState);
    if (batch.membership !== undefined) this.membership = cloneMembership(batch.membership);
    return { overwrittenFrom };
  }

  private appendEntries(batch: readonly Entry[]): number | undefined {
    for (let i = 1; i < batch.length; i++) {
      if (batch[i].index !== batch[i - 1].index + 1) throw this.violation(`Ready entries are not contiguous: ${batch[i - 1].index} then ${batch[i].index}`);
      if (batch[i].term < batch[i - 1].term) throw this.violation(`Ready entries' terms decrease: ${batch[i - 1].index}@${batch[i - 1].term} then ${batch[i].index}@${batch[i].term}`);
    }
    const first = batch[0].index;
    if (first < 1) throw this.violation(`Ready entry index ${first} < 1`);
    if (first > this.lastIndex() + 1) throw this.violation(`Ready entries start at ${first}, leaving a gap after the stored last index ${this.lastIndex()}`);
    const snapshotIndex = this.snapshot.metadata.index;
    let k = 0;
    // Entries the snapshot already covers must agree with it; they are not written again.
    while (k < batch.length && batch[k].index <= snapshotIndex) {
      const stored = this.termAt(batch[k].index);
      if (stored !== undefined && stored !== batch[k].term) {
        throw this.violation(`Ready entry ${batch[k].index}@${batch[k].term} conflicts with snapshot-covered ${batch[k].index}@${stored}`);
      }
      k++;
    }
    if (k === batch.length) return undefined;
    const start = batch[k].index;
    const prevTerm = this.termAt(start - 1);
    if (prevTerm !== undefined && batch[k].term < prevTerm) {
      throw this.violation(`entry ${start}@${batch[k].term} would follow ${start - 1}@${prevTerm}: log terms must not decrease`);
    }
    let overwrittenFrom: number | undefined;
    if (this.entries.length > 0 && start <= this.entries[this.entries.length - 1].index) {
      overwrittenFrom = start;
      this.entries.length = Math.max(0, start - this.entries[0].index);
    }
    for (; k < batch.length; k++) this.entries.push(cloneEntry(batch[k]));
    return overwrittenFrom;
  }

  private persistHardState(next: HardState): void {
    const prev = this.hardState;
    if (next.term < prev.term) throw this.violation(`hard state term went back from ${prev.term} to ${next.term}`);
    if (next.term === prev.term && prev.vote !== '' && next.vote !== prev.vote) {
      throw this.violation(`vote changed within term ${next.term}: ${prev.vote} then ${JSON.stringify(next.vote)} (double voting)`);
    }
    if (next.commit < prev.commit) throw this.violation(`durable commit went back from ${prev.commit} to ${next.commit}`);
    if (next.commit > this.lastIndex()) throw this.violation(`durable commit ${next.commit} is beyond the durable last index ${this.lastIndex()}`);
    this.hardState = { term: next.term, vote: next.vote, commit: next.commit };
  }

  /** A snapshot the local state machine took; entries ≤ compactIndex are deleted. */
  saveLocalSnapshot(snapshot: Snapshot, compactIndex: number): void {
    const meta = snapshot.metadata;
    if (compactIndex > meta.index) throw new Error(`sim: compactIndex ${compactIndex} beyond snapshot index ${meta.index}`);
    if (meta.index <= this.snapshot.metadata.index) throw new Error(`sim: local snapshot ${meta.index} not newer than stored ${this.snapshot.metadata.index}`);
    const storedTerm = this.termAt(meta.index);
    if (storedTerm !== meta.term) {
      throw new SafetyViolation('state-machine-safety', `${this.nodeId}: applied entry ${meta.index}@${meta.term} is ${meta.index}@${storedTerm ?? 'absent'} in its own durable log`);
    }
    this.snapshot = cloneSnapshot(snapshot);
    this.entries = this.entries.filter((e) => e.index > compactIndex);
  }

  /** What the node restarts from. `applied` is the durable state machine's applied index. */
  initialState(applied: number): InitialState {
    const snapshotIndex = this.snapshot.metadata.index;
    if (applied < snapshotIndex) throw new Error(`sim: state machine applied ${applied} is below the stored snapshot ${snapshotIndex}`);
    return {
      hardState: { ...this.hardState },
      membership: cloneMembership(this.membership),
      snapshot: { index: snapshotIndex, term: this.snapshot.metadata.term, membership: cloneMembership(this.snapshot.metadata.membership) },
      entries: this.entries.filter((e) => e.index > snapshotIndex).map(cloneEntry),
      applied,
    };
  }
}
