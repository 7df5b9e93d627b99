/**
 * The public surface of the Raft core that drivers and simulators program
 * against. The implementation is `RaftCore` in raft.ts.
 */
import { Entry, HardState, Membership, NodeId, Role, SnapshotMetadata } from './types';

/** What the core is started from: whatever the storage recovered (or a fresh bootstrap). */
export interface InitialState {
  hardState: HardState;
  /** The membership as of the last committed change recovered (or the bootstrap membership; empty for a node that waits to be added). */
  membership: Membership;
  /** The last snapshot's metadata (index 0, term 0 when there is none). */
  snapshot: SnapshotMetadata;
  /** The stored log entries after the snapshot, contiguous, in order. */
  entries: Entry[];
  /** The state machine's durable applied index; entries up to it are not handed out again. */
  applied: number;
}

/** Where a proposal landed in the leader's log; it is committed once an entry with this index and term is applied. */
export interface ProposalTicket {
  index: number;
  term: number;
}

export interface FollowerProgress {
  id: NodeId;
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  inflightAppends: number;
  recentActive: boolean;
  isLearner: boolean;
}

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId;
  leaderId: NodeId;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  membership: Membership;
  /** Only on the leader. */
  progress: FollowerProgress[];
  /** The leadership transfer in progress, or ''. */
  transferee: NodeId;
}

/**
 * The state of a member with nothing on disk. With a membership it founds a
 * new cluster (the core writes that membership into the log as its first
 * entries); with an empty one it waits for a leader to add it.
 */
export function emptyInitialState(membership: Membership): InitialState {
  return {
    hardState: { term: 0, vote: '', commit: 0 },
    membership,
    snapshot: { index: 0, term: 0, membership },
    entries: [],
    applied: 0,
  };
}
