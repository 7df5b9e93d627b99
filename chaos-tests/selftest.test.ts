/**
 * The checkers catch a cluster that is wrong on purpose (issue 6 §5): for each
 * debug-unsafe fault switch (chaos-tests/debug-faults/README.md) a short real
 * chaos run with the nemesis that exposes it best must FAIL, and the violation
 * must come from the checker that owns that kind of wrongness. A switch gets
 * at most its seeds' count of runs (≤ RUNS_PER_SWITCH_MAX) and stops at the first
 * that catches it. Needs root and `npx tsc -p .` first (skipped otherwise).
 * Prints the run folders and first violations; keeps the folder of a switch
 * that was never caught. Must never leave a host, mount or process behind.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostsStatus } from '../deploy/netns/hosts';
import { nemesesByName } from './nemesis';
import { ChaosResult, DebugUnsafeRun, runChaos } from './runner';

const PREFIX = 'hfscx';
const BRIDGE = 'hfscxbr0';
/** A hard cap on a switch's runs (its seeds); a switch that needs more is not reliably caught. */
const RUNS_PER_SWITCH_MAX = 4;
const runAll = process.env.HANDLEFS_SELFTEST_ALL === '1';
/**
 * Opt-in (`npm run chaos:selftest`): each case catches its switch by chance within a bounded number of
 * runs (ack-before-commit on the first run in 5 of 5 passes, no-dedup within 3), and the file takes
 * 65-90 s; `npm test`, which decides whether a submission lands, must not depend on that chance.
 */
const enabled = process.env.HANDLEFS_CHAOS_SELFTEST === '1';
const isRoot = process.getuid?.() === 0;
const built = fs.existsSync(path.join(__dirname, '..', 'dist', 'chaos-tests', 'workloads', 'worker-main.js'));

interface SelfTestCase {
  name: string;
  debugUnsafe: DebugUnsafeRun;
  nemeses: string;
  durationMs: number;
  clients: number;
  /** The checkers whose violation counts as catching this switch. */
  catchers: string[];
  seeds: number[];
  mix?: { registers: number; appends: number; churn: number };
  rhythm?: { quietMinMs: number; quietMaxMs: number; holdMinMs: number; holdMaxMs: number };
  /**
   * Why the case does not run by default (it then runs only with HANDLEFS_SELFTEST_ALL=1): a switch today's
   * workloads cannot expose in a short run. Never a reason to accept a flaky case.
   */
  notYetVisible?: string;
}

const CASES: SelfTestCase[] = [
  {
    // A leader cut off from the majority still answers writes (until check-quorum deposes it): the next leader never had them.
    // Only the first entry proposed after the cut is answered early (later ones wait for it to apply), about one
    // observable operation per partition in four or five. With the default rhythm (4 partitions in 30 s) a run caught
    // it 6 times in 11; short partitions (a new leader is elected within about 1 s) give about 8 per run.
    name: 'ack-before-commit', debugUnsafe: { switches: ['ack-before-commit'] }, nemeses: 'partition-leader',
    // More namespace churn: its operations are one entry each, so that entry is more often a whole acknowledged operation.
    durationMs: 30_000, clients: 4, catchers: ['no-lost-writes', 'linearizable-registers', 'appends', 'namespace'], seeds: [12, 11, 13, 14],
    mix: { registers: 35, appends: 20, churn: 45 },
    rhythm: { quietMinMs: 1_000, quietMaxMs: 2_000, holdMinMs: 2_000, holdMaxMs: 3_000 },
  },
  {
    // Reads reach a non-leader only after a leader change, until the client's next mutation (clients keep their old
    // leader guess); the apply delay keeps that member behind, and a churn-heavy mix gives more pure reads (lists).
    name: 'stale-reads', debugUnsafe: { switches: ['stale-reads'], followerApplyDelayMs: 50 }, nemeses: 'transfer-leader',
    durationMs: 20_000, clients: 4, catchers: ['linearizable-registers', 'namespace', 'appends'], seeds: [21, 22, 23],
    mix: { registers: 10, appends: 10, churn: 80 },
    notYetVisible: 'the SDK sends every read to its leader guess, which each successful Open/Create/Commit/KeepAlive sets to the leader, '
      + 'and whole-file reads go through Open (a Raft entry): 0 of 9 runs caught it (README, "The checkers are themselves tested")',
  },
  {
    // Answers lost to a killed or cut-off leader are retried: without dedup, the retry is applied a second time.
    name: 'no-dedup', debugUnsafe: { switches: ['no-dedup'] }, nemeses: 'sigstop-leader,kill-leader',
    // (E.g. a Release retried after its answer was lost is applied again and answers EBADF: the errors checker.)
    // Each leader loss gives about one catch in three: the short rhythm gives about five in 20 s.
    durationMs: 20_000, clients: 4, catchers: ['appends', 'namespace', 'errors'], seeds: [32, 31, 33],
    rhythm: { quietMinMs: 1_000, quietMaxMs: 2_000, holdMinMs: 2_000, holdMaxMs: 3_000 },
  },
];

interface Attempt { seed: number; runDir: string; faults: number; caughtBy: string[]; firstViolation?: string; elapsedMs: number }

async function attempt(c: SelfTestCase, seed: number): Promise<{ result: ChaosResult; attempt: Attempt; lines: string[] }> {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), `handlefs-chaos-selftest-${c.name}-`));
  const lines: string[] = [];
  const started = Date.now();
  let result: ChaosResult;
  try {
    result = await runChaos({
      durationMs: c.durationMs, nemeses: nemesesByName(c.nemeses), clients: c.clients, seed, outDir,
      prefix: PREFIX, bridge: BRIDGE, log: (line) => lines.push(line), debugUnsafe: c.debugUnsafe, mix: c.mix, rhythm: c.rhythm,
    });
  } catch (error) {
    process.stderr.write(`self-test ${c.name}: seed ${seed} did not complete; run folder kept: ${outDir}\n${lines.join('\n')}\n`);
    throw error;
  }
  const caughtBy = [...new Set(result.summary.violations.map((v) => v.checker))].filter((name) => c.catchers.includes(name));
  const first = result.summary.violations.find((v) => c.catchers.includes(v.checker));
  return {
    result, lines,
    attempt: { seed, runDir: outDir, faults: result.summary.faults.length, caughtBy, firstViolation: first ? `${first.checker}: ${first.message}` : undefined, elapsedMs: Date.now() - started },
  };
}

(enabled && isRoot && built ? describe : describe.skip)('the checkers catch a cluster that is wrong on purpose', () => {
  if (enabled && (!isRoot || !built)) console.warn(`chaos self-test skipped: ${isRoot ? 'run `npx tsc -p .` first' : 'needs root (network namespaces, FUSE)'}`);

  afterAll(async () => {
    // Nothing left behind: no host of the prefix, no mount of a self-test run.
    const status = await hostsStatus({ prefix: PREFIX, bridge: BRIDGE });
    expect(status.hosts).toEqual([]);
    expect(status.bridge.present).toBe(false);
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain('handlefs-chaos-selftest-');
  });

  for (const c of CASES) {
    if (c.notYetVisible && !runAll) console.warn(`chaos self-test: ${c.name} not run (HANDLEFS_SELFTEST_ALL=1 runs it): ${c.notYetVisible}`);
    (c.notYetVisible && !runAll ? it.skip : it)(`reports ${c.name} through ${c.catchers.join(' or ')}`, async () => {
      const attempts: Attempt[] = [];
      let caught: Attempt | undefined;
      for (const seed of c.seeds.slice(0, RUNS_PER_SWITCH_MAX)) {
        const { result, attempt: a, lines } = await attempt(c, seed);
        attempts.push(a);
        // A deliberately broken run says so, in the summary and its files.
        expect(result.summary.debugUnsafe?.switches).toEqual(c.debugUnsafe.switches);
        expect(result.text).toContain('DEBUG-UNSAFE');
        expect(lines[0]).toContain('DEBUG-UNSAFE');
        if (a.caughtBy.length > 0 && !result.summary.ok) {
          caught = a;
          break;
        }
        process.stderr.write(`self-test ${c.name}: seed ${seed} not caught by ${c.catchers.join('/')}; run folder kept: ${a.runDir}\n${result.text}\n`);
      }
      const report = attempts.map((a, i) => `  run ${i + 1} seed ${a.seed} (${Math.round(a.elapsedMs / 1000)} s, ${a.faults} faults): ${a.caughtBy.length > 0 ? `caught by ${a.caughtBy.join(', ')}` : 'NOT caught'}; ${a.runDir}${a.firstViolation ? `\n    first: ${a.firstViolation.slice(0, 400)}` : ''}`).join('\n');
      process.stderr.write(`self-test ${c.name}: ${caught ? `caught after ${attempts.length} run(s)` : `NOT caught in ${attempts.length} runs`}\n${report}\n`);
      expect(caught).toBeDefined();
      // The catching run's folder has done its job; the ones that missed stay for a person to look at.
      if (caught) fs.rmSync(caught.runDir, { recursive: true, force: true });
    }, Math.min(c.seeds.length, RUNS_PER_SWITCH_MAX) * 120_000);
  }
});
