/**
 * The Raft bench: three member processes on loopback (dist/raft/node/server-main.js),
 * 256 B puts at several concurrencies over one pipelined gRPC stream to the
 * leader, reporting ops/s and p50/p99 latency beside the ceiling measured in
 * the same run on the same disk: classic-level batches of 64 sync puts.
 * Owns the load generator and the report; must never leave a child process
 * or a temp folder behind, nor send traffic beyond 127.0.0.1.
 *
 *   node dist/bench/raft-bench.js [--seconds 10] [--concurrency 1,16,64] [--value-bytes 256] [--keys 10000]
 *     [--ceiling-seconds 3] [--json] [--server-node-args "--cpu-prof --cpu-prof-dir=/tmp/prof"]
 */
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { KvTestClient } from '../raft/node/kvtest-client';
import { CLOCK_TICKS_PER_SECOND, benchFlags, cpuTicks, machineBusyTicks, measureLevelDbCeiling, percentile, round3 } from './bench-measures';
import { ProcessCluster } from '../raft/node/process-cluster';

interface BenchOptions {
  seconds: number;
  concurrencies: number[];
  valueBytes: number;
  /** Puts cycle over this many distinct keys, so the state (and each snapshot of it) stays this size. */
  keys: number;
  ceilingSeconds: number;
  ceilingBatchPuts: number;
  warmupSeconds: number;
  json: boolean;
  serverNodeArgs: string[];
  serverArgs: string[];
}

interface PhaseResult {
  concurrency: number;
  seconds: number;
  ops: number;
  opsPerSecond: number;
  errors: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  ratioToCeiling: number;
  /** CPU used by each member process during the phase, as % of one core. */
  memberCpuPercent: Record<string, number>;
  benchCpuPercent: number;
  /** CPU used by everything else on the machine during the phase (other processes compete for the 2 cores), % of one core. */
  otherCpuPercent: number;
}

const MAX_CONCURRENCY = 4_096;
/** Latency samples kept per phase (enough for p99 at any rate this machine reaches). */
const MAX_LATENCY_SAMPLES = 2_000_000;

function parseArgs(argv: string[]): BenchOptions {
  const options: BenchOptions = {
    seconds: 10, concurrencies: [1, 16, 64], valueBytes: 256, keys: 10_000, ceilingSeconds: 3, ceilingBatchPuts: 64, warmupSeconds: 1,
    json: false, serverNodeArgs: [], serverArgs: [],
  };
  for (const { flag, value, positive } of benchFlags(argv)) {
    switch (flag) {
      case '--seconds': options.seconds = positive(); break;
      case '--warmup-seconds': options.warmupSeconds = Number(value()); break;
      case '--ceiling-seconds': options.ceilingSeconds = positive(); break;
      case '--keys': options.keys = Math.floor(positive()); break;
      case '--value-bytes': options.valueBytes = Math.floor(positive()); break;
      case '--concurrency': options.concurrencies = value().split(',').map((c) => Math.floor(positive(c))); break;
      case '--json': options.json = true; break;
      case '--server-node-args': options.serverNodeArgs = value().split(' ').filter(Boolean); break;
      case '--server-args': options.serverArgs = value().split(' ').filter(Boolean); break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  for (const c of options.concurrencies) if (c > MAX_CONCURRENCY) throw new Error(`--concurrency ${c} exceeds ${MAX_CONCURRENCY}`);
  return options;
}

async function runPhase(
  cluster: ProcessCluster, leaderAddress: string, concurrency: number, options: BenchOptions, ceiling: number,
): Promise<PhaseResult> {
  const { seconds, warmupSeconds, valueBytes, keys } = options;
  const client = new KvTestClient(leaderAddress);
  const stream = client.openPutStream(concurrency);
  const value = randomBytes(valueBytes);
  const latencies = new Float64Array(MAX_LATENCY_SAMPLES);
  let samples = 0;
  let ops = 0;
  let errors = 0;
  let lastError = '';
  let measuring = false;
  let running = true;
  let nextKey = 0;

  const worker = async (): Promise<void> => {
    while (running) {
      const key = `bench-${nextKey++ % keys}`;
      const t0 = performance.now();
      try {
        const response = await stream.put(key, value);
        if (response.error || response.notLeader) {
          errors++;
          lastError = response.error || `not leader (leader is ${response.notLeader?.leaderId || 'unknown'})`;
          await new Promise((resolve) => setTimeout(resolve, 10));
          continue;
        }
      } catch (error) {
        errors++;
        lastError = (error as Error).message;
        running = false;
        return;
      }
      if (!measuring) continue;
      ops++;
      if (samples < MAX_LATENCY_SAMPLES) latencies[samples++] = performance.now() - t0;
    }
  };
  const workers = Array.from({ length: concurrency }, () => worker());
  await new Promise((resolve) => setTimeout(resolve, warmupSeconds * 1000));

  const cpuBefore = Object.fromEntries(cluster.members.map((m) => [m.id, cpuTicks(m.child?.pid)]));
  const benchCpuBefore = process.cpuUsage();
  const machineBefore = machineBusyTicks();
  measuring = true;
  const startedAt = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  const elapsedSeconds = (performance.now() - startedAt) / 1000;
  const benchCpu = process.cpuUsage(benchCpuBefore);
  const machinePercent = ((machineBusyTicks() - machineBefore) / CLOCK_TICKS_PER_SECOND / elapsedSeconds) * 100;
  const memberCpuPercent = Object.fromEntries(cluster.members.map((m) => [
    m.id, Math.round(((cpuTicks(m.child?.pid) - cpuBefore[m.id]) / CLOCK_TICKS_PER_SECOND / elapsedSeconds) * 100),
  ]));
  running = false;
  await Promise.all(workers);
  stream.close();
  client.close();
  if (errors > 0) process.stderr.write(`concurrency ${concurrency}: ${errors} errors, last: ${lastError}\n`);

  const sorted = latencies.subarray(0, samples).sort();
  const opsPerSecond = ops / elapsedSeconds;
  const result: PhaseResult = {
    concurrency,
    seconds: Math.round(elapsedSeconds * 100) / 100,
    ops,
    opsPerSecond: Math.round(opsPerSecond),
    errors,
    latencyMs: {
      p50: round3(percentile(sorted, 50)), p90: round3(percentile(sorted, 90)), p99: round3(percentile(sorted, 99)), max: round3(sorted[sorted.length - 1] ?? 0),
    },
    ratioToCeiling: Math.round((opsPerSecond / ceiling) * 1000) / 1000,
    memberCpuPercent,
    benchCpuPercent: Math.round(((benchCpu.user + benchCpu.system) / 1e6 / elapsedSeconds) * 100),
    otherCpuPercent: 0,
  };
  result.otherCpuPercent = Math.max(0, Math.round(machinePercent - result.benchCpuPercent - Object.values(memberCpuPercent).reduce((a, b) => a + b, 0)));
  return result;
}


async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const log = (line: string) => { if (!options.json) process.stdout.write(line + '\n'); };

  log(`ceiling: classic-level batches of ${options.ceilingBatchPuts} × ${options.valueBytes} B puts with {sync: true} for ${options.ceilingSeconds} s in ${os.tmpdir()} ...`);
  const ceiling = await measureLevelDbCeiling(options.ceilingSeconds, options.ceilingBatchPuts, options.valueBytes);
  log(`  ${Math.round(ceiling.entriesPerSecond)} entries/s (${Math.round(ceiling.batchesPerSecond)} sync batches/s, batch p50 ${ceiling.batchLatencyP50Ms.toFixed(3)} ms)`);

  const cluster = await ProcessCluster.create({ size: 3, tickMs: 50, electionTicks: 10, nodeArgs: options.serverNodeArgs, extraArgs: options.serverArgs });
  const cleanUp = () => { void cluster.destroy(); };
  process.once('SIGINT', cleanUp);
  const results: PhaseResult[] = [];
  try {
    await cluster.startAll();
    const leader = await cluster.waitForLeader(10_000);
    log(`cluster: 3 member processes on 127.0.0.1, leader ${leader.id}; ${options.valueBytes} B puts over ${options.keys} keys, ${options.seconds} s per phase after ${options.warmupSeconds} s warm-up`);
    log(`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other processes share the ${os.cpus().length} cores)`);
    log('concurrency      ops/s    p50 ms    p90 ms    p99 ms    max ms   vs ceiling   cpu% of a core (members; bench; other processes)');
    for (const concurrency of options.concurrencies) {
      const current = (await cluster.findLeader()) ?? leader;
      const result = await runPhase(cluster, current.clientAddress, concurrency, options, ceiling.entriesPerSecond);
      results.push(result);
      const cpu = Object.entries(result.memberCpuPercent).map(([id, pct]) => `${id}${id === current.id ? '*' : ''} ${pct}`).join(', ');
      log(`${String(concurrency).padStart(11)} ${String(result.opsPerSecond).padStart(10)} ${result.latencyMs.p50.toFixed(3).padStart(9)} ${result.latencyMs.p90.toFixed(3).padStart(9)} ` +
        `${result.latencyMs.p99.toFixed(3).padStart(9)} ${result.latencyMs.max.toFixed(1).padStart(9)} ${result.ratioToCeiling.toFixed(3).padStart(12)}   ${cpu}; ${result.benchCpuPercent}; ${result.otherCpuPercent}`);
    }
    if (options.serverNodeArgs.length > 0) await cluster.stopAll();
  } finally {
    await cluster.destroy();
    process.removeListener('SIGINT', cleanUp);
  }
  const report = { machine: { cpus: os.cpus().length, node: process.version, loadAverageAtEnd: os.loadavg() }, valueBytes: options.valueBytes, keys: options.keys, ceiling: { batchPuts: options.ceilingBatchPuts, ...ceiling }, phases: results };
  if (options.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
}

main().catch((error: Error) => {
  process.stderr.write(`raft bench failed: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
