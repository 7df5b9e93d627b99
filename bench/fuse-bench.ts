/**
 * The FUSE bench (issue 4 §5): three metadata server processes on loopback
 * (dist/metaserver/server/server-main.js), one handlefs mount of them in its
 * own process (client/fuse/mount-control startMount), and the load through
 * the mount from forked worker processes (bench/fuse-bench-worker.ts):
 *   mdtest-style create (O_CREAT|O_EXCL + close, empty) / stat / unlink of N
 *   files, from 1 process and from P processes in parallel (each its own folder);
 *   a sequential write of B bytes (1 MiB writes, fsync + close: the close
 *   commits the version) and the sequential read back (page cache dropped, fresh open).
 * Beside each figure: the same measurement on a plain local folder in the
 * same run (the ceiling), the issue's target with meets/BELOW, and CPU% of the
 * mount process and of the members. Owns the orchestration and the report;
 * this process never touches the mount's files itself (a hung mount would
 * hang it), and must never leave a mount, a child process or a temp folder
 * behind — also on errors and Ctrl-C — nor send traffic beyond 127.0.0.1.
 *
 *   node dist/bench/fuse-bench.js [--files 10000] [--procs 8] [--bytes 1073741824] [--json]
 *     [--mount-node-options "--require /tmp/cpu-profile.js"] (NODE_OPTIONS of the mount process: node refuses --cpu-prof there) [--server-node-args "--cpu-prof --cpu-prof-dir=/tmp/prof"]
 */
import { ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ProcessCluster } from '../raft/node/process-cluster';
import { forceUnmount, isMounted, RunningMount, startMount } from '../client/fuse/mount-control';
import { benchFlags, collect, cpuTicks, machineBusyTicks, round3, ticksToPercent } from './bench-measures';
import { MetaPhase, ParentMessage, Phase, runWorker, WorkerConfig, WorkerMessage } from './fuse-bench-worker';
import { metaServerMainPath } from '../metaserver/server/main-path';

interface BenchOptions {
  files: number;
  procs: number;
  bytes: number;
  json: boolean;
  mountNodeOptions: string;
  serverNodeArgs: string[];
}

type Where = 'handlefs' | 'local';

interface PhaseFigures {
  seconds: number;
  ops: number;
  bytes: number;
  errors: number;
  lastError: string;
  /** files/s for meta phases, MB/s (10^6 B) for stream phases. */
  rate: number;
  cpuPercent?: { mount: number; members: Record<string, number>; workers: number; bench: number; other: number };
  /** FUSE requests the mount answered during the phase, by op (the mount's SIGUSR2 stats, diffed). */
  fuseRequests?: Record<string, number>;
}

interface Row {
  name: string;
  phase: Phase;
  procs: number;
  unit: 'files/s' | 'MB/s';
  handlefs: PhaseFigures;
  local: PhaseFigures;
  target?: number;
}

const MAX_FILES = 1_000_000;
const MAX_PROCS = 32;
const MAX_BYTES = 16 * 1024 ** 3;
const CHUNK_BYTES = 1024 * 1024;
const DEFAULT_BYTES = 1024 ** 3;
/** Targets of issue 4 §5, keyed by `${phase}/${procs}` (procs 0 = the stream phases). */
const TARGETS: Record<string, number> = {
  'create/1': 2_000, 'stat/1': 10_000, 'unlink/1': 2_500, 'create/8': 6_000, 'write/1': 250, 'read/1': 700,
};
const WORKER_READY_TIMEOUT_MS = 60_000;
/** Generous: a 1 GiB write at 10 MB/s still fits. */
const PHASE_TIMEOUT_MS = 600_000;
const WORKER_EXIT_TIMEOUT_MS = 5_000;

function parseArgs(argv: string[]): BenchOptions {
  const options: BenchOptions = { files: 10_000, procs: 8, bytes: DEFAULT_BYTES, json: false, mountNodeOptions: '', serverNodeArgs: [] };
  for (const { flag, value, positive } of benchFlags(argv)) {
    const positiveInteger = (max: number): number => {
      const n = positive();
      if (!Number.isInteger(n) || n > max) throw new Error(`${flag} must be an integer in 1..${max}, got ${n}`);
      return n;
    };
    switch (flag) {
      case '--files': options.files = positiveInteger(MAX_FILES); break;
      case '--procs': options.procs = positiveInteger(MAX_PROCS); break;
      case '--bytes': options.bytes = positiveInteger(MAX_BYTES); break;
      case '--json': options.json = true; break;
      case '--mount-node-options': options.mountNodeOptions = value(); break;
      case '--server-node-args': options.serverNodeArgs = value().split(' ').filter(Boolean); break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  if (options.files < options.procs) throw new Error(`--files ${options.files} is fewer than --procs ${options.procs}`);
  return options;
}

/** Asks the workers to leave, then SIGKILLs any still there (a worker stuck in a FUSE call dies once the mount is aborted). */
async function stopWorkers(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((child) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, WORKER_EXIT_TIMEOUT_MS);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    if (child.connected) child.send({ type: 'exit' } satisfies ParentMessage, () => undefined); else child.kill('SIGKILL');
  })));
}

interface CpuProbe { mount?: RunningMount; cluster?: ProcessCluster }

/** Requests by FUSE op between two stats of the mount (ops that did not move are left out). */
function requestsBetween(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [op, n] of Object.entries(after)) if (n - (before[op] ?? 0) > 0) out[op] = n - (before[op] ?? 0);
  return out;
}

/** Runs `phases` in order on every worker at once; each phase's time is from the order to the last worker's answer. */
async function runPhases(children: ChildProcess[], phases: Phase[], probe: CpuProbe, perByte: boolean): Promise<Map<Phase, PhaseFigures>> {
  const out = new Map<Phase, PhaseFigures>();
  for (const phase of phases) {
    const members = probe.cluster?.members ?? [];
    const requestsBefore = probe.mount ? (await probe.mount.stats()).ops : undefined;
    const memberBefore = Object.fromEntries(members.map((m) => [m.id, cpuTicks(m.child?.pid)]));
    const mountBefore = cpuTicks(probe.mount?.pid);
    const workersBefore = children.reduce((sum, c) => sum + cpuTicks(c.pid), 0);
    const benchBefore = process.cpuUsage();
    const machineBefore = machineBusyTicks();
    const answers = collect<WorkerMessage>(children, 'done', PHASE_TIMEOUT_MS);
    const startedAt = performance.now();
    for (const child of children) child.send({ type: 'run', phase } satisfies ParentMessage);
    const reports = await answers;
    const wallSeconds = (performance.now() - startedAt) / 1000;
    let ops = 0;
    let bytes = 0;
    let errors = 0;
    let lastError = '';
    let slowestWorkerMs = 0;
    for (const r of reports) {
      if (r.type !== 'done') continue;
      ops += r.ops;
      bytes += r.bytes;
      errors += r.errors;
      if (r.lastError) lastError = r.lastError;
      if (r.cachesDropped === false) lastError = 'page cache NOT dropped (not root): the read may come from cache';
      slowestWorkerMs = Math.max(slowestWorkerMs, r.ms);
    }
    // One worker: its own timing (no IPC round trip); several: wall time across all of them.
    const seconds = children.length === 1 ? slowestWorkerMs / 1000 : wallSeconds;
    const figures: PhaseFigures = { seconds: round3(seconds), ops, bytes, errors, lastError, rate: perByte ? round3(bytes / 1e6 / seconds) : Math.round(ops / seconds) };
    if (probe.mount !== undefined) {
      const memberCpu = Object.fromEntries(members.map((m) => [m.id, ticksToPercent(cpuTicks(m.child?.pid) - memberBefore[m.id], wallSeconds)]));
      const mount = ticksToPercent(cpuTicks(probe.mount.pid) - mountBefore, wallSeconds);
      const workers = ticksToPercent(children.reduce((sum, c) => sum + cpuTicks(c.pid), 0) - workersBefore, wallSeconds);
      const benchCpu = process.cpuUsage(benchBefore);
      const bench = Math.round(((benchCpu.user + benchCpu.system) / 1e6 / wallSeconds) * 100);
      const machine = ticksToPercent(machineBusyTicks() - machineBefore, wallSeconds);
      const membersSum = Object.values(memberCpu).reduce((a, b) => a + b, 0);
      figures.cpuPercent = { mount, members: memberCpu, workers, bench, other: Math.max(0, machine - mount - membersSum - workers - bench) };
      figures.fuseRequests = requestsBetween(requestsBefore ?? {}, (await probe.mount.stats()).ops);
    }
    out.set(phase, figures);
  }
  return out;
}

async function withWorkers(configs: WorkerConfig[], live: Set<ChildProcess>, body: (children: ChildProcess[]) => Promise<Map<Phase, PhaseFigures>>): Promise<Map<Phase, PhaseFigures>> {
  const children = configs.map((config) => fork(__filename, ['--worker', JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  for (const child of children) live.add(child);
  try {
    await collect<WorkerMessage>(children, 'ready', WORKER_READY_TIMEOUT_MS);
    return await body(children);
  } finally {
    await stopWorkers(children);
    for (const child of children) live.delete(child);
  }
}

const META_PHASES: MetaPhase[] = ['create', 'stat', 'unlink'];

async function mdtest(root: string, tag: string, procs: number, files: number, probe: CpuProbe, live: Set<ChildProcess>): Promise<Map<Phase, PhaseFigures>> {
  const configs: WorkerConfig[] = [];
  for (let w = 0; w < procs; w++) {
    configs.push({ kind: 'meta', dir: path.join(root, `${tag}-p${procs}-w${w}`), files: Math.floor(files / procs) + (w < files % procs ? 1 : 0) });
  }
  return withWorkers(configs, live, (children) => runPhases(children, META_PHASES, probe, false));
}

async function stream(root: string, bytes: number, probe: CpuProbe, live: Set<ChildProcess>): Promise<Map<Phase, PhaseFigures>> {
  const config: WorkerConfig = { kind: 'stream', file: path.join(root, 'stream.bin'), bytes, chunkBytes: CHUNK_BYTES, dropCachesBeforeRead: true };
  return withWorkers([config], live, (children) => runPhases(children, ['write', 'read'], probe, true));
}

function formatRow(row: Row): string {
  const h = row.handlefs;
  const ratio = row.local.rate > 0 ? `${((h.rate / row.local.rate) * 100).toFixed(1)}%` : '-';
  const verdict = row.target === undefined ? '' : `${h.rate >= row.target ? 'meets' : 'BELOW'} ≥ ${row.target}`;
  const cpu = h.cpuPercent
    ? `mount ${h.cpuPercent.mount}; members ${Object.entries(h.cpuPercent.members).map(([id, p]) => `${id} ${p}`).join(', ')}; workers ${h.cpuPercent.workers}; other ${h.cpuPercent.other}`
    : '';
  return `${row.name.padEnd(18)} ${String(h.rate).padStart(10)} ${String(row.local.rate).padStart(10)} ${ratio.padStart(8)} ${row.unit.padEnd(8)} ${verdict.padEnd(16)} ${cpu}`;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const log = (line: string) => { if (!options.json) process.stdout.write(line + '\n'); };
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'fuse-bench-'));
  fs.chmodSync(base, 0o755);
  const localDir = path.join(base, 'local');
  const mountDir = path.join(base, 'mnt');
  fs.mkdirSync(localDir);
  fs.mkdirSync(mountDir);
  const live = new Set<ChildProcess>();
  let cluster: ProcessCluster | undefined;
  let mount: RunningMount | undefined;

  let cleaning: Promise<void> | undefined;
  const cleanUp = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const child of live) child.kill('SIGKILL');
      if (mount) await mount.stop().catch((e: Error) => process.stderr.write(`mount stop: ${e.message}\n`));
      await forceUnmount(mountDir).catch((e: Error) => process.stderr.write(`forceUnmount: ${e.message}\n`));
      await cluster?.destroy().catch((e: Error) => process.stderr.write(`cluster destroy: ${e.message}\n`));
      // Never remove a folder tree that may still hold a mount: rm would walk into the cluster's files.
      if (await isMounted(mountDir)) process.stderr.write(`${mountDir} is STILL MOUNTED; ${base} left in place\n`);
      else fs.rmSync(base, { recursive: true, force: true });
    })();
    return cleaning;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: cleaning up\n`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rows: Row[] = [];
  try {
    cluster = await ProcessCluster.create({ size: 3, tickMs: 50, electionTicks: 10, entryScript: metaServerMainPath(), nodeArgs: options.serverNodeArgs, passClientAddresses: true });
    await cluster.startAll();
    const savedNodeOptions = process.env.NODE_OPTIONS;
    // The mount process inherits this process's env (mountProcessEnv): the only way to hand it node flags.
    if (options.mountNodeOptions) process.env.NODE_OPTIONS = options.mountNodeOptions;
    try {
      mount = await startMount(mountDir, ['--servers', cluster.members.map((m) => m.clientAddress).join(',')]);
    } finally {
      if (savedNodeOptions === undefined) delete process.env.NODE_OPTIONS; else process.env.NODE_OPTIONS = savedNodeOptions;
    }
    const probe: CpuProbe = { mount, cluster };
    log(`cluster: 3 metaserver processes on 127.0.0.1 (pids ${cluster.members.map((m) => `${m.id} ${m.child?.pid}`).join(', ')}); mount pid ${mount.pid} at ${mountDir} (libfuse ${mount.ready.libfuse})`);
    log(`ceiling: the same load on a plain local folder ${localDir} (${os.tmpdir()}'s file system), in this run; load from forked worker processes, synchronous fs calls`);
    log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other processes share the ${os.cpus().length} cores)`);

    for (const procs of [...new Set([1, options.procs])]) {
      log(`... mdtest ${options.files} files from ${procs} process(es)`);
      const local = await mdtest(localDir, 'md', procs, options.files, {}, live);
      const fuse = await mdtest(mountDir, 'md', procs, options.files, probe, live);
      for (const phase of META_PHASES) {
        rows.push({ name: `${phase} ×${procs} proc`, phase, procs, unit: 'files/s', handlefs: fuse.get(phase)!, local: local.get(phase)!, target: TARGETS[`${phase}/${procs}`] });
      }
    }
    log(`... sequential write + read of ${options.bytes} bytes in ${CHUNK_BYTES} B calls`);
    const localStream = await stream(localDir, options.bytes, {}, live);
    fs.rmSync(path.join(localDir, 'stream.bin'), { force: true });
    const fuseStream = await stream(mountDir, options.bytes, probe, live);
    for (const phase of ['write', 'read'] as const) {
      rows.push({ name: `seq ${phase} 1 MiB`, phase, procs: 1, unit: 'MB/s', handlefs: fuseStream.get(phase)!, local: localStream.get(phase)!, target: TARGETS[`${phase}/1`] });
    }

    log(`\nmdtest: ${options.files} empty files in total (split evenly across the processes, each its own folder); create = open(O_CREAT|O_EXCL|O_WRONLY)+close`);
    log(`seq: ${options.bytes} B, write = 1 MiB pwrite calls + fsync + close (the close commits the version); read = page cache dropped, fresh open, 1 MiB reads; MB = 10^6 B`);
    log('phase                handlefs      local  of local unit     target           cpu% of a core during the handlefs phase');
    for (const row of rows) log(formatRow(row));
    log('FUSE requests the mount answered, per file (mdtest) or per MiB (seq):');
    for (const row of rows) {
      const per = row.unit === 'MB/s' ? row.handlefs.bytes / CHUNK_BYTES : row.handlefs.ops;
      const requests = Object.entries(row.handlefs.fuseRequests ?? {}).map(([op, n]) => `${op} ${(n / Math.max(1, per)).toFixed(2)}`).join(', ');
      log(`  ${row.name.padEnd(18)} ${requests}`);
    }
    for (const row of rows) {
      for (const [where, f] of [['handlefs', row.handlefs], ['local', row.local]] as Array<[Where, PhaseFigures]>) {
        if (f.errors > 0 || f.lastError) process.stderr.write(`${row.name} (${where}): ${f.errors} errors; ${f.lastError}\n`);
      }
    }
    log(`load average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    // A graceful stop lets --cpu-prof write its profiles (the mount's is written by its SIGTERM exit in cleanUp).
    if (options.serverNodeArgs.length > 0) await cluster.stopAll();
  } finally {
    await cleanUp();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  if (options.json) {
    const report = { machine: { cpus: os.cpus().length, node: process.version, loadAverageAtEnd: os.loadavg() }, files: options.files, procs: options.procs, bytes: options.bytes, chunkBytes: CHUNK_BYTES, targets: TARGETS, rows };
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  }
}

if (process.argv[2] === '--worker') {
  runWorker(JSON.parse(process.argv[3] ?? '{}') as WorkerConfig);
} else {
  main().catch((error: Error) => {
    process.stderr.write(`fuse bench failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
}
