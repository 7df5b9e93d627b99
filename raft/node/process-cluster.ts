/**
 * Runs a cluster of member processes (by default the kvtest server,
 * dist/raft/node/server-main.js; any member-process entry via `entryScript`)
 * on loopback with LevelDB folders in a temp dir, for the integration test and
 * the bench. Owns the members' layout (ids, addresses, data folders), their
 * command lines, spawning, readiness, kill -9 / SIGTERM and cleanup; must
 * never leave a child it spawned running (killAll on every exit path) and
 * never reach beyond 127.0.0.1. (deploy/'s `handlefs cluster up` reuses the
 * layout and command lines but spawns detached members itself.)
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClusterKvClient, KvTestClient } from './kvtest-client';

/** dist/raft/node/server-main.js, found from either the sources or dist/. */
export function serverMainPath(): string {
  const maxLevels = 6;
  let dir = __dirname;
  for (let level = 0; level < maxLevels; level++) {
    const candidate = path.join(dir, 'dist', 'raft', 'node', 'server-main.js');
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find dist/raft/node/server-main.js above ${__dirname}; run npx tsc -p . first`);
}

/**
 * Child processes run the compiled JS: refuse to test stale output. Every
 * non-test .ts that server-main is built from (raft/core, node, storage,
 * transport) must be older than its dist/ counterpart.
 */
export function assertDistIsFresh(folders: string[] = ['raft/core', 'raft/node', 'raft/storage', 'raft/transport']): void {
  const distMain = serverMainPath();
  const repoRoot = path.resolve(path.dirname(distMain), '..', '..', '..');
  const stale: string[] = [];
  const maxFiles = 10_000;
  let seen = 0;
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (++seen > maxFiles) return;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('.d.ts')) {
        const compiled = path.join(repoRoot, 'dist', path.relative(repoRoot, full)).replace(/\.ts$/, '.js');
        if (!fs.existsSync(compiled) || fs.statSync(compiled).mtimeMs < fs.statSync(full).mtimeMs) stale.push(path.relative(repoRoot, full));
      }
    }
  };
  for (const folder of folders) walk(path.join(repoRoot, folder));
  if (stale.length > 0) throw new Error(`dist/ is older than ${stale.slice(0, 5).join(', ')}${stale.length > 5 ? ` and ${stale.length - 5} more` : ''}: run \`npx tsc -p .\` first`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface ProcessMember {
  id: string;
  raftAddress: string;
  clientAddress: string;
  /** /metrics, /healthz, /readyz, /status (--metrics-listen), when the cluster was created with httpPorts. */
  httpAddress?: string;
  dataDir: string;
  child?: ChildProcess;
  /** The last lines of the child's stderr, for failure reports (bounded). */
  stderrTail: string[];
  /** How often each structured log message appeared on stderr, over every run of this member (bounded). */
  logCounts: Map<string, number>;
}

export interface ProcessClusterOptions {
  size: number;
  /** The compiled member entry to run (default: serverMainPath(), the kvtest server). */
  entryScript?: string;
  /** Give each member an HTTP port (--metrics-listen): basePort+200+i, or a free port. */
  httpPorts?: boolean;
  tickMs: number;
  electionTicks: number;
  extraArgs?: string[];
  /** Pass every member's client API address as `--clients id=host:port,...` (the metadata server's leader hints need them). */
  passClientAddresses?: boolean;
  /** Arguments for node itself, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']. */
  nodeArgs?: string[];
  /** Environment variables set for the members besides this process's own (e.g. HANDLEFS_DEBUG_UNSAFE=1 for the chaos fault switches). */
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /** Keep the members' data here (kept across runs, never deleted) instead of a fresh temp folder. */
  dataRoot?: string;
  /** Fixed ports, so a kept cluster restarts at the same addresses: raft at basePort+i, client API at basePort+100+i, HTTP at basePort+200+i. */
  basePort?: number;
}

const STDERR_TAIL_LINES = 80;
const LOG_MESSAGES_COUNTED_MAX = 200;
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class ProcessCluster {
  readonly members: ProcessMember[] = [];
  readonly root: string;
  private constructor(private readonly options: ProcessClusterOptions) {
    if (options.dataRoot !== undefined) {
      fs.mkdirSync(options.dataRoot, { recursive: true });
      this.root = path.resolve(options.dataRoot);
    } else {
      this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'raft-cluster-'));
    }
  }

  static async create(options: ProcessClusterOptions): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(options);
    const base = options.basePort;
    for (let i = 1; i <= options.size; i++) {
      const id = `m${i}`;
      cluster.members.push({
        id,
        raftAddress: `127.0.0.1:${base === undefined ? await freePort() : base + i}`,
        clientAddress: `127.0.0.1:${base === undefined ? await freePort() : base + 100 + i}`,
        httpAddress: options.httpPorts ? `127.0.0.1:${base === undefined ? await freePort() : base + 200 + i}` : undefined,
        dataDir: path.join(cluster.root, id),
        stderrTail: [],
        logCounts: new Map(),
      });
    }
    return cluster;
  }

  get peersArg(): string {
    return this.members.map((m) => `${m.id}=${m.raftAddress}`).join(',');
  }

  member(id: string): ProcessMember {
    const member = this.members.find((m) => m.id === id);
    if (!member) throw new Error(`no member ${id}`);
    return member;
  }

  clientAddresses(): Record<string, string> {
    return Object.fromEntries(this.members.map((m) => [m.id, m.clientAddress]));
  }

  /** `--clients id=host:port,...` (every member's client API), as the metadata server takes it. */
  get clientsArg(): string {
    return this.members.map((m) => `${m.id}=${m.clientAddress}`).join(',');
  }

  /** The arguments after `node` that run member `id`. */
  commandLine(id: string): string[] {
    const member = this.member(id);
    return [
      ...(this.options.nodeArgs ?? []), this.options.entryScript ?? serverMainPath(), '--id', id, '--listen', member.raftAddress, '--data', member.dataDir, '--peers', this.peersArg,
      '--client-listen', member.clientAddress, '--tick-ms', String(this.options.tickMs), '--election-ticks', String(this.options.electionTicks),
      ...(member.httpAddress ? ['--metrics-listen', member.httpAddress] : []),
      ...(this.options.passClientAddresses ? ['--clients', this.clientsArg] : []),
      ...(this.options.extraArgs ?? []),
    ];
  }

  /** Spawns the member and resolves once it printed its ready line. */
  start(id: string): Promise<void> {
    const member = this.member(id);
    if (member.child) throw new Error(`${id} is already running`);
    const args = this.commandLine(id);
    const env = this.options.env ? { ...process.env, ...this.options.env } : undefined;
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    member.child = child;
    live.add(child);
    let partial = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line) continue;
        const message = /"message":"([^"]{1,200})"/.exec(line)?.[1];
        if (message && (member.logCounts.has(message) || member.logCounts.size < LOG_MESSAGES_COUNTED_MAX)) {
          member.logCounts.set(message, (member.logCounts.get(message) ?? 0) + 1);
        }
        member.stderrTail.push(line);
        if (member.stderrTail.length > STDERR_TAIL_LINES) member.stderrTail.shift();
      }
    });
    child.once('exit', () => {
      live.delete(child);
      if (member.child === child) member.child = undefined;
    });
    const timeoutMs = this.options.readyTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`${id} did not become ready within ${timeoutMs} ms:\n${member.stderrTail.join('\n')}`)), timeoutMs);
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        if (stdout.includes('"event":"ready"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${id} exited (code ${code}, signal ${signal}) before it was ready:\n${member.stderrTail.join('\n')}`));
      });
    });
  }

  async startAll(): Promise<void> {
    await Promise.all(this.members.map((m) => this.start(m.id)));
  }

  /** Sends the signal and waits for the exit; returns the exit code (null when killed by a signal). */
  async signal(id: string, signal: NodeJS.Signals, timeoutMs = 15_000): Promise<number | null> {
    const child = this.member(id).child;
    if (!child) throw new Error(`${id} is not running`);
    const exited = new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${id} did not exit within ${timeoutMs} ms of ${signal}`)), timeoutMs);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    child.kill(signal);
    return exited;
  }

  running(): ProcessMember[] {
    return this.members.filter((m) => m.child);
  }

  /** The running member that says it leads (highest term wins), or undefined. */
  async findLeader(): Promise<ProcessMember | undefined> {
    let best: { member: ProcessMember; term: number } | undefined;
    await Promise.all(this.running().map(async (member) => {
      const client = new KvTestClient(member.clientAddress);
      try {
        const status = await client.status(1_000);
        if (status.role === 'leader' && (!best || status.term > best.term)) best = { member, term: status.term };
      } catch {
        // A member that does not answer is not the leader we want.
      } finally {
        client.close();
      }
    }));
    return best?.member;
  }

  async waitForLeader(timeoutMs: number): Promise<ProcessMember> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const leader = await this.findLeader();
      if (leader) return leader;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  /** Waits until every member runs, answers, follows one leader and has applied what that leader had committed. */
  async waitForHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const clients = this.members.map((m) => new KvTestClient(m.clientAddress));
    let last = '';
    try {
      while (Date.now() < deadline) {
        const statuses = await Promise.all(clients.map((c) => c.status(1_000).catch(() => undefined)));
        last = statuses.map((st, i) => (st ? `${st.id}: ${st.role} term ${st.term} leader ${st.leaderId || '-'} commit ${st.commitIndex} applied ${st.appliedIndex}` : `${this.members[i].id}: no answer`)).join('; ');
        const leaderId = statuses[0]?.leaderId;
        const leader = statuses.find((st) => st?.id === leaderId);
        if (leaderId && leader && statuses.every((st) => st && st.leaderId === leaderId && st.appliedIndex >= leader.commitIndex - 1)) return;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      for (const c of clients) c.close();
    }
    throw new Error(`the cluster did not become healthy within ${timeoutMs} ms (last statuses: ${last})\n${this.stderrReport()}`);
  }

  client(): ClusterKvClient {
    return new ClusterKvClient(this.clientAddresses());
  }

  /** How often a log message appeared, summed over members. */
  logCount(message: string): number {
    return this.members.reduce((sum, m) => sum + (m.logCounts.get(message) ?? 0), 0);
  }

  stderrReport(): string {
    return this.members.map((m) => `--- ${m.id} stderr (last lines)\n${m.stderrTail.join('\n')}`).join('\n');
  }

  /** SIGTERM to every running member (a graceful stop; CPU profiles are written), then waits for the exits. */
  async stopAll(): Promise<void> {
    await Promise.all(this.running().map((m) => this.signal(m.id, 'SIGTERM').catch(() => null)));
  }

  async killAll(): Promise<void> {
    await Promise.all(this.running().map((m) => this.signal(m.id, 'SIGKILL').catch(() => null)));
  }

  /** Kills every member and removes the data, unless it was a kept dataRoot. */
  async destroy(): Promise<void> {
    await this.killAll();
    if (this.options.dataRoot === undefined) fs.rmSync(this.root, { recursive: true, force: true });
  }
}
