/**
 * The leader's view of session liveness: when each session last kept alive
 * and which ones ran past their TTL. Pure: no timers, no clock, no I/O — the
 * service passes a monotonic clock reading to every call and proposes
 * `expireSession` for what expiredAt() names. Must never decide expiry on a
 * follower (the service calls stepDown() when leadership is lost) and never
 * expire a session earlier than a full TTL after this member became leader.
 *
 * Every session keeps its own TTL: one opened through an earlier leader gets
 * its TTL (read from the state) afresh from the moment of takeover.
 */

export interface SessionTrackerOptions {
  /** At most this many sessions are tracked; opened() refuses beyond. */
  maxSessions: number;
}

interface Liveness {
  lastKeepAliveMs: number;
  ttlMs: number;
}

/** One tracked session as the leader sees it at a moment (the Admin session listing reads it). */
export interface SessionLiveness {
  /** The TTL this leader enforces. */
  ttlMs: number;
  /** Since its last keepalive here (since takeover for an inherited session); never negative. */
  sinceKeepAliveMs: number;
  /** ttlMs - sinceKeepAliveMs: negative = overdue, its expiry not yet applied. */
  expiresInMs: number;
}

export class SessionTracker {
  private readonly sessions = new Map<number, Liveness>();
  private leading = false;

  constructor(private readonly options: SessionTrackerOptions) {
    if (!Number.isInteger(options.maxSessions) || options.maxSessions < 1) {
      throw new Error(`SessionTracker: bad options ${JSON.stringify(options)}`);
    }
  }

  get isLeading(): boolean {
    return this.leading;
  }

  get size(): number {
    return this.sessions.size;
  }

  hasRoom(): boolean {
    return this.sessions.size < this.options.maxSessions;
  }

  /** This member became leader (and has applied everything committed before): every listed session starts a full TTL now. */
  becomeLeader(sessions: ReadonlyArray<{ id: number; ttlMs: number }>, nowMs: number): void {
    if (sessions.length > this.options.maxSessions) throw new Error(`SessionTracker: ${sessions.length} sessions exceed the limit ${this.options.maxSessions}`);
    this.sessions.clear();
    for (const { id, ttlMs } of sessions) {
      if (!(ttlMs > 0)) throw new Error(`SessionTracker: session ${id} has TTL ${ttlMs}`);
      this.sessions.set(id, { lastKeepAliveMs: nowMs, ttlMs });
    }
    this.leading = true;
  }

  /** Leadership lost: forget everything; the next leader decides from its own clock. */
  stepDown(): void {
    this.sessions.clear();
    this.leading = false;
  }

  /** A session opened through this leader (its openSession applied). */
  opened(sessionId: number, ttlMs: number, nowMs: number): void {
    this.assertLeading('opened');
    if (!this.sessions.has(sessionId) && !this.hasRoom()) throw new Error(`SessionTracker: more than ${this.options.maxSessions} sessions`);
    this.sessions.set(sessionId, { lastKeepAliveMs: nowMs, ttlMs });
  }

  /** Resets the session's TTL; its TTL, or undefined if this leader does not know the session (expired, closed or never opened). */
  keepAlive(sessionId: number, nowMs: number): number | undefined {
    this.assertLeading('keepAlive');
    const liveness = this.sessions.get(sessionId);
    if (!liveness) return undefined;
    // A clock that steps back never shortens a session's life.
    liveness.lastKeepAliveMs = Math.max(liveness.lastKeepAliveMs, nowMs);
    return liveness.ttlMs;
  }

  /** The session is closed or its expiry applied. */
  forget(sessionId: number): void {
    this.sessions.delete(sessionId);
  }

  /** How the session stands at nowMs, or undefined when this leader does not track it (or does not lead). Reads only. */
  liveness(sessionId: number, nowMs: number): SessionLiveness | undefined {
    const liveness = this.leading ? this.sessions.get(sessionId) : undefined;
    if (!liveness) return undefined;
    const sinceKeepAliveMs = Math.max(0, nowMs - liveness.lastKeepAliveMs);
    return { ttlMs: liveness.ttlMs, sinceKeepAliveMs, expiresInMs: liveness.ttlMs - sinceKeepAliveMs };
  }

  /** Sessions whose TTL ran out by nowMs, longest overdue first, at most `limit` (one round's proposals). */
  expiredAt(nowMs: number, limit: number): number[] {
    if (!this.leading || limit < 1) return [];
    const overdue: Array<{ id: number; deadlineMs: number }> = [];
    for (const [id, liveness] of this.sessions) {
      const deadlineMs = liveness.lastKeepAliveMs + liveness.ttlMs;
      if (deadlineMs <= nowMs) overdue.push({ id, deadlineMs });
    }
    overdue.sort((a, b) => a.deadlineMs - b.deadlineMs || a.id - b.id);
    return overdue.slice(0, limit).map((session) => session.id);
  }

  private assertLeading(what: string): void {
    if (!this.leading) throw new Error(`SessionTracker.${what} called while not leading`);
  }
}
