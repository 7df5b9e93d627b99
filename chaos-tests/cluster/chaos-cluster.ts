/**
 * The cluster a chaos run attacks, and the ChaosControl the nemeses use:
 * simulated hosts (deploy/netns; hosts 1-3 run the three metaservers, host 4
 * the control agent, hosts 5.. one client each), members started with
 * `nsenter --net=` (runIn) on their data folders in the run folder, FUSE mount
 * processes inside client hosts (the mount points stay in the shared mount
 * namespace), and worker processes. Follows client/fuse/multihost/harness.ts
 * (that rig is a test helper under client/, fixed to a temporary folder; this
 * one adds SIGSTOP, blackholes, an agent and workers).
 * Owns every process, mount, host and route it makes; destroy() removes them
 * all, whatever happened. Must never touch a mount's files itself (workers
 * do) and never kill a process it did not start.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runIn } from '../../deploy/netns/exec';
import { blackhole, cutHost, healHost, unblackhole } from '../../deploy/netns/faults';
import { HostInfo, hostsDown, hostsUp } from '../../deploy/netns/hosts';
import { mountProcessEnv } from '../../client/fuse/fuse-loader';
import { forceUnmount, isMounted, mountProcessScript } from '../../client/fuse/mount-control';
import type { ChaosClientHost, ChaosControl, ChaosMember } from '../nemesis/nemesis';
import type { FinalRead, MemberStatus } from './agent-main';
import { alive, exitOf, readyLine, withLimit } from '../../deploy/netns/host-process';
import { LineRpc, onJsonLines, sleep } from './processes';
import type { SessionListing } from '../session-expiry';
import { metaServerMainPath } from '../../metaserver/server/main-path';

const RAFT_PORT = 7001;
const CLIENT_PORT = 8001;
const HTTP_PORT = 9001;
const MEMBER_COUNT = 3;
const CONTROL_HOST_INDEX = MEMBER_COUNT + 1;
export const CLIENTS_MAX = 16;
const SERVER_READY_LIMIT_MS = 30_000;
const SERVER_EXIT_LIMIT_MS = 10_000;
const MOUNT_READY_LIMIT_MS = 30_000;
const MOUNT_STOP_LIMIT_MS = 8_000;
const AGENT_READY_LIMIT_MS = 20_000;
const AGENT_CALL_LIMIT_MS = 30_000;
const FINAL_READ_LIMIT_MS = 120_000;
const FSCK_LIMIT_MS = 90_000;
const SESSIONS_LIMIT_MS = 20_000;
const LEADER_POLL_MS = 100;
const PROMOTE_LIMIT_MS = 30_000;
const STDERR_TAIL_BYTES = 64 * 1024;
const OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024;

/** The repository root, from sources (jest) and from dist/. */
export const REPO_ROOT = __filename.endsWith('.ts') ? path.resolve(__dirname, '..', '..') : path.resolve(__dirname, '..', '..', '..');
export function distScript(...parts: string[]): string {
  return path.join(REPO_ROOT, 'dist', ...parts);
}

export interface ClusterOptions {
  prefix: string;
  bridge: string;
  runDir: string;
  clients: number;
  /** Flags every member runs with (after the addressing ones). */
  serverArgs: string[];
  random: () => number;
  originMs: number;
  /**
   * Start members with the debug-unsafe slow-disk hook (--debug-fsync-delay-file, HANDLEFS_DEBUG_UNSAFE=1):
   * only when the slow-disk nemesis runs, since it makes members print a DEBUG-UNSAFE banner.
   */
  fsyncDelayHook: boolean;
  /**
   * debug-unsafe fault switches every member runs with (e.g. `--debug-unsafe stale-reads`), for the checkers' own test
   * (selftest.test.ts): the cluster is wrong on purpose. Non-empty also sets HANDLEFS_DEBUG_UNSAFE=1 for the members.
   */
  debugUnsafeArgs?: string[];
  log: (line: string) => void;
}

interface Member extends ChaosMember {
  hostInfo: HostInfo;
  httpAddress: string;
  dataDir: string;
  child?: ChildProcess;
  stopped: boolean;
  stderr: string;
}

export interface Mount {
  client: string;
  host: string;
  dir: string;
  child: ChildProcess;
  stderr: () => string;
}

export interface FsckResult {
  clean: boolean;
  index: number;
  members: Array<{ id: string; digest?: string; error?: string }>;
  raw: unknown;
}

function logStream(file: string): fs.WriteStream {
  return fs.createWriteStream(file, { flags: 'a' });
}

export class ChaosCluster implements ChaosControl {
  private readonly memberList: Member[] = [];
  private hosts: HostInfo[] = [];
  private agent?: { child: ChildProcess; rpc: LineRpc };
  private readonly mounts: Mount[] = [];
  private readonly mountDirs = new Set<string>();
  private readonly children = new Set<ChildProcess>();
  private readonly blackholes = new Set<string>();
  private readonly cutHosts = new Set<string>();
  private hostsMade = false;
  private sparesAdded = 0;
  private readonly slowDisks = new Set<string>();

  private constructor(private readonly options: ClusterOptions) {}

  /** Brings everything up; on a failure half way, takes down what it made and rethrows. */
  static async start(options: ClusterOptions): Promise<ChaosCluster> {
    if (!(Number.isInteger(options.clients) && options.clients >= 1 && options.clients <= CLIENTS_MAX)) {
      throw new Error(`--clients must be an integer in 1..${CLIENTS_MAX}, got ${options.clients}`);
    }
    const cluster = new ChaosCluster(options);
    try {
      await cluster.bringUp();
    } catch (error) {
      await cluster.destroy().catch((cleanup: Error) => options.log(`cleanup after a failed start also failed: ${cleanup.message}`));
      throw error;
    }
    return cluster;
  }

  private async bringUp(): Promise<void> {
    const { prefix, bridge, runDir } = this.options;
    // A crashed run of the same prefix is cleaned first (as the multihost rig does).
    await hostsDown({ prefix, bridge });
    this.hostsMade = true;
    // The last host is the spare one the membership nemesis starts new members in.
    this.hosts = await hostsUp({ count: CONTROL_HOST_INDEX + this.options.clients + 1, prefix, bridge });
    fs.mkdirSync(path.join(runDir, 'logs'), { recursive: true });
    for (let i = 0; i < MEMBER_COUNT; i++) {
      const hostInfo = this.hosts[i];
      this.memberList.push({
        id: `m${i + 1}`, host: hostInfo.name, address: hostInfo.address, hostInfo,
        peerAddress: `${hostInfo.address}:${RAFT_PORT}`, clientAddress: `${hostInfo.address}:${CLIENT_PORT}`, httpAddress: `${hostInfo.address}:${HTTP_PORT}`,
        dataDir: path.join(runDir, 'data', `m${i + 1}`), pid: undefined, stopped: false, stderr: '',
      });
    }
    await Promise.all(this.memberList.map((m) => this.startMember(m)));
    await this.startAgent();
    const leader = await this.leader(30_000);
    if (leader === undefined) throw new Error('no leader within 30 s of starting the cluster');
    this.log(`cluster up: members ${this.memberList.map((m) => `${m.id}@${m.host}`).join(', ')}, leader ${leader}`);
  }

  get servers(): string[] {
    return this.memberList.map((m) => m.clientAddress);
  }

  /**
   * The members' client addresses starting at member `start` (mod the count): a fresh client's first calls go to
   * its first server, so rotating the list per client spreads reads over followers (the stale-reads self-test).
   */
  serversFrom(start: number): string[] {
    const all = this.servers.slice(0, MEMBER_COUNT);
    const at = ((start % all.length) + all.length) % all.length;
    return [...all.slice(at), ...all.slice(0, at)];
  }

  private member(id: string): Member {
    const found = this.memberList.find((m) => m.id === id);
    if (!found) throw new Error(`no member ${JSON.stringify(id)} (have ${this.memberList.map((m) => m.id).join(', ')})`);
    return found;
  }

  /**
   * Every child runs in its own process group (spawned detached): a Ctrl-C in the terminal reaches only
   * the runner, which then stops workers, mounts and members in its own order. Still awaited (never unref'd).
   */
  private track(child: ChildProcess): ChildProcess {
    this.children.add(child);
    void exitOf(child).then(() => this.children.delete(child));
    return child;
  }

  private async startMember(member: Member, join = false): Promise<void> {
    if (alive(member.child)) throw new Error(`${member.id} is already running`);
    const peers = this.memberList.map((m) => `${m.id}=${m.peerAddress}`).join(',');
    const clients = this.memberList.map((m) => `${m.id}=${m.clientAddress}`).join(',');
    const hook = this.options.fsyncDelayHook ? ['--debug-fsync-delay-file', this.fsyncDelayFile(member.id)] : [];
    if (this.options.fsyncDelayHook && !fs.existsSync(this.fsyncDelayFile(member.id))) {
      fs.mkdirSync(path.dirname(this.fsyncDelayFile(member.id)), { recursive: true });
      fs.writeFileSync(this.fsyncDelayFile(member.id), '0\n');
    }
    const debugArgs = this.options.debugUnsafeArgs ?? [];
    // Only runs that ask for a debug-unsafe hook or switch get the environment that allows them.
    const unsafe = this.options.fsyncDelayHook || debugArgs.length > 0;
    const child = this.track(runIn(member.host, process.execPath, [
      metaServerMainPath(), '--id', member.id, '--listen', member.peerAddress, '--client-listen', member.clientAddress,
      '--metrics-listen', member.httpAddress, '--data', member.dataDir, '--peers', peers, '--clients', clients, ...this.options.serverArgs,
      ...(join ? ['--join'] : []), ...hook, ...debugArgs,
    ], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: unsafe ? { ...process.env, HANDLEFS_DEBUG_UNSAFE: '1' } : process.env }));
    member.child = child;
    member.stopped = false;
    member.stderr = '';
    const log = logStream(path.join(this.options.runDir, 'logs', `${member.id}.log`));
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    void exitOf(child).then((code) => {
      log.end(`--- ${member.id} exited (${code ?? child.signalCode})\n`);
      if (member.child === child) member.pid = undefined;
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { member.stderr = (member.stderr + s).slice(-STDERR_TAIL_BYTES); });
    await readyLine(child, member.id, SERVER_READY_LIMIT_MS, () => member.stderr);
    member.pid = child.pid;
  }

  private async startAgent(): Promise<void> {
    const host = this.hosts[CONTROL_HOST_INDEX - 1].name;
    const child = this.track(runIn(host, process.execPath, [distScript('chaos-tests', 'cluster', 'agent-main.js'), this.servers.join(',')], { stdio: ['pipe', 'pipe', 'pipe'], detached: true }));
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_TAIL_BYTES); });
    const log = logStream(path.join(this.options.runDir, 'logs', 'agent.log'));
    child.stderr!.pipe(log);
    this.agent = { child, rpc: new LineRpc(child, 'chaos agent', () => stderr) };
    await withLimit('chaos agent start', AGENT_READY_LIMIT_MS, this.agent.rpc.call('status', {}, AGENT_READY_LIMIT_MS));
  }

  private rpc(): LineRpc {
    if (!this.agent) throw new Error('the chaos agent is not running');
    return this.agent.rpc;
  }

  // ---- ChaosControl ----

  members(): ChaosMember[] {
    return this.memberList.map(({ id, host, address, clientAddress, peerAddress, pid }) => ({ id, host, address, clientAddress, peerAddress, pid }));
  }

  clientHosts(): ChaosClientHost[] {
    return this.hosts.slice(CONTROL_HOST_INDEX, CONTROL_HOST_INDEX + this.options.clients).map((h) => ({ host: h.name, address: h.address }));
  }

  async status(): Promise<Array<MemberStatus | null>> {
    return this.rpc().call<Array<MemberStatus | null>>('status', {}, AGENT_CALL_LIMIT_MS);
  }

  async leader(timeoutMs = 10_000): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    // Bounded by timeoutMs.
    for (;;) {
      const statuses = await this.status().catch(() => [] as Array<MemberStatus | null>);
      let best: MemberStatus | undefined;
      for (const s of statuses) {
        if (s?.role !== 'leader') continue;
        const m = this.memberList.find((x) => x.id === s.id);
        if (!m || !alive(m.child) || m.stopped) continue;
        if (!best || s.term > best.term) best = s;
      }
      if (best) return best.id;
      if (Date.now() >= deadline) return undefined;
      await sleep(LEADER_POLL_MS);
    }
  }

  async kill9(memberId: string): Promise<void> {
    const member = this.member(memberId);
    const child = member.child;
    if (!alive(child)) throw new Error(`${memberId} is not running`);
    child.kill('SIGKILL');
    await withLimit(`${memberId} exit after SIGKILL`, SERVER_EXIT_LIMIT_MS, exitOf(child));
    member.pid = undefined;
    member.stopped = false;
  }

  async restart(memberId: string): Promise<void> {
    await this.startMember(this.member(memberId));
  }

  async signal(memberId: string, signal: 'SIGSTOP' | 'SIGCONT' | 'SIGTERM'): Promise<void> {
    const member = this.member(memberId);
    if (!alive(member.child)) throw new Error(`${memberId} is not running`);
    member.child.kill(signal);
    if (signal === 'SIGSTOP') member.stopped = true;
    if (signal === 'SIGCONT') member.stopped = false;
  }

  async cutHost(host: string): Promise<void> {
    await cutHost(host);
    this.cutHosts.add(host);
  }

  async healHost(host: string): Promise<void> {
    await healHost(host);
    this.cutHosts.delete(host);
  }

  async blackhole(fromHost: string, toAddress: string): Promise<void> {
    await blackhole(fromHost, toAddress);
    this.blackholes.add(`${fromHost}>${toAddress}`);
  }

  async unblackhole(fromHost: string, toAddress: string): Promise<void> {
    await unblackhole(fromHost, toAddress);
    this.blackholes.delete(`${fromHost}>${toAddress}`);
  }

  async transferLeader(toMemberId?: string): Promise<void> {
    await this.rpc().call('transfer', { to: toMemberId ?? '', timeoutMs: 5_000 }, AGENT_CALL_LIMIT_MS);
  }

  async addMember(): Promise<string> {
    if (this.memberList.length > MEMBER_COUNT) throw new Error(`a spare member (${this.memberList[MEMBER_COUNT].id}) is already in`);
    const hostInfo = this.hosts[this.hosts.length - 1];
    const id = `m${MEMBER_COUNT + ++this.sparesAdded}`;
    const member: Member = {
      id, host: hostInfo.name, address: hostInfo.address, hostInfo,
      peerAddress: `${hostInfo.address}:${RAFT_PORT}`, clientAddress: `${hostInfo.address}:${CLIENT_PORT}`, httpAddress: `${hostInfo.address}:${HTTP_PORT}`,
      dataDir: path.join(this.options.runDir, 'data', id), pid: undefined, stopped: false, stderr: '',
    };
    await this.rpc().call('member-add', { memberId: id, peerAddress: member.peerAddress, clientAddress: member.clientAddress }, AGENT_CALL_LIMIT_MS);
    this.memberList.push(member);
    try {
      await this.startMember(member, true);
      // Promotion is refused until the learner caught up: retry, bounded.
      const deadline = Date.now() + PROMOTE_LIMIT_MS;
      for (;;) {
        try {
          await this.rpc().call('member-promote', { memberId: id }, AGENT_CALL_LIMIT_MS);
          break;
        } catch (error) {
          if (Date.now() >= deadline) throw error;
          await sleep(500);
        }
      }
    } catch (error) {
      await this.removeMember(id).catch((e: Error) => this.log(`removing ${id} after a failed add also failed: ${e.message}`));
      throw error;
    }
    return id;
  }

  async removeMember(memberId: string): Promise<void> {
    const at = this.memberList.findIndex((m) => m.id === memberId);
    if (at < MEMBER_COUNT) throw new Error(`only a member added by addMember can be removed, not ${memberId}`);
    await this.rpc().call('member-remove', { memberId }, AGENT_CALL_LIMIT_MS);
    const member = this.memberList[at];
    if (alive(member.child)) await this.kill9(memberId);
    this.memberList.splice(at, 1);
  }

  private fsyncDelayFile(memberId: string): string {
    return path.join(this.options.runDir, 'data', `${memberId}.fsync-delay-ms`);
  }

  async setFsyncDelay(memberId: string, delayMs: number): Promise<void> {
    if (!this.options.fsyncDelayHook) throw new Error('the members run without the fsync-delay hook');
    if (!(Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= 10_000)) throw new Error(`fsync delay must be an integer of ms in 0..10000, got ${delayMs}`);
    this.member(memberId);
    // Written whole then renamed, so the member never reads a half-written number.
    const file = this.fsyncDelayFile(memberId);
    await fs.promises.writeFile(`${file}.tmp`, `${delayMs}\n`);
    await fs.promises.rename(`${file}.tmp`, file);
    if (delayMs > 0) this.slowDisks.add(memberId);
    else this.slowDisks.delete(memberId);
  }

  random(): number {
    return this.options.random();
  }

  nowMs(): number {
    return performance.timeOrigin + performance.now() - this.options.originMs;
  }

  log(line: string): void {
    this.options.log(line);
  }

  // ---- the run ----

  /** Makes the workloads' folders, and `files` empty. */
  async mkdirs(paths: string[], files: string[] = []): Promise<void> {
    await this.rpc().call('mkdirs', { paths, files }, AGENT_CALL_LIMIT_MS);
  }

  /** Undoes every fault still in place: SIGCONT, routes, links, and restarts members that are down. */
  async healAll(): Promise<void> {
    for (const member of this.memberList) if (alive(member.child) && member.stopped) await this.signal(member.id, 'SIGCONT');
    for (const key of [...this.blackholes]) {
      const [from, to] = key.split('>');
      await this.unblackhole(from, to);
    }
    for (const host of [...this.cutHosts]) await this.healHost(host);
    for (const id of [...this.slowDisks]) await this.setFsyncDelay(id, 0);
    for (const member of this.memberList.slice(0, MEMBER_COUNT)) if (!alive(member.child)) await this.startMember(member);
    for (const spare of this.memberList.slice(MEMBER_COUNT)) await this.removeMember(spare.id);
  }

  /** Waits until one leader leads every member and all have applied the same index as the leader's commit. */
  async waitConverged(timeoutMs: number): Promise<MemberStatus[]> {
    const deadline = Date.now() + timeoutMs;
    let last: Array<MemberStatus | null> = [];
    // Bounded by timeoutMs.
    while (Date.now() < deadline) {
      last = await this.status().catch(() => []);
      const all = last.filter((s): s is MemberStatus => s !== null);
      const leaders = all.filter((s) => s.role === 'leader');
      if (all.length === MEMBER_COUNT && leaders.length === 1 && all.every((s) => s.leaderId === leaders[0].id && s.appliedIndex === leaders[0].commitIndex)) return all;
      await sleep(200);
    }
    throw new Error(`the cluster did not converge within ${timeoutMs} ms: ${JSON.stringify(last)}`);
  }

  async finalRead(files: string[], dirs: string[]): Promise<FinalRead> {
    return this.rpc().call<FinalRead>('final', { files, dirs }, FINAL_READ_LIMIT_MS);
  }

  /** `handlefs fsck --json` run inside the control host. */
  async fsck(): Promise<FsckResult> {
    const { code, json } = await this.handlefsJson(['fsck', '--servers', this.servers.join(','), '--json'], FSCK_LIMIT_MS);
    const report = json as { clean: boolean; index: number; members: Array<{ id: string; digest?: string; error?: string }> };
    return { clean: code === 0 && report.clean === true, index: report.index, members: report.members, raw: report };
  }

  /** The leader's session listing (`handlefs sessions --json`, inside the control host). */
  async sessions(): Promise<SessionListing> {
    const { code, json, stderr } = await this.handlefsJson(['sessions', '--servers', this.servers.join(','), '--json'], SESSIONS_LIMIT_MS);
    // Exit 1 with a listing: a session the leader does not track (overdueSessions reports it); without one, handlefsJson threw.
    if (code !== 0 && code !== 1) throw new Error(`handlefs sessions exited ${code}: ${stderr.slice(-2000)}`);
    return sessionListingOf(json);
  }

  /** Runs `handlefs ARGS` inside the control host and parses its stdout as JSON. */
  private async handlefsJson(args: string[], limitMs: number): Promise<{ code: number | null; json: unknown; stderr: string }> {
    const host = this.hosts[CONTROL_HOST_INDEX - 1].name;
    const child = this.track(runIn(host, process.execPath, [path.join(REPO_ROOT, 'bin', 'handlefs.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout = (stdout + s).slice(-OUTPUT_LIMIT_BYTES); });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_TAIL_BYTES); });
    let code: number | null;
    try {
      code = await withLimit(`handlefs ${args[0]}`, limitMs, exitOf(child));
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
    try {
      return { code, json: JSON.parse(stdout), stderr };
    } catch {
      throw new Error(`handlefs ${args[0]} exited ${code} without a JSON report: ${stderr.slice(-2000)}`);
    }
  }

  /** A FUSE mount of the cluster whose mount process runs inside the client's host. */
  async startMount(client: string, host: string, extraArgs: string[], servers: string[] = this.servers): Promise<Mount> {
    const dir = path.join(this.options.runDir, 'mnt', client);
    fs.mkdirSync(dir, { recursive: true });
    this.mountDirs.add(dir);
    const child = this.track(runIn(host, process.execPath, [mountProcessScript(), dir, '--servers', servers.join(','), ...extraArgs], { env: mountProcessEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_TAIL_BYTES); });
    const log = logStream(path.join(this.options.runDir, 'logs', `mount-${client}.log`));
    child.stderr!.pipe(log);
    const mount: Mount = { client, host, dir, child, stderr: () => stderr };
    this.mounts.push(mount);
    await withLimit(`mount ${dir} in ${host}`, MOUNT_READY_LIMIT_MS, new Promise<void>((resolve, reject) => {
      onJsonLines(child.stdout!, (event) => {
        log.write(JSON.stringify(event) + '\n');
        if (event.event === 'ready') resolve();
        else if (event.event === 'failed') reject(new Error(`mount ${dir} failed: ${String(event.error)}`));
      });
      void exitOf(child).then((code) => reject(new Error(`mount ${dir}: process exited (${code}) before ready; stderr: ${stderr}`)));
    }));
    return mount;
  }

  /** Starts a worker: inside `host` (SDK clients) or in the runner's namespace (FUSE clients only touch their mount's files). */
  spawnWorker(configJson: string, host: string | undefined): ChildProcess {
    const script = distScript('chaos-tests', 'workloads', 'worker-main.js');
    // Hung FUSE calls each hold a libuv thread: give the pool room (worker-main caps hung calls at 8).
    const env = { ...process.env, UV_THREADPOOL_SIZE: '16' };
    const child = host === undefined
      ? spawn(process.execPath, [script, configJson], { stdio: ['pipe', 'pipe', 'pipe'], env, detached: true })
      : runIn(host, process.execPath, [script, configJson], { stdio: ['pipe', 'pipe', 'pipe'], env, detached: true });
    return this.track(child);
  }

  private async stopMount(mount: Mount): Promise<void> {
    if (alive(mount.child)) {
      mount.child.kill('SIGTERM');
      const inTime = await withLimit('mount stop', MOUNT_STOP_LIMIT_MS, exitOf(mount.child)).then(() => true, () => false);
      if (!inTime) mount.child.kill('SIGKILL');
      await withLimit('mount exit', MOUNT_STOP_LIMIT_MS, exitOf(mount.child)).catch(() => undefined);
    }
    if (await isMounted(mount.dir)) await forceUnmount(mount.dir);
  }

  /** Everything down: workers, mounts, agent, members, hosts, mount points. Rethrows the first failure after every step ran. */
  async destroy(): Promise<void> {
    const failures: unknown[] = [];
    const step = async (work: () => Promise<unknown>): Promise<void> => { await work().catch((error) => { failures.push(error); }); };
    const mountChildren = new Set(this.mounts.map((m) => m.child));
    const memberChildren = new Set(this.memberList.map((m) => m.child));
    // Workers first: they may sit in a FUSE call; SIGKILL ends even those.
    for (const child of [...this.children]) {
      if (mountChildren.has(child) || memberChildren.has(child) || child === this.agent?.child) continue;
      child.kill('SIGKILL');
    }
    // Mounts before members, so a mount can still flush while the cluster answers (heal first: a cut host would stall it).
    for (const host of [...this.cutHosts]) await step(() => this.healHost(host));
    await Promise.all(this.mounts.map((m) => step(() => this.stopMount(m))));
    for (const dir of this.mountDirs) await step(async () => { if (await isMounted(dir)) await forceUnmount(dir); });
    if (this.agent && alive(this.agent.child)) {
      this.agent.child.stdin!.end();
      const ended = await withLimit('agent exit', 3_000, exitOf(this.agent.child)).then(() => true, () => false);
      if (!ended) this.agent.child.kill('SIGKILL');
    }
    for (const member of this.memberList) {
      const child = member.child;
      if (!alive(child)) continue;
      child.kill('SIGKILL');
      if (member.stopped) child.kill('SIGCONT');
    }
    for (const child of [...this.children]) {
      if (alive(child)) child.kill('SIGKILL');
      await step(() => withLimit(`pid ${child.pid} exit`, SERVER_EXIT_LIMIT_MS, exitOf(child)));
    }
    if (this.hostsMade) {
      await step(async () => {
        const report = await hostsDown({ prefix: this.options.prefix, bridge: this.options.bridge });
        if (report.busy.length > 0) throw new Error(`hosts still busy after hostsDown: ${JSON.stringify(report.busy)}`);
      });
    }
    for (const dir of this.mountDirs) {
      if (await isMounted(dir)) failures.push(new Error(`${dir} is still mounted`));
      // rmdir only (never a recursive rm through a mount): an empty mount point.
      else await step(() => fs.promises.rmdir(dir).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; }));
    }
    await step(() => fs.promises.rmdir(path.join(this.options.runDir, 'mnt')).catch(() => undefined));
    if (failures.length > 0) throw failures[0];
  }

  /** Fault events the cluster itself cannot undo are the nemeses' business; this lists what is still in place (for the log). */
  outstanding(): string[] {
    return [
      ...[...this.blackholes].map((b) => `blackhole ${b}`),
      ...[...this.cutHosts].map((h) => `cut ${h}`),
      ...this.memberList.filter((m) => !alive(m.child)).map((m) => `${m.id} down`),
      ...this.memberList.filter((m) => m.stopped).map((m) => `${m.id} stopped`),
      ...[...this.slowDisks].map((id) => `${id} slow disk`),
    ];
  }
}

/** The listing `handlefs sessions --json` prints, checked field by field (a changed format is an error, not a pass). */
function sessionListingOf(json: unknown): SessionListing {
  const reply = json as { expiryIntervalMs?: unknown; sessions?: unknown };
  if (typeof reply?.expiryIntervalMs !== 'number' || !Array.isArray(reply.sessions)) throw new Error(`handlefs sessions --json: unexpected shape ${JSON.stringify(json).slice(0, 300)}`);
  return {
    expiryIntervalMs: reply.expiryIntervalMs,
    sessions: reply.sessions.map((raw: Record<string, unknown>) => {
      const session = { id: raw.id, clientName: raw.clientName, ttlMs: raw.ttlMs, fhs: raw.fhs, tracked: raw.tracked, sinceKeepAliveMs: raw.sinceKeepAliveMs ?? 0 };
      if (typeof session.id !== 'number' || typeof session.ttlMs !== 'number' || typeof session.fhs !== 'number' || typeof session.tracked !== 'boolean') {
        throw new Error(`handlefs sessions --json: unexpected session ${JSON.stringify(raw).slice(0, 300)}`);
      }
      return session as SessionListing['sessions'][number];
    }),
  };
}
