/**
 * The vocabulary of the Raft core: entries, messages, hard state, snapshots,
 * membership and the Ready batch. Pure data, shared by the core, the storage,
 * the transport and the node driver. Nothing here does I/O.
 */

/** A member's id: short, stable, unique within a cluster (e.g. "m1"). */
export type NodeId = string;

export enum EntryType {
  /** Application data for the state machine. */
  Normal = 0,
  /** Appended by each new leader at the start of its term; empty data. */
  Noop = 1,
  /** A membership change; data is an encoded MembershipChange. */
  MembershipChange = 2,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** What must be durable before the node answers any message (Raft Figure 2 "persistent state"). */
export interface HardState {
  term: number;
  /** The candidate voted for in `term`, or '' for none. */
  vote: NodeId;
  commit: number;
}

export type MemberRole = 'voter' | 'learner';

export interface Member {
  id: NodeId;
  /** Where the member's Raft transport listens ("host:port"); also what NotLeader hints carry. */
  address: string;
  role: MemberRole;
  /**
   * Where the application serves its clients, replicated with the membership
   * so every member can name any other's (as etcd's clientURLs). Opaque to
   * raft: stored and returned, never used. Absent for members added without one.
   */
  clientAddress?: string;
}

/** The cluster's configuration as of some log index. Kept sorted by id. */
export interface Membership {
  members: Member[];
}

export enum MembershipChangeType {
  AddVoter = 0,
  AddLearner = 1,
  PromoteLearner = 2,
  RemoveMember = 3,
}

export interface MembershipChange {
  type: MembershipChangeType;
  id: NodeId;
  /** Required for AddVoter/AddLearner; ignored otherwise. */
  address: string;
  /** Optional for AddVoter/AddLearner (becomes Member.clientAddress); ignored otherwise. */
  clientAddress?: string;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  membership: Membership;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** The state machine's serialized state. Opaque to the core. */
  data: Uint8Array;
}

export enum MessageType {
  /** Local only: an election timeout fired (or a TimeoutNow told us to campaign). Never sent. */
  Hup = 0,
  PreVote = 1,
  PreVoteResp = 2,
  Vote = 3,
  VoteResp = 4,
  /** AppendEntries. */
  App = 5,
  AppResp = 6,
  Heartbeat = 7,
  HeartbeatResp = 8,
  /** InstallSnapshot. The core fills `snapshot.metadata`; the transport attaches the data and chunks it. */
  Snap = 9,
  /** Tells the transfer target to campaign at once, bypassing pre-vote and leader lease. */
  TimeoutNow = 10,
  /** A follower forwards a proposal to the leader. */
  Prop = 11,
  /** A follower forwards a ReadIndex request to the leader. */
  ReadIndex = 12,
  ReadIndexResp = 13,
  /** A follower forwards a leadership transfer request to the leader. */
  TransferLeader = 14,
}

/**
 * One flat message shape for every type, as in etcd-io/raft: fields a type
 * does not use stay at their zero value. Keeping it flat keeps the protobuf
 * mapping one-to-one.
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** App: term of the entry at `index` (prevLogTerm). Vote/PreVote: candidate's last log term. */
  logTerm: number;
  /** App: prevLogIndex. AppResp: the last index matched (or the rejected index). Vote: last log index. ReadIndexResp: the read index. */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** AppResp with reject: the follower's hint of where its log may match (fast backtracking). */
  rejectHint: number;
  /** AppResp with reject: the term of the follower's entry at rejectHint. */
  logTermHint: number;
  snapshot?: Snapshot;
  /** Heartbeat/ReadIndex: the ReadIndex request context. Vote/PreVote: CAMPAIGN_TRANSFER when forced by TimeoutNow. */
  context: Uint8Array;
}

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** Volatile state worth telling the driver about when it changes. */
export interface SoftState {
  leaderId: NodeId;
  role: Role;
  term: number;
}

/**
 * Everything the driver must do after the core has moved. The order matters:
 * 1. persist `snapshot`, `entries` and `hardState` in one synchronous write;
 * 2. then send `messagesAfterPersist` (votes and acknowledgements: they promise durability);
 * 3. apply `committedEntries` to the state machine, in order;
 * 4. call `advance(ready)`.
 * `messages` may be sent at once, before the write completes (the leader's
 * AppendEntries and heartbeats, Raft thesis §10.2.1).
 */
export interface Ready {
  softState?: SoftState;
  /** Present when term, vote or commit changed. */
  hardState?: HardState;
  /** Entries to append. The first entry's index may be ≤ the stored last index: overwrite from there and delete the rest. */
  entries: Entry[];
  /** A snapshot received from the leader to persist and restore into the state machine. */
  snapshot?: Snapshot;
  /** Present when the membership changed (by a committed change or a snapshot); persist it with the rest. */
  membership?: Membership;
  committedEntries: Entry[];
  messages: Message[];
  messagesAfterPersist: Message[];
  readStates: ReadState[];
}

/** Thrown by propose/readIndex/transferLeadership on a node that cannot serve them. */
export class NotLeaderError extends Error {
  readonly code = 'NOT_LEADER';
  constructor(
    /** The leader this node believes in, or '' if none is known. */
    readonly leaderId: NodeId,
    /** That leader's transport address, or '' if unknown. */
    readonly leaderAddress: string,
  ) {
    super(leaderId ? `not the leader; the leader is ${leaderId} at ${leaderAddress}` : 'not the leader; no leader is known');
  }
}

/** Thrown when a proposal is refused for a reason other than leadership. */
export class ProposalRejectedError extends Error {
  readonly code = 'PROPOSAL_REJECTED';
  constructor(reason: string) {
    super(reason);
  }
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

export function emptyMessage(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return { type, from, to, term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, logTermHint: 0, context: EMPTY_BYTES };
}

/** Sum of entry payload sizes, the unit the in-flight byte limits count. */
export function entriesSizeBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const e of entries) total += e.data.byteLength;
  return total;
}
