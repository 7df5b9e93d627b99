/**
 * The chaos clients of a run: for client i, a FUSE mount inside its host
 * driven by a worker process (even i), or an SDK worker inside its host (odd
 * i). Collects every operation the workers print, and stops them (stdin
 * "stop", then SIGKILL past a limit) — SDK workers as clients that die holding
 * an fh (stdin "abandon", then SIGKILL), whose sessions the servers must
 * expire. Owns the workers and the operations
 * they reported; the mounts belong to the cluster (it unmounts them).
 */
import { ChildProcess } from 'node:child_process';
import type { Operation } from './history';
import { ChaosCluster } from './cluster/chaos-cluster';
import { alive, exitOf, withLimit } from '../deploy/netns/host-process';
import { onJsonLines } from './cluster/processes';
import type { WorkerConfig } from './workloads/worker-main';

const WORKER_READY_LIMIT_MS = 30_000;
const STDERR_TAIL_BYTES = 32 * 1024;
/** A worker's operations kept (beyond, the run is far longer than planned and it stops being recorded: an error). */
const OPERATIONS_PER_CLIENT_MAX = 2_000_000;

export interface ClientSettings {
  seed: number;
  originMs: number;
  opTimeoutMs: number;
  pauseMs: number;
  clientDeadlineMs: number;
  registers: string[];
  churnDirs: string[];
  mix: WorkerConfig['mix'];
  /**
   * Client i lists the servers starting at member i, and SDK clients read from the first they list
   * (follower reads, linearizable through ReadIndex). Mounts read through the leader, unless this is
   * set (the stale-reads self-test: every client then reads from a member that may lag).
   */
  mountsReadFromFirstListed?: boolean;
}

/** A worker stopped as a client that died without closing: its session and the fh it held must expire. */
export interface AbandonedClient {
  client: string;
  sessionId: number;
  fh: number;
  /** Run time (ms since the origin) when the worker was killed. */
  killedAtMs: number;
}

interface Worker {
  name: string;
  driver: WorkerConfig['driver'];
  child: ChildProcess;
  stderr: () => string;
  ready: Promise<void>;
  /** Resolves with the 'abandoned' line's session and fh. */
  abandoned: Promise<{ sessionId: number; fh: number }>;
}

export class ChaosClients {
  readonly operations: Array<Omit<Operation, 'id'>> = [];
  private readonly workers: Worker[] = [];
  readonly names: string[] = [];

  constructor(private readonly cluster: ChaosCluster, private readonly settings: ClientSettings) {}

  async start(count: number): Promise<void> {
    const hosts = this.cluster.clientHosts();
    if (hosts.length < count) throw new Error(`${count} clients need ${count} client hosts, have ${hosts.length}`);
    for (let i = 0; i < count; i++) {
      const driver = i % 2 === 0 ? 'fuse' : 'sdk';
      const name = `${driver}-${i + 1}`;
      const host = hosts[i].host;
      const config: WorkerConfig = {
        client: name, driver, seed: (this.settings.seed * 7919 + i * 104_729) >>> 0, originMs: this.settings.originMs,
        opTimeoutMs: this.settings.opTimeoutMs, pauseMs: this.settings.pauseMs, sdkDeadlineMs: this.settings.clientDeadlineMs,
        registers: this.settings.registers, churnDirs: this.settings.churnDirs, mix: this.settings.mix,
      };
      const servers = this.cluster.serversFrom(i);
      if (driver === 'fuse') {
        // Kernel caches off: every open, lookup and stat reaches the mount, so reads show what the cluster holds.
        const readFrom = this.settings.mountsReadFromFirstListed === true ? 'first-listed' : 'leader';
        const mount = await this.cluster.startMount(name, host, ['--deadline-ms', String(this.settings.clientDeadlineMs), '--attr-timeout-s', '0', '--entry-timeout-s', '0', '--negative-timeout-s', '0', '--read-from', readFrom], servers);
        config.mountDir = mount.dir;
        // The worker only touches the mount's files, so it runs in the runner's network namespace.
        this.spawn(name, config, undefined);
      } else {
        config.servers = servers;
        config.readFrom = 'first-listed';
        this.spawn(name, config, host);
      }
      this.names.push(name);
    }
    await Promise.all(this.workers.map((w) => withLimit(`worker ${w.name} ready`, WORKER_READY_LIMIT_MS, w.ready)));
  }

  private spawn(name: string, config: WorkerConfig, host: string | undefined): void {
    const child = this.cluster.spawnWorker(JSON.stringify(config), host);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_TAIL_BYTES); });
    let count = 0;
    let heldFh: (held: { sessionId: number; fh: number }) => void = () => undefined;
    const abandoned = new Promise<{ sessionId: number; fh: number }>((resolve) => { heldFh = resolve; });
    const ready = new Promise<void>((resolve, reject) => {
      onJsonLines(child.stdout!, (line) => {
        if (line.event === 'ready') resolve();
        if (line.event === 'abandoned') heldFh({ sessionId: Number(line.sessionId), fh: Number(line.fh) });
        if (line.op && count < OPERATIONS_PER_CLIENT_MAX) {
          count++;
          this.operations.push(line.op as Omit<Operation, 'id'>);
        }
      });
      void exitOf(child).then((code) => reject(new Error(`worker ${name} exited (${code}) before it was ready: ${stderr.slice(-2000)}`)));
    });
    ready.catch(() => undefined);
    this.workers.push({ name, driver: config.driver, child, stderr: () => stderr, ready, abandoned });
  }

  /**
   * Asks every worker to stop after its current operation — SDK workers to abandon their session
   * holding an fh, then kills them (`now` is the run clock) — and kills those not gone within
   * `limitMs`. Returns the workers that exited badly and the sessions abandoned.
   */
  async stop(limitMs: number, now: () => number): Promise<{ problems: string[]; abandoned: AbandonedClient[] }> {
    const abandoning = this.workers.filter((w) => w.driver === 'sdk' && alive(w.child));
    const stopping = this.workers.filter((w) => !abandoning.includes(w));
    for (const w of abandoning) w.child.stdin!.end('abandon\n');
    for (const w of stopping) if (alive(w.child)) w.child.stdin!.end('stop\n');
    const problems: string[] = [];
    const abandoned: AbandonedClient[] = [];
    await Promise.all(abandoning.map(async (w) => {
      const held = await withLimit(`worker ${w.name} abandon`, limitMs, w.abandoned).catch((error: Error) => {
        problems.push(`${w.name} did not abandon its session within ${limitMs} ms: ${error.message}`);
        return undefined;
      });
      w.child.kill('SIGKILL');
      await exitOf(w.child);
      if (held) abandoned.push({ client: w.name, ...held, killedAtMs: now() });
    }));
    await Promise.all(stopping.map(async (w) => {
      const code = await withLimit(`worker ${w.name} stop`, limitMs, exitOf(w.child)).catch(() => {
        w.child.kill('SIGKILL');
        problems.push(`${w.name} did not stop within ${limitMs} ms (killed)`);
        return exitOf(w.child);
      });
      if (code !== 0 && code !== null) problems.push(`${w.name} exited ${code}: ${w.stderr().slice(-1000)}`);
    }));
    return { problems, abandoned };
  }
}
