/**
 * The plug points of the node driver (as hashicorp/raft's FSM, LogStore and
 * Transport): what storage, transport and the application each provide.
 * raft/ knows nothing of files: the StateMachine is whatever the application is.
 */
import { InitialState } from '../core/api';
import { Entry, HardState, Member, Membership, Message, NodeId, Snapshot, SnapshotMetadata } from '../core/types';

/** The replicated application, e.g. metaserver/'s file-handle state machine. */
export interface StateMachine {
  /**
   * Applies committed entries in log order, each exactly once. Entries of type
   * Noop and MembershipChange arrive too, so the applied index can advance past
   * them; the machine ignores their data. The machine must make its writes and
   * the new applied index (the last entry's index) durable atomically, before
   * the returned promise resolves. Returns one result per entry (undefined for
   * entries that are not Normal).
   */
  apply(entries: Entry[]): Promise<unknown[]>;
  /** The index of the last entry whose effects are durable (0 for a new machine). */
  appliedIndex(): Promise<number>;
  /** The machine's whole state as of its applied index. */
  snapshot(): Promise<{ index: number; data: Uint8Array }>;
  /** Replaces the whole state with a snapshot's; the applied index becomes metadata.index. */
  restore(snapshot: Snapshot): Promise<void>;
}

/** What one Ready asks the storage to make durable in a single synchronous write. */
export interface PersistBatch {
  hardState?: HardState;
  /** Entries to append; an entry whose index is ≤ the stored last index replaces it and everything after it. */
  entries: Entry[];
  /** A snapshot received from the leader: store it, and drop every log entry it covers (the whole log if it conflicts). */
  snapshot?: Snapshot;
  membership?: Membership;
}

/** Durable Raft state on disk. Every method resolves only after the data is synced. */
export interface RaftStorage {
  /** Reads everything back at start. Throws StorageCorruptError when the data is inconsistent; never returns a silently empty log for a non-empty store. */
  load(): Promise<InitialState>;
  /** True if the store has never held any Raft state (a new member). */
  isEmpty(): Promise<boolean>;
  /** Writes a brand-new member's initial membership; refuses a store that is not empty. */
  bootstrap(membership: Membership): Promise<void>;
  /** One `batch(..., {sync: true})`. */
  persist(batch: PersistBatch): Promise<void>;
  /** Stores a snapshot the local state machine took, then deletes log entries ≤ compactIndex (compactIndex ≤ snapshot index). */
  saveLocalSnapshot(snapshot: Snapshot, compactIndex: number): Promise<void>;
  /** The latest stored snapshot (local or received), or undefined if none. */
  loadSnapshot(): Promise<Snapshot | undefined>;
  close(): Promise<void>;
}

export class StorageCorruptError extends Error {
  readonly code = 'STORAGE_CORRUPT';
  constructor(readonly dataDir: string, problem: string) {
    super(`raft storage at ${dataDir} is corrupt: ${problem}; refusing to start (restore this member from a snapshot or remove and re-add it)`);
  }
}

/** Delivers Raft messages between members. Sending never blocks and may drop: Raft retries. */
export interface Transport {
  /** Starts listening; every decoded, valid message from a known peer goes to onMessage. */
  start(onMessage: (message: Message) => void): Promise<void>;
  /** The peers to connect to (everyone but the local member). Safe to call again when membership changes. */
  setPeers(peers: Member[]): void;
  /** Queues messages for their peers. A Snap message must carry its snapshot data; the transport streams it in chunks. */
  send(messages: Message[]): void;
  /** Called when a peer cannot be reached (the core backs its progress off to probing). */
  onUnreachable(listener: (peer: NodeId) => void): void;
  /** Called when a snapshot stream to a peer finished or failed. */
  onSnapshotStatus(listener: (peer: NodeId, ok: boolean) => void): void;
  close(): Promise<void>;
}

export type { SnapshotMetadata };
