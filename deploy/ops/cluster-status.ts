/**
 * What `handlefs status` (and `handlefs cluster status`) report: one row per
 * member — id, client address, role, term, commit/applied index, lag (entries
 * behind the leader), last contact (ms since the leader heard from it),
 * version — merged from every server's own Status and the leader's view of
 * its followers, and the cluster's health in one line. Owns the merge, the
 * health rules and the table; must never call a server itself (it is given
 * the answers) or change anything.
 */
import type * as a from '../../proto/admin-proto';
import type { Answer } from './admin-client';

export type Health = 'healthy' | 'degraded' | 'no quorum';

export interface MemberRow {
  id: string;
  /** The client API address ('' when no server told it). */
  clientAddress: string;
  peerAddress: string;
  /** leader, follower, learner, candidate, pre-candidate; 'unreachable' when it did not answer; 'not a member' for a server outside the membership. */
  role: string;
  answered: boolean;
  term: number | null;
  leaderId: string | null;
  commitIndex: number | null;
  appliedIndex: number | null;
  /** Entries behind the leader's last index (null without a leader view). */
  lagEntries: number | null;
  /** Ms since the leader heard from it (null for the leader itself, or without a leader view, or never heard). */
  lastContactMs: number | null;
  version: string | null;
  pid: number | null;
  /** Why it did not answer. */
  error?: string;
}

export interface ClusterStatus {
  health: Health;
  /** The one line: "healthy: leader m2, 3/3 members, max lag 0". */
  summary: string;
  leaderId: string;
  term: number;
  members: MemberRow[];
  /** Server addresses that did not answer, with why. */
  unreachable: Array<{ address: string; id: string; error: string }>;
}

/** Lag above this (entries) or contact older than LATE_CONTACT_ELECTION_TIMEOUTS election timeouts makes a member "lagging". */
export const LAGGING_ENTRIES = 100;
const LATE_CONTACT_ELECTION_TIMEOUTS = 2;

/** Merges a Status sweep into rows and the health line. */
export function clusterStatus(answers: Answer[]): ClusterStatus {
  const answered = answers.filter((x) => x.status);
  const leaderAnswer = answered.filter((x) => x.status!.role === 'leader').sort((x, y) => y.status!.term - x.status!.term)[0];
  const leader = leaderAnswer?.status;
  // Without a leader, the membership of the member that knows the most (highest term, then commit).
  const view = leader ?? answered.map((x) => x.status!).sort((x, y) => y.term - x.term || y.commitIndex - x.commitIndex)[0];
  const byId = new Map(answered.map((x) => [x.status!.id, x]));
  const addressOf = new Map<string, string>();
  for (const x of answered) for (const m of x.status!.members) if (m.clientAddress && !addressOf.has(m.id)) addressOf.set(m.id, m.clientAddress);
  for (const x of answered) addressOf.set(x.status!.id, x.address);

  const rows: MemberRow[] = [];
  for (const member of view?.members ?? []) {
    const answer = byId.get(member.id);
    const progress = leader?.progress.find((p) => p.id === member.id);
    const clientAddress = addressOf.get(member.id) ?? '';
    const failed = answers.find((x) => x.error && x.address === clientAddress);
    rows.push(rowOf(member.id, clientAddress, member.peerAddress, answer?.status, leader, progress, failed?.error?.message ?? (answer ? undefined : 'no server address given answered for it')));
  }
  // Servers that answered but are outside the membership (e.g. a removed member still running, or one not added yet).
  for (const x of answered) {
    if (rows.some((r) => r.id === x.status!.id)) continue;
    rows.push({ ...rowOf(x.status!.id, x.address, x.status!.peerAddress, x.status, leader, undefined, undefined), role: 'not a member' });
  }
  // Servers that did not answer and match no member row: shown by address.
  const unreachable = answers.filter((x) => x.error).map((x) => ({ address: x.address, id: rows.find((r) => r.clientAddress === x.address)?.id ?? '', error: x.error!.message }));
  for (const x of unreachable) {
    if (x.id) continue;
    rows.push({ ...emptyRow('?', x.address, ''), error: x.error });
  }

  const { health, summary } = healthOf(rows, leader, answers.length, unreachable);
  return { health, summary, leaderId: leader?.id ?? '', term: leader?.term ?? view?.term ?? 0, members: rows, unreachable };
}

function emptyRow(id: string, clientAddress: string, peerAddress: string): MemberRow {
  return {
    id, clientAddress, peerAddress, role: 'unreachable', answered: false, term: null, leaderId: null, commitIndex: null, appliedIndex: null,
    lagEntries: null, lastContactMs: null, version: null, pid: null,
  };
}

function rowOf(id: string, clientAddress: string, peerAddress: string, own: a.StatusReply | undefined, leader: a.StatusReply | undefined, progress: a.AdminProgress | undefined, error: string | undefined): MemberRow {
  const row = emptyRow(id, clientAddress, peerAddress);
  if (own) {
    Object.assign(row, {
      role: own.role, answered: true, term: own.term, leaderId: own.leaderId, commitIndex: own.commitIndex, appliedIndex: own.appliedIndex, version: own.version, pid: own.pid,
    });
  } else if (error) {
    row.error = error;
  }
  if (leader && leader.id === id) row.lagEntries = 0;
  else if (progress) {
    row.lagEntries = progress.lagEntries;
    row.lastContactMs = progress.lastContactMs >= 0 ? progress.lastContactMs : null;
  }
  return row;
}

function healthOf(rows: MemberRow[], leader: a.StatusReply | undefined, serversAsked: number, unreachable: ClusterStatus['unreachable']): { health: Health; summary: string } {
  const members = rows.filter((r) => r.role !== 'not a member' && r.id !== '?');
  const answering = members.filter((r) => r.answered);
  const unreachableText = unreachable.length > 0 ? `; unreachable: ${unreachable.map((x) => (x.id ? `${x.id} at ${x.address}` : x.address)).join(', ')}` : '';
  if (answering.length === 0 && rows.every((r) => !r.answered)) {
    return { health: 'no quorum', summary: `no quorum: no server answers (${serversAsked} asked)${unreachableText}` };
  }
  if (!leader) {
    return { health: 'no quorum', summary: `no quorum: no leader; ${answering.length}/${members.length} members answer${unreachableText}` };
  }
  const lateMs = LATE_CONTACT_ELECTION_TIMEOUTS * leader.electionTimeoutMs;
  const maxLag = Math.max(0, ...members.map((r) => r.lagEntries ?? 0));
  const problems: string[] = [];
  const silent = members.filter((r) => r.id !== leader.id && (r.lastContactMs === null || r.lastContactMs > lateMs));
  const lagging = members.filter((r) => (r.lagEntries ?? 0) > LAGGING_ENTRIES);
  const disagreeing = answering.filter((r) => r.leaderId !== leader.id && r.role !== 'learner');
  if (silent.length > 0) problems.push(`the leader has not heard from ${silent.map((r) => r.id).join(', ')} within ${lateMs} ms`);
  if (lagging.length > 0) problems.push(`${lagging.map((r) => `${r.id} is ${r.lagEntries} entries behind`).join(', ')}`);
  if (disagreeing.length > 0) problems.push(`${disagreeing.map((r) => `${r.id} follows ${r.leaderId || 'no leader'}`).join(', ')}`);
  const strangers = rows.filter((r) => r.role === 'not a member');
  if (strangers.length > 0) problems.push(`${strangers.map((r) => `${r.id} at ${r.clientAddress}`).join(', ')} answered but ${strangers.length === 1 ? 'is' : 'are'} not a member`);
  const base = `leader ${leader.id} (term ${leader.term}), ${answering.length}/${members.length} members, max lag ${maxLag}`;
  if (problems.length === 0 && unreachable.length === 0 && answering.length === members.length) return { health: 'healthy', summary: `healthy: ${base}` };
  return { health: 'degraded', summary: `degraded: ${base}${problems.length > 0 ? `; ${problems.join('; ')}` : ''}${unreachableText}` };
}

/** The table and the health line, as `handlefs status` prints them. `extra` adds columns (e.g. `cluster status`'s pid). */
export function renderStatusTable(status: ClusterStatus, extra?: { header: string; cell: (row: MemberRow) => string }): string {
  const header = ['id', 'address', 'role', 'term', 'commit/applied', 'lag', 'last contact', 'version', ...(extra ? [extra.header] : [])];
  const rows = status.members.map((r) => [
    r.id, r.clientAddress || '-', r.role, r.term === null ? '-' : String(r.term),
    r.commitIndex === null ? '-' : `${r.commitIndex}/${r.appliedIndex}`,
    r.lagEntries === null ? '-' : String(r.lagEntries),
    r.lastContactMs === null ? '-' : `${r.lastContactMs} ms`,
    r.version ?? '-',
    ...(extra ? [extra.cell(r)] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line), status.summary].join('\n') + '\n';
}
