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
});
