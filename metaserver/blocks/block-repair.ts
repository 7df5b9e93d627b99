/**
 * Background block repair on every member (issue 3 §4): walks the block ids
 * the state references, and fetches from the other members those missing
 * from the local store (a new member, a wiped or corrupted disk). Owns the
 * pass loop, its pacing (at most one pass every minPassIntervalMs) and its
 * bounded fetch concurrency. Must never store a block it did not verify
 * (BlockStore.put checks the hash), never run two passes at once, and never
 * decide which blocks are referenced (referencedIds does).
 */
import { Counter, Registry } from 'prom-client';
import { RaftLogger, silentLogger } from '../../raft/node/node-logger';
import { BlockFetcher } from './block-replicator';
import { BlockStore, isBlockId } from './block-store';

export interface RepairPassResult {
  /** Referenced ids looked at (holes and duplicates within a pass included). */
  checked: number;
  /** Referenced ids not found locally. */
  missing: number;
  repaired: number;
  failed: number;
}

export interface BlockRepairOptions {
  store: BlockStore;
  fetcher: BlockFetcher;
  /** Every block id some kept version, conflict copy or open fh references; '' (a hole) is skipped. */
  referencedIds: () => AsyncIterable<string>;
  /** Fetches in flight at most. */
  concurrency?: number;
  /** A background pass starts at most this often. */
  minPassIntervalMs?: number;
  /** How long one fetch may take. */
  fetchTimeoutMs?: number;
  /**
   * Read and hash every referenced block instead of only looking for its file:
   * finds (and quarantines, then refetches) rotten copies, at the cost of
   * reading the whole store each pass. Off by default; a scrub for fsck.
   */
  scrub?: boolean;
  /** Ids one pass looks at, at most (a pass over a bigger state stops there and says so). */
  idsPerPassMax?: number;
  logger?: RaftLogger;
  /** Registers handlefs_blocks_repaired_total and handlefs_blocks_repair_failed_total when given. */
  registry?: Registry;
}

export const DEFAULT_REPAIR_CONCURRENCY = 4;
export const DEFAULT_REPAIR_INTERVAL_MS = 30_000;
export const DEFAULT_REPAIR_FETCH_TIMEOUT_MS = 10_000;
export const DEFAULT_REPAIR_IDS_PER_PASS_MAX = 100_000_000;

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} ${String(value)} is not a positive integer`);
  return value;
}

export class BlockRepair {
  private readonly concurrency: number;
  private readonly minPassIntervalMs: number;
  private readonly fetchTimeoutMs: number;
  private readonly idsPerPassMax: number;
  private readonly logger: RaftLogger;
  private readonly repairedTotal: Counter | undefined;
  private readonly failedTotal: Counter | undefined;
  private running: Promise<RepairPassResult> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(private readonly options: BlockRepairOptions) {
    if (!(options.store instanceof BlockStore)) throw new Error('BlockRepair needs a BlockStore');
    if (typeof options.fetcher?.fetch !== 'function') throw new Error('BlockRepair needs a fetcher');
    if (typeof options.referencedIds !== 'function') throw new Error('BlockRepair needs referencedIds');
    this.concurrency = positiveInteger(options.concurrency ?? DEFAULT_REPAIR_CONCURRENCY, 'concurrency');
    this.minPassIntervalMs = positiveInteger(options.minPassIntervalMs ?? DEFAULT_REPAIR_INTERVAL_MS, 'minPassIntervalMs');
    this.fetchTimeoutMs = positiveInteger(options.fetchTimeoutMs ?? DEFAULT_REPAIR_FETCH_TIMEOUT_MS, 'fetchTimeoutMs');
    this.idsPerPassMax = positiveInteger(options.idsPerPassMax ?? DEFAULT_REPAIR_IDS_PER_PASS_MAX, 'idsPerPassMax');
    this.logger = options.logger ?? silentLogger;
    if (options.registry !== undefined) {
      this.repairedTotal = new Counter({ name: 'handlefs_blocks_repaired_total', help: 'Blocks fetched from other members because they were missing here', registers: [options.registry] });
      this.failedTotal = new Counter({ name: 'handlefs_blocks_repair_failed_total', help: 'Missing blocks no other member could supply in a repair pass', registers: [options.registry] });
    }
  }

  /** One pass; if a pass is already running, its result. */
  runOnce(): Promise<RepairPassResult> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<RepairPassResult> {
    const { store, fetcher } = this.options;
    const result: RepairPassResult = { checked: 0, missing: 0, repaired: 0, failed: 0 };
    const inFlight = new Map<string, Promise<void>>();
    const repair = async (id: string): Promise<void> => {
      try {
        const bytes = await fetcher.fetch(id, Date.now() + this.fetchTimeoutMs);
        await store.put(id, bytes);
        result.repaired++;
        this.repairedTotal?.inc();
      } catch (error) {
        result.failed++;
        this.failedTotal?.inc();
        this.logger.warn('block repair: could not repair a missing block', { id, error: (error as Error)?.message ?? String(error) });
      }
    };
    for await (const id of this.options.referencedIds()) {
      if (id === '') continue; // a hole: nothing stored
      if (result.checked >= this.idsPerPassMax) {
        this.logger.warn('block repair: pass stopped at its id limit', { idsPerPassMax: this.idsPerPassMax });
        break;
      }
      result.checked++;
      if (!isBlockId(id)) {
        result.failed++;
        this.logger.error('block repair: referenced id is not a block id', { id: String(id).slice(0, 100) });
        continue;
      }
      if (inFlight.has(id) || (await this.holds(id))) continue;
      result.missing++;
      while (inFlight.size >= this.concurrency) await Promise.race(inFlight.values());
      const job = repair(id).finally(() => inFlight.delete(id));
      inFlight.set(id, job);
    }
    await Promise.all(inFlight.values());
    if (result.missing > 0) this.logger.info('block repair: pass done', { ...result });
    return result;
  }

  private async holds(id: string): Promise<boolean> {
    if (this.options.scrub === true) return (await this.options.store.get(id)) !== undefined; // get quarantines a rotten file
    return this.options.store.has(id);
  }

  /** Runs a pass now and then one every minPassIntervalMs until stop(). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = (): void => {
      if (this.stopped) return;
      this.runOnce()
        .catch((error: unknown) => this.logger.error('block repair: pass failed', { error: (error as Error)?.message ?? String(error) }))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, this.minPassIntervalMs);
        });
    };
    loop();
  }

  /** Stops the loop and waits for a running pass to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }
}
