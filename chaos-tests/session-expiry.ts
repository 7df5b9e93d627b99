/**
 * "No fh or session outlives its expiry" (issue 6 §3), measured at the end of
 * a run: the SDK clients were killed holding an fh (clients.ts, abandon), so
 * their sessions must be expired by the leader within TTL + its expiry scan,
 * and no other session may sit past its TTL or untracked by the leader (an
 * untracked session would never expire). The listing is the leader's
 * `handlefs sessions --json`. overdueSessions() is pure; awaitAbandonedExpiry()
 * only polls. Must never change the cluster.
 */
import type { SessionInfo, SessionsReply } from '../proto/admin-proto';
import type { AbandonedClient } from './clients';
import { sleep } from './cluster/processes';

/** What the check reads of Admin.Sessions (proto/admin.proto): `tracked` false = the leader's expiry does not know the session. */
export type ListedSession = Pick<SessionInfo, 'id' | 'clientName' | 'ttlMs' | 'fhs' | 'tracked' | 'sinceKeepAliveMs'>;
export type SessionListing = Pick<SessionsReply, 'expiryIntervalMs'> & { sessions: ListedSession[] };

/** Beyond a session's TTL, what the leader may take to notice and commit its expiry: two scans and a slow proposal. */
export function expiryGraceMs(expiryIntervalMs: number): number {
  return 2 * expiryIntervalMs + 3_000;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const fhWord = (fhs: number): string => `${fhs} open fh${fhs === 1 ? '' : 's'}`;

/** One sentence per session past its expiry at `nowMs` (run clock): abandoned ones still listed, and any listed one overdue or untracked. */
export function overdueSessions(listing: SessionListing, abandoned: readonly AbandonedClient[], nowMs: number): string[] {
  const graceMs = expiryGraceMs(listing.expiryIntervalMs);
  const byId = new Map(abandoned.map((a) => [a.sessionId, a]));
  const overdue: string[] = [];
  for (const session of listing.sessions) {
    const who = `session ${session.id} (${session.clientName}) with ${fhWord(session.fhs)}`;
    const gone = byId.get(session.id);
    if (gone && nowMs - gone.killedAtMs > session.ttlMs + graceMs) {
      overdue.push(`${who}: its client (${gone.client}) was killed ${seconds(nowMs - gone.killedAtMs)} ago holding fh ${gone.fh}; TTL ${seconds(session.ttlMs)}`);
    } else if (!session.tracked) {
      overdue.push(`${who} is not tracked by the leader's expiry: it would never expire`);
    } else if (session.sinceKeepAliveMs > session.ttlMs + graceMs) {
      overdue.push(`${who}: last kept alive ${seconds(session.sinceKeepAliveMs)} ago; TTL ${seconds(session.ttlMs)}`);
    }
  }
  return overdue;
}

/**
 * Lists the sessions until every abandoned one is gone, or until each had its TTL and grace
 * (at most `limitMs`); answers the overdue sessions of the last listing.
 */
export async function awaitAbandonedExpiry(
  list: () => Promise<SessionListing>, abandoned: readonly AbandonedClient[], now: () => number, limitMs: number,
): Promise<{ overdue: string[]; listing: SessionListing; waitedMs: number }> {
  const startMs = now();
  const ids = new Set(abandoned.map((a) => a.sessionId));
  // Bounded by limitMs.
  for (;;) {
    const listing = await list();
    const left = listing.sessions.filter((s) => ids.has(s.id));
    const graceMs = expiryGraceMs(listing.expiryIntervalMs);
    const allDue = left.every((s) => now() - abandoned.find((a) => a.sessionId === s.id)!.killedAtMs > s.ttlMs + graceMs);
    if (left.length === 0 || allDue || now() - startMs >= limitMs) {
      return { overdue: overdueSessions(listing, abandoned, now()), listing, waitedMs: now() - startMs };
    }
    await sleep(500);
  }
}
