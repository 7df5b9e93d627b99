/**
 * The gRPC transport's configuration: options with documented defaults, the
 * limits every queue and stream obeys, and the validation that names the bad
 * field or peer (as hashicorp/raft's ValidateConfig). Owns: address parsing
 * and peer-list checks. Must never open sockets or touch the core.
 */
import type { Registry } from 'prom-client';
import { Member, Message, NodeId } from '../core/types';
import { NODE_ID_LENGTH_MAX } from './codec';
import type { TlsMaterial } from '../../proto/tls';

export class TransportConfigError extends Error {
  readonly code = 'TRANSPORT_CONFIG';
  constructor(problem: string) {
    super(`raft transport config: ${problem}`);
    this.name = 'TransportConfigError';
  }
}

/**
 * Chaos hook on the sending side, called once per message given to send():
 * 'deliver' queues it as usual, 'drop' discards it (counted with reason
 * "fault_injected"), {delayMs} queues it after that delay (so it may overtake
 * or be overtaken by later messages). This kernel has no netem: tests inject
 * loss, delay and reordering here. Must not throw; a throw counts as 'deliver'.
 * Delays are capped at 60 s and count against limits.maxDelayedMessages;
 * close() drops every message still delayed.
 */
export type FaultDecision = 'deliver' | 'drop' | { delayMs: number };
export type FaultHook = (message: Message) => FaultDecision;

export interface TransportLogger {
  info(line: string): void;
  warn(line: string): void;
}

export interface TransportLimits {
  /** One encoded message above this is dropped ("oversized") on send and on receipt; also the most bytes one batch holds. */
  maxMessageBytes: number;
  /** At most this many messages in one batch (one stream write). */
  maxBatchMessages: number;
  /** Per-peer queue bounds; a message beyond either is dropped ("queue_full"): Raft retries. */
  maxQueueMessages: number;
  maxQueueBytes: number;
  /** Messages held back by the fault hook's delays, over all peers. */
  maxDelayedMessages: number;
  /** Snapshot data per InstallSnapshot chunk. */
  chunkSizeBytes: number;
  /** A received snapshot whose data exceeds this is refused ("snapshot_too_large"). */
  maxSnapshotBytes: number;
  /** Snapshot streams received at once, over all senders; more are refused ("snapshot_busy"). */
  maxIncomingSnapshots: number;
  /** A snapshot stream, sent or received, that takes longer is cancelled. */
  snapshotTimeoutMs: number;
  /** Reconnect backoff: exponential from initial to max, with jitter in [½, 1] of the step. */
  reconnectBackoffInitialMs: number;
  reconnectBackoffMaxMs: number;
  /** A new stream whose peer has not answered within this is abandoned (peer unreachable). */
  connectTimeoutMs: number;
  /** gRPC keepalive pings on channel and server: a cut link is noticed within about time + timeout. */
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  /** close() lets in-flight calls finish this long before forcing every stream shut. */
  closeGraceMs: number;
  /** At most one log line per drop reason per this period; the suppressed count is reported with the next line. */
  logIntervalMs: number;
}

export const TRANSPORT_LIMIT_DEFAULTS: TransportLimits = {
  maxMessageBytes: 4 * 1024 * 1024,
  maxBatchMessages: 1024,
  maxQueueMessages: 16_384,
  maxQueueBytes: 64 * 1024 * 1024,
  maxDelayedMessages: 16_384,
  chunkSizeBytes: 1024 * 1024,
  maxSnapshotBytes: 1024 * 1024 * 1024,
  maxIncomingSnapshots: 2,
  snapshotTimeoutMs: 120_000,
  reconnectBackoffInitialMs: 50,
  // Below an election timeout, so a member that restarts is back in the cluster's traffic before the next election matters.
  reconnectBackoffMaxMs: 500,
  connectTimeoutMs: 2_000,
  keepaliveTimeMs: 1_000,
  // A ping unanswered for half a second on loopback or a LAN means the link is gone: a cut is noticed within ~1.5 s.
  keepaliveTimeoutMs: 500,
  closeGraceMs: 100,
  logIntervalMs: 1_000,
};

export interface GrpcTransportOptions {
  localId: NodeId;
  /** "host:port" to listen on; port 0 picks a free port (see GrpcTransport.boundPort). */
  listenAddress: string;
  /** Where the transport's metrics go; a private Registry if absent. */
  registry?: Registry;
  /** Defaults to console with a "[raft-transport <id>]" prefix. */
  logger?: TransportLogger;
  limits?: Partial<TransportLimits>;
  faultHook?: FaultHook;
  /**
   * Mutual TLS between members (proto/tls.ts): the server accepts only peers
   * presenting a certificate signed by this CA, and this member presents its
   * own. Plaintext if absent.
   */
  tls?: TlsMaterial;
}

export interface HostPort { host: string; port: number }

/** Parses "host:port" or "[ipv6]:port". Listening allows port 0; peers need 1..65535. */
export function parseHostPort(address: unknown, allowPortZero: boolean): HostPort {
  if (typeof address !== 'string') throw new Error(`address must be a "host:port" string, got ${typeof address}`);
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
  if (match === null) throw new Error(`address ${JSON.stringify(address)} is not "host:port"`);
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  const portMin = allowPortZero ? 0 : 1;
  if (port < portMin || port > 65535) throw new Error(`address ${JSON.stringify(address)} has port ${port} outside ${portMin}..65535`);
  if (host.startsWith('-') || host.endsWith('-') || host.includes('..')) throw new Error(`address ${JSON.stringify(address)} has a malformed host`);
  return { host, port };
}

export function validateLimits(partial: Partial<TransportLimits> | undefined): TransportLimits {
  const limits: TransportLimits = { ...TRANSPORT_LIMIT_DEFAULTS, ...partial };
  for (const [field, value] of Object.entries(limits)) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw new TransportConfigError(`limits.${field} must be a positive integer, got ${String(value)}`);
    }
  }
  if (limits.chunkSizeBytes > limits.maxMessageBytes) {
    throw new TransportConfigError(`limits.chunkSizeBytes (${limits.chunkSizeBytes}) must not exceed limits.maxMessageBytes (${limits.maxMessageBytes})`);
  }
  if (limits.maxQueueBytes < limits.maxMessageBytes) {
    throw new TransportConfigError(`limits.maxQueueBytes (${limits.maxQueueBytes}) must hold at least one message of limits.maxMessageBytes (${limits.maxMessageBytes})`);
  }
  if (limits.reconnectBackoffInitialMs > limits.reconnectBackoffMaxMs) {
    throw new TransportConfigError(`limits.reconnectBackoffInitialMs (${limits.reconnectBackoffInitialMs}) must not exceed limits.reconnectBackoffMaxMs (${limits.reconnectBackoffMaxMs})`);
  }
  return limits;
}

export function validateNodeId(id: unknown, what: string): NodeId {
  if (typeof id !== 'string' || id.length === 0 || id.length > NODE_ID_LENGTH_MAX) {
    throw new TransportConfigError(`${what} must be a node id of 1..${NODE_ID_LENGTH_MAX} characters, got ${JSON.stringify(id)}`);
  }
  return id;
}

/** Checks a whole peer list before any of it is used: no duplicates, not the local member, every address parses. */
export function validatePeers(localId: NodeId, peers: readonly Member[]): void {
  if (!Array.isArray(peers)) throw new TransportConfigError('peers must be a list of members');
  const seen = new Set<NodeId>();
  for (const [i, peer] of peers.entries()) {
    const id = validateNodeId(peer?.id, `peers[${i}].id`);
    if (id === localId) throw new TransportConfigError(`peer ${JSON.stringify(id)} is the local member; list only the other members`);
    if (seen.has(id)) throw new TransportConfigError(`peer ${JSON.stringify(id)} is listed twice`);
    seen.add(id);
    try {
      parseHostPort(peer.address, false);
    } catch (error) {
      throw new TransportConfigError(`peer ${JSON.stringify(id)}: ${(error as Error).message}`);
    }
  }
}

export function consoleLogger(localId: NodeId): TransportLogger {
  const prefix = `[raft-transport ${localId}]`;
  return {
    info: (line) => console.info(`${prefix} ${line}`),
    warn: (line) => console.warn(`${prefix} ${line}`),
  };
}
