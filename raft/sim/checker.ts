/**
 * The Raft safety properties, checked from observed facts only: who led which
 * term, what each node made durable, what each node applied, what reads
 * returned. Knows nothing of the simulator's internals, so hand-made histories
 * can be fed to it. Must never repair anything: it throws SafetyViolation.
 */
import { Entry } from '../core/types';
import { entryDigest } from './digest';

export type SafetyProperty =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'exactly-once'
  | 'linearizable-read'
  | 'storage-contract'
  | 'liveness'
  | 'core-error';

export class SafetyViolation extends Error {
  constructor(readonly property: SafetyProperty, readonly detail: string) {
    super(`${property} violated: ${detail}`);
  }
}

/** A node's durable log as the checker sees it: terms by index; undefined where compacted away or beyond the end. */
export interface LogView {
  /** The smallest index whose term is known (the snapshot index when there is one, index 0 with term 0 otherwise). */
  firstKnownIndex(): number;
  lastIndex(): number;
  termAt(index: number): number | undefined;
}

interface CommittedRecord {
  term: number;
  /** Undefined when the index was only ever reached through a snapshot. */
  entryDigest: string | undefined;
  chain: string;
  /** The lowest term any node was in when it applied this index: the entry was committed in a term ≤ this. */
  minApplierTerm: number;
}

interface LeaderLog {
  leaderId: string;
  /** Index of the leader's first entry of its own term: everything it held at election lies below. */
  firstOwnIndex: number;
  knownFrom: number;
  /** Terms of indexes knownFrom .. firstOwnIndex-1 in the leader's log when that first entry became durable. */
  terms: number[];
}

interface RegisteredEntry {
  digest: string;
  prevTerm: number | undefined;
}

export interface FinalMemberState {
  id: string;
  applied: number;
  /** The state machine's applied operations: op id → log index. */
  ops: ReadonlyMap<string, number>;
}

export interface AcknowledgedWrite {
  opId: string;
  index: number;
  term: number;
}

export interface FinalState {
  /** The leader after healing, or '' when none was found. */
  leaderId: string;
  liveMembers: FinalMemberState[];
  acknowledged: readonly AcknowledgedWrite[];
  logs: ReadonlyArray<{ id: string; log: LogView }>;
}

export class SafetyChecker {
  private readonly leaderByTerm = new Map<number, string>();
  private readonly entryRegistry = new Map<string, RegisteredEntry>();
  private readonly committed: Array<CommittedRecord | undefined> = [];
  private maxCommitted = 0;
  private readonly appliedByNode = new Map<string, number>();
  private readonly leaderLogs = new Map<number, LeaderLog>();

  /** The highest index any node has applied: committed for sure. */
  maxCommittedIndex(): number {
    return this.maxCommitted;
  }

  committedTermAt(index: number): number | undefined {
    return this.committed[index]?.term;
  }

  committedChainAt(index: number): string | undefined {
    return this.committed[index]?.chain;
  }

  leaderOfTerm(term: number): string | undefined {
    return this.leaderByTerm.get(term);
  }

  /** Election safety: at most one leader per term. */
  observeLeader(nodeId: string, term: number): void {
    const existing = this.leaderByTerm.get(term);
    if (existing !== undefined && existing !== nodeId) {
      throw new SafetyViolation('election-safety', `term ${term} has two leaders: ${existing} and ${nodeId}`);
    }
    if (existing === undefined) this.leaderByTerm.set(term, nodeId);
  }

  /**
   * Called after `entries` became durable on `nodeId`; `log` is that node's
   * durable log including them. Checks log matching incrementally and, for a
   * leader's first entry of its own term, leader completeness.
   */
  observeDurableEntries(nodeId: string, entries: readonly Entry[], log: LogView): void {
    for (const entry of entries) {
      const prevTerm = entry.index === 1 ? 0 : log.termAt(entry.index - 1);
      const key = `${entry.index}@${entry.term}`;
      const digest = entryDigest(entry);
      const registered = this.entryRegistry.get(key);
      if (registered === undefined) {
        this.entryRegistry.set(key, { digest, prevTerm });
      } else {
        if (registered.digest !== digest) {
          throw new SafetyViolation('log-matching', `two different entries at index ${entry.index} term ${entry.term} (seen again on ${nodeId})`);
        }
        if (prevTerm !== undefined && registered.prevTerm !== undefined && prevTerm !== registered.prevTerm) {
          throw new SafetyViolation('log-matching', `entry ${key} on ${nodeId} follows an entry of term ${prevTerm}, elsewhere of term ${registered.prevTerm}`);
        }
        if (registered.prevTerm === undefined) registered.prevTerm = prevTerm;
      }
      if (this.leaderByTerm.get(entry.term) === nodeId && !this.leaderLogs.has(entry.term) && prevTerm !== entry.term) {
        this.captureLeaderLog(nodeId, entry.term, entry.index, log);
      }
    }
  }

  private captureLeaderLog(leaderId: string, term: number, firstOwnIndex: number, log: LogView): void {
    const knownFrom = Math.max(1, log.firstKnownIndex());
    const terms: number[] = [];
    for (let i = knownFrom; i < firstOwnIndex; i++) {
      const t = log.termAt(i);
      if (t === undefined) throw new SafetyViolation('log-matching', `leader ${leaderId} of term ${term} has a hole at index ${i} below its first own entry ${firstOwnIndex}`);
      terms.push(t);
    }
    const record: LeaderLog = { leaderId, firstOwnIndex, knownFrom, terms };
    this.leaderLogs.set(term, record);
    this.checkLeaderCompleteness(term, record);
  }

  /** Every entry committed in a term below `term` must be in that term's leader's log. */
  private checkLeaderCompleteness(term: number, record: LeaderLog): void {
    let cutoff = 0;
    for (let i = this.maxCommitted; i >= 1; i--) {
      const c = this.committed[i];
      if (c !== undefined && c.minApplierTerm < term) {
        cutoff = i;
        break;
      }
    }
    for (let i = 1; i <= cutoff; i++) {
      const c = this.committed[i];
      if (c === undefined || i < record.knownFrom) continue;
      if (i >= record.firstOwnIndex) {
        throw new SafetyViolation('leader-completeness', `entry ${i}@${c.term}, committed before term ${term}, is beyond the log of that term's leader ${record.leaderId} (its first own entry is ${record.firstOwnIndex})`);
      }
      const leaderTerm = record.terms[i - record.knownFrom];
      if (leaderTerm !== c.term) {
        throw new SafetyViolation('leader-completeness', `entry ${i}@${c.term}, committed before term ${term}, is ${i}@${leaderTerm} in the log of that term's leader ${record.leaderId}`);
      }
    }
  }

  /** State machine safety: `nodeId` applied `entry` as its next index; `chain` is its state machine's digest after it. */
  observeApply(nodeId: string, entry: Entry, chain: string, applierTerm: number): void {
    const last = this.appliedByNode.get(nodeId) ?? 0;
    if (entry.index !== last + 1) {
      throw new SafetyViolation('state-machine-safety', `${nodeId} applied index ${entry.index} right after ${last} (gap or repeat)`);
    }
    this.recordCommitted(nodeId, entry.index, entry.term, entryDigest(entry), chain, applierTerm);
    this.appliedByNode.set(nodeId, entry.index);
  }

  /** `nodeId` replaced its state machine by a snapshot at `index`; `chain` is the snapshot's digest. */
  observeSnapshotRestore(nodeId: string, index: number, term: number, chain: string, applierTerm: number): void {
    const last = this.appliedByNode.get(nodeId) ?? 0;
    if (index < last) {
      throw new SafetyViolation('state-machine-safety', `${nodeId} restored a snapshot at ${index}, rolling back from applied ${last}`);
    }
    this.recordCommitted(nodeId, index, term, undefined, chain, applierTerm);
    this.appliedByNode.set(nodeId, index);
  }

  private recordCommitted(nodeId: string, index: number, term: number, digest: string | undefined, chain: string, applierTerm: number): void {
    const existing = this.committed[index];
    if (existing === undefined) {
      this.committed[index] = { term, entryDigest: digest, chain, minApplierTerm: applierTerm };
      if (index > this.maxCommitted) this.maxCommitted = index;
      return;
    }
    if (existing.term !== term || (digest !== undefined && existing.entryDigest !== undefined && digest !== existing.entryDigest)) {
      throw new SafetyViolation('state-machine-safety', `${nodeId} applied ${index}@${term} but another node applied a different entry ${index}@${existing.term} there`);
    }
    if (existing.chain !== chain) {
      throw new SafetyViolation('state-machine-safety', `${nodeId}'s applied history up to ${index} differs from another node's (state digest ${chain} vs ${existing.chain})`);
    }
    if (existing.entryDigest === undefined) existing.entryDigest = digest;
    if (applierTerm < existing.minApplierTerm) existing.minApplierTerm = applierTerm;
  }

  /** A ReadIndex answer must be at least every index applied anywhere before the read started (`minIndex`). */
  observeReadState(nodeId: string, context: string, readIndex: number, minIndex: number): void {
    if (readIndex < minIndex) {
      throw new SafetyViolation('linearizable-read', `read ${context} on ${nodeId} got read index ${readIndex}, but index ${minIndex} was applied before the read started`);
    }
  }

  /** After healing and settling: leadership, catch-up, no lost or duplicated writes, and a full pairwise log check. */
  finalCheck(state: FinalState): void {
    for (const [term, record] of this.leaderLogs) this.checkLeaderCompleteness(term, record);
    checkLogsPairwise(state.logs);
    if (state.leaderId === '') throw new SafetyViolation('liveness', 'no leader after healing every fault');
    for (const member of state.liveMembers) {
      if (member.applied < this.maxCommitted) {
        throw new SafetyViolation('liveness', `live member ${member.id} applied only up to ${member.applied}, but index ${this.maxCommitted} was applied elsewhere`);
      }
    }
    for (const write of state.acknowledged) {
      const c = this.committed[write.index];
      if (c !== undefined && c.term !== write.term) {
        throw new SafetyViolation('state-machine-safety', `acknowledged write ${write.opId} at ${write.index}@${write.term} was replaced by ${write.index}@${c.term}`);
      }
      for (const member of state.liveMembers) {
        const at = member.ops.get(write.opId);
        if (at !== write.index) {
          throw new SafetyViolation('liveness', `acknowledged write ${write.opId} (${write.index}@${write.term}) is ${at === undefined ? 'missing' : `at index ${at}`} on live member ${member.id}`);
        }
      }
    }
    if (state.liveMembers.length === 0) throw new SafetyViolation('liveness', 'no live member after healing');
    const reference = state.liveMembers[0];
    for (const member of state.liveMembers.slice(1)) {
      if (member.ops.size !== reference.ops.size) {
        throw new SafetyViolation('liveness', `live members disagree on applied writes: ${reference.id} has ${reference.ops.size}, ${member.id} has ${member.ops.size}`);
      }
      for (const [opId, index] of reference.ops) {
        if (member.ops.get(opId) !== index) throw new SafetyViolation('liveness', `write ${opId} is at ${index} on ${reference.id} but ${member.ops.get(opId) ?? 'missing'} on ${member.id}`);
      }
    }
  }
}

/** Log matching over whole logs: if two logs agree at an index, they agree at every earlier index both still hold. */
export function checkLogsPairwise(logs: ReadonlyArray<{ id: string; log: LogView }>): void {
  for (let a = 0; a < logs.length; a++) {
    for (let b = a + 1; b < logs.length; b++) {
      const left = logs[a].log;
      const right = logs[b].log;
      const low = Math.max(left.firstKnownIndex(), right.firstKnownIndex(), 1);
      let agreedAt = 0;
      for (let i = Math.min(left.lastIndex(), right.lastIndex()); i >= low; i--) {
        if (left.termAt(i) === right.termAt(i)) {
          agreedAt = i;
          break;
        }
      }
      for (let i = agreedAt - 1; i >= low; i--) {
        if (left.termAt(i) !== right.termAt(i)) {
          throw new SafetyViolation('log-matching', `${logs[a].id} and ${logs[b].id} agree at ${agreedAt} but differ at ${i} (${left.termAt(i)} vs ${right.termAt(i)})`);
        }
      }
    }
  }
}
