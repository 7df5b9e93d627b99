/**
 * The transport's metrics (prom-client) and its rate-limited drop log. Owns:
 * metric names and the closed list of drop reasons. Must never log per message
 * without a limit: a flood of bad input must not become a flood of log lines.
 */
import { Counter, Registry } from 'prom-client';
import { TransportLogger } from './options';

/** Every reason a message can be dropped by the transport (the core counts its own: unknown sender, stale term). */
export type DropReason =
  // sending side
  | 'unknown_peer' // send() to an id not in setPeers
  | 'queue_full' // the peer's queue hit its count or byte bound
  | 'peer_unreachable' // queued, then the stream to the peer failed
  | 'fault_injected' // the fault hook said drop
  | 'snapshot_busy' // a snapshot stream to (or, receiving, from anyone over the limit) is already running
  | 'closed' // the transport is closing
  // both sides
  | 'oversized' // above limits.maxMessageBytes
  | 'invalid' // decodable but fails validation (unknown enum, bad id, malformed entries)
  // receiving side
  | 'undecodable' // the bytes are not a MessageBatch / SnapshotChunk
  | 'wrong_recipient' // `to` is not the local id
  | 'handler_error' // the onMessage callback threw
  | 'snapshot_invalid' // chunk offsets not contiguous, missing header, empty middle chunk
  | 'snapshot_too_large' // above limits.maxSnapshotBytes
  | 'snapshot_incomplete' // the stream ended before its last chunk
  | 'snapshot_timeout'; // took longer than limits.snapshotTimeoutMs

export class TransportMetrics {
  readonly messagesSent: Counter<string>;
  readonly messagesReceived: Counter<string>;
  readonly messagesDropped: Counter<'reason'>;
  readonly snapshotBytesSent: Counter<string>;
  readonly peerReconnects: Counter<'peer'>;

  constructor(readonly registry: Registry) {
    this.messagesSent = counter(registry, 'handlefs_raft_transport_messages_sent_total', 'Raft messages written to a peer stream (one Snap per snapshot stream)', []);
    this.messagesReceived = counter(registry, 'handlefs_raft_transport_messages_received_total', 'Raft messages received, validated and handed to the node', []);
    this.messagesDropped = counter(registry, 'handlefs_raft_transport_messages_dropped_total', 'Raft messages (or undecodable frames) dropped by the transport, by reason', ['reason']);
    this.snapshotBytesSent = counter(registry, 'handlefs_raft_transport_snapshot_bytes_sent_total', 'Snapshot data bytes written to InstallSnapshot streams', []);
    this.peerReconnects = counter(registry, 'handlefs_raft_transport_peer_reconnects_total', 'Streams reopened to a peer after a failure', ['peer']);
  }

  dropped(reason: DropReason, count = 1): void {
    this.messagesDropped.inc({ reason }, count);
  }

  /** The current count for one drop reason (tests and status pages). */
  async droppedCount(reason: DropReason): Promise<number> {
    const snapshot = await this.messagesDropped.get();
    return snapshot.values.find((v) => v.labels.reason === reason)?.value ?? 0;
  }
}

/** Reuses a counter already in the registry (a transport recreated in the same process) instead of failing on the duplicate name. */
function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[]): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) {
    if (!(existing instanceof Counter)) throw new Error(`metric ${name} is already registered and is not a counter`);
    return existing as Counter<L>;
  }
  return new Counter<L>({ name, help, labelNames, registers: [registry] });
}

/** At most one line per key per interval; the next line says how many were suppressed. */
export class RateLimitedLog {
  private readonly lastLineAtMs = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();
  /** Bounds the key map: keys are drop reasons and peer ids, so this is never reached in practice. */
  private static readonly KEYS_MAX = 1024;

  constructor(private readonly logger: TransportLogger, private readonly intervalMs: number) {}

  warn(key: string, line: string): void {
    const nowMs = Date.now();
    const last = this.lastLineAtMs.get(key);
    if (last !== undefined && nowMs - last < this.intervalMs) {
      this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1);
      return;
    }
    if (last === undefined && this.lastLineAtMs.size >= RateLimitedLog.KEYS_MAX) this.lastLineAtMs.clear();
    const suppressedCount = this.suppressed.get(key) ?? 0;
    this.suppressed.delete(key);
    this.lastLineAtMs.set(key, nowMs);
    this.logger.warn(suppressedCount > 0 ? `${line} (${suppressedCount} similar lines suppressed)` : line);
  }
}
