/**
 * The metadata bench (issue 3 §9): three metadata server processes on loopback
 * (dist/metaserver/server/server-main.js) and the load from OTHER processes
 * (this script forked with --worker, each with its own gRPC client and its own
 * sessions), at several total concurrencies:
 *   create: Create (exclusive, opened for writing) → CommitVersion (256 B inline, releasing
 *           the fh) — a FUSE create/write/close — one "file created and committed" per cycle;
 *   getattr: linearizable GetAttr of existing files, on the leader.
 * Every in-flight slot has its own session, because the state machine keeps
 * only the last (sequence, result) per session: one mutation in flight each.
 * Reports ops/s, latency percentiles and CPU% beside the same-run ceiling
 * (classic-level sync batches). Owns the load generator and the report; must
 * never leave a child process or a temp folder behind, nor send traffic
 * beyond 127.0.0.1.
 *
 *   node dist/bench/meta-bench.js [--seconds 10] [--concurrency 1,16,64] [--workers 2] [--phases create,getattr]
 *     [--warmup-seconds 1] [--ceiling-seconds 3] [--json] [--server-node-args "--cpu-prof --cpu-prof-dir=/tmp/prof"]
 */
import { ChildProcess, fork } from 'node:child_process';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { ProcessCluster } from '../raft/node/process-cluster';
import { benchFlags, collect, cpuTicks, machineBusyTicks, measureLevelDbCeiling, percentile, round3, ticksToPercent } from './bench-measures';
import { MetaClient } from '../client/sdk';
import { runWorker, WorkerConfig, WorkerMessage, PhaseKind } from './meta-bench-worker';
import { metaServerMainPath } from '../metaserver/server/main-path';

interface BenchOptions {
  seconds: number;
  warmupSeconds: number;
  concurrencies: number[];
  workers: number;
  phases: PhaseKind[];
  ceilingSeconds: number;
  ceilingBatchPuts: number;
  json: boolean;
  serverNodeArgs: string[];
}

interface PhaseResult {
  kind: PhaseKind;
  concurrency: number;
  workers: number;
  seconds: number;
  ops: number;
  opsPerSecond: number;
  errors: number;
  lastError: string;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  memberCpuPercent: Record<string, number>;
  workersCpuPercent: number;
  benchCpuPercent: number;
  otherCpuPercent: number;
  leaderId: string;
}

const MAX_CONCURRENCY = 1_024;
const MAX_WORKERS = 16;
const VALUE_BYTES = 256;
const TARGETS: Record<PhaseKind, { concurrency: number; opsPerSecond: number; what: string }> = {
  create: { concurrency: 64, opsPerSecond: 4_000, what: 'files created+committed/s' },
  getattr: { concurrency: 64, opsPerSecond: 20_000, what: 'linearizable getattr/s' },
};
const PHASE_DESCRIPTIONS: Record<PhaseKind, string> = {
  create: 'Create(excl, open for write) → CommitVersion(256 B, release), per cycle; one session per worker',
  getattr: 'the SDK\'s getattr of existing files (concurrent calls of a worker coalesced into GetAttrs: one ReadIndex each)',
};
/** How long a worker may take to open its sessions and prepare its files. */
const WORKER_READY_TIMEOUT_MS = 60_000;
/** How long a worker may take to drain its in-flight calls and report. */
const WORKER_REPORT_TIMEOUT_MS = 30_000;

function parseArgs(argv: string[]): BenchOptions {
  const options: BenchOptions = {
    seconds: 10, warmupSeconds: 1, concurrencies: [1, 16, 64], workers: 2, phases: ['create', 'getattr'], ceilingSeconds: 3, ceilingBatchPuts: 64,
    json: false, serverNodeArgs: [],
  };
  for (const { flag, value, positive } of benchFlags(argv)) {
    switch (flag) {
      case '--seconds': options.seconds = positive(); break;
      case '--warmup-seconds': options.warmupSeconds = Number(value()); break;
      case '--ceiling-seconds': options.ceilingSeconds = positive(); break;
      case '--concurrency': options.concurrencies = value().split(',').map((c) => Math.floor(positive(c))); break;
      case '--workers': options.workers = Math.floor(positive()); break;
      case '--phases': options.phases = value().split(',').map((p) => {
        if (!(p in TARGETS)) throw new Error(`--phases takes ${Object.keys(TARGETS).join(', ')}, got ${p}`);
        return p as PhaseKind;
      }); break;
      case '--json': options.json = true; break;
      case '--server-node-args': options.serverNodeArgs = value().split(' ').filter(Boolean); break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  for (const c of options.concurrencies) if (c > MAX_CONCURRENCY) throw new Error(`--concurrency ${c} exceeds ${MAX_CONCURRENCY}`);
  if (options.workers > MAX_WORKERS) throw new Error(`--workers ${options.workers} exceeds ${MAX_WORKERS}`);
  if (!Number.isFinite(options.warmupSeconds) || options.warmupSeconds < 0) throw new Error('--warmup-seconds must be ≥ 0');
  return options;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


async function runPhase(cluster: ProcessCluster, leaderId: string, kind: PhaseKind, concurrency: number, phaseIndex: number, options: BenchOptions): Promise<PhaseResult> {
  const workerCount = Math.min(options.workers, concurrency);
  const children: ChildProcess[] = [];
  try {
    for (let w = 0; w < workerCount; w++) {
      const slots = Math.floor(concurrency / workerCount) + (w < concurrency % workerCount ? 1 : 0);
      const config: WorkerConfig = {
        kind, slots, valueBytes: VALUE_BYTES, directoryName: `p${phaseIndex}-${kind}-c${concurrency}-w${w}`,
        memberAddresses: cluster.members.map((m) => m.clientAddress), leaderAddress: cluster.member(leaderId).clientAddress,
      };
      children.push(fork(__filename, ['--worker', JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
    await collect<WorkerMessage>(children, 'ready', WORKER_READY_TIMEOUT_MS);
    for (const child of children) child.send({ type: 'start' });
    await sleep(options.warmupSeconds * 1000);

    const memberBefore = Object.fromEntries(cluster.members.map((m) => [m.id, cpuTicks(m.child?.pid)]));
    const workersBefore = children.reduce((sum, c) => sum + cpuTicks(c.pid), 0);
    const benchBefore = process.cpuUsage();
    const machineBefore = machineBusyTicks();
    for (const child of children) child.send({ type: 'measure' });
    const startedAt = performance.now();
    await sleep(options.seconds * 1000);
    const elapsedSeconds = (performance.now() - startedAt) / 1000;
    const memberCpuPercent = Object.fromEntries(cluster.members.map((m) => [m.id, ticksToPercent(cpuTicks(m.child?.pid) - memberBefore[m.id], elapsedSeconds)]));
    const workersCpuPercent = ticksToPercent(children.reduce((sum, c) => sum + cpuTicks(c.pid), 0) - workersBefore, elapsedSeconds);
    const benchCpu = process.cpuUsage(benchBefore);
    const machinePercent = ticksToPercent(machineBusyTicks() - machineBefore, elapsedSeconds);
    const reportsPromise = collect<WorkerMessage>(children, 'result', WORKER_REPORT_TIMEOUT_MS);
    for (const child of children) child.send({ type: 'stop' });
    const reports = await reportsPromise;

    let ops = 0;
    let opsPerSecond = 0;
    let errors = 0;
    let lastError = '';
    const all: number[] = [];
    for (const report of reports) {
      if (report.type !== 'result') continue;
      ops += report.ops;
      opsPerSecond += report.ops / (report.measuredMs / 1000);
      errors += report.errors;
      if (report.lastError) lastError = report.lastError;
      const bytes = Buffer.from(report.latenciesBase64, 'base64');
      const samples = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
      for (const s of samples) all.push(s);
    }
    const sorted = Float64Array.from(all).sort();
    const benchCpuPercent = Math.round(((benchCpu.user + benchCpu.system) / 1e6 / elapsedSeconds) * 100);
    const membersSum = Object.values(memberCpuPercent).reduce((a, b) => a + b, 0);
    return {
      kind, concurrency, workers: workerCount, seconds: round3(elapsedSeconds), ops, opsPerSecond: Math.round(opsPerSecond), errors, lastError,
      latencyMs: { p50: round3(percentile(sorted, 50)), p90: round3(percentile(sorted, 90)), p99: round3(percentile(sorted, 99)), max: round3(sorted[sorted.length - 1] ?? 0) },
      memberCpuPercent, workersCpuPercent, benchCpuPercent,
      otherCpuPercent: Math.max(0, machinePercent - membersSum - workersCpuPercent - benchCpuPercent),
      leaderId,
    };
  } finally {
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
      const timer = setTimeout(() => { child.kill('SIGKILL'); }, 5_000);
      child.once('exit', () => { clearTimeout(timer); resolve(); });
    })));
  }
}

/** The member that answers OpenSession (following NOT_LEADER hints) is the leader; its session is closed right away. */
async function findLeaderId(cluster: ProcessCluster): Promise<string> {
  const client = await MetaClient.connect({ servers: cluster.members.map((m) => m.clientAddress), clientName: 'meta-bench-probe' });
  try {
    const leader = cluster.members.find((m) => m.clientAddress === client.leaderAddress);
    if (!leader) throw new Error(`the leader address ${client.leaderAddress} is no member's`);
    return leader.id;
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const log = (line: string) => { if (!options.json) process.stdout.write(line + '\n'); };

  log(`ceiling: classic-level batches of ${options.ceilingBatchPuts} × ${VALUE_BYTES} B puts with {sync: true} for ${options.ceilingSeconds} s in ${os.tmpdir()} ...`);
  const ceiling = await measureLevelDbCeiling(options.ceilingSeconds, options.ceilingBatchPuts, VALUE_BYTES);
  log(`  ${Math.round(ceiling.entriesPerSecond)} entries/s (${Math.round(ceiling.batchesPerSecond)} sync batches/s, batch p50 ${ceiling.batchLatencyP50Ms.toFixed(3)} ms);` +
    ` a create cycle is 2 Raft entries, so ≤ ${Math.round(ceiling.entriesPerSecond / 2)} cycles/s at this batching`);

  const cluster = await ProcessCluster.create({ size: 3, tickMs: 50, electionTicks: 10, entryScript: metaServerMainPath(), nodeArgs: options.serverNodeArgs, passClientAddresses: true });
  const cleanUp = () => { void cluster.destroy(); };
  process.once('SIGINT', cleanUp);
  const results: PhaseResult[] = [];
  try {
    await cluster.startAll();
    const leaderId = await findLeaderId(cluster);
    log(`cluster: 3 metaserver processes on 127.0.0.1 (pids ${cluster.members.map((m) => `${m.id} ${m.child?.pid}`).join(', ')}), leader ${leaderId}; load from up to ${options.workers} forked worker processes, ${options.seconds} s per phase after ${options.warmupSeconds} s warm-up`);
    log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other processes share the ${os.cpus().length} cores)`);
    let phaseIndex = 0;
    for (const kind of options.phases) {
      const target = TARGETS[kind];
      log(`\n${kind}: ${PHASE_DESCRIPTIONS[kind]}; target ≥ ${target.opsPerSecond} ${target.what} at concurrency ${target.concurrency}`);
      log('concurrency workers      ops/s    p50 ms    p90 ms    p99 ms    max ms  errors   cpu% of a core (members, *leader; workers; bench; other)');
      for (const concurrency of options.concurrencies) {
        const currentLeader = await findLeaderId(cluster);
        const r = await runPhase(cluster, currentLeader, kind, concurrency, phaseIndex++, options);
        results.push(r);
        const cpu = Object.entries(r.memberCpuPercent).map(([id, pct]) => `${id}${id === r.leaderId ? '*' : ''} ${pct}`).join(', ');
        const verdict = concurrency === target.concurrency ? `   ${r.opsPerSecond >= target.opsPerSecond ? 'meets' : 'BELOW'} target ${target.opsPerSecond}` : '';
        log(`${String(concurrency).padStart(11)} ${String(r.workers).padStart(7)} ${String(r.opsPerSecond).padStart(10)} ${r.latencyMs.p50.toFixed(3).padStart(9)} ${r.latencyMs.p90.toFixed(3).padStart(9)} ` +
          `${r.latencyMs.p99.toFixed(3).padStart(9)} ${r.latencyMs.max.toFixed(1).padStart(9)} ${String(r.errors).padStart(7)}   ${cpu}; ${r.workersCpuPercent}; ${r.benchCpuPercent}; ${r.otherCpuPercent}${verdict}`);
        if (r.errors > 0) process.stderr.write(`${kind} at concurrency ${concurrency}: ${r.errors} errors, last: ${r.lastError}\n`);
      }
    }
    // A graceful stop lets --cpu-prof write its profiles.
    if (options.serverNodeArgs.length > 0) await cluster.stopAll();
  } finally {
    await cluster.destroy();
    process.removeListener('SIGINT', cleanUp);
  }
  const report = {
    machine: { cpus: os.cpus().length, node: process.version, loadAverageAtEnd: os.loadavg() },
    valueBytes: VALUE_BYTES, targets: TARGETS, ceiling: { batchPuts: options.ceilingBatchPuts, ...ceiling }, phases: results,
  };
  if (options.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
}

if (process.argv[2] === '--worker') {
  runWorker(JSON.parse(process.argv[3] ?? '{}') as WorkerConfig);
} else {
  main().catch((error: Error) => {
    process.stderr.write(`meta bench failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
}
