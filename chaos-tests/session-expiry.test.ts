/**
 * The session-expiry rule of the chaos runs on listings written by hand: an
 * abandoned session may stay until its TTL and the leader's grace have passed,
 * and no listed session may be untracked or past its TTL.
 */
import type { AbandonedClient } from './clients';
import { ListedSession, SessionListing, awaitAbandonedExpiry, expiryGraceMs, overdueSessions } from './session-expiry';

const EXPIRY_INTERVAL_MS = 1_000;
const GRACE_MS = expiryGraceMs(EXPIRY_INTERVAL_MS);
const session = (id: number, overrides: Partial<ListedSession> = {}): ListedSession => ({ id, clientName: `c${id}`, ttlMs: 10_000, fhs: 0, tracked: true, sinceKeepAliveMs: 100, ...overrides });
const listing = (...sessions: ListedSession[]): SessionListing => ({ expiryIntervalMs: EXPIRY_INTERVAL_MS, sessions });
const killed: AbandonedClient = { client: 'sdk-2', sessionId: 7, fh: 3, killedAtMs: 1_000 };

describe('overdue sessions after a run', () => {
  it('allows an abandoned session until its TTL and the grace have passed', () => {
    const held = listing(session(7, { fhs: 1, sinceKeepAliveMs: 9_000 }));
    expect(overdueSessions(held, [killed], killed.killedAtMs + 10_000 + GRACE_MS)).toEqual([]);
  });

  it('names an abandoned session still listed after its TTL and the grace, with the fh its client held', () => {
    const held = listing(session(7, { fhs: 1, sinceKeepAliveMs: 9_000 }));
    expect(overdueSessions(held, [killed], killed.killedAtMs + 10_000 + GRACE_MS + 1)).toEqual([
      'session 7 (c7) with 1 open fh: its client (sdk-2) was killed 15.0 s ago holding fh 3; TTL 10.0 s',
    ]);
  });

  it('names a session the leader does not track, and one past its TTL by its last keepalive', () => {
    const overdue = overdueSessions(listing(session(1), session(2, { tracked: false }), session(3, { fhs: 2, sinceKeepAliveMs: 10_000 + GRACE_MS + 1 })), [], 0);
    expect(overdue).toEqual([
      'session 2 (c2) with 0 open fhs is not tracked by the leader\'s expiry: it would never expire',
      'session 3 (c3) with 2 open fhs: last kept alive 15.0 s ago; TTL 10.0 s',
    ]);
  });

  it('stops listing once every abandoned session is gone', async () => {
    let clock = killed.killedAtMs;
    const listings = [listing(session(7)), listing(session(7)), listing(session(1))];
    let calls = 0;
    const result = await awaitAbandonedExpiry(async () => { clock += 100; return listings[Math.min(calls++, 2)]; }, [killed], () => clock, 60_000);
    expect(calls).toBe(3);
    expect(result.overdue).toEqual([]);
  });
});
