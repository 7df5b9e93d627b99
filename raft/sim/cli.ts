/**
 * Command line for the simulator: replay one seed with its trace, or soak
 * through many seeds until one fails. Prints the seed, the run's config, the
 * exact replay command and the last events of a failing run. Owns argument
 * parsing and printing only; never changes how a run goes.
 *
 *   node dist/raft/sim/cli.js --seed 12345 --nodes 5 [--steps 4000]
 *   node dist/raft/sim/cli.js --seeds 100000 [--start-seed 1] [--nodes 3|5] [--keep-going]
 * --keep-going prints one line per failing seed and goes on (to survey failure kinds).
 */
import { describeRunConfig } from './run-config';
import { SimResult, runSimulation } from './simulation';

export const DEFAULT_STEPS = 4000;
const PROGRESS_EVERY_MS = 10_000;
const MAX_SEEDS = 100_000_000;

export interface CliArgs {
  seed: number | undefined;
  seeds: number | undefined;
  startSeed: number;
  nodes: number | undefined;
  steps: number;
  keepGoing: boolean;
}

function parseInteger(flag: string, value: string | undefined, min: number, max: number): number {
  if (value === undefined || !/^\d+$/.test(value)) throw new Error(`${flag} needs an integer, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new Error(`${flag} must be in [${min}, ${max}], got ${n}`);
  return n;
}

export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = { seed: undefined, seeds: undefined, startSeed: 1, nodes: undefined, steps: DEFAULT_STEPS, keepGoing: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    switch (flag) {
      case '--seed': args.seed = parseInteger(flag, value, 0, 0xffffffff); i++; break;
      case '--seeds': args.seeds = parseInteger(flag, value, 1, MAX_SEEDS); i++; break;
      case '--start-seed': args.startSeed = parseInteger(flag, value, 0, 0xffffffff); i++; break;
      case '--nodes': args.nodes = parseInteger(flag, value, 3, 5); if (args.nodes === 4) throw new Error('--nodes must be 3 or 5'); i++; break;
      case '--steps': args.steps = parseInteger(flag, value, 100, 10_000_000); i++; break;
      case '--keep-going': args.keepGoing = true; break;
      default: throw new Error(`unknown argument ${JSON.stringify(flag)}; usage: --seed N | --seeds N [--start-seed N] [--nodes 3|5] [--steps N] [--keep-going]`);
    }
  }
  if (args.seed === undefined && args.seeds === undefined) args.seed = 1;
  if (args.seed !== undefined && args.seeds !== undefined) throw new Error('give either --seed or --seeds, not both');
  return args;
}

/** Without --nodes, a soak alternates: even seeds run 3 nodes, odd seeds 5. */
export function nodesForSeed(seed: number, nodes: number | undefined): number {
  return nodes ?? (seed % 2 === 0 ? 3 : 5);
}

export function replayCommand(seed: number, nodes: number, steps: number): string {
  return `npm run sim -- --seed ${seed} --nodes ${nodes}${steps === DEFAULT_STEPS ? '' : ` --steps ${steps}`}`;
}

/** The failure report: violation, seed, config, replay command, and the trace of a traced re-run. */
export function describeFailure(result: SimResult, steps: number): string {
  const { seed, nodeCount } = result.config;
  // HANDLEFS_SIM_TRACE_LINES keeps more of the trace when 200 events do not reach back to the cause.
  const traceLines = Number(process.env.HANDLEFS_SIM_TRACE_LINES ?? 200);
  const traced = runSimulation({ seed, nodeCount, steps, trace: true, traceLines: Number.isInteger(traceLines) && traceLines > 0 ? traceLines : 200 });
  const lines = [
    `FAILED seed=${seed} nodes=${nodeCount} steps=${steps} at step ${result.stoppedAtStep}`,
    `  ${result.violation?.message}`,
    `replay: ${replayCommand(seed, nodeCount, steps)}`,
    `config:\n${describeRunConfig(result.config).replace(/^/gm, '  ')}`,
  ];
  if (traced.ok || traced.violation?.message !== result.violation?.message) {
    lines.push(`WARNING: the traced re-run did not fail the same way (${traced.violation?.message ?? 'it passed'}): the run is not deterministic`);
  }
  lines.push(`last ${traced.traceLines.length} events:`, ...traced.traceLines);
  if (result.violation !== undefined && !(result.violation.name === 'SafetyViolation' || 'property' in result.violation)) {
    lines.push(`stack: ${result.violation.stack}`);
  }
  return lines.join('\n');
}

/**
 * Runs seeds [firstSeed, firstSeed + seedCount) and returns one report per
 * failing seed: the first in full (a traced re-run), the rest one line each.
 */
export function failingSeeds(nodeCount: number, firstSeed: number, seedCount: number, steps = DEFAULT_STEPS): string[] {
  const failures: string[] = [];
  for (let seed = firstSeed; seed < firstSeed + seedCount; seed++) {
    const result = runSimulation({ seed, nodeCount, steps });
    if (result.ok) continue;
    failures.push(failures.length === 0 ? describeFailure(result, steps) : `seed ${seed} --nodes ${nodeCount}: ${result.violation?.message}`);
  }
  return failures;
}

function summary(result: SimResult): string {
  const s = result.stats;
  return `steps=${result.stoppedAtStep} committed=${s.maxCommittedIndex} leaderTerms=${s.leaderTerms} acked=${s.workload.acknowledged} reads=${s.workload.readsServed} ` +
    `crashes=${s.faults.crashes} partitions=${s.faults.partitions} snapshots=${s.faults.snapshots}/installed=${s.snapshotsInstalled} overwrites=${s.logOverwrites} membership=${s.faults.membershipProposed} ` +
    `msgs=${s.network.sent} lost=${s.network.lost} dup=${s.network.duplicated} cut=${s.network.cutByPartition} settle=${s.settleSteps}`;
}

export function main(argv: readonly string[]): number {
  const args = parseArgs(argv);
  if (args.seed !== undefined) {
    const nodes = nodesForSeed(args.seed, args.nodes);
    const result = runSimulation({ seed: args.seed, nodeCount: nodes, steps: args.steps, trace: true });
    if (!result.ok) {
      console.log(describeFailure(result, args.steps));
      return 1;
    }
    console.log(`ok seed=${args.seed} nodes=${nodes} ${summary(result)}`);
    console.log(describeRunConfig(result.config));
    return 0;
  }
  const count = args.seeds ?? 1;
  const started = process.hrtime.bigint();
  let lastProgressMs = 0;
  let failed = 0;
  for (let i = 0; i < count; i++) {
    const seed = args.startSeed + i;
    const nodes = nodesForSeed(seed, args.nodes);
    const result = runSimulation({ seed, nodeCount: nodes, steps: args.steps });
    if (!result.ok && args.keepGoing) {
      failed++;
      console.log(`FAILED seed ${seed} nodes=${nodes} at step ${result.stoppedAtStep}: ${result.violation?.message}  (replay: ${replayCommand(seed, nodes, args.steps)})`);
    } else if (!result.ok) {
      console.log(describeFailure(result, args.steps));
      console.log(`${i} seeds passed before this one`);
      return 1;
    }
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    if (elapsedMs - lastProgressMs >= PROGRESS_EVERY_MS || i === count - 1) {
      lastProgressMs = elapsedMs;
      console.log(`${i + 1 - failed}/${i + 1} seeds ok of ${count} (${(elapsedMs / 1000).toFixed(0)} s, ${((i + 1) / (elapsedMs / 1000)).toFixed(1)} seeds/s); last: seed ${seed} nodes=${nodes} ${summary(result)}`);
    }
  }
  return failed > 0 ? 1 : 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exitCode = 2;
  }
}
