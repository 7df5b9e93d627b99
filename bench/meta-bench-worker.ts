/**
 * One load-generating process of the metadata bench (bench/meta-bench.ts forks
 * it with --worker): one client SDK instance (client/sdk: one session whose
 * in-flight slots share its dedup window, leader following, getattr calls
 * coalesced into GetAttrs), and the create cycle (create with open → commit
 * with release: two calls, as a FUSE create/write/close) or the getattr loop,
 * driven by the parent over IPC (ready → start → measure → stop → result).
 * Must never talk to anything but the members it was given.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MetaClient, ROOT_HANDLE } from '../client/sdk';

export type PhaseKind = 'create' | 'getattr';

export interface WorkerConfig {
  kind: PhaseKind;
  slots: number;
  valueBytes: number;
  /** Made under the root by this worker; its files go there. */
  directoryName: string;
  memberAddresses: string[];
  leaderAddress: string;
}

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'failed'; error: string }
  | { type: 'result'; ops: number; errors: number; lastError: string; measuredMs: number; latenciesBase64: string };

type ParentMessage = { type: 'start' } | { type: 'measure' } | { type: 'stop' };

const CALL_DEADLINE_MS = 10_000;
const RETRY_PAUSE_MS = 20;
/** Latency samples kept per worker (a few MB over IPC at most). */
const MAX_LATENCY_SAMPLES = 500_000;
/** Files each getattr worker makes to read (per slot, bounded). */
const GETATTR_FILES_PER_SLOT = 8;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One in-flight slot; the slots of a worker share its client's session. */
interface Slot { made: number }

export function runWorker(config: WorkerConfig): void {
  /** Resolves once the message left (so a disconnect right after cannot drop it). */
  const send = (message: WorkerMessage) => new Promise<void>((resolve) => { if (process.send) process.send(message, undefined, {}, () => resolve()); else resolve(); });
  let client: MetaClient | undefined;
  const value = randomBytes(config.valueBytes);
  const latencies = new Float64Array(MAX_LATENCY_SAMPLES);
  const files: number[] = [];
  let samples = 0;
  let ops = 0;
  let errors = 0;
  let lastError = '';
  let running = false;
  let measuring = false;
  let measureStartedAt = 0;
  let measuredMs = 0;
  let directory = 0;
  const slots: Slot[] = [];

  /** FUSE's create (the file opened for writing) and close (a commit that releases the fh): two calls, two log entries. */
  const createCycle = async (sdk: MetaClient, slot: Slot, index: number): Promise<number> => {
    const created = await sdk.create(directory, `f${index}-${slot.made++}`, 0o644, { exclusive: true, open: { read: false, write: true, append: false } });
    await sdk.commit(created.opened!.fh, created.opened!.version, { kind: 'inline', written: [{ offset: 0, data: value }], newSize: value.length }, { release: true });
    return created.attr.handle;
  };

  const loop = async (sdk: MetaClient, slot: Slot, index: number): Promise<void> => {
    let next = index;
    while (running) {
      const t0 = performance.now();
      try {
        if (config.kind === 'create') {
          await createCycle(sdk, slot, index);
        } else {
          next = (next + 1 + index) % files.length;
          await sdk.getattr(files[next]);
        }
      } catch (error) {
        errors++;
        lastError = (error as Error).message;
        await sleep(RETRY_PAUSE_MS);
        continue;
      }
      if (!measuring) continue;
      ops++;
      if (samples < MAX_LATENCY_SAMPLES) latencies[samples++] = performance.now() - t0;
    }
  };

  const prepare = async (): Promise<void> => {
    const sdk = await MetaClient.connect({ servers: [config.leaderAddress, ...config.memberAddresses], deadlineMs: CALL_DEADLINE_MS, clientName: `meta-bench-${config.directoryName}` });
    client = sdk;
    for (let i = 0; i < config.slots; i++) slots.push({ made: 0 });
    directory = (await sdk.mkdir(ROOT_HANDLE, config.directoryName, 0o755)).handle;
    if (config.kind === 'getattr') {
      await Promise.all(slots.map(async (slot, index) => {
        for (let f = 0; f < GETATTR_FILES_PER_SLOT; f++) files.push(await createCycle(sdk, slot, index));
      }));
    }
  };

  const finish = async (): Promise<void> => {
    running = false;
    if (measuring) measuredMs = performance.now() - measureStartedAt;
    measuring = false;
    await Promise.all(workers);
    const copy = Buffer.from(latencies.buffer, 0, samples * Float64Array.BYTES_PER_ELEMENT);
    await send({ type: 'result', ops, errors, lastError, measuredMs, latenciesBase64: copy.toString('base64') });
    // Closing the session keeps the cluster's session table from growing across phases.
    await client?.close();
    process.disconnect?.();
  };

  let workers: Promise<void>[] = [];
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'start') {
      running = true;
      workers = slots.map((slot, index) => loop(client!, slot, index));
    } else if (message.type === 'measure') {
      measuring = true;
      measureStartedAt = performance.now();
    } else if (message.type === 'stop') {
      void finish();
    }
  });
  // The parent's death must not leave this process behind.
  process.on('disconnect', () => {
    running = false;
    setTimeout(() => process.exit(0), 2_000).unref();
  });
  prepare().then(() => send({ type: 'ready' }), async (error: Error) => {
    await send({ type: 'failed', error: error.message });
    await client?.close();
    process.disconnect?.();
  });
}
