/**
 * The slow-disk hook (--debug-fsync-delay-file, with HANDLEFS_DEBUG_UNSAFE=1):
 * every synced Raft storage write waits the delay the file names, read again
 * every second, so the chaos slow-disk nemesis turns it on and off without a
 * restart. Shown by a mutation's latency: it grows by about the delay once the
 * file says so, and falls back once the file says 0. Real processes; run
 * `npx tsc -p .` first.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MetaTestCluster, ROOT_HANDLE, TestSession, sleep } from '../../metaserver/server/testing';

const DEBUG_ENV = { HANDLEFS_DEBUG_UNSAFE: '1' };
const DELAY_MS = 150;
const SAMPLES = 7;
/** The members read the file once a second; a little more makes sure every one has. */
const FILE_PICKUP_MS = 1_300;

let cluster: MetaTestCluster | undefined;
let folder: string;
let delayFile: string;

async function medianMkdirMs(session: TestSession, label: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const startedAt = performance.now();
    const made = await session.mutate('Mkdir', { parent: ROOT_HANDLE, name: `${label}-${i}`, mode: 0o755 });
    if (made.error || made.reply.errno !== 0) throw new Error(`Mkdir ${label}-${i}: ${made.error?.message ?? made.reply!.message}`);
    samples.push(performance.now() - startedAt);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(SAMPLES / 2)];
}

beforeAll(async () => {
  folder = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-slow-disk-'));
  delayFile = path.join(folder, 'fsync-delay-ms');
  cluster = await MetaTestCluster.start({ env: DEBUG_ENV, extraArgs: ['--debug-fsync-delay-file', delayFile] });
}, 30_000);

afterAll(async () => {
  await cluster?.destroy();
  fs.rmSync(folder, { recursive: true, force: true });
});

describe('slow-disk (--debug-fsync-delay-file)', () => {
  it('adds about the delay to a write while the file names it, and nothing once it says 0', async () => {
    const session = await cluster!.openSession({ ttlMs: 30_000, keepAliveEveryMs: 1_000 });
    const fastMs = await medianMkdirMs(session, 'before');
    fs.writeFileSync(delayFile, `${DELAY_MS}\n`);
    await sleep(FILE_PICKUP_MS);
    const slowMs = await medianMkdirMs(session, 'slow');
    fs.writeFileSync(delayFile, '0\n');
    await sleep(FILE_PICKUP_MS);
    const afterMs = await medianMkdirMs(session, 'after');
    // The machine is shared: the baseline is the faster of before and after, so one noisy phase cannot fake or hide the delay.
    const baselineMs = Math.min(fastMs, afterMs);
    const report = `median Mkdir: ${fastMs.toFixed(1)} ms before, ${slowMs.toFixed(1)} ms with ${DELAY_MS} ms, ${afterMs.toFixed(1)} ms after`;
    // The leader's write and the followers' run side by side: about one delay, not two or three.
    expect({ report, grewByAboutTheDelay: slowMs - baselineMs >= 0.8 * DELAY_MS && slowMs - baselineMs <= 4 * DELAY_MS }).toEqual({ report, grewByAboutTheDelay: true });
    expect({ report, fellBack: afterMs < slowMs - 0.5 * DELAY_MS }).toEqual({ report, fellBack: true });
  }, 40_000);
});
