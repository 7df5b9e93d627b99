/**
 * The Admin API's session listing (proto/admin.proto Sessions, `handlefs
 * sessions`): every session of the replicated state — read through the
 * state's own session query after a ReadIndex, as the leader's takeover reads
 * it — joined with how the leader's keepalive tracker sees it now. A session
 * the state holds but the tracker does not is "untracked": it would never
 * expire, and the listing names it rather than hiding it. Leader only.
 * Owns the join, its ordering and bounds; must never change the state or the
 * tracker (reads only), and never answer from a tracker it does not trust.
 */
import * as grpc from '@grpc/grpc-js';
import * as a from '../../proto/admin-proto';
import { RaftNode } from '../../raft/node/raft-node';
import { SessionSummary } from '../state/queries';
import { TrackedView } from './leader-duties';

/** Sessions one answer lists at most (and the default). */
export const SESSIONS_LISTED_MAX = 10_000;
/**
 * State reads one listing makes at most. A session seen untracked is looked at
 * again once: it may have expired (tracker forgot it, state read before the
 * expiry applied) or opened (applied, tracker not told yet) in between.
 */
const STATE_READS_MAX = 2;

/** A refusal with its gRPC status (admin-service.ts passes code and message on). */
export class SessionsRequestError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

/** What the listing needs of the server: narrow, so tests and server-main wire it the same way. */
export interface SessionsSources {
  node: Pick<RaftNode, 'readIndex' | 'status'>;
  /** The state's session query (state/queries.ts sessions()). */
  sessions: () => Promise<SessionSummary[]>;
  /** The leader's tracker (leader-duties.ts trackedView()). */
  trackedView: () => TrackedView | undefined;
  readIndexTimeoutMs: number;
}

export class SessionsAdmin {
  constructor(private readonly sources: SessionsSources) {}

  async sessions(request: a.SessionsRequest): Promise<a.SessionsReply> {
    const limit = request.limit ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0 || limit > SESSIONS_LISTED_MAX) {
      throw new SessionsRequestError(grpc.status.INVALID_ARGUMENT, `limit ${String(limit)} is not in 0..${SESSIONS_LISTED_MAX} (0 = ${SESSIONS_LISTED_MAX})`);
    }
    const startTerm = this.trustedView().term;
    // Everything committed before this call is applied here after the ReadIndex (as at takeover).
    await this.sources.node.readIndex({ timeoutMs: this.sources.readIndexTimeoutMs });
    let joined: Joined | undefined;
    for (let read = 0; read < STATE_READS_MAX && (joined === undefined || joined.untracked > 0); read++) {
      const stored = await this.sources.sessions();
      // No await from here to the join: the tracker is read at one moment, in the term checked.
      const view = this.trustedView();
      if (view.term !== startTerm) throw new SessionsRequestError(grpc.status.UNAVAILABLE, `leadership changed while listing (term ${startTerm} → ${view.term}); retry`);
      joined = join(stored, view);
    }
    const { infos, untracked, overdue, view } = joined!;
    infos.sort(byConcern);
    const max = limit === 0 ? SESSIONS_LISTED_MAX : limit;
    const status = this.sources.node.status();
    return {
      id: status.id, term: view.term, appliedIndex: status.appliedIndex, wallClockMs: view.wallClockMs,
      expiryIntervalMs: view.expiryIntervalMs, maxExpiriesPerRound: view.maxExpiriesPerRound,
      sessions: infos.slice(0, max), truncated: infos.length > max, total: infos.length, untracked, overdue,
    };
  }

  private trustedView(): TrackedView {
    const view = this.sources.trackedView();
    if (!view) throw new SessionsRequestError(grpc.status.UNAVAILABLE, 'this leader is still loading its sessions (it took over moments ago); retry shortly');
    return view;
  }
}

interface Joined { infos: a.SessionInfo[]; untracked: number; overdue: number; view: TrackedView }

function join(stored: SessionSummary[], view: TrackedView): Joined {
  let untracked = 0;
  let overdue = 0;
  const infos = stored.map((s): a.SessionInfo => {
    const live = view.liveness(s.id);
    // Whole ms for the wire (the monotonic clock has fractions), rounded so an overdue session never shows time left.
    const sinceKeepAliveMs = live ? Math.ceil(live.sinceKeepAliveMs) : -1;
    const expiresInMs = live ? live.ttlMs - sinceKeepAliveMs : 0;
    if (!live) untracked++;
    else if (expiresInMs < 0) overdue++;
    return { id: s.id, clientName: s.clientName, ttlMs: s.ttlMs, createdAtMs: s.createdAtMs, fhs: s.fhCount, tracked: live !== undefined, sinceKeepAliveMs, expiresInMs };
  });
  return { infos, untracked, overdue, view };
}

/** Untracked first, then the soonest to expire (most overdue), then by id: a truncated answer keeps what an operator must see. */
function byConcern(x: a.SessionInfo, y: a.SessionInfo): number {
  if (x.tracked !== y.tracked) return x.tracked ? 1 : -1;
  return x.expiresInMs - y.expiresInMs || x.id - y.id;
}
