/**
 * The operator commands, as etcdctl's `endpoint status`, `member
 * list|add|remove|promote`, `move-leader` and `snapshot`:
 *   handlefs status --servers H:P,... [--json]
 *   handlefs member list|add|remove|promote ...
 *   handlefs leader transfer [--to ID]
 *   handlefs snapshot --member ID
 *   handlefs sessions --servers H:P,... [--json] [--limit N]
 * They speak proto/admin.proto to the members' client ports (admin-client.ts).
 * Owns argument checks, the order of steps of each command, what it prints
 * (results on stdout, progress and errors on stderr) and exit codes: 0 done
 * (or healthy), 1 refused, failed or unhealthy, 2 bad usage. Must never
 * change anything when the input is bad: every check that can be made here
 * is made before the first call.
 */
import * as grpc from '@grpc/grpc-js';
import type * as a from '../../proto/admin-proto';
import { parseHostPort } from '../../raft/transport/options';
import { AdminClient, Answer, CallError, SESSIONS_LIMIT_MAX, SessionList, UsageError, describeSweep, listSessions, parseServers, sleep, unreachableCluster } from './admin-client';
import { clusterStatus, renderStatusTable } from './cluster-status';
import { ProgressBar } from './progress';
import type { ClientSecurity } from '../../proto/tls';
import { SECURITY_FLAGS, SECURITY_USAGE, securityFromFlags } from '../certs/security-flags';

const MEMBER_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** A membership change is given this long to apply on the leader. */
const CHANGE_DEADLINE_MS = 15_000;
const SNAPSHOT_DEADLINE_MS = 120_000;
const WAIT_SECONDS_MAX = 3_600;
const POLL_INTERVAL_MS = 200;
/** A transfer's deadline when --timeout-ms is not given. */
const TRANSFER_TIMEOUT_MS_DEFAULT = 10_000;

export const OPS_USAGE = `  status --servers H:P,... [--json]
        every member's address, role, term, commit/applied index, lag, last contact and version, and the
        cluster's health; exits 0 only when healthy (--servers may come from HANDLEFS_SERVERS)
        (every command here takes ${SECURITY_USAGE})
  member list --servers H:P,... [--json]
  member add ID --peer-address H:P --client-address H:P --servers H:P,...
        add a learner; then start it with --join, and promote it once it has caught up
  member promote ID [--wait SECONDS] --servers H:P,...
        learner → voter, refused unless caught up (--wait: wait for it, with progress on stderr)
  member remove ID --servers H:P,...
        remove a member (the leader hands leadership over first); the last voter is never removed
  leader transfer [--to ID] [--timeout-ms 10000] --servers H:P,...
        hand leadership over and wait until the new leader is in place
  snapshot --member ID --servers H:P,...
        take a snapshot on one member now and compact its log
  sessions --servers H:P,... [--json] [--limit N]
        every client session as the leader sees it: client, TTL, time since its last keepalive, time left,
        open fhs; OVERDUE (past its TTL, expiry not applied yet) and UNTRACKED (the leader would never
        expire it) marked; exits 1 when any session is untracked (--limit: at most N listed, 1..10000)
`;

interface Parsed {
  positionals: string[];
  values: Map<string, string>;
  json: boolean;
}

function parseArgs(args: string[], valueFlags: string[]): Parsed {
  const parsed: Parsed = { positionals: [], values: new Map(), json: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--json') { parsed.json = true; continue; }
    if (!arg.startsWith('--')) { parsed.positionals.push(arg); continue; }
    const equals = arg.indexOf('=');
    const flag = equals > 0 ? arg.slice(0, equals) : arg;
    if (!valueFlags.includes(flag) && !SECURITY_FLAGS.includes(flag)) throw new UsageError(`unknown option ${flag}`);
    const value = equals > 0 ? arg.slice(equals + 1) : args[++i];
    if (value === undefined || value.startsWith('--')) throw new UsageError(`${flag} needs a value`);
    if (parsed.values.has(flag)) throw new UsageError(`${flag} given twice`);
    parsed.values.set(flag, value);
  }
  return parsed;
}

function securityOf(parsed: Parsed): ClientSecurity {
  return securityFromFlags(parsed.values, (message) => new UsageError(message));
}

function serversOf(parsed: Parsed): string[] {
  return parseServers(parsed.values.get('--servers') ?? process.env.HANDLEFS_SERVERS);
}

function memberId(what: string, value: string | undefined): string {
  if (value === undefined) throw new UsageError(`${what} needs a member id`);
  if (!MEMBER_ID_PATTERN.test(value)) throw new UsageError(`member id ${JSON.stringify(value)} must be 1..64 letters, digits, '.', '_' or '-'`);
  return value;
}

function address(flag: string, value: string | undefined): string {
  if (value === undefined) throw new UsageError(`${flag} HOST:PORT is required`);
  try {
    parseHostPort(value, false);
  } catch (error) {
    throw new UsageError(`${flag}: ${(error as Error).message}`);
  }
  return value;
}

function noMorePositionals(parsed: Parsed, expected: number): void {
  if (parsed.positionals.length > expected) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[expected])}`);
}

/** Thrown when a step failed or was refused: the command prints it and exits 1. */
class CommandFailed extends Error {}

function fail(error: CallError): never {
  throw new CommandFailed(error.message);
}

function out(text: string): void {
  process.stdout.write(text);
}

// ---- status ------------------------------------------------------------------------

async function status(client: AdminClient, json: boolean): Promise<number> {
  const answers = await client.sweep();
  const report = clusterStatus(answers);
  if (json) out(JSON.stringify(report, null, 2) + '\n');
  else out(renderStatusTable(report));
  for (const x of report.unreachable) process.stderr.write(`handlefs status: ${x.id ? `member ${x.id}: ` : ''}${x.error}\n`);
  return report.health === 'healthy' ? 0 : 1;
}

// ---- member ------------------------------------------------------------------------

function membersTable(members: a.AdminMember[], leaderId: string): string {
  const header = ['id', 'role', 'peer address', 'client address', 'leader'];
  const rows = members.map((m) => [m.id, m.role, m.peerAddress, m.clientAddress || '-', m.id === leaderId ? '*' : '']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  return [header, ...rows].map((cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n';
}

async function memberList(client: AdminClient, json: boolean): Promise<number> {
  const answers = await client.sweep();
  const leader = AdminClient.leaderOf(answers);
  const view = leader ?? answers.filter((x) => x.status).sort((x, y) => y.status!.term - x.status!.term)[0];
  if (!view) fail(unreachableCluster(answers));
  const members = withKnownClientAddresses(view.status!.members, answers);
  if (json) out(JSON.stringify({ leaderId: leader?.status!.id ?? '', members }, null, 2) + '\n');
  else out(membersTable(members, leader?.status!.id ?? ''));
  if (!leader) process.stderr.write(`handlefs member list: no leader is known; this is ${view.status!.id}'s view (${describeSweep(answers)})\n`);
  return leader ? 0 : 1;
}

/** Fills client addresses the leader does not know from the servers that answered for themselves. */
function withKnownClientAddresses(members: a.AdminMember[], answers: Answer[]): a.AdminMember[] {
  return members.map((m) => ({ ...m, clientAddress: m.clientAddress || answers.find((x) => x.status?.id === m.id)?.address || '' }));
}

async function memberAdd(client: AdminClient, id: string, peerAddress: string, clientAddress: string): Promise<number> {
  const added = await client.onLeader('MemberAdd', { id, peerAddress, clientAddress }, CHANGE_DEADLINE_MS);
  if (added.error) fail(added.error);
  const members = added.reply.members;
  out(`added ${id} as a learner (peer ${peerAddress}, client ${clientAddress}); members: ${members.map((m) => `${m.id} (${m.role})`).join(', ')}\n`);
  const peers = members.map((m) => `${m.id}=${m.peerAddress}`).join(',');
  const clients = members.filter((m) => m.clientAddress || m.id === id).map((m) => `${m.id}=${m.id === id ? clientAddress : m.clientAddress}`).join(',');
  out(`next: start it empty with\n  handlefs server --id ${id} --listen ${peerAddress} --client-listen ${clientAddress} --data DIR --peers ${peers} --clients ${clients} --join\n`);
  out(`then: handlefs member promote ${id} --wait 300 --servers ${[...client.servers, clientAddress].join(',')}\n`);
  return 0;
}

/** The learner's progress as the leader sees it, or why it cannot be seen. */
function learnerProgress(answers: Answer[], id: string): { leader: a.StatusReply; progress?: a.AdminProgress } | undefined {
  const leader = AdminClient.leaderOf(answers)?.status;
  if (!leader) return undefined;
  return { leader, progress: leader.progress.find((p) => p.id === id) };
}

async function memberPromote(client: AdminClient, id: string, waitSeconds: number): Promise<number> {
  const deadline = Date.now() + waitSeconds * 1_000;
  const bar = waitSeconds > 0 ? new ProgressBar(`${id} catching up`) : undefined;
  for (;;) {
    if (bar) {
      const answers = await client.sweep();
      const seen = learnerProgress(answers, id);
      if (seen?.progress) {
        const { leader, progress } = seen;
        const contact = progress.lastContactMs < 0 ? 'never heard from' : `heard from ${progress.lastContactMs} ms ago`;
        bar.update(progress.matchIndex, leader.lastIndex, `${progress.matchIndex}/${leader.lastIndex}, lag ${progress.lagEntries} entries (at most ${leader.catchUpLagEntries}), ${contact}`);
        const caughtUp = progress.lagEntries <= leader.catchUpLagEntries && progress.lastContactMs >= 0 && progress.lastContactMs <= 2 * leader.electionTimeoutMs;
        if (!caughtUp && Date.now() < deadline) {
          await sleep(POLL_INTERVAL_MS);
          continue;
        }
      } else if (seen && !seen.leader.members.some((m) => m.id === id)) {
        bar.finish('not a member');
        throw new CommandFailed(`member ${id} is not in the cluster (members: ${seen.leader.members.map((m) => m.id).join(', ')}); nothing changed`);
      } else if (Date.now() < deadline) {
        await sleep(POLL_INTERVAL_MS);
        continue;
      }
    }
    const promoted = await client.onLeader('MemberPromote', { id }, CHANGE_DEADLINE_MS);
    if (!promoted.error) {
      bar?.finish('caught up');
      out(`promoted ${id} to voter; members: ${promoted.reply.members.map((m) => `${m.id} (${m.role})`).join(', ')}\n`);
      return 0;
    }
    const notCaughtUp = promoted.error.code === grpc.status.FAILED_PRECONDITION && /not caught up/.test(promoted.error.message);
    if (bar && notCaughtUp && Date.now() < deadline) {
      await sleep(POLL_INTERVAL_MS);
      continue;
    }
    bar?.finish('gave up');
    if (notCaughtUp && bar) throw new CommandFailed(`${promoted.error.message} (waited ${waitSeconds} s)`);
    fail(promoted.error);
  }
}

async function memberRemove(client: AdminClient, id: string): Promise<number> {
  const removed = await client.onLeader('MemberRemove', { id }, CHANGE_DEADLINE_MS);
  if (removed.error) fail(removed.error);
  out(`removed ${id}; members: ${removed.reply.members.map((m) => `${m.id} (${m.role})`).join(', ')}; leader ${removed.reply.leaderId}\n`);
  out(`${id} is no longer a member: stop its process (and remove its data folder before it ever rejoins)\n`);
  return 0;
}

// ---- leader and snapshot ---------------------------------------------------------------

async function leaderTransfer(client: AdminClient, to: string | undefined, timeoutMs: number): Promise<number> {
  const before = AdminClient.leaderOf(await client.sweep())?.status;
  const startedAtMs = Date.now();
  const moved = await client.onLeader('LeaderTransfer', { to: to ?? '', timeoutMs }, timeoutMs + 2_000);
  if (moved.error) fail(moved.error);
  const newLeader = moved.reply.leaderId;
  // The new leader may be a member none of --servers names: ask it where it is.
  client.learn(moved.reply.leaderClientAddress);
  if (before && before.id === newLeader) {
    out(`${newLeader} already leads (term ${before.term}); nothing changed\n`);
    return 0;
  }
  // In place = the new leader itself answers that it leads.
  const deadline = startedAtMs + timeoutMs;
  let answers: Answer[] = [];
  for (;;) {
    answers = await client.sweep();
    const leader = AdminClient.leaderOf(answers)?.status;
    if (leader?.id === newLeader) {
      out(`leadership moved${before ? ` from ${before.id}` : ''} to ${newLeader} (term ${leader.term}) in ${Date.now() - startedAtMs} ms\n`);
      return 0;
    }
    if (Date.now() >= deadline) break;
    await sleep(POLL_INTERVAL_MS / 4);
  }
  throw new CommandFailed(`the transfer to ${newLeader} was accepted but no server reported it leading within ${timeoutMs} ms (${describeSweep(answers)})`);
}

async function snapshot(client: AdminClient, id: string): Promise<number> {
  const answers = await client.sweep();
  const target = answers.find((x) => x.status?.id === id);
  if (!target) {
    if (answers.every((x) => x.error)) fail(unreachableCluster(answers));
    const view = AdminClient.leaderOf(answers) ?? answers.find((x) => x.status);
    const member = view?.status!.members.find((m) => m.id === id);
    if (!member) throw new CommandFailed(`member ${id} is not in the cluster (members: ${view?.status!.members.map((m) => m.id).join(', ')}); nothing changed`);
    const unreachable = answers.filter((x) => x.error).map((x) => x.error!.message);
    throw new CommandFailed(`member ${id} did not answer: none of --servers is its client address${member.clientAddress ? ` (${member.clientAddress})` : ''} or it is unreachable${unreachable.length > 0 ? ` (${unreachable.join('; ')})` : ''}; nothing changed`);
  }
  const taken = await client.call(target.address, 'Snapshot', {}, SNAPSHOT_DEADLINE_MS);
  if (taken.error) fail(taken.error);
  const r = taken.reply;
  out(r.taken
    ? `${r.id}: snapshot at index ${r.index} (term ${r.term}), log compacted up to ${r.compactIndex}, in ${r.durationMs} ms\n`
    : `${r.id}: nothing applied since the snapshot at index ${r.index}; no new snapshot taken\n`);
  return 0;
}

// ---- sessions ------------------------------------------------------------------------

function sessionsTable(list: SessionList): string {
  const header = ['id', 'client', 'ttl', 'since keepalive', 'expires in', 'fhs', 'state'];
  const rows = list.sessions.map((s) => [
    String(s.id), s.clientName || '-', `${s.ttlMs} ms`,
    s.tracked ? `${s.sinceKeepAliveMs} ms` : '-',
    s.tracked ? `${s.expiresInMs} ms` : '-',
    String(s.fhs),
    !s.tracked ? 'UNTRACKED' : s.expiresInMs < 0 ? 'OVERDUE' : 'live',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const shown = list.truncated ? `${list.sessions.length} of ${list.total} sessions listed` : `${list.total} session${list.total === 1 ? '' : 's'}`;
  const summary = `${shown} on leader ${list.leaderId} (term ${list.term}); ${list.overdue} overdue, ${list.untracked} untracked; overdue sessions are expired every ${list.expiryIntervalMs} ms`;
  return [line(header), ...rows.map(line), summary].join('\n') + '\n';
}

async function sessions(parsed: Parsed, limit: number): Promise<number> {
  let list: SessionList;
  try {
    list = await listSessions(serversOf(parsed), securityOf(parsed), { limit });
  } catch (error) {
    if (error instanceof CallError) fail(error);
    throw error;
  }
  if (parsed.json) out(JSON.stringify(list, null, 2) + '\n');
  else out(sessionsTable(list));
  if (list.untracked > 0) process.stderr.write(`handlefs sessions: ${list.untracked} session${list.untracked === 1 ? ' is' : 's are'} in the state but not tracked by leader ${list.leaderId}: they would never expire\n`);
  return list.untracked > 0 ? 1 : 0;
}

function limitOf(value: string | undefined): number {
  if (value === undefined) return 0;
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > SESSIONS_LIMIT_MAX) throw new UsageError(`--limit must be an integer in 1..${SESSIONS_LIMIT_MAX}, got ${JSON.stringify(value)}`);
  return limit;
}

// ---- dispatch ----------------------------------------------------------------------

async function withClient(parsed: Parsed, run: (client: AdminClient) => Promise<number>): Promise<number> {
  const client = new AdminClient(serversOf(parsed), securityOf(parsed));
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

function waitSecondsOf(value: string | undefined): number {
  if (value === undefined) return 0;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > WAIT_SECONDS_MAX) throw new UsageError(`--wait must be a whole number of seconds in 1..${WAIT_SECONDS_MAX}, got ${JSON.stringify(value)}`);
  return seconds;
}

function timeoutMsOf(value: string | undefined): number {
  if (value === undefined) return TRANSFER_TIMEOUT_MS_DEFAULT;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 100 || ms > 60_000) throw new UsageError(`--timeout-ms must be an integer in 100..60000, got ${JSON.stringify(value)}`);
  return ms;
}

async function dispatch(command: string, args: string[]): Promise<number> {
  switch (command) {
    case 'status': {
      const parsed = parseArgs(args, ['--servers']);
      noMorePositionals(parsed, 0);
      return withClient(parsed, (client) => status(client, parsed.json));
    }
    case 'member': {
      const [action, ...rest] = args;
      switch (action) {
        case 'list': {
          const parsed = parseArgs(rest, ['--servers']);
          noMorePositionals(parsed, 0);
          return withClient(parsed, (client) => memberList(client, parsed.json));
        }
        case 'add': {
          const parsed = parseArgs(rest, ['--servers', '--peer-address', '--client-address']);
          noMorePositionals(parsed, 1);
          const id = memberId('member add', parsed.positionals[0]);
          const peer = address('--peer-address', parsed.values.get('--peer-address'));
          const clientAddress = address('--client-address', parsed.values.get('--client-address'));
          if (peer === clientAddress) throw new UsageError(`--peer-address and --client-address are both ${peer}; a member needs two ports`);
          return withClient(parsed, (client) => memberAdd(client, id, peer, clientAddress));
        }
        case 'promote': {
          const parsed = parseArgs(rest, ['--servers', '--wait']);
          noMorePositionals(parsed, 1);
          const id = memberId('member promote', parsed.positionals[0]);
          const waitSeconds = waitSecondsOf(parsed.values.get('--wait'));
          return withClient(parsed, (client) => memberPromote(client, id, waitSeconds));
        }
        case 'remove': {
          const parsed = parseArgs(rest, ['--servers']);
          noMorePositionals(parsed, 1);
          const id = memberId('member remove', parsed.positionals[0]);
          return withClient(parsed, (client) => memberRemove(client, id));
        }
        default:
          throw new UsageError(`member needs list, add, promote or remove, got ${JSON.stringify(action ?? '')}`);
      }
    }
    case 'leader': {
      const [action, ...rest] = args;
      if (action !== 'transfer') throw new UsageError(`leader needs transfer, got ${JSON.stringify(action ?? '')}`);
      const parsed = parseArgs(rest, ['--servers', '--to', '--timeout-ms']);
      noMorePositionals(parsed, 0);
      const to = parsed.values.has('--to') ? memberId('--to', parsed.values.get('--to')) : undefined;
      const timeoutMs = timeoutMsOf(parsed.values.get('--timeout-ms'));
      return withClient(parsed, (client) => leaderTransfer(client, to, timeoutMs));
    }
    case 'snapshot': {
      const parsed = parseArgs(args, ['--servers', '--member']);
      noMorePositionals(parsed, 0);
      const id = memberId('snapshot --member', parsed.values.get('--member'));
      return withClient(parsed, (client) => snapshot(client, id));
    }
    case 'sessions': {
      const parsed = parseArgs(args, ['--servers', '--limit']);
      noMorePositionals(parsed, 0);
      const limit = limitOf(parsed.values.get('--limit'));
      serversOf(parsed);
      securityOf(parsed);
      return sessions(parsed, limit);
    }
    default:
      throw new UsageError(`unknown operator command ${JSON.stringify(command)}`);
  }
}

export const OPS_COMMANDS = new Set(['status', 'member', 'leader', 'snapshot', 'sessions']);

/** `handlefs status|member|leader|snapshot|sessions ...`; returns the exit code. */
export async function runOpsCommand(command: string, args: string[]): Promise<number> {
  const name = command === 'member' || command === 'leader' ? `${command} ${args[0] ?? ''}`.trim() : command;
  try {
    return await dispatch(command, args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`handlefs ${name}: ${error.message}\nusage:\n${OPS_USAGE}`);
      return 2;
    }
    if (error instanceof CommandFailed) {
      process.stderr.write(`handlefs ${name}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
