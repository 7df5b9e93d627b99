/**
 * What only the leader does, on timers: session liveness (keepalive
 * bookkeeping in the pure SessionTracker, expiry proposed as commands, every
 * session's own TTL given afresh after a leader change), version retention
 * passes, and block collection. Each duty proposes commands that apply
 * re-checks at its log position, so a duty running on a deposed leader
 * changes nothing it should not. Must never decide expiry, retention or
 * collection on a follower, and never run two rounds at once.
 */
import { NotLeaderError } from '../../raft/core/types';
import { RaftLogger } from '../../raft/node/node-logger';
import { NodeStoppedError } from '../../raft/node/pending';
import { RaftNode } from '../../raft/node/raft-node';
import { encodeCommand } from '../state/commands';
import { CommandResult, MetaStateMachine } from '../state/meta-state-machine';
import { MAX_BLOCK_IDS_PER_COMMAND } from '../state/block-refs';
import { RetainResult } from '../state/history-ops';
import { MetaMetrics } from './meta-metrics';
import { SessionLiveness, SessionTracker } from './sessions';

export interface LeaderDutiesOptions {
  requestTimeoutMs: number;
  /** How often the leader looks for expired sessions. */
  expiryIntervalMs: number;
  /** expireSession proposals per round at most. */
  maxExpiriesPerRound: number;
  /** Sessions the leader tracks at most. */
  maxSessions: number;
  retention: { keepLast: number; keepYoungerThanMs: number; keepConflictsYoungerThanMs: number };
  blockGcGraceMs: number;
  /** How often a retention pass and a block collection run. */
  dutyIntervalMs: number;
  wallClockMs: () => number;
  monotonicMs: () => number;
  logger: RaftLogger;
  metrics?: MetaMetrics;
  /** debug-unsafe no-session-expiry (HANDLEFS_DEBUG_UNSAFE=1 only): sessions that ran out are never expired. */
  debugNoSessionExpiry?: boolean;
}

/** The leader's tracker as the Admin session listing reads it, at one moment. */
export interface TrackedView {
  /** The term whose sessions the tracker holds. */
  term: number;
  wallClockMs: number;
  expiryIntervalMs: number;
  maxExpiriesPerRound: number;
  /** A tracked session's liveness at the view's moment; undefined when the tracker does not know it. */
  liveness(sessionId: number): SessionLiveness | undefined;
}

/** Sessions opened while the leader is still loading its list, remembered until it is loaded. */
const MAX_OPENS_DURING_TAKEOVER = 10_000;
const LEADERSHIP_WATCH_MS = 50;
/** retainVersions proposals per pass at most; the scan resumes where it stopped. */
const MAX_RETENTIONS_PER_PASS = 64;

export class LeaderDuties {
  private readonly tracker: SessionTracker;
  /** The term whose session list the tracker holds; 0 when not leading. */
  private trackedTerm = 0;
  private opensDuringTakeover: Array<{ sessionId: number; ttlMs: number }> = [];
  private timer: NodeJS.Timeout | undefined;
  private roundRunning = false;
  private lastExpiryScanMs = -Infinity;
  private lastDutyMs = -Infinity;
  /** Where the next retention pass resumes its inode scan (0 = from the start). */
  private retentionCursor = 0;
  /** The last candidate block the previous collection proposed ('' = start from the first). */
  private collectionCursor = '';

  constructor(private readonly node: RaftNode, private readonly machine: MetaStateMachine, private readonly options: LeaderDutiesOptions) {
    this.tracker = new SessionTracker({ maxSessions: options.maxSessions });
  }

  start(): void {
    if (this.timer) return;
    // Leadership is watched often (a new leader answers KeepAlive only once it loaded its sessions); the duties run at their own intervals.
    this.timer = setInterval(() => void this.round(), Math.min(LEADERSHIP_WATCH_MS, this.options.expiryIntervalMs));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  // ---- what the API handlers ask ---------------------------------------------

  hasRoom(): boolean {
    return this.tracker.hasRoom();
  }

  /** An openSession applied through this member. */
  sessionOpened(sessionId: number, ttlMs: number): void {
    if (this.tracker.isLeading) this.tracker.opened(sessionId, ttlMs, this.options.monotonicMs());
    else if (this.opensDuringTakeover.length < MAX_OPENS_DURING_TAKEOVER) this.opensDuringTakeover.push({ sessionId, ttlMs });
  }

  /** The session's TTL after this keepalive, or undefined when the leader does not know it (expired, closed). Leader only. */
  keepAlive(sessionId: number): number | undefined {
    if (this.loadedTerm() === undefined) throw new NodeStoppedError('this leader is still loading its sessions; retry shortly');
    return this.tracker.keepAlive(sessionId, this.options.monotonicMs());
  }

  /** The term whose sessions the tracker holds, or undefined while this leader is still loading them; NotLeaderError on a follower. */
  private loadedTerm(): number | undefined {
    const status = this.node.status();
    if (status.role !== 'leader') throw new NotLeaderError(status.leaderId, '');
    return this.tracker.isLeading && this.trackedTerm === status.term ? status.term : undefined;
  }

  /**
   * A read-only view of the keepalive tracker for the Admin session listing:
   * NotLeaderError on a follower, undefined while this leader has not loaded
   * its term's sessions yet (the same condition keepAlive waits for). Read
   * the view at once: leadership may change at the next await.
   */
  trackedView(): TrackedView | undefined {
    const term = this.loadedTerm();
    if (term === undefined) return undefined;
    const nowMs = this.options.monotonicMs();
    return {
      term,
      wallClockMs: this.options.wallClockMs(),
      expiryIntervalMs: this.options.expiryIntervalMs,
      maxExpiriesPerRound: this.options.maxExpiriesPerRound,
      liveness: (sessionId) => this.tracker.liveness(sessionId, nowMs),
    };
  }

  sessionClosed(sessionId: number): void {
    if (this.tracker.isLeading) this.tracker.forget(sessionId);
  }

  // ---- rounds -------------------------------------------------------------------

  /** One round: follow leadership changes, load sessions on takeover, expire what ran out, then retention and collection when due. */
  private async round(): Promise<void> {
    if (this.roundRunning) return;
    this.roundRunning = true;
    try {
      const status = this.node.status();
      if (status.role !== 'leader') {
        if (this.trackedTerm !== 0 || this.tracker.isLeading) this.tracker.stepDown();
        this.trackedTerm = 0;
        this.opensDuringTakeover = [];
        return;
      }
      if (this.trackedTerm !== status.term) {
        await this.takeOver(status.term);
        return;
      }
      const nowMs = this.options.monotonicMs();
      if (nowMs - this.lastExpiryScanMs >= this.options.expiryIntervalMs) {
        this.lastExpiryScanMs = nowMs;
        await this.expireSessions();
      }
      if (nowMs - this.lastDutyMs >= this.options.dutyIntervalMs) {
        this.lastDutyMs = nowMs;
        await this.retentionPass();
        await this.collectBlocks();
      }
    } catch (error) {
      this.options.logger.warn('leader duty round failed', { error: (error as Error).message });
    } finally {
      this.roundRunning = false;
    }
  }

  private async propose(command: Parameters<typeof encodeCommand>[0]): Promise<CommandResult> {
    return (await this.node.propose(encodeCommand(command), { timeoutMs: this.options.requestTimeoutMs })) as CommandResult;
  }

  /** Every session committed before this term gets its own full TTL from now (issue 3 §1). */
  private async takeOver(term: number): Promise<void> {
    this.tracker.stepDown();
    this.trackedTerm = 0;
    // After a ReadIndex in this term, everything committed before it is applied here.
    await this.node.readIndex({ timeoutMs: this.options.requestTimeoutMs });
    const sessions = await this.machine.query.sessions();
    const now = this.node.status();
    if (now.role !== 'leader' || now.term !== term) return;
    this.tracker.becomeLeader(sessions, this.options.monotonicMs());
    for (const open of this.opensDuringTakeover) this.tracker.opened(open.sessionId, open.ttlMs, this.options.monotonicMs());
    this.opensDuringTakeover = [];
    this.trackedTerm = term;
    this.options.logger.info('session tracking started', { term, sessions: sessions.length });
  }

  private async expireSessions(): Promise<void> {
    if (this.options.debugNoSessionExpiry === true) return;
    for (const sessionId of this.tracker.expiredAt(this.options.monotonicMs(), this.options.maxExpiriesPerRound)) {
      const result = await this.propose({ op: 'expireSession', sessionId, nowMs: this.options.wallClockMs() });
      this.tracker.forget(sessionId);
      if (result.ok && (result.value as { expired?: boolean }).expired) this.options.metrics?.sessionsExpired();
      this.options.logger.info('session expired', { sessionId });
    }
  }

  /** Up to MAX_RETENTIONS_PER_PASS files that keep more than the policy needs; the scan resumes next pass. */
  private async retentionPass(): Promise<void> {
    await this.node.readIndex({ timeoutMs: this.options.requestTimeoutMs });
    const { handles, next } = await this.machine.query.retentionCandidates(this.retentionCursor, this.options.retention.keepLast, MAX_RETENTIONS_PER_PASS);
    this.retentionCursor = next;
    for (const handle of handles) {
      const result = await this.propose({ op: 'retainVersions', handle, nowMs: this.options.wallClockMs(), ...this.options.retention });
      if (!result.ok) {
        this.options.logger.warn('retention pass refused', { handle, error: result.message });
        continue;
      }
      const { droppedVersions, droppedCopies } = result.value as RetainResult;
      if (droppedVersions.length + droppedCopies.length > 0) this.options.metrics?.versionsDropped(droppedVersions.length + droppedCopies.length);
    }
  }

  /** Proposes the unreferenced blocks; apply keeps only those past the grace period with no pin or reference. */
  private async collectBlocks(): Promise<void> {
    await this.node.readIndex({ timeoutMs: this.options.requestTimeoutMs });
    const ids = await this.machine.query.unreferencedBlocks(MAX_BLOCK_IDS_PER_COMMAND, this.collectionCursor);
    // A short page reached the end: the next round starts from the first candidate again.
    this.collectionCursor = ids.length === MAX_BLOCK_IDS_PER_COMMAND ? ids[ids.length - 1] : '';
    if (ids.length === 0) return;
    const result = await this.propose({ op: 'collectBlocks', ids, nowMs: this.options.wallClockMs(), graceMs: this.options.blockGcGraceMs });
    if (result.ok) {
      const collected = (result.value as { collected: string[] }).collected.length;
      if (collected > 0) this.options.logger.info('blocks collected', { collected, candidates: ids.length });
    }
  }
}
