/**
 * The node driver's Prometheus metrics, named after the questions an operator
 * asks ("how long does commit take", "how many entries per fsync", "who leads").
 * Owns metric registration only; must never register on prom-client's global
 * registry behind the caller's back (a private Registry is used when none is given).
 * Several members in one process share metrics through the `member_id` label.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const LATENCY_BUCKETS_SECONDS = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS_ENTRIES = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

type Label = 'member_id';

function counter(registry: Registry, name: string, help: string, labelNames: string[]): Counter<string> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<string>;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

function gauge(registry: Registry, name: string, help: string): Gauge<Label> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<Label>;
  return new Gauge({ name, help, labelNames: ['member_id'], registers: [registry] });
}

function histogram(registry: Registry, name: string, help: string, buckets: number[]): Histogram<Label> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Histogram<Label>;
  return new Histogram({ name, help, labelNames: ['member_id'], buckets, registers: [registry] });
}

export type FailureReason = 'not_leader' | 'rejected' | 'dropped' | 'timeout' | 'overloaded' | 'stopped';

/** Children bound to one member id, so the hot path does no label lookups. */
export class NodeMetrics {
  readonly registry: Registry;
  readonly proposals: Counter.Internal;
  private readonly proposalsFailed: Counter<string>;
  private readonly messagesDropped: Counter<string>;
  /** The core's drop counts already added to messagesDropped, by reason. */
  private readonly droppedCounted = new Map<string, number>();
  readonly commitLatencySeconds: Histogram.Internal<Label>;
  readonly readIndexLatencySeconds: Histogram.Internal<Label>;
  readonly persistBatchEntries: Histogram.Internal<Label>;
  readonly persistLatencySeconds: Histogram.Internal<Label>;
  readonly applyLatencySeconds: Histogram.Internal<Label>;
  readonly leaderChanges: Counter.Internal;
  readonly localSnapshots: Counter.Internal;
  readonly localSnapshotSeconds: Histogram.Internal<Label>;
  readonly term: Gauge.Internal<Label>;
  readonly commitIndex: Gauge.Internal<Label>;
  readonly appliedIndex: Gauge.Internal<Label>;
  readonly isLeader: Gauge.Internal<Label>;
  readonly pendingProposals: Gauge.Internal<Label>;

  constructor(registry: Registry | undefined, private readonly memberId: string) {
    this.registry = registry ?? new Registry();
    const r = this.registry;
    const m = { member_id: memberId };
    this.proposals = counter(r, 'handlefs_raft_proposals_total', 'Proposals submitted to this member (data and membership changes).', ['member_id']).labels(m);
    this.proposalsFailed = counter(r, 'handlefs_raft_proposals_failed_total', 'Proposals that did not apply, by reason (not_leader, rejected, dropped, timeout, overloaded, stopped).', ['member_id', 'reason']);
    this.messagesDropped = counter(r, 'handlefs_raft_messages_dropped_total', 'Messages the Raft core refused, by reason (unknown_sender, stale_term, malformed, vote_in_lease, ...).', ['member_id', 'reason']);
    this.commitLatencySeconds = histogram(r, 'handlefs_raft_commit_latency_seconds', 'How long a proposal took from propose() to applied on this member.', LATENCY_BUCKETS_SECONDS).labels(m);
    this.readIndexLatencySeconds = histogram(r, 'handlefs_raft_read_index_latency_seconds', 'How long a linearizable read waited for its read index to be confirmed and applied.', LATENCY_BUCKETS_SECONDS).labels(m);
    this.persistBatchEntries = histogram(r, 'handlefs_raft_persist_batch_entries', 'How many log entries each synchronous storage write carried (group commit).', BATCH_BUCKETS_ENTRIES).labels(m);
    this.persistLatencySeconds = histogram(r, 'handlefs_raft_persist_latency_seconds', 'How long each synchronous storage write (fsync) took.', LATENCY_BUCKETS_SECONDS).labels(m);
    this.applyLatencySeconds = histogram(r, 'handlefs_raft_apply_latency_seconds', 'How long the state machine took to apply (and sync) one batch of committed entries.', LATENCY_BUCKETS_SECONDS).labels(m);
    this.leaderChanges = counter(r, 'handlefs_raft_leader_changes_total', 'How many times this member saw the leader change (including to "no leader").', ['member_id']).labels(m);
    this.localSnapshots = counter(r, 'handlefs_raft_local_snapshots_total', 'Snapshots this member took of its state machine to compact its log.', ['member_id']).labels(m);
    this.localSnapshotSeconds = histogram(r, 'handlefs_raft_local_snapshot_duration_seconds', 'How long one local snapshot took: reading the state machine (applies wait) plus saving it and compacting the log (the Ready loop waits).', LATENCY_BUCKETS_SECONDS).labels(m);
    this.term = gauge(r, 'handlefs_raft_term', 'The current Raft term seen by this member.').labels(m);
    this.commitIndex = gauge(r, 'handlefs_raft_commit_index', 'The highest log index this member knows is committed.').labels(m);
    this.appliedIndex = gauge(r, 'handlefs_raft_applied_index', 'The highest log index applied to the state machine on this member.').labels(m);
    this.isLeader = gauge(r, 'handlefs_raft_is_leader', '1 if this member is the leader, else 0.').labels(m);
    this.pendingProposals = gauge(r, 'handlefs_raft_pending_proposals', 'Proposals waiting to be applied on this member.').labels(m);
  }

  /**
   * Per-peer replication lag, read from the leader's progress at scrape time:
   * `handlefs_raft_peer_lag_entries{member_id, peer}` = the leader's last log
   * index minus what the peer is known to hold. Only a leader reports peers.
   */
  watchPeers(status: () => { role: string; lastIndex: number; progress: ReadonlyArray<{ id: string; match: number }> }): void {
    if (this.registry.getSingleMetric('handlefs_raft_peer_lag_entries')) return;
    const memberId = this.memberId;
    new Gauge({
      name: 'handlefs_raft_peer_lag_entries',
      help: 'On the leader: how many log entries each peer is behind the leader\'s last index.',
      labelNames: ['member_id', 'peer'],
      registers: [this.registry],
      collect() {
        this.reset();
        const now = status();
        if (now.role !== 'leader') return;
        for (const peer of now.progress) {
          if (peer.id !== memberId) this.set({ member_id: memberId, peer: peer.id }, Math.max(0, now.lastIndex - peer.match));
        }
      },
    });
  }

  /**
   * `handlefs_raft_last_contact_seconds{member_id}`, read at scrape time:
   * seconds since this member last heard from a leader (0 on the leader; since
   * the node started when it never has). Grows on every member that lost its
   * leader, so "no leader as each member sees it" needs no leader to report it.
   */
  watchLastContact(lastContactSeconds: () => number): void {
    if (this.registry.getSingleMetric('handlefs_raft_last_contact_seconds')) return;
    const m = { member_id: this.memberId };
    new Gauge({
      name: 'handlefs_raft_last_contact_seconds',
      help: 'Seconds since this member last heard from a leader (0 on the leader; since the start when it never has).',
      labelNames: ['member_id'],
      registers: [this.registry],
      collect() {
        this.set(m, lastContactSeconds());
      },
    });
  }

  proposalFailed(reason: FailureReason): void {
    this.proposalsFailed.inc({ member_id: this.memberId, reason });
  }

  /**
   * Brings the drop counter level with the core's running totals; returns the
   * reasons that grew since the last call and by how much.
   */
  syncCoreDrops(totals: Record<string, number>): Record<string, number> {
    const grown: Record<string, number> = {};
    for (const [reason, total] of Object.entries(totals)) {
      const delta = total - (this.droppedCounted.get(reason) ?? 0);
      if (delta <= 0) continue;
      this.messagesDropped.inc({ member_id: this.memberId, reason }, delta);
      this.droppedCounted.set(reason, total);
      grown[reason] = delta;
    }
    return grown;
  }
}
