/**
 * The session listing's join of the state's sessions with the leader's real
 * SessionTracker, in the cases a live cluster does not produce on demand: a
 * session the tracker lost (untracked), one that expired or opened while the
 * listing read, a leader still loading its sessions, a leadership change
 * mid-call, and the bounds. The node is reduced to the two reads the listing
 * makes (status, ReadIndex); deploy/ops/sessions.test.ts runs the real thing.
 */
import * as grpc from '@grpc/grpc-js';
import { SessionSummary } from '../state/queries';
import { TrackedView } from './leader-duties';
import { SessionTracker } from './sessions';
import { SESSIONS_LISTED_MAX, SessionsAdmin, SessionsRequestError } from './sessions-admin';

const TTL_MS = 2_000;

function summary(id: number, fhCount = 0): SessionSummary {
  return { id, ttlMs: TTL_MS, clientName: `c${id}`, createdAtMs: 1_700_000_000_000 + id, fhCount };
}

interface Setup {
  tracker: SessionTracker;
  nowMs: { value: number };
  term: { value: number };
  loaded: { value: boolean };
  reads: SessionSummary[][];
  readIndexes: number;
  admin: SessionsAdmin;
}

/**
 * A leader whose tracker is loaded; `reads` are what successive state reads
 * return (the last one repeats); `afterRead(n)` runs as read n completes.
 */
function setup(reads: SessionSummary[][], afterRead: (read: number, s: Setup) => void = () => {}): Setup {
  const tracker = new SessionTracker({ maxSessions: 100_000 });
  tracker.becomeLeader([], 0);
  const s: Setup = { tracker, nowMs: { value: 0 }, term: { value: 3 }, loaded: { value: true }, reads, readIndexes: 0, admin: undefined! };
  let read = 0;
  const view = (): TrackedView | undefined => {
    if (!s.loaded.value) return undefined;
    const nowMs = s.nowMs.value;
    return { term: s.term.value, wallClockMs: 1_800_000_000_000, expiryIntervalMs: 500, maxExpiriesPerRound: 64, liveness: (id) => tracker.liveness(id, nowMs) };
  };
  s.admin = new SessionsAdmin({
    node: {
      status: () => ({ id: 'm1', appliedIndex: 42 }),
      readIndex: async () => { s.readIndexes++; return 42; },
    } as never,
    sessions: async () => {
      const got = s.reads[Math.min(read, s.reads.length - 1)];
      afterRead(read++, s);
      return got;
    },
    trackedView: view,
    readIndexTimeoutMs: 1_000,
  });
  return s;
}

describe('the leader\'s session listing (state joined with the keepalive tracker)', () => {
  it('lists each session with its fhs, the time since its keepalive and the time left; overdue ones counted', async () => {
    const s = setup([[summary(1, 2), summary(2)]]);
    s.tracker.opened(1, TTL_MS, 1_000);
    s.tracker.opened(2, TTL_MS, 0);
    s.nowMs.value = 2_500.4;
    const reply = await s.admin.sessions({ limit: 0 });
    expect(s.readIndexes).toBe(1);
    expect(reply).toMatchObject({ id: 'm1', term: 3, appliedIndex: 42, expiryIntervalMs: 500, maxExpiriesPerRound: 64, truncated: false, total: 2, untracked: 0, overdue: 1 });
    // Most overdue first; whole ms, rounded so an overdue session never shows time left.
    expect(reply.sessions).toEqual([
      { id: 2, clientName: 'c2', ttlMs: TTL_MS, createdAtMs: 1_700_000_000_002, fhs: 0, tracked: true, sinceKeepAliveMs: 2_501, expiresInMs: -501 },
      { id: 1, clientName: 'c1', ttlMs: TTL_MS, createdAtMs: 1_700_000_000_001, fhs: 2, tracked: true, sinceKeepAliveMs: 1_501, expiresInMs: 499 },
    ]);
  });

  it('names a session the state holds but the tracker does not as untracked, first, after looking twice', async () => {
    const s = setup([[summary(1), summary(9)]]);
    s.tracker.opened(1, TTL_MS, 0);
    const reply = await s.admin.sessions({ limit: 0 });
    expect(reply).toMatchObject({ total: 2, untracked: 1, overdue: 0 });
    expect(reply.sessions[0]).toMatchObject({ id: 9, tracked: false, sinceKeepAliveMs: -1, expiresInMs: 0 });
    expect(reply.sessions[1]).toMatchObject({ id: 1, tracked: true });
  });

  it('does not call a session untracked when its expiry applied while the state was read', async () => {
    // First read: session 5 still there, but the tracker already forgot it (expired); the second read no longer has it.
    const s = setup([[summary(1), summary(5)], [summary(1)]]);
    s.tracker.opened(1, TTL_MS, 0);
    const reply = await s.admin.sessions({ limit: 0 });
    expect(reply).toMatchObject({ total: 1, untracked: 0 });
    expect(reply.sessions.map((x) => x.id)).toEqual([1]);
  });

  it('does not call a session untracked when it opened while the state was read', async () => {
    // The tracker learns of session 6 only after the first read (its openSession applied, the proposer told the duties since).
    const s = setup([[summary(1), summary(6)]], (read, x) => { if (read === 0) x.tracker.opened(6, TTL_MS, 0); });
    s.tracker.opened(1, TTL_MS, 0);
    const reply = await s.admin.sessions({ limit: 0 });
    expect(reply).toMatchObject({ total: 2, untracked: 0 });
  });

  it('bounds the answer and says so, keeping the most pressing sessions', async () => {
    const s = setup([[summary(1), summary(2), summary(3)]]);
    s.tracker.opened(1, TTL_MS, 300);
    s.tracker.opened(2, TTL_MS, 100);
    s.tracker.opened(3, TTL_MS, 200);
    s.nowMs.value = 1_000;
    const reply = await s.admin.sessions({ limit: 2 });
    expect(reply).toMatchObject({ truncated: true, total: 3 });
    expect(reply.sessions.map((x) => x.id)).toEqual([2, 3]);
  });

  it('answers UNAVAILABLE while the leader has not loaded its sessions, before reading anything', async () => {
    const s = setup([[summary(1)]]);
    s.loaded.value = false;
    await expect(s.admin.sessions({ limit: 0 })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE, message: expect.stringMatching(/still loading its sessions/) });
    expect(s.readIndexes).toBe(0);
  });

  it('answers UNAVAILABLE when leadership changed during the call', async () => {
    const s = setup([[summary(1)]], (_read, x) => { x.term.value = 4; });
    s.tracker.opened(1, TTL_MS, 0);
    await expect(s.admin.sessions({ limit: 0 })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE, message: expect.stringMatching(/leadership changed while listing \(term 3 → 4\)/) });
  });

  it('refuses a limit above the bound', async () => {
    const s = setup([[]]);
    const refused = s.admin.sessions({ limit: SESSIONS_LISTED_MAX + 1 });
    await expect(refused).rejects.toBeInstanceOf(SessionsRequestError);
    await expect(refused).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });
});
