/**
 * RaftCore: the whole Raft protocol as one deterministic state machine.
 * Owns: roles, terms, votes, the in-memory log, replication progress,
 * commit, ReadIndex, leadership transfer, membership, snapshots.
 * Never: timers, sockets, disk, Math.random, Date. Time is tick(); I/O is the Ready batch.
 */
import { RaftConfig } from './config';
import { InitialState, ProposalTicket, RaftStatus } from './api';
import { MembershipChange, Message, NodeId, Ready, SnapshotMetadata } from './types';

export class RaftCore {
  constructor(config: RaftConfig, initial: InitialState) { void config; void initial; throw new Error('todo'); }
  /** Advances logical time by one tick (election and heartbeat timers). */
  tick(): void { throw new Error('todo'); }
  /** Feeds a message received from a peer. Unknown senders and malformed messages are dropped (see droppedMessages). */
  step(message: Message): void { void message; throw new Error('todo'); }
  /** Appends data on the leader; returns where it landed. On a follower: forwards (returns null) if forwardProposals, else throws NotLeaderError. */
  propose(data: Uint8Array): ProposalTicket | null { void data; throw new Error('todo'); }
  /** Proposes one membership change; throws ProposalRejectedError if another is pending, the leader has not committed in its term, or a learner is not caught up. */
  proposeMembershipChange(change: MembershipChange): ProposalTicket | null { void change; throw new Error('todo'); }
  /** Requests a linearizable read point; a ReadState with this context appears in a later Ready. */
  readIndex(context: Uint8Array): void { void context; throw new Error('todo'); }
  /** Asks the leader to hand leadership to `to` (forwarded if called on a follower). */
  transferLeadership(to: NodeId): void { void to; throw new Error('todo'); }
  /** Starts an election now (as if the election timer fired). */
  campaign(): void { throw new Error('todo'); }
  hasReady(): boolean { throw new Error('todo'); }
  ready(): Ready { throw new Error('todo'); }
  /** Acknowledges that a Ready has been fully handled: persisted, sent, applied. */
  advance(ready: Ready): void { void ready; throw new Error('todo'); }
  /** A local snapshot covering up to metadata.index is durable: entries up to compactIndex may be dropped from memory. */
  compact(metadata: SnapshotMetadata, compactIndex: number): void { void metadata; void compactIndex; throw new Error('todo'); }
  reportUnreachable(peer: NodeId): void { void peer; throw new Error('todo'); }
  reportSnapshot(peer: NodeId, ok: boolean): void { void peer; void ok; throw new Error('todo'); }
  status(): RaftStatus { throw new Error('todo'); }
  /** Messages dropped since start, by reason (unknown sender, stale term, malformed...). */
  droppedMessages(): Record<string, number> { throw new Error('todo'); }
}
