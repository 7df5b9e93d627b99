/**
 * The bounded chaos run inside `npm test` (issue 6 §6): a real cluster on
 * simulated hosts, one FUSE client and one SDK client, a leader killed with
 * SIGKILL and a leader partitioned from the majority, the SDK client killed
 * holding an fh at the end (its session must expire), then every checker.
 * Needs root and `npx tsc -p .` first (members, mounts and workers run from
 * dist/); skipped with a message otherwise. Prints the run folder and the
 * summary when it fails.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostsStatus } from '../deploy/netns/hosts';
import { nemesesByName } from './nemesis';
import { runChaos } from './runner';

const PREFIX = 'hfscs';
const BRIDGE = 'hfscsbr0';
const isRoot = process.getuid?.() === 0;
const built = fs.existsSync(path.join(__dirname, '..', 'dist', 'chaos-tests', 'workloads', 'worker-main.js'));

(isRoot && built ? describe : describe.skip)('a chaos smoke run', () => {
  if (!isRoot || !built) console.warn(`chaos smoke run skipped: ${isRoot ? 'run `npx tsc -p .` first' : 'needs root (network namespaces, FUSE)'}`);

  it('kills the leader and partitions the leader, and every checker finds zero violations', async () => {
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-chaos-smoke-'));
    const lines: string[] = [];
    let text = '';
    try {
      const result = await runChaos({
        durationMs: 25_000, nemeses: nemesesByName('kill-leader,partition-leader'), clients: 2, seed: 6, outDir,
        prefix: PREFIX, bridge: BRIDGE, log: (line) => lines.push(line),
      });
      text = result.text;
      expect(result.summary.faultCounts['kill-leader']).toBeGreaterThanOrEqual(1);
      expect(result.summary.faultCounts['partition-leader']).toBeGreaterThanOrEqual(1);
      expect(result.summary.operations.byOutcome.ok).toBeGreaterThan(100);
      expect(result.summary.final.fsckClean).toBe(true);
      // The SDK client was killed holding an fh: its session (and the fh) expired on the servers.
      expect(result.summary.final.abandonedSessions).toBe(1);
      expect(result.summary.final.overdueSessions).toBe(0);
      expect(result.summary.violations).toEqual([]);
      expect(result.summary.ok).toBe(true);
      fs.rmSync(outDir, { recursive: true, force: true });
    } catch (error) {
      process.stderr.write(`chaos smoke run failed; run folder kept: ${outDir}\n${lines.join('\n')}\n${text}\n`);
      throw error;
    }
    // Nothing left behind: no host of the prefix, no mount under the run folder.
    const status = await hostsStatus({ prefix: PREFIX, bridge: BRIDGE });
    expect(status.hosts).toEqual([]);
    expect(status.bridge.present).toBe(false);
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(outDir);
  }, 150_000);
});
