/**
 * `handlefs chaos`: argument parsing, Ctrl-C handling, printing the human
 * summary, exit codes (0 no violations, 1 violations, 2 usage, 3 the run
 * could not be completed). The run itself is runner.ts. Must never leave
 * anything running: SIGINT/SIGTERM abort the run, whose cleanup then runs.
 */
import * as path from 'node:path';
import { nemesesByName, NEMESES } from './nemesis';
import { debugUnsafeArgs, DebugUnsafeRun, runChaos } from './runner';

export const CHAOS_USAGE = `  chaos [--duration 60s] [--nemesis kill-leader,partition-leader,...|all] [--clients 4] [--seed S] [--out DIR] [--keep-data]
        [--debug-unsafe ack-before-commit|stale-reads|no-dedup|no-session-expiry[,...]] [--debug-follower-apply-delay-ms N]
        a Jepsen-style run (needs root): 3 metaservers and N clients (FUSE mounts and SDK workers, alternating) on
        simulated hosts 127.77.0.0/24 (prefix hfsc), workloads (registers, appends, namespace churn) while the nemeses
        inject faults, heal, check; writes history.jsonl, summary.json/.txt and timeline.html to DIR
        (default chaos-runs/<time>-seed<S>); exits 0 only with zero violations. Nemeses: ${NEMESES.map((n) => n.name).join(', ')}
        --debug-unsafe makes every member WRONG ON PURPOSE (chaos-tests/debug-faults/README.md) to show the checkers
        catch it: such a run is expected to exit 1.
`;

const DURATION_MAX_MS = 24 * 3600 * 1000;

export function parseDuration(text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`--duration must look like 500ms, 60s, 30m or 2h, got ${JSON.stringify(text)}`);
  const unit = match[2] ?? 's';
  const ms = Number(match[1]) * (unit === 'ms' ? 1 : unit === 's' ? 1_000 : unit === 'm' ? 60_000 : 3_600_000);
  if (!(ms >= 1_000 && ms <= DURATION_MAX_MS)) throw new Error(`--duration must be between 1s and 24h, got ${text}`);
  return Math.round(ms);
}

export async function runChaosCommand(argv: string[]): Promise<number> {
  let durationMs = 60_000;
  let nemesisList = 'all';
  let clients = 4;
  let seed = Math.floor(Date.now() % 2_147_483_647);
  let out: string | undefined;
  let keepData = false;
  let debugSwitches: string[] | undefined;
  let followerApplyDelayMs: number | undefined;
  let debugUnsafe: DebugUnsafeRun | undefined;
  try {
    const rest = [...argv];
    while (rest.length > 0) {
      const flag = rest.shift()!;
      if (flag === '--keep-data') { keepData = true; continue; }
      if (flag === '--help' || flag === '-h') { process.stdout.write(`usage: handlefs\n${CHAOS_USAGE}`); return 0; }
      const value = rest.shift();
      if (value === undefined || value.startsWith('--')) throw new Error(`${flag} needs a value`);
      switch (flag) {
        case '--duration': durationMs = parseDuration(value); break;
        case '--nemesis': nemesisList = value; break;
        case '--clients': clients = Number(value); break;
        case '--seed': seed = Number(value); break;
        case '--out': out = value; break;
        case '--debug-unsafe': debugSwitches = value.split(',').map((n) => n.trim()).filter((n) => n !== ''); break;
        case '--debug-follower-apply-delay-ms': followerApplyDelayMs = Number(value); break;
        default: throw new Error(`unknown flag ${flag}`);
      }
    }
    if (!(Number.isInteger(clients) && clients >= 1 && clients <= 16)) throw new Error(`--clients must be an integer in 1..16, got ${clients}`);
    if (!(Number.isSafeInteger(seed) && seed >= 0)) throw new Error(`--seed must be a non-negative integer, got ${seed}`);
    nemesesByName(nemesisList);
    if (debugSwitches !== undefined || followerApplyDelayMs !== undefined) {
      debugUnsafe = { switches: debugSwitches ?? [], followerApplyDelayMs };
      debugUnsafeArgs(debugUnsafe);
    }
  } catch (error) {
    process.stderr.write(`handlefs chaos: ${(error as Error).message}\nusage: handlefs\n${CHAOS_USAGE}`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('handlefs chaos: needs root (network namespaces and FUSE mounts)\n');
    return 3;
  }
  const outDir = out ?? path.join('chaos-runs', `${new Date().toISOString().replace(/[:.]/g, '-')}-seed${seed}`);
  const controller = new AbortController();
  const onSignal = (name: string): void => {
    if (controller.signal.aborted) {
      process.stderr.write(`handlefs chaos: ${name} again: still cleaning up, please wait\n`);
      return;
    }
    process.stderr.write(`handlefs chaos: ${name}: stopping the run and cleaning up\n`);
    controller.abort();
  };
  const onInt = (): void => onSignal('SIGINT');
  const onTerm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    const result = await runChaos({ durationMs, nemeses: nemesesByName(nemesisList), clients, seed, outDir, signal: controller.signal, keepData, debugUnsafe });
    process.stdout.write(result.text);
    return result.summary.ok ? 0 : 1;
  } catch (error) {
    process.stderr.write(`handlefs chaos: the run did not complete: ${(error as Error).message}\n(run folder ${path.resolve(outDir)}; seed ${seed})\n`);
    return 3;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}
