/**
 * Test harness for handlefs across simulated hosts (deploy/netns): a 3-member
 * metadata cluster with one member per host namespace (hosts 1..3, listening
 * on their 127.77.0.x addresses) and FUSE mounts whose mount processes run in
 * other hosts (4, 5, ...) through `nsenter --net=` — so the mount points stay
 * in the shared mount namespace and the test process reads and writes them
 * with fs.promises. Looks at the cluster (leader, versions, conflict copies)
 * only from inside a host, through probe-main.js (see there why).
 * Owns the processes and folders it starts; destroy() stops mounts (SIGTERM,
 * then SIGKILL + forceUnmount), kills the servers, takes the hosts down and
 * removes its folder, even after a failure. Must never be used by a mount
 * process, and never touch a mount's files synchronously.
 */
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { runIn } from '../../../deploy/netns/exec';
import { alive, exitOf, readyLine, withLimit } from '../../../deploy/netns/host-process';
import { HostInfo, hostsDown, hostsUp } from '../../../deploy/netns/hosts';
import type { MemberStatusJson } from '../../../raft/node/member-process';
import { mountProcessEnv } from '../fuse-loader';
import { forceUnmount, isMounted, mountProcessScript, ReadyEvent } from '../mount-control';

const fsp = fs.promises;

const RAFT_PORT = 7001;
const CLIENT_PORT = 8001;
const HTTP_PORT = 9001;
const SERVER_READY_LIMIT_MS = 20_000;
const MOUNT_READY_LIMIT_MS = 20_000;
const MOUNT_STOP_LIMIT_MS = 10_000;
const SERVER_EXIT_LIMIT_MS = 10_000;
const PROBE_LIMIT_MS = 25_000;
const LEADER_LIMIT_MS = 20_000;
const LEADER_POLL_MS = 100;
const STDERR_TAIL_BYTES = 64 * 1024;
const OUTPUT_LIMIT_BYTES = 8 * 1024 * 1024;

export interface MetaMember {
  id: string;
  host: HostInfo;
  raftAddress: string;
  clientAddress: string;
  httpAddress: string;
  dataDir: string;
  child?: ChildProcess;
  stderr: string;
}

export interface HostMount {
  host: string;
  dir: string;
  pid: number;
  ready: ReadyEvent;
  child: ChildProcess;
  exited: Promise<number | null>;
  stderrTail(): string;
  /** SIGTERM and wait; SIGKILL if it does not exit in time; always leaves nothing mounted. */
  stop(): Promise<number | null>;
}

export interface RigOptions {
  /** Host namespace prefix and bridge: their own, so a demo's `handlefs hosts up` (hfs/hfsbr0) is never touched. */
  prefix: string;
  bridge: string;
  /** Hosts for mounts, after the three server hosts. */
  mountHosts: number;
  /** Flags every member runs with. */
  serverArgs?: string[];
}

export class MultiHostRig {
  readonly members: MetaMember[] = [];
  readonly mounts: HostMount[] = [];
  /** Mount points ever used, for the last forceUnmount. */
  private readonly mountDirs = new Set<string>();
  private readonly hosts: HostInfo[];

  private constructor(private readonly options: RigOptions, hosts: HostInfo[], readonly baseDir: string) {
    this.hosts = hosts;
  }

  /** Takes down a crashed run's hosts, brings up 3 + mountHosts hosts and starts a member in each of the first three. */
  static async start(options: RigOptions): Promise<MultiHostRig> {
    if (!(options.mountHosts >= 1 && options.mountHosts <= 8)) throw new Error(`mountHosts must be 1..8, got ${options.mountHosts}`);
    await hostsDown({ prefix: options.prefix, bridge: options.bridge });
    const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-multihost-'));
    fs.chmodSync(baseDir, 0o755);
    let hosts: HostInfo[];
    try {
      hosts = await hostsUp({ count: 3 + options.mountHosts, prefix: options.prefix, bridge: options.bridge });
    } catch (error) {
      fs.rmSync(baseDir, { recursive: true, force: true });
      throw error;
    }
    const rig = new MultiHostRig(options, hosts, baseDir);
    try {
      for (let i = 0; i < 3; i++) {
        const host = hosts[i];
        rig.members.push({
          id: `m${i + 1}`, host, raftAddress: `${host.address}:${RAFT_PORT}`, clientAddress: `${host.address}:${CLIENT_PORT}`,
          httpAddress: `${host.address}:${HTTP_PORT}`, dataDir: path.join(baseDir, `data-m${i + 1}`), stderr: '',
        });
      }
      await Promise.all(rig.members.map((m) => rig.startMember(m)));
      await rig.leader();
    } catch (error) {
      await rig.destroy();
      throw error;
    }
    return rig;
  }

  /** The members' client API addresses, as --servers takes them. */
  get servers(): string {
    return this.members.map((m) => m.clientAddress).join(',');
  }

  /** The host a mount or probe runs in: 1-based among the mount hosts. */
  mountHost(index: number): string {
    const host = this.hosts[2 + index];
    if (!host) throw new Error(`there is no mount host ${index} (have ${this.options.mountHosts})`);
    return host.name;
  }

  /** Spawns the member inside its host and waits for its ready line. */
  async startMember(member: MetaMember): Promise<void> {
    if (alive(member.child)) throw new Error(`${member.id} is already running`);
    const script = path.resolve(__dirname, '..', '..', '..', 'dist', 'metaserver', 'server', 'server-main.js');
    const peers = this.members.map((m) => `${m.id}=${m.raftAddress}`).join(',');
    const clients = this.members.map((m) => `${m.id}=${m.clientAddress}`).join(',');
    const child = runIn(member.host.name, process.execPath, [
      script, '--id', member.id, '--listen', member.raftAddress, '--client-listen', member.clientAddress, '--metrics-listen', member.httpAddress,
      '--data', member.dataDir, '--peers', peers, '--clients', clients, ...(this.options.serverArgs ?? []),
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    member.child = child;
    member.stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { member.stderr = (member.stderr + s).slice(-STDERR_TAIL_BYTES); });
    await readyLine(child, member.id, SERVER_READY_LIMIT_MS, () => member.stderr);
  }

  /** SIGKILL, and waits for the exit. */
  async kill9(member: MetaMember): Promise<void> {
    const child = member.child;
    if (!alive(child)) throw new Error(`${member.id} is not running`);
    child.kill('SIGKILL');
    await withLimit(`${member.id} exit after SIGKILL`, SERVER_EXIT_LIMIT_MS, exitOf(child));
  }

  /** Runs probe-main.js inside a mount host; resolves with its result, rejects naming its error. */
  async probe(args: string[], hostIndex = 1): Promise<any> {
    const script = path.resolve(__dirname, '..', '..', '..', 'dist', 'client', 'fuse', 'multihost', 'probe-main.js');
    const child = runIn(this.mountHost(hostIndex), process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout = (stdout + s).slice(-OUTPUT_LIMIT_BYTES); });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_TAIL_BYTES); });
    try {
      await withLimit(`probe ${args[0]}`, PROBE_LIMIT_MS, exitOf(child));
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
    const line = stdout.trim().split('\n').pop() ?? '';
    let parsed: { ok: boolean; result?: unknown; code?: string; error?: string };
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new Error(`probe ${args.join(' ')}: no JSON answer; stdout ${stdout.slice(-500)} stderr ${stderr.slice(-2000)}`);
    }
    if (!parsed.ok) throw Object.assign(new Error(`probe ${args.join(' ')}: ${parsed.code ?? ''} ${parsed.error}`), { code: parsed.code });
    return parsed.result;
  }

  /** Every member's /status as seen from mount host 1 (undefined for a member that does not answer). */
  async statuses(): Promise<Array<MemberStatusJson | undefined>> {
    const result = (await this.probe(['status', this.members.map((m) => m.httpAddress).join(',')])) as Array<MemberStatusJson | null>;
    return result.map((s) => s ?? undefined);
  }

  /** The running member that says it leads (highest term wins); waits for one. */
  async leader(limitMs = LEADER_LIMIT_MS): Promise<MetaMember> {
    const deadline = Date.now() + limitMs;
    // Bounded by limitMs.
    for (;;) {
      const statuses = await this.statuses();
      let best: { member: MetaMember; term: number } | undefined;
      statuses.forEach((status, i) => {
        const member = this.members[i];
        if (status?.role === 'leader' && alive(member.child) && (!best || status.term > best.term)) best = { member, term: status.term };
      });
      if (best) return best.member;
      if (Date.now() >= deadline) throw new Error(`no leader within ${limitMs} ms: ${JSON.stringify(statuses)}`);
      await new Promise((resolve) => setTimeout(resolve, LEADER_POLL_MS));
    }
  }

  /**
   * startMount's twin for a mount process inside a host: spawned through
   * nsenter (which execs, so the pid is the mount process's own) with the
   * libfuse env, ready when it prints its ready line.
   */
  async mount(hostIndex: number, name: string, args: readonly string[]): Promise<HostMount> {
    const host = this.mountHost(hostIndex);
    const dir = path.join(this.baseDir, name);
    await fsp.mkdir(dir);
    this.mountDirs.add(dir);
    const child = runIn(host, process.execPath, [mountProcessScript(), dir, '--servers', this.servers, ...args], { env: mountProcessEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_TAIL_BYTES); });
    const exited = exitOf(child);
    const stop = async (): Promise<number | null> => {
      if (alive(child)) {
        child.kill('SIGTERM');
        const inTime = await withLimit('mount stop', MOUNT_STOP_LIMIT_MS, exited).then(() => true, () => false);
        if (!inTime) child.kill('SIGKILL');
      }
      const code = await exited;
      if (await isMounted(dir)) await forceUnmount(dir);
      return code;
    };
    let ready: ReadyEvent;
    try {
      ready = await withLimit(`mount ${dir} in ${host}`, MOUNT_READY_LIMIT_MS, new Promise<ReadyEvent>((resolve, reject) => {
        readline.createInterface({ input: child.stdout! }).on('line', (line) => {
          let event: Record<string, unknown>;
          try { event = JSON.parse(line) as Record<string, unknown>; } catch { return; }
          if (event.event === 'ready') resolve(event as ReadyEvent);
          else if (event.event === 'failed') reject(new Error(`mount ${dir} failed: ${String(event.error)}`));
        });
        void exited.then((code) => reject(new Error(`mount ${dir}: process exited (${code}) before ready; stderr: ${stderr}`)));
      }));
    } catch (error) {
      if (alive(child)) child.kill('SIGKILL');
      await exited;
      await forceUnmount(dir).catch(() => undefined);
      throw error;
    }
    const mount: HostMount = { host, dir, pid: child.pid!, ready, child, exited, stop, stderrTail: () => stderr };
    this.mounts.push(mount);
    return mount;
  }

  /** Everything down, whatever happened; the first failure is rethrown after every step ran. */
  async destroy(): Promise<void> {
    const failures: unknown[] = [];
    const step = async (work: () => Promise<unknown>): Promise<void> => { await work().catch((error) => { failures.push(error); }); };
    await Promise.all(this.mounts.map((m) => step(() => m.stop())));
    for (const dir of this.mountDirs) await step(() => forceUnmount(dir));
    for (const member of this.members) {
      const child = member.child;
      if (alive(child)) {
        child.kill('SIGKILL');
        await step(() => withLimit(`${member.id} exit`, SERVER_EXIT_LIMIT_MS, exitOf(child)));
      }
    }
    await step(async () => {
      const report = await hostsDown({ prefix: this.options.prefix, bridge: this.options.bridge });
      if (report.busy.length > 0) throw new Error(`hosts still busy after hostsDown: ${JSON.stringify(report.busy)}`);
    });
    let stillMounted = false;
    for (const dir of this.mountDirs) {
      if (await isMounted(dir)) {
        stillMounted = true;
        failures.push(new Error(`${dir} is still mounted`));
      }
    }
    // Never a recursive rm through a live mount: it would delete the cluster's files, or hang.
    if (!stillMounted) await step(() => fsp.rm(this.baseDir, { recursive: true, force: true }));
    if (failures.length > 0) throw failures[0];
  }
}
