/**
 * fsck's view of one member's state at a chosen applied index: a SHA-256
 * digest of the whole keyspace and the consistency findings (fsck-checks.ts),
 * both from ONE LevelDB snapshot, labelled with the applied index read from
 * that same snapshot — so "these digests are at the same index" holds by
 * construction, never by timing.
 *
 * How a member stops at index N: `scanAt(N)` registers N; the machine's apply
 * (meta-state-machine.ts) cuts any batch that runs past N in two and calls
 * `reached()` after the part ending at N is durable and before the rest
 * applies; `reached()` opens a LevelDB iterator at once (classic-level takes
 * its implicit snapshot synchronously in iterator_init), so later writes are
 * invisible to the scan, which then runs beside further applies. A member
 * already exactly at N scans at once; one already past N, or past it by a
 * batch that was in flight while N was registered, answers ScanPassedError
 * (the caller picks a later N). Owns the digest format and the waiting; must
 * never write to the state or delay apply beyond opening an iterator.
 *
 * Digest: SHA-256 over every key but the applied index, in key order, each as
 * [key length u32][key][value length u32][value] — every replicated record
 * (nothing in the folder is a local cache: the record cache lives in memory),
 * and any stray key a damaged folder holds.
 */
import { createHash } from 'node:crypto';
import { LevelDb } from '../../raft/node/level-keyspace';
import { FsckAccumulator, FsckFindings } from './fsck-checks';
import { APPLIED_KEY, BlockRecord, blockIdOfKey, blockKey, blockRange, decodeRecord, readU64 } from './records';

/** Scans waiting for their index at once on one member; more are refused. */
export const PENDING_SCANS_MAX = 16;
/** Scans reading the state at once on one member (each reads all of it); more are refused. */
export const RUNNING_SCANS_MAX = 4;
export const SCAN_WAIT_MS_MAX = 60_000;
const ITERATOR_BATCH_KEYS = 10_000;
const SCAN_NOW_ATTEMPTS_MAX = 5;
export const REFERENCED_PAGE_MAX = 1_024;

export interface StateScan {
  /** The applied index the snapshot holds (= the index asked for). */
  index: number;
  digestHex: string;
  keys: number;
  bytes: number;
  findings: FsckFindings;
  durationMs: number;
}

export class ScanPassedError extends Error {}
export class ScanTimeoutError extends Error {}
export class ScanBusyError extends Error {}

/** What the scan needs of a classic-level iterator (its snapshot is fixed when it is created). */
interface StateIterator {
  nextv(size: number): Promise<Array<[Buffer, Uint8Array]>>;
  close(): Promise<void>;
}

interface Waiter {
  samplesPerKind: number;
  resolve: (scan: StateScan) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** Digest and checks over an iterator already opened (its snapshot fixed). */
async function runScan(iterator: StateIterator, samplesPerKind: number): Promise<StateScan> {
  const startedAtMs = Date.now();
  const hash = createHash('sha256');
  const checks = new FsckAccumulator({ samplesPerKind });
  const lengths = Buffer.allocUnsafe(4);
  let index = 0;
  let keys = 0;
  let bytes = 0;
  try {
    for (;;) {
      const batch = await iterator.nextv(ITERATOR_BATCH_KEYS);
      if (batch.length === 0) break;
      for (const [key, value] of batch) {
        if (key.equals(APPLIED_KEY)) {
          index = readU64(value);
          continue;
        }
        lengths.writeUInt32BE(key.length);
        hash.update(lengths).update(key);
        lengths.writeUInt32BE(value.byteLength);
        hash.update(lengths).update(value);
        keys++;
        bytes += key.length + value.byteLength;
        checks.add(key, value);
      }
    }
  } finally {
    await iterator.close();
  }
  return { index, digestHex: hash.digest('hex'), keys, bytes, findings: checks.finish(), durationMs: Date.now() - startedAtMs };
}

export class ScanPoints {
  private readonly pending = new Map<number, Waiter[]>();
  private running = 0;

  constructor(private readonly db: () => LevelDb, private readonly appliedIndex: () => number) {}

  /** How many leading entries to apply first so the batch stops at a wanted index (0 or all = no cut). */
  cutAt(first: number, last: number): number {
    if (this.pending.size === 0) return 0;
    let cut = 0;
    for (const wanted of this.pending.keys()) {
      if (wanted >= first && wanted < last && (cut === 0 || wanted - first + 1 < cut)) cut = wanted - first + 1;
    }
    return cut;
  }

  /** Called by apply right after the state up to `index` is durable, before anything later applies. */
  reached(index: number): void {
    if (this.pending.size === 0) return;
    for (const [wanted, waiters] of [...this.pending]) {
      if (wanted > index) continue;
      this.pending.delete(wanted);
      if (wanted < index) {
        this.settle(waiters, new ScanPassedError(`applied index moved from below ${wanted} to ${index} in one batch while the scan was being registered; ask for a later index`));
        continue;
      }
      this.start(waiters);
    }
  }

  /** Digest and findings at exactly `index`, waiting up to waitMs for this member to apply it. */
  scanAt(index: number, waitMs: number, samplesPerKind: number): Promise<StateScan> {
    if (!Number.isSafeInteger(index) || index < 1) return Promise.reject(new RangeError(`index ${String(index)} is not a positive integer`));
    const applied = this.appliedIndex();
    if (applied > index) return Promise.reject(new ScanPassedError(`this member has applied up to ${applied}, past ${index}; ask for a later index`));
    const wait = Math.min(Math.max(1, waitMs), SCAN_WAIT_MS_MAX);
    if (this.running >= RUNNING_SCANS_MAX) return Promise.reject(new ScanBusyError(`${this.running} scans already read this member's state; retry later`));
    if (applied === index) {
      return this.run(this.db().iterator(), samplesPerKind).then((scan) => {
        // An apply may have been writing while the iterator opened: the snapshot's own index says what was read.
        if (scan.index !== index) throw new ScanPassedError(`the state moved to ${scan.index} as the scan at ${index} began; ask for a later index`);
        return scan;
      });
    }
    const waiting = [...this.pending.values()].reduce((n, list) => n + list.length, 0);
    if (waiting >= PENDING_SCANS_MAX) return Promise.reject(new ScanBusyError(`${waiting} scans already wait on this member; retry later`));
    return new Promise<StateScan>((resolve, reject) => {
      const waiter: Waiter = {
        samplesPerKind, resolve, reject,
        timer: setTimeout(() => {
          const list = this.pending.get(index);
          if (list) {
            list.splice(list.indexOf(waiter), 1);
            if (list.length === 0) this.pending.delete(index);
          }
          reject(new ScanTimeoutError(`this member did not reach applied index ${index} within ${wait} ms (it is at ${this.appliedIndex()})`));
        }, wait),
      };
      const list = this.pending.get(index);
      if (list) list.push(waiter);
      else this.pending.set(index, [waiter]);
    });
  }

  /** Digest and findings at whatever index this member has applied now (retried if an apply moves it while the scan opens). */
  async scanNow(samplesPerKind: number): Promise<StateScan> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.scanAt(Math.max(1, this.appliedIndex()), 1_000, samplesPerKind);
      } catch (error) {
        if (!(error instanceof ScanPassedError) || attempt >= SCAN_NOW_ATTEMPTS_MAX) throw error;
      }
    }
  }

  private start(waiters: Waiter[]): void {
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      let iterator: StateIterator;
      try {
        iterator = this.db().iterator(); // the snapshot is taken here, synchronously
      } catch (error) {
        waiter.reject(error as Error);
        continue;
      }
      this.run(iterator, waiter.samplesPerKind).then(waiter.resolve, waiter.reject);
    }
  }

  private async run(iterator: StateIterator, samplesPerKind: number): Promise<StateScan> {
    this.running++;
    try {
      return await runScan(iterator, samplesPerKind);
    } finally {
      this.running--;
    }
  }

  private settle(waiters: Waiter[], error: Error): void {
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  /** Refuses every waiting scan (the machine is closing or restoring a snapshot). */
  cancelAll(why: string): void {
    for (const [, waiters] of this.pending) this.settle(waiters, new ScanPassedError(why));
    this.pending.clear();
  }

  /** Referenced block ids (refs > 0) after `afterId` in id order, at most `limit`, from the live state. */
  async referencedBlocks(afterId: string, limit: number): Promise<{ ids: string[]; more: boolean }> {
    const pageMax = Math.min(Math.max(1, limit), REFERENCED_PAGE_MAX);
    const iterator = this.db().iterator(afterId ? { gt: blockKey(afterId), lt: blockRange.lt } : { ...blockRange });
    const ids: string[] = [];
    try {
      for (;;) {
        const batch = await iterator.nextv(pageMax);
        if (batch.length === 0) return { ids, more: false };
        for (const [key, value] of batch) {
          if (decodeRecord<BlockRecord>(value, 'block').refs <= 0) continue;
          if (ids.length === pageMax) return { ids, more: true };
          ids.push(blockIdOfKey(key));
        }
      }
    } finally {
      await iterator.close();
    }
  }
}
