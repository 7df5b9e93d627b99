/**
 * The core's configuration: one struct with documented defaults and a
 * validation that names the bad field (as hashicorp/raft's ValidateConfig).
 */
import { NodeId } from './types';

export interface RaftConfig {
  id: NodeId;
  /** A follower that hears nothing for a random number of ticks in [electionTicks, 2·electionTicks) campaigns. */
  electionTicks: number;
  /** The leader sends heartbeats every heartbeatTicks ticks. Must be < electionTicks. */
  heartbeatTicks: number;
  /** Run a pre-vote round before bumping the term, so a partitioned node cannot disrupt the cluster on rejoin. */
  preVote: boolean;
  /** A leader that has not heard from a quorum within an election timeout steps down; followers that heard a leader recently ignore votes. */
  checkQuorum: boolean;
  /** At most this many entries in one AppendEntries message. */
  maxEntriesPerAppend: number;
  /** At most this many payload bytes in one AppendEntries message (one entry is always allowed). */
  maxBytesPerAppend: number;
  /** At most this many AppendEntries messages unacknowledged per follower (pipelining window). */
  maxInflightAppends: number;
  /** At most this many payload bytes unacknowledged per follower. */
  maxInflightBytes: number;
  /** At most this many proposed-but-uncommitted entries on the leader; further proposals are rejected. */
  maxUncommittedEntries: number;
  /** A follower forwards proposals to the leader instead of throwing NotLeaderError. */
  forwardProposals: boolean;
  /** A learner may be promoted once its log is within this many entries of the leader's. */
  learnerCatchUpLagEntries: number;
  /** Seeded source of randomness in [0, 1); the core never calls Math.random. */
  random: () => number;
}

export const RAFT_CONFIG_DEFAULTS: Omit<RaftConfig, 'id' | 'random'> = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  maxEntriesPerAppend: 512,
  maxBytesPerAppend: 1024 * 1024,
  maxInflightAppends: 64,
  maxInflightBytes: 16 * 1024 * 1024,
  maxUncommittedEntries: 10_000,
  forwardProposals: false,
  learnerCatchUpLagEntries: 100,
};

export class RaftConfigError extends Error {
  constructor(readonly field: string, problem: string) {
    super(`raft config: ${field} ${problem}`);
  }
}

function requirePositiveInteger(config: RaftConfig, field: keyof RaftConfig): void {
  const value = config[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new RaftConfigError(field, `must be a positive integer, got ${String(value)}`);
  }
}

export function validateRaftConfig(config: RaftConfig): void {
  if (typeof config.id !== 'string' || config.id.length === 0 || config.id.length > 64) {
    throw new RaftConfigError('id', `must be a non-empty string of at most 64 characters, got ${JSON.stringify(config.id)}`);
  }
  for (const field of ['electionTicks', 'heartbeatTicks', 'maxEntriesPerAppend', 'maxBytesPerAppend', 'maxInflightAppends', 'maxInflightBytes', 'maxUncommittedEntries', 'learnerCatchUpLagEntries'] as const) {
    requirePositiveInteger(config, field);
  }
  if (config.heartbeatTicks >= config.electionTicks) {
    throw new RaftConfigError('heartbeatTicks', `(${config.heartbeatTicks}) must be less than electionTicks (${config.electionTicks})`);
  }
  if (typeof config.random !== 'function') throw new RaftConfigError('random', 'must be a function returning numbers in [0, 1)');
}

export function withDefaults(partial: Partial<RaftConfig> & Pick<RaftConfig, 'id' | 'random'>): RaftConfig {
  const config = { ...RAFT_CONFIG_DEFAULTS, ...partial };
  validateRaftConfig(config);
  return config;
}

/** A small seeded generator (mulberry32) for the core's election jitter and for simulations. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
