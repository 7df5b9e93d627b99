/**
 * `handlefs cluster up|down|status`: a local metadata cluster of detached
 * member processes (dist/metaserver/server/server-main.js) on 127.0.0.1 that
 * outlives the command. Everything lives in one folder (default
 * ./.handlefs-cluster): cluster.json (the layout, so `down`, `status` and a
 * later `up` find the same ports), mN/ (a member's data), mN.pid, mN.log,
 * and with `up --tls` pki/ (a CA and one certificate per member, made with
 * deploy/certs as `handlefs certs init|issue` would; the members then run
 * TLS on every port and mutual TLS between themselves, and status talks TLS).
 * Owns option parsing, pid files and the wait for a leader; the status table
 * and health line are deploy/ops's (`handlefs status`) with a pid column;
 * the members' layout and command lines come from raft/node's ProcessCluster.
 * Must never signal a process it cannot prove is one of this folder's members
 * (the pid's command line must name the member's data folder).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { MemberStatusJson } from '../raft/node/member-process';
import { ProcessCluster, ProcessMember } from '../raft/node/process-cluster';
import { metaServerMainPath } from '../metaserver/server/main-path';
import type { StatusReply } from '../proto/admin-proto';
import { AdminClient, Answer } from './ops/admin-client';
import { clientSecurityFromFiles } from '../proto/tls';
import { CertsError, caFilesOf, initCa, issueCert } from './certs/certs';
import { clusterStatus, renderStatusTable } from './ops/cluster-status';

const DEFAULT_DATA = '.handlefs-cluster';
const DEFAULT_BASE_PORT = 7400;
const DEFAULT_MEMBERS = 3;
const MEMBERS_MAX = 7;
const TICK_MS = 50;
const ELECTION_TICKS = 10;
const UP_TIMEOUT_MS = 20_000;
/** Longer than a member's own stop deadline (10 s), so a slow but working stop is not cut short. */
const DOWN_TIMEOUT_MS = 15_000;
const POLL_INTERVAL_MS = 50;
const HTTP_TIMEOUT_MS = 1_000;
const LOG_TAIL_BYTES = 4_000;
const STATUS_BODY_MAX_BYTES = 64 * 1024;

interface ClusterOptions {
  dataRoot: string;
  basePort?: number;
  members?: number;
  json: boolean;
  tls: boolean;
}

/** What cluster.json holds: enough to rebuild the same layout. */
interface SavedLayout {
  basePort: number;
  members: number;
  /** Members run with the certificates of pki/ (set by `up --tls`, kept from then on). */
  tls?: boolean;
}

class UsageError extends Error {}

function parseOptions(args: string[]): ClusterOptions {
  const options: ClusterOptions = { dataRoot: path.resolve(DEFAULT_DATA), json: false, tls: false };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (flag === '--json') {
      options.json = true;
      continue;
    }
    if (flag === '--tls') {
      options.tls = true;
      continue;
    }
    const value = args[++i];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    switch (flag) {
      case '--data':
        options.dataRoot = path.resolve(value);
        break;
      case '--base-port': {
        const port = Number(value);
        if (!Number.isInteger(port) || port < 1024 || port > 65_000) throw new UsageError(`--base-port must be an integer in 1024..65000, got ${value}`);
        options.basePort = port;
        break;
      }
      case '--members': {
        const count = Number(value);
        if (!Number.isInteger(count) || count < 1 || count > MEMBERS_MAX || count % 2 === 0) throw new UsageError(`--members must be an odd number from 1 to ${MEMBERS_MAX}, got ${value}`);
        options.members = count;
        break;
      }
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  return options;
}

function layoutPath(root: string): string {
  return path.join(root, 'cluster.json');
}

function readLayout(root: string): SavedLayout | undefined {
  let text: string;
  try {
    text = fs.readFileSync(layoutPath(root), 'utf8');
  } catch {
    return undefined;
  }
  const saved = JSON.parse(text) as Partial<SavedLayout>;
  if (!Number.isInteger(saved.basePort) || !Number.isInteger(saved.members)) throw new Error(`${layoutPath(root)} is damaged (basePort and members must be integers)`);
  if (saved.tls !== undefined && typeof saved.tls !== 'boolean') throw new Error(`${layoutPath(root)} is damaged (tls must be true or false)`);
  return saved as SavedLayout;
}

/** The saved layout wins; flags that contradict it are an error (the data folders belong to those ports and ids). */
function resolveLayout(options: ClusterOptions, saved: SavedLayout | undefined): SavedLayout {
  if (saved) {
    if (options.basePort !== undefined && options.basePort !== saved.basePort) throw new UsageError(`${options.dataRoot} holds a cluster on --base-port ${saved.basePort}, not ${options.basePort}`);
    if (options.members !== undefined && options.members !== saved.members) throw new UsageError(`${options.dataRoot} holds a cluster of ${saved.members} members, not ${options.members}`);
    // TLS once turned on stays on (the clients were told to use the CA); turning it on later is fine.
    return options.tls && !saved.tls ? { ...saved, tls: true } : saved;
  }
  return { basePort: options.basePort ?? DEFAULT_BASE_PORT, members: options.members ?? DEFAULT_MEMBERS, ...(options.tls ? { tls: true } : {}) };
}

const pkiDir = (root: string) => path.join(root, 'pki');

/** The CA and each member's certificate and key in pki/, made once (existing files are kept, never overwritten). */
function ensurePki(root: string, cluster: ProcessCluster): void {
  const dir = pkiDir(root);
  if (!fs.existsSync(caFilesOf(dir).caCert)) initCa(dir);
  for (const member of cluster.members) {
    // Every address a member is dialled on is 127.0.0.1 (ProcessCluster's layout); localhost for hand-typed addresses.
    if (!fs.existsSync(path.join(dir, `${member.id}.crt`))) issueCert(dir, { name: member.id, ips: ['127.0.0.1'], dnsNames: ['localhost'] });
  }
}

/** The server flags of a member of a TLS cluster: its own certificate, the cluster CA. */
function tlsArgs(root: string, id: string): string[] {
  const dir = pkiDir(root);
  return ['--tls-ca', caFilesOf(dir).caCert, '--tls-cert', path.join(dir, `${id}.crt`), '--tls-key', path.join(dir, `${id}.key`)];
}

async function clusterOf(root: string, layout: SavedLayout, needEntry: boolean): Promise<ProcessCluster> {
  return ProcessCluster.create({
    size: layout.members,
    basePort: layout.basePort,
    dataRoot: root,
    httpPorts: true,
    passClientAddresses: true,
    tickMs: TICK_MS,
    electionTicks: ELECTION_TICKS,
    // Only `up` runs members; the others need the layout alone.
    entryScript: needEntry ? metaServerMainPath() : undefined,
  });
}

const pidFile = (root: string, id: string) => path.join(root, `${id}.pid`);
const logFile = (root: string, id: string) => path.join(root, `${id}.log`);

/**
 * True when pid runs and its command line names this member's data folder.
 * A zombie (exited, not yet reaped by whoever inherited it) counts as gone.
 */
function isMemberAlive(pid: number, member: ProcessMember): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(member.dataDir);
  } catch {
    return false;
  }
}

function readPid(root: string, id: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile(root, id), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Member id → pid for the members that run; removes pid files that name no running member. */
function runningMembers(root: string, cluster: ProcessCluster): Map<string, number> {
  const running = new Map<string, number>();
  for (const member of cluster.members) {
    const pid = readPid(root, member.id);
    if (pid !== undefined && isMemberAlive(pid, member)) running.set(member.id, pid);
    else fs.rmSync(pidFile(root, member.id), { force: true });
  }
  return running;
}

interface HttpAnswer {
  code: number;
  body: string;
}

function httpGet(address: string, route: string): Promise<HttpAnswer> {
  const separator = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const request = http.get({ host: address.slice(0, separator), port: Number(address.slice(separator + 1)), path: route, agent: false, timeout: HTTP_TIMEOUT_MS }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > STATUS_BODY_MAX_BYTES) request.destroy(new Error(`${route} answer over ${STATUS_BODY_MAX_BYTES} bytes`));
      });
      response.on('end', () => resolve({ code: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${HTTP_TIMEOUT_MS} ms`)));
    request.on('error', reject);
  });
}

async function memberStatus(member: ProcessMember): Promise<MemberStatusJson | undefined> {
  try {
    const answer = await httpGet(member.httpAddress!, '/status');
    return answer.code === 200 ? (JSON.parse(answer.body) as MemberStatusJson) : undefined;
  } catch {
    return undefined;
  }
}

function logTail(root: string, id: string): string {
  try {
    const text = fs.readFileSync(logFile(root, id), 'utf8');
    return text.slice(-LOG_TAIL_BYTES);
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** SIGTERM to each pid, then waits until none is left (SIGKILL after DOWN_TIMEOUT_MS). Returns the ids that had to be killed. */
async function stopMembers(root: string, cluster: ProcessCluster, running: Map<string, number>): Promise<string[]> {
  for (const pid of running.values()) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Gone between the check and the signal: nothing to stop.
    }
  }
  const deadline = Date.now() + DOWN_TIMEOUT_MS;
  const alive = () => cluster.members.filter((m) => running.has(m.id) && isMemberAlive(running.get(m.id)!, m));
  while (alive().length > 0 && Date.now() < deadline) await sleep(POLL_INTERVAL_MS);
  const killed = alive().map((m) => m.id);
  for (const id of killed) {
    try {
      process.kill(running.get(id)!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const id of running.keys()) fs.rmSync(pidFile(root, id), { force: true });
  return killed;
}

async function up(options: ClusterOptions): Promise<number> {
  const layout = resolveLayout(options, readLayout(options.dataRoot));
  const cluster = await clusterOf(options.dataRoot, layout, true);
  const already = runningMembers(options.dataRoot, cluster);
  if (already.size > 0) {
    process.stderr.write(`handlefs cluster up: already up in ${options.dataRoot} (${[...already].map(([id, pid]) => `${id} pid ${pid}`).join(', ')}); \`handlefs cluster down\` stops it\n`);
    return 1;
  }
  if (layout.tls) {
    try {
      ensurePki(options.dataRoot, cluster);
    } catch (error) {
      if (!(error instanceof CertsError)) throw error;
      process.stderr.write(`handlefs cluster up --tls: cannot make the certificates in ${pkiDir(options.dataRoot)}: ${error.message}\n`);
      return 1;
    }
  }
  fs.writeFileSync(layoutPath(options.dataRoot), JSON.stringify(layout) + '\n');
  const started = new Map<string, number>();
  const exited: string[] = [];
  const children: ChildProcess[] = [];
  for (const member of cluster.members) {
    const log = fs.openSync(logFile(options.dataRoot, member.id), 'a');
    fs.writeSync(log, `--- handlefs cluster up ${new Date().toISOString()}\n`);
    // Detached with its output in the log: the member is no child of this command once it exits.
    const args = [...cluster.commandLine(member.id), ...(layout.tls ? tlsArgs(options.dataRoot, member.id) : [])];
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    if (child.pid === undefined) {
      exited.push(member.id);
      break;
    }
    children.push(child);
    child.once('exit', () => exited.push(member.id));
    started.set(member.id, child.pid);
    fs.writeFileSync(pidFile(options.dataRoot, member.id), `${child.pid}\n`);
  }
  const deadline = Date.now() + UP_TIMEOUT_MS;
  let statuses: (MemberStatusJson | undefined)[] = [];
  let ready = false;
  while (exited.length === 0 && Date.now() < deadline) {
    const answers = await Promise.all(cluster.members.map((m) => httpGet(m.httpAddress!, '/readyz').catch(() => undefined)));
    if (answers.every((a) => a?.code === 200)) {
      statuses = await Promise.all(cluster.members.map(memberStatus));
      ready = statuses.every((st) => st && st.leaderId !== '' && st.leaderId === statuses[0]!.leaderId);
      if (ready) break;
    }
    await sleep(POLL_INTERVAL_MS);
  }
  for (const child of children) child.unref();
  if (!ready) {
    const why = exited.length > 0 ? `${exited.join(', ')} exited` : `no agreed leader within ${UP_TIMEOUT_MS} ms`;
    await stopMembers(options.dataRoot, cluster, started);
    const tails = cluster.members.map((m) => `--- ${logFile(options.dataRoot, m.id)} (end)\n${logTail(options.dataRoot, m.id)}`).join('\n');
    process.stderr.write(`handlefs cluster up: ${why}; stopped the members\n${tails}\n`);
    return 1;
  }
  const leaderId = statuses[0]!.leaderId;
  process.stdout.write(`cluster up in ${options.dataRoot}: ${layout.members} members, leader ${leaderId} (term ${statuses[0]!.term})\n`);
  process.stdout.write(`client API (proto/metaserver.proto): ${cluster.members.map((m) => m.clientAddress).join(',')}\n`);
  if (layout.tls) process.stdout.write(`TLS on every port (mutual between members): clients add --tls-ca ${caFilesOf(pkiDir(options.dataRoot)).caCert}\n`);
  process.stdout.write(`status: handlefs cluster status${options.dataRoot === path.resolve(DEFAULT_DATA) ? '' : ` --data ${options.dataRoot}`}; logs: ${path.join(options.dataRoot, 'mN.log')}\n`);
  return 0;
}

async function down(options: ClusterOptions): Promise<number> {
  const saved = readLayout(options.dataRoot);
  if (!saved) {
    process.stderr.write(`handlefs cluster down: no cluster in ${options.dataRoot} (no cluster.json)\n`);
    return 1;
  }
  const cluster = await clusterOf(options.dataRoot, resolveLayout(options, saved), false);
  const running = runningMembers(options.dataRoot, cluster);
  if (running.size === 0) {
    process.stdout.write(`cluster in ${options.dataRoot} is already down\n`);
    return 0;
  }
  // SIGTERM: a leader hands leadership over before it exits, so the others never wait out an election timeout.
  const killed = await stopMembers(options.dataRoot, cluster, running);
  if (killed.length > 0) {
    process.stderr.write(`handlefs cluster down: ${killed.join(', ')} did not stop within ${DOWN_TIMEOUT_MS} ms of SIGTERM and were killed\n`);
    return 1;
  }
  process.stdout.write(`cluster in ${options.dataRoot} stopped (${[...running.keys()].join(', ')})\n`);
  return 0;
}

interface MemberReport {
  id: string;
  pid: number | null;
  raftAddress: string;
  clientAddress: string;
  httpAddress: string;
  status: MemberStatusJson | null;
}

/** The admin Status of a member in the shape /status has (MemberStatusJson), for scripts written against either. */
function statusJsonOf(reply: StatusReply): MemberStatusJson {
  return {
    id: reply.id, role: reply.role, term: reply.term, leaderId: reply.leaderId, leaderAddress: reply.members.find((m) => m.id === reply.leaderId)?.peerAddress ?? '',
    members: reply.members.map((m) => ({ id: m.id, address: m.peerAddress, role: m.role })), commitIndex: reply.commitIndex, appliedIndex: reply.appliedIndex, pid: reply.pid,
  };
}

/** `handlefs status` (deploy/ops) over this folder's members, with each one's pid beside it. */
async function status(options: ClusterOptions): Promise<number> {
  const saved = readLayout(options.dataRoot);
  if (!saved) {
    process.stderr.write(`handlefs cluster status: no cluster in ${options.dataRoot} (no cluster.json)\n`);
    return 1;
  }
  const layout = resolveLayout(options, saved);
  const cluster = await clusterOf(options.dataRoot, layout, false);
  const running = runningMembers(options.dataRoot, cluster);
  const security = layout.tls ? clientSecurityFromFiles({ caFile: caFilesOf(pkiDir(options.dataRoot)).caCert }) : undefined;
  const client = new AdminClient(cluster.members.map((m) => m.clientAddress), security);
  let answers: Answer[];
  try {
    answers = await client.sweep();
  } finally {
    client.close();
  }
  const report = clusterStatus(answers);
  const reports: MemberReport[] = cluster.members.map((m, i) => ({
    id: m.id,
    pid: running.get(m.id) ?? null,
    raftAddress: m.raftAddress,
    clientAddress: m.clientAddress,
    httpAddress: m.httpAddress!,
    status: answers[i].status ? statusJsonOf(answers[i].status!) : null,
  }));
  if (answers.every((x) => !x.status)) report.summary = `down: no member answers (${running.size}/${reports.length} running)`;
  const healthy = report.health === 'healthy';
  if (options.json) {
    process.stdout.write(JSON.stringify({ dataRoot: options.dataRoot, tls: layout.tls === true, healthy, health: report.health, leaderId: report.leaderId, summary: report.summary, members: reports, rows: report.members }, null, 2) + '\n');
  } else {
    process.stdout.write(renderStatusTable(report, { header: 'pid', cell: (row) => String(reports.find((r) => r.id === row.id)?.pid ?? '-') }));
  }
  return healthy ? 0 : 1;
}

/** `handlefs cluster <up|down|status> [options]`; returns the exit code (2 = bad usage). */
export async function runClusterCommand(args: string[]): Promise<number> {
  const [action, ...rest] = args;
  let options: ClusterOptions;
  try {
    options = parseOptions(rest);
    if (options.json && action !== 'status') throw new UsageError('--json is for `cluster status` only');
    if (options.tls && action !== 'up') throw new UsageError('--tls is for `cluster up` only (status and down read it from cluster.json)');
    switch (action) {
      case 'up':
        return await up(options);
      case 'down':
        return await down(options);
      case 'status':
        return await status(options);
      default:
        throw new UsageError(`cluster needs up, down or status, got ${JSON.stringify(action ?? '')}`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`handlefs cluster: ${error.message}\n`);
    return 2;
  }
}
