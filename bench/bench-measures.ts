/**
 * Measures a bench needs besides its own load: the same-run LevelDB ceiling
 * (classic-level batches of sync puts in a temp folder), CPU ticks of a
 * process and of the whole machine from /proc (Linux), and percentiles.
 * Owns measuring only; must never start a cluster or leave a temp folder.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ChildProcess } from 'node:child_process';
import { ClassicLevel } from 'classic-level';

export interface Ceiling { entriesPerSecond: number; batchesPerSecond: number; batchLatencyP50Ms: number }

/** What this disk does with batched synchronous LevelDB writes alone. */
export async function measureLevelDbCeiling(seconds: number, batchPuts: number, valueBytes: number): Promise<Ceiling> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-ceiling-'));
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  try {
    await db.open();
    const value = randomBytes(valueBytes);
    const latencies: number[] = [];
    let entries = 0;
    let key = 0;
    const startedAt = performance.now();
    const endAt = startedAt + seconds * 1000;
    while (performance.now() < endAt) {
      const ops = [];
      for (let i = 0; i < batchPuts; i++) {
        const k = Buffer.alloc(8);
        k.writeBigUInt64BE(BigInt(key++));
        ops.push({ type: 'put' as const, key: k, value });
      }
      const t0 = performance.now();
      await db.batch(ops, { sync: true });
      latencies.push(performance.now() - t0);
      entries += batchPuts;
    }
    const elapsedSeconds = (performance.now() - startedAt) / 1000;
    latencies.sort((a, b) => a - b);
    return { entriesPerSecond: entries / elapsedSeconds, batchesPerSecond: latencies.length / elapsedSeconds, batchLatencyP50Ms: latencies[Math.floor(latencies.length / 2)] };
  } finally {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const CLOCK_TICKS_PER_SECOND = 100;

/** utime+stime of a process in clock ticks (0 once it is gone). */
export function cpuTicks(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Busy clock ticks of the whole machine (all cores). */
export function machineBusyTicks(): number {
  try {
    const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = fields[3] + fields[4];
    return fields.reduce((a, b) => a + b, 0) - idle;
  } catch {
    return 0;
  }
}

/** Ticks over a window as % of one core. */
export function ticksToPercent(ticks: number, elapsedSeconds: number): number {
  return Math.round((ticks / CLOCK_TICKS_PER_SECOND / elapsedSeconds) * 100);
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Waits for one message of `type` from every worker (or the first failure / exit / timeout). */
export function collect<M extends { type: string }>(children: ChildProcess[], type: M['type'], timeoutMs: number): Promise<M[]> {
  return Promise.all(children.map((child, index) => new Promise<M>((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`worker ${index} sent no ${type} within ${timeoutMs} ms`)); }, timeoutMs);
    const onMessage = (message: M) => {
      if (message.type === 'failed') { cleanup(); reject(new Error(`worker ${index} failed: ${(message as unknown as { error: string }).error}`)); } else if (message.type === type) { cleanup(); resolve(message); }
    };
    // 'close' (not 'exit'): it comes after the IPC channel drained, so a message sent just before exiting is not lost.
    const onClose = (code: number | null) => { cleanup(); reject(new Error(`worker ${index} exited (code ${code}) before its ${type}`)); };
    const cleanup = () => { clearTimeout(timer); child.off('message', onMessage); child.off('close', onClose); };
    child.on('message', onMessage);
    child.once('close', onClose);
  })));
}

/** One `--flag [value]` argument of a bench's command line; readers of its value name the flag in their errors. */
export interface BenchFlag {
  flag: string;
  value(): string;
  /** The value as a number > 0 (a list item when `text` is given). */
  positive(text?: string): number;
}

/** Walks a bench's arguments flag by flag (a flag's value() consumes the next argument). */
export function* benchFlags(argv: readonly string[]): Generator<BenchFlag> {
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const positive = (text?: string): number => {
      const v = text ?? value();
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a positive number, got ${v}`);
      return n;
    };
    yield { flag, value, positive };
  }
}
