/**
 * One chaos run, start to verdict: cluster up (chaos-cluster.ts), workload
 * folders, clients (clients.ts), the seeded nemesis schedule while the
 * workloads run, heal everything, a short recovery tail, stop the clients,
 * wait for convergence, read the FinalState (versions and listings through the
 * SDK, digests and verdict from `handlefs fsck`), run the checkers, and write
 * the run folder: history.jsonl, final-state.json, summary.json, summary.txt,
 * timeline.html, logs/. Everything it started is gone when it returns or
 * throws (also after an abort). With `debugUnsafe` (the checkers' own test)
 * every member runs wrong on purpose and the run says so loudly, in its log
 * and its summary. Must never judge the history itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEBUG_UNSAFE_NAMES } from '../metaserver/server/meta-server-config';
import { seededRandom } from '../raft/core/config';
import type { CheckResult, Checker, FinalState } from './checkers/checker';
import { AbandonedClient, ChaosClients } from './clients';
import { awaitAbandonedExpiry } from './session-expiry';
import { ChaosCluster } from './cluster/chaos-cluster';
import { sleep } from './cluster/processes';
import { FaultEvent, History, historyToLines, Operation } from './history';
import type { Nemesis } from './nemesis/nemesis';
import { runSchedule } from './nemesis/schedule';
import { renderSummary, RunSummary, summarize } from './report/summary';
import { renderTimeline } from './report/timeline';
import { APPEND_DIR } from './workloads/appends';
import { CHURN_ROOT, churnDirs } from './workloads/churn';
import { REGISTER_DIR, registerKeys } from './workloads/registers';

/** What chaos-tests/checkers/index.ts exports (loaded at run time; see loadCheckers). */
export interface CheckerSuite {
  allCheckers(options?: Record<string, unknown>): Checker[];
  runCheckers(history: History, final: FinalState, checkers: Checker[]): CheckResult[];
  summarizeViolations(results: CheckResult[]): string;
}

export interface ChaosOptions {
  durationMs: number;
  nemeses: Nemesis[];
  clients: number;
  seed: number;
  /** The run folder (created; must not hold a previous run). */
  outDir: string;
  /** Simulated-host prefix and bridge (the smoke test uses its own so a manual run is never touched). */
  prefix?: string;
  bridge?: string;
  log?: (line: string) => void;
  /** Aborting (Ctrl-C) stops the run early; cleanup still runs and runChaos then throws. */
  signal?: AbortSignal;
  /** The checkers; default: chaos-tests/checkers (index.ts). */
  checkers?: CheckerSuite;
  /** Keep the members' data folders even when the run passed (they are always kept after a violation). */
  keepData?: boolean;
  /**
   * debug-unsafe: make the cluster wrong ON PURPOSE (issue 6 §5, the checkers' own test): every member runs with
   * these switches (chaos-tests/debug-faults/README.md). Such a run must FAIL; never use it to judge the cluster.
   */
  debugUnsafe?: DebugUnsafeRun;
  /** Relative weights of the workloads (default registers 45, appends 30, churn 25). */
  mix?: { registers: number; appends: number; churn: number };
  /** The nemesis rhythm (default quiet 2–4 s, hold 3–6 s): shorter gives more faults per run (the self-test). */
  rhythm?: { quietMinMs: number; quietMaxMs: number; holdMinMs: number; holdMaxMs: number };
}

export interface DebugUnsafeRun {
  /** `--debug-unsafe` names (ack-before-commit, stale-reads, no-dedup, no-session-expiry); may be empty when only the delay is asked for. */
  switches: string[];
  /** `--debug-follower-apply-delay-ms`: non-leaders wait this long before each apply (widens stale reads). */
  followerApplyDelayMs?: number;
}

/** Checks the switches (a clear error naming a bad one) and returns the members' flags; none for a normal run. */
export function debugUnsafeArgs(debug: DebugUnsafeRun | undefined): string[] {
  if (debug === undefined) return [];
  const args: string[] = [];
  for (const name of debug.switches) {
    if (!(DEBUG_UNSAFE_NAMES as readonly string[]).includes(name)) throw new Error(`--debug-unsafe: unknown switch ${JSON.stringify(name)}; known: ${DEBUG_UNSAFE_NAMES.join(', ')}`);
  }
  if (new Set(debug.switches).size !== debug.switches.length) throw new Error(`--debug-unsafe names a switch twice: ${debug.switches.join(',')}`);
  if (debug.switches.length > 0) args.push('--debug-unsafe', debug.switches.join(','));
  const delayMs = debug.followerApplyDelayMs;
  if (delayMs !== undefined) {
    if (!(Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= 10_000)) throw new Error(`--debug-follower-apply-delay-ms must be an integer in 0..10000, got ${delayMs}`);
    args.push('--debug-follower-apply-delay-ms', String(delayMs));
  }
  return args;
}

/** The loud line a deliberately broken run prints first (and summary.txt repeats). */
export function debugUnsafeBanner(args: readonly string[]): string {
  return `!!!!!!!! DEBUG-UNSAFE chaos run: the cluster is WRONG ON PURPOSE (${args.join(' ')}); this run is expected to FAIL and proves nothing about handlefs !!!!!!!!`;
}

export interface ChaosResult {
  summary: RunSummary;
  text: string;
  runDir: string;
}

/** Retention keeps every version of a run (≤ 30 days): the checkers require gap-free version numbers. */
const SERVER_ARGS = ['--keep-last', '1000', '--keep-younger-than-ms', String(30 * 24 * 3600 * 1000)];
const REGISTER_FILES = 3;
const CHURN_DIRS = 2;
const CLIENT_DEADLINE_MS = 10_000;
/** Longer than the clients' own deadline, so the client's error (EIO, ETIMEDOUT) usually wins over the worker's timeout. */
const OP_TIMEOUT_MS = 15_000;
const OP_PAUSE_MS = 25;
const RECOVERY_TAIL_MS = 3_000;
const CONVERGE_LIMIT_MS = 60_000;
/** Past the longest session TTL the servers allow (60 s) and the leader's grace: abandoned sessions are gone long before. */
const SESSION_EXPIRY_LIMIT_MS = 90_000;
const QUIET_MIN_MS = 2_000;
const QUIET_MAX_MS = 4_000;
const HOLD_MIN_MS = 3_000;
const HOLD_MAX_MS = 6_000;

function loadCheckers(): CheckerSuite {
  // Loaded at run time so the runner builds before the checkers exist; a missing module is a clear error.
  try {
    return require('./checkers') as CheckerSuite;
  } catch (error) {
    throw new Error(`cannot load chaos-tests/checkers (index.ts exporting allCheckers, runCheckers, summarizeViolations): ${(error as Error).message}`);
  }
}

function now(originMs: number): number {
  return performance.timeOrigin + performance.now() - originMs;
}

function numbered(operations: Array<Omit<Operation, 'id'>>): Operation[] {
  return [...operations]
    .sort((a, b) => a.invokeMs - b.invokeMs || a.client.localeCompare(b.client))
    .map((op, id) => ({ id, ...op }));
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const signal = options.signal ?? new AbortController().signal;
  const checkers = options.checkers ?? loadCheckers();
  const unsafeArgs = debugUnsafeArgs(options.debugUnsafe);
  const rhythm = options.rhythm;
  if (rhythm && !(rhythm.quietMinMs >= 0 && rhythm.quietMinMs <= rhythm.quietMaxMs && rhythm.holdMinMs >= 500 && rhythm.holdMinMs <= rhythm.holdMaxMs && rhythm.holdMaxMs <= 600_000)) {
    throw new Error(`rhythm must have 0 ≤ quietMin ≤ quietMax and 500 ≤ holdMin ≤ holdMax ≤ 600000 ms, got ${JSON.stringify(rhythm)}`);
  }
  if (unsafeArgs.length > 0) log(debugUnsafeBanner(unsafeArgs));
  const runDir = path.resolve(options.outDir);
  if (fs.existsSync(runDir) && fs.readdirSync(runDir).length > 0) throw new Error(`run folder ${runDir} is not empty`);
  fs.mkdirSync(runDir, { recursive: true });
  const originMs = performance.timeOrigin + performance.now();
  const random = seededRandom(options.seed);
  const faults: FaultEvent[] = [];
  const registers = registerKeys(REGISTER_FILES);
  const dirs = churnDirs(CHURN_DIRS);
  log(`chaos: seed ${options.seed}, ${options.durationMs} ms, nemeses ${options.nemeses.map((n) => n.name).join(',')}, ${options.clients} clients, run folder ${runDir}`);

  const cluster = await ChaosCluster.start({
    prefix: options.prefix ?? 'hfsc', bridge: options.bridge ?? 'hfscbr0', runDir, clients: options.clients, serverArgs: SERVER_ARGS, random, originMs, log,
    fsyncDelayHook: options.nemeses.some((n) => n.name === 'slow-disk'), debugUnsafeArgs: unsafeArgs,
  });
  let passed = false;
  let abandoned: AbandonedClient[] = [];
  try {
    // Register files exist (empty) before the run: a file being created is briefly empty, which a register model of
    // whole-file values starting "missing" would call a value nobody wrote.
    await cluster.mkdirs([REGISTER_DIR, APPEND_DIR, CHURN_ROOT, ...dirs], registers);
    const clients = new ChaosClients(cluster, {
      seed: options.seed, originMs, opTimeoutMs: OP_TIMEOUT_MS, pauseMs: OP_PAUSE_MS, clientDeadlineMs: CLIENT_DEADLINE_MS,
      registers, churnDirs: dirs, mix: options.mix ?? { registers: 45, appends: 30, churn: 25 },
      // Stale reads show only where reads reach a member that may lag: under that switch mounts read from their first listed member too.
      mountsReadFromFirstListed: options.debugUnsafe?.switches.includes('stale-reads') === true,
    });
    try {
      await clients.start(options.clients);
      log(`clients running: ${clients.names.join(', ')}`);
      const faultPhaseStartMs = now(originMs);
      await runSchedule(cluster, options.nemeses, {
        untilMs: faultPhaseStartMs + options.durationMs, ...(options.rhythm ?? { quietMinMs: QUIET_MIN_MS, quietMaxMs: QUIET_MAX_MS, holdMinMs: HOLD_MIN_MS, holdMaxMs: HOLD_MAX_MS }),
      }, signal, (event) => faults.push(event));
      const left = cluster.outstanding();
      if (left.length > 0) log(`healing what is left: ${left.join('; ')}`);
      await cluster.healAll();
      for (const fault of faults) fault.endMs ??= now(originMs);
      if (signal.aborted) throw new Error('aborted');
      await sleep(RECOVERY_TAIL_MS, signal);
    } finally {
      const stopped = await clients.stop(OP_TIMEOUT_MS + 5_000, () => now(originMs));
      for (const problem of stopped.problems) log(`client: ${problem}`);
      abandoned = stopped.abandoned;
      // Written now too, so a run that fails or is aborted later still leaves its history.
      fs.writeFileSync(path.join(runDir, 'history.jsonl'), historyToLines({ operations: numbered(clients.operations), faults }));
    }
    const workloadEndMs = now(originMs);
    const history: History = { operations: numbered(clients.operations), faults };
    fs.writeFileSync(path.join(runDir, 'history.jsonl'), historyToLines(history));
    log(`workload done: ${history.operations.length} operations, ${faults.length} faults; waiting for convergence`);

    await cluster.waitConverged(CONVERGE_LIMIT_MS);
    const files = [...new Set(history.operations.filter((op) => op.kind === 'write' || op.kind === 'append').map((op) => op.key))].sort();
    const read = await cluster.finalRead(files, dirs);
    const fsck = await cluster.fsck();
    fs.writeFileSync(path.join(runDir, 'fsck.json'), JSON.stringify(fsck.raw, null, 2) + '\n');
    const expiry = await awaitAbandonedExpiry(() => cluster.sessions(), abandoned, () => now(originMs), SESSION_EXPIRY_LIMIT_MS);
    log(`sessions: ${abandoned.length} abandoned by killed clients, ${expiry.listing.sessions.length} left after ${Math.round(expiry.waitedMs)} ms, ${expiry.overdue.length} overdue`);
    fs.writeFileSync(path.join(runDir, 'sessions.json'), JSON.stringify({ abandoned, listing: expiry.listing, overdue: expiry.overdue }, null, 2) + '\n');
    const final: FinalState = {
      versions: read.versions,
      listings: read.listings,
      digests: fsck.members.map((m) => ({ member: m.id, appliedIndex: m.digest === undefined ? -1 : fsck.index, digest: m.digest ?? `unavailable: ${m.error ?? 'no answer'}` })),
      fsckClean: fsck.clean,
      abandonedSessions: abandoned.length,
      overdueSessions: expiry.overdue,
    };
    fs.writeFileSync(path.join(runDir, 'final-state.json'), JSON.stringify(final, null, 2) + '\n');

    // Register files do not exist before their first write; every version is kept (SERVER_ARGS); writes use lww.
    const suite = checkers.allCheckers({ registers: { initialValue: '' }, convergence: { expectedMembers: 3 }, errors: { conflictPolicy: 'lww' } });
    const results = checkers.runCheckers(history, final, suite);
    const summary = summarize({
      history, final, results, violationsText: checkers.summarizeViolations(results), seed: options.seed, durationMs: options.durationMs,
      nemeses: options.nemeses.map((n) => n.name), clients: clients.names, runDir, workloadEndMs,
      debugUnsafe: unsafeArgs.length > 0 ? { switches: options.debugUnsafe!.switches, followerApplyDelayMs: options.debugUnsafe!.followerApplyDelayMs, args: unsafeArgs } : undefined,
    });
    const text = renderSummary(summary);
    fs.writeFileSync(path.join(runDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    fs.writeFileSync(path.join(runDir, 'summary.txt'), text);
    fs.writeFileSync(path.join(runDir, 'timeline.html'), renderTimeline(history, `handlefs chaos, seed ${options.seed}: ${summary.ok ? 'passed' : 'FAILED'}`));
    passed = summary.ok;
    return { summary, text, runDir };
  } finally {
    await cluster.destroy();
    if (passed && !options.keepData) fs.rmSync(path.join(runDir, 'data'), { recursive: true, force: true });
  }
}
