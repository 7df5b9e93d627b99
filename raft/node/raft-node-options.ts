/**
 * RaftNode's options, their documented defaults and their validation (as
 * hashicorp/raft's Config + ValidateConfig): a bad option is named before
 * anything is opened. Owns no behaviour.
 */
import { Registry } from 'prom-client';
import { RaftStatus } from '../core/api';
import { RaftConfig } from '../core/config';
import { Member, Membership, NodeId } from '../core/types';
import { RaftStorage, StateMachine, Transport } from './interfaces';
import { RaftLogger } from './node-logger';

export interface RaftNodeOptions {
  /** The core's configuration; `random` is supplied by the node (seeded from crypto). */
  config: Partial<Omit<RaftConfig, 'random'>> & { id: NodeId };
  /** One core tick every this many ms; election timeout = electionTicks × tickIntervalMs. Default 50. */
  tickIntervalMs?: number;
  storage: RaftStorage;
  transport: Transport;
  stateMachine: StateMachine;
  /** Written to storage only when it is empty (a brand-new cluster). A new member joining an existing cluster passes none. */
  bootstrapMembership?: Membership;
  /**
   * Whom to connect to while this member knows no membership yet (a new
   * member waiting to be added): its answers to the leader need a route
   * before the leader's snapshot tells it who is who.
   */
  joinPeers?: Member[];
  /** Take a local snapshot every this many applied entries (plus a per-member jitter of up to a tenth, so members do not pause together). Default 10,000. */
  snapshotThresholdEntries?: number;
  /** Keep this many log entries behind a local snapshot, so slow followers catch up without a snapshot. Default 1,000. */
  snapshotTrailingEntries?: number;
  /** At most this many proposals waiting to apply; more are rejected with NodeOverloadedError. Default 10,000. */
  maxPendingProposals?: number;
  /** At most this many linearizable reads waiting. Default 10,000. */
  maxPendingReads?: number;
  /** Default timeout of propose/readIndex/membership calls. Default 5,000 ms. */
  defaultTimeoutMs?: number;
  registry?: Registry;
  logger?: RaftLogger;
  /** Called once if the node hits a broken invariant or a storage/state machine failure; default: rethrow (crash the process). */
  onFatalError?: (error: Error) => void;
}

export interface CallOptions {
  timeoutMs?: number;
}

export interface RaftNodeStatus extends RaftStatus {
  /** The applied index as the driver knows it (the state machine's). */
  appliedIndex: number;
  leaderAddress: string;
  electionTimeoutMs: number;
  pendingProposals: number;
  pendingReads: number;
}

const DEFAULTS = {
  tickIntervalMs: 50,
  snapshotThresholdEntries: 10_000,
  snapshotTrailingEntries: 1_000,
  maxPendingProposals: 10_000,
  maxPendingReads: 10_000,
  defaultTimeoutMs: 5_000,
};

export interface NodeSettings {
  tickIntervalMs: number;
  snapshotThresholdEntries: number;
  snapshotTrailingEntries: number;
  maxPendingProposals: number;
  maxPendingReads: number;
  defaultTimeoutMs: number;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`raft node: ${name} must be a positive integer, got ${String(value)}`);
  return value;
}

export function resolveNodeSettings(options: RaftNodeOptions): NodeSettings {
  const trailing = options.snapshotTrailingEntries ?? DEFAULTS.snapshotTrailingEntries;
  if (!Number.isInteger(trailing) || trailing < 0) throw new Error(`raft node: snapshotTrailingEntries must be a non-negative integer, got ${String(trailing)}`);
  return {
    tickIntervalMs: positiveInteger('tickIntervalMs', options.tickIntervalMs ?? DEFAULTS.tickIntervalMs),
    snapshotThresholdEntries: positiveInteger('snapshotThresholdEntries', options.snapshotThresholdEntries ?? DEFAULTS.snapshotThresholdEntries),
    snapshotTrailingEntries: trailing,
    maxPendingProposals: positiveInteger('maxPendingProposals', options.maxPendingProposals ?? DEFAULTS.maxPendingProposals),
    maxPendingReads: positiveInteger('maxPendingReads', options.maxPendingReads ?? DEFAULTS.maxPendingReads),
    defaultTimeoutMs: positiveInteger('defaultTimeoutMs', options.defaultTimeoutMs ?? DEFAULTS.defaultTimeoutMs),
  };
}
