import { SessionTracker } from './sessions';

const TTL_MS = 10_000;
/** An inherited session's own TTL. */
const TAKEOVER_MS = 60_000;

function tracker(maxSessions = 100): SessionTracker {
  return new SessionTracker({ maxSessions });
}

describe('the leader\'s session keepalive tracking', () => {
  it('expires a session opened here once its own TTL passes without a keepalive', () => {
    const t = tracker();
    t.becomeLeader([], 0);
    t.opened(7, TTL_MS, 1_000);
    expect(t.expiredAt(1_000 + TTL_MS - 1, 10)).toEqual([]);
    expect(t.expiredAt(1_000 + TTL_MS, 10)).toEqual([7]);
  });

  it('a keepalive starts the TTL again', () => {
    const t = tracker();
    t.becomeLeader([], 0);
    t.opened(7, TTL_MS, 0);
    expect(t.keepAlive(7, 9_000)).toBe(TTL_MS);
    expect(t.expiredAt(TTL_MS + 5_000, 10)).toEqual([]);
    expect(t.expiredAt(9_000 + TTL_MS, 10)).toEqual([7]);
  });

  it('gives every inherited session its own full TTL from the moment of leadership', () => {
    const t = tracker();
    t.becomeLeader([{ id: 3, ttlMs: TAKEOVER_MS }, { id: 4, ttlMs: TAKEOVER_MS }], 50_000);
    expect(t.expiredAt(50_000 + TAKEOVER_MS - 1, 10)).toEqual([]);
    expect(t.expiredAt(50_000 + TAKEOVER_MS, 10)).toEqual([3, 4]);
  });

  it('a clock that steps back never shortens a session', () => {
    const t = tracker();
    t.becomeLeader([], 0);
    t.opened(1, TTL_MS, 5_000);
    t.keepAlive(1, 1_000);
    expect(t.expiredAt(5_000 + TTL_MS - 1, 10)).toEqual([]);
  });

  it('names at most `limit` sessions per round, longest overdue first', () => {
    const t = tracker();
    t.becomeLeader([], 0);
    for (let id = 1; id <= 5; id++) t.opened(id, TTL_MS, 100 * (6 - id));
    expect(t.expiredAt(1_000_000, 2)).toEqual([5, 4]);
    t.forget(5);
    t.forget(4);
    expect(t.expiredAt(1_000_000, 10)).toEqual([3, 2, 1]);
  });

  it('does not know a session that expired or was closed: a keepalive for it answers undefined', () => {
    const t = tracker();
    t.becomeLeader([{ id: 9, ttlMs: TAKEOVER_MS }], 0);
    t.forget(9);
    expect(t.keepAlive(9, 1)).toBeUndefined();
    expect(t.keepAlive(12345, 1)).toBeUndefined();
  });

  it('after stepping down expires nothing and refuses keepalives, then starts afresh as leader again', () => {
    const t = tracker();
    t.becomeLeader([], 0);
    t.opened(1, TTL_MS, 0);
    t.stepDown();
    expect(t.isLeading).toBe(false);
    expect(t.expiredAt(1_000_000, 10)).toEqual([]);
    expect(() => t.keepAlive(1, 1)).toThrow(/not leading/);
    t.becomeLeader([{ id: 1, ttlMs: TAKEOVER_MS }], 2_000_000);
    expect(t.expiredAt(2_000_000 + TAKEOVER_MS - 1, 10)).toEqual([]);
  });

  it('refuses to track more sessions than its limit', () => {
    const t = tracker(2);
    t.becomeLeader([{ id: 1, ttlMs: TAKEOVER_MS }], 0);
    t.opened(2, TTL_MS, 0);
    expect(t.hasRoom()).toBe(false);
    expect(() => t.opened(3, TTL_MS, 0)).toThrow(/more than 2 sessions/);
    expect(() => t.becomeLeader([{ id: 1, ttlMs: TAKEOVER_MS }, { id: 2, ttlMs: TAKEOVER_MS }, { id: 3, ttlMs: TAKEOVER_MS }], 0)).toThrow(/exceed the limit/);
  });

  it('refuses nonsensical options', () => {
    expect(() => new SessionTracker({ maxSessions: 0 })).toThrow(/bad options/);
    expect(() => new SessionTracker({ maxSessions: 10 }).becomeLeader([{ id: 1, ttlMs: 0 }], 0)).toThrow(/TTL 0/);
  });

  describe('what an operator reads of a session (liveness)', () => {
    it('counts the time since the last keepalive and what is left of the TTL', () => {
      const t = tracker();
      t.becomeLeader([], 0);
      t.opened(7, TTL_MS, 1_000);
      expect(t.liveness(7, 1_000)).toEqual({ ttlMs: TTL_MS, sinceKeepAliveMs: 0, expiresInMs: TTL_MS });
      expect(t.liveness(7, 4_000)).toEqual({ ttlMs: TTL_MS, sinceKeepAliveMs: 3_000, expiresInMs: TTL_MS - 3_000 });
      t.keepAlive(7, 5_000);
      expect(t.liveness(7, 5_500)).toEqual({ ttlMs: TTL_MS, sinceKeepAliveMs: 500, expiresInMs: TTL_MS - 500 });
    });

    it('shows an overdue session whose expiry is not applied yet with a negative time left, exactly when expiredAt names it', () => {
      const t = tracker();
      t.becomeLeader([], 0);
      t.opened(7, TTL_MS, 0);
      expect(t.liveness(7, TTL_MS)!.expiresInMs).toBe(0);
      expect(t.expiredAt(TTL_MS, 10)).toEqual([7]);
      expect(t.liveness(7, TTL_MS + 250)!.expiresInMs).toBe(-250);
    });

    it('counts an inherited session from the takeover, with its own TTL', () => {
      const t = tracker();
      t.becomeLeader([{ id: 3, ttlMs: TAKEOVER_MS }], 50_000);
      expect(t.liveness(3, 51_000)).toEqual({ ttlMs: TAKEOVER_MS, sinceKeepAliveMs: 1_000, expiresInMs: TAKEOVER_MS - 1_000 });
    });

    it('never shows a negative time since the keepalive when the clock steps back', () => {
      const t = tracker();
      t.becomeLeader([], 0);
      t.opened(1, TTL_MS, 5_000);
      expect(t.liveness(1, 4_000)).toEqual({ ttlMs: TTL_MS, sinceKeepAliveMs: 0, expiresInMs: TTL_MS });
    });

    it('knows nothing of a session forgotten, never opened, or after stepping down', () => {
      const t = tracker();
      t.becomeLeader([{ id: 1, ttlMs: TTL_MS }, { id: 2, ttlMs: TTL_MS }], 0);
      t.forget(1);
      expect(t.liveness(1, 10)).toBeUndefined();
      expect(t.liveness(99, 10)).toBeUndefined();
      expect(t.liveness(2, 10)).toBeDefined();
      t.stepDown();
      expect(t.liveness(2, 10)).toBeUndefined();
    });

    it('changes nothing: reading a session neither refreshes nor expires it', () => {
      const t = tracker();
      t.becomeLeader([], 0);
      t.opened(7, TTL_MS, 0);
      for (let ms = 0; ms < TTL_MS; ms += 1_000) t.liveness(7, ms);
      expect(t.expiredAt(TTL_MS, 10)).toEqual([7]);
      expect(t.size).toBe(1);
    });
  });
});
