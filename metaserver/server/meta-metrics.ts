/**
 * The metadata server's Prometheus metrics (issue 3 §6), beside the Raft and
 * transport metrics on the member's registry: every API call by method and
 * final gRPC status, POSIX errno answers, latency; the state's sizes (read
 * from a callback at scrape time); and counters the state and the leader
 * bump (commit kinds, expired sessions, dropped versions); the data folder's
 * disk free and size (statfs at scrape time).
 * Owns metric registration and the call wrapper only; must never change what
 * a call answers, never register on prom-client's global registry, and never
 * let a failing or slow state callback fail a scrape (Raft metrics share it).
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CommitDecision } from '../rules/commit';
import { errnoName, isErrno } from '../rules/errno';

/** 0.1 ms (a cached getattr) .. 10 s (a proposal that waited out an election). */
export const REQUEST_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** A state callback slower than this is a failed collection: the scrape answers with the last good values. */
export const DEFAULT_STATE_TIMEOUT_MS = 2_000;

/** How a commit ended: the commit rule's decisions, plus size-only commits (truncate) and restored versions. */
export const COMMIT_KINDS = ['fast-forward', 'rebase', 'conflict-lww', 'conflict-reject', 'no-change', 'truncate', 'restore'] as const;
export type CommitKind = (typeof COMMIT_KINDS)[number];
// Compile-time guard: a decision kind added to the commit rule must be added here too.
const DECISION_KINDS_ARE_COUNTED: CommitDecision['kind'] extends CommitKind ? true : never = true;
void DECISION_KINDS_ARE_COUNTED;

/** The state's sizes at one moment, supplied by the server on every scrape. */
export interface StateGauges {
  /** Live inodes (files, directories, symlinks, ...). */
  handles: number;
  sessions: number;
  openFhs: number;
  /** Versions kept, over all files. */
  versions: number;
  /** Kept versions marked conflict (they hold bytes that lost a conflict). */
  conflictVersions: number;
  /** Conflict copies kept (the losing content of rejected commits). */
  conflictCopies: number;
  blocksStored: number;
  blockBytesStored: number;
  /** Blocks garbage-collected since this member's state began (a running total). */
  blocksCollected: number;
}
export type StateGaugesSource = () => Promise<StateGauges> | StateGauges;

const STATE_FIELDS: ReadonlyArray<[keyof StateGauges, string, string]> = [
  ['handles', 'handlefs_meta_handles', 'Live inodes (files, directories, symlinks, devices) in the metadata state.'],
  ['sessions', 'handlefs_meta_sessions', 'Client sessions open in the metadata state.'],
  ['openFhs', 'handlefs_meta_open_fhs', 'Open file handles (fhs) in the metadata state.'],
  ['versions', 'handlefs_meta_versions', 'File versions kept, over all files.'],
  ['conflictVersions', 'handlefs_meta_conflict_versions', 'Kept versions marked conflict (they hold bytes that lost a conflict under lww).'],
  ['conflictCopies', 'handlefs_meta_conflict_copies', 'Conflict copies kept (content of commits rejected under the reject policy).'],
  ['blocksStored', 'handlefs_meta_blocks_stored', 'Blocks held in this member\'s block store.'],
  ['blockBytesStored', 'handlefs_meta_block_bytes_stored', 'Bytes of block content held in this member\'s block store.'],
];

/** What is wrong with a StateGauges value, or undefined. */
export function stateGaugesProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return `state gauges are ${value === null ? 'null' : typeof value}, not an object`;
  const fields: Array<keyof StateGauges> = [...STATE_FIELDS.map(([field]) => field), 'blocksCollected'];
  for (const field of fields) {
    const n = (value as Record<string, unknown>)[field];
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return `state gauge ${field} is ${String(n)}, not a finite number ≥ 0`;
  }
  return undefined;
}

export interface MetaMetricsOptions {
  registry: Registry;
  /** The member's Raft id, as the handlefs_raft_* metrics carry it. */
  memberId: string;
  state: StateGaugesSource;
  stateTimeoutMs?: number;
  /** The member's data folder: handlefs_data_disk_{free,size}_bytes report its file system (omitted: not exported). */
  dataDir?: string;
}

/**
 * One per member and registry: registering twice on one registry throws
 * (prom-client refuses a second metric of a name), since the state callback
 * of a second member could not be told apart from the first's.
 */
export class MetaMetrics {
  readonly registry: Registry;
  private readonly memberId: string;
  private readonly requests: Counter<string>;
  private readonly errnoReplies: Counter<string>;
  private readonly durationSeconds: Histogram<string>;
  private readonly commits = new Map<CommitKind, Counter.Internal>();
  private readonly sessionsExpiredTotal: Counter.Internal;
  private readonly versionsDroppedTotal: Counter.Internal;
  private readonly stateCollectFailures: Counter.Internal;
  /** Per method: the children of the common outcome, so a call does no label hashing. */
  private readonly hot = new Map<string, { ok: Counter.Internal; duration: Histogram.Internal<string> }>();
  private readonly source: StateGaugesSource;
  private readonly stateTimeoutMs: number;
  private lastState: StateGauges | undefined;
  /** The callback's answer shared by every gauge of one scrape (prom-client collects all metrics at once). */
  private pendingState: Promise<StateGauges | undefined> | undefined;

  constructor(options: MetaMetricsOptions) {
    if (!options.memberId) throw new Error('MetaMetrics needs the member id');
    this.registry = options.registry;
    this.memberId = options.memberId;
    this.source = options.state;
    this.stateTimeoutMs = options.stateTimeoutMs ?? DEFAULT_STATE_TIMEOUT_MS;
    if (!Number.isInteger(this.stateTimeoutMs) || this.stateTimeoutMs < 1) throw new Error(`stateTimeoutMs ${String(options.stateTimeoutMs)} is not an integer ≥ 1`);
    const registers = [this.registry];
    const m = { member_id: this.memberId };

    this.requests = new Counter({
      name: 'handlefs_meta_requests_total', registers, labelNames: ['member_id', 'method', 'code'],
      help: 'Metadata API calls answered, by method and gRPC status name (OK includes POSIX errno answers, see handlefs_meta_request_errno_total).',
    });
    this.errnoReplies = new Counter({
      name: 'handlefs_meta_request_errno_total', registers, labelNames: ['member_id', 'method', 'errno'],
      help: 'Metadata API calls answered OK with a POSIX error (ENOENT, EEXIST, ...), by method and errno name.',
    });
    this.durationSeconds = new Histogram({
      name: 'handlefs_meta_request_duration_seconds', registers, labelNames: ['member_id', 'method'], buckets: REQUEST_BUCKETS_SECONDS,
      help: 'How long a metadata API call took on this member, from the handler\'s start to its answer (any status).',
    });
    const commits = new Counter({
      name: 'handlefs_meta_commits_total', registers, labelNames: ['member_id', 'kind'],
      help: 'Version commits counted by this member, by how they ended (fast-forward, rebase, conflict-lww, conflict-reject, no-change, truncate, restore).',
    });
    // Every series exists from the start at 0, so rate() and absence alerts work before the first event.
    for (const kind of COMMIT_KINDS) this.commits.set(kind, startAtZero(commits.labels({ ...m, kind })));
    this.sessionsExpiredTotal = startAtZero(new Counter({
      name: 'handlefs_meta_sessions_expired_total', registers, labelNames: ['member_id'], help: 'Sessions expired (their TTL ran out without a keepalive).',
    }).labels(m));
    this.versionsDroppedTotal = startAtZero(new Counter({
      name: 'handlefs_meta_versions_dropped_total', registers, labelNames: ['member_id'], help: 'File versions dropped by the retention policy.',
    }).labels(m));
    const metrics = this;
    this.stateCollectFailures = startAtZero(new Counter({
      name: 'handlefs_meta_state_collect_failures_total', registers, labelNames: ['member_id'],
      help: 'Scrapes whose state callback failed, timed out or answered a bad value; the state gauges then show the last good values.',
      // Waits for this scrape's read, so a failure shows in the same scrape.
      async collect() {
        await metrics.stateForScrape();
      },
    }).labels(m));

    for (const [field, name, help] of STATE_FIELDS) {
      new Gauge({
        name, help, registers, labelNames: ['member_id'],
        async collect() {
          const state = await metrics.stateForScrape();
          if (state) this.set(m, state[field]);
        },
      });
    }
    if (options.dataDir !== undefined) this.registerDiskGauges(options.dataDir, registers, m);
    new Counter({
      name: 'handlefs_meta_blocks_collected_total', registers, labelNames: ['member_id'],
      help: 'Blocks garbage-collected (no kept version referenced them past the grace period) since this member\'s state began.',
      async collect() {
        const state = await metrics.stateForScrape();
        if (!state) return;
        // The state keeps the running total; a counter cannot be set, so it is rebuilt from it.
        this.reset();
        this.inc(m, state.blocksCollected);
      },
    });
  }

  /**
   * The data folder's file system, read by one statfs per scrape shared by
   * both gauges. A failed statfs (folder gone, disk error) leaves the last
   * values: the scrape must not fail with the Raft metrics in it.
   */
  private registerDiskGauges(dataDir: string, registers: Registry[], m: { member_id: string }): void {
    let pending: Promise<fs.StatsFs | undefined> | undefined;
    const read = (): Promise<fs.StatsFs | undefined> => {
      if (!pending) {
        // prom-client starts every collect() of a scrape before any settles, so both gauges share this read.
        pending = fs.promises.statfs(dataDir).catch(() => undefined).finally(() => { pending = undefined; });
      }
      return pending;
    };
    new Gauge({
      name: 'handlefs_data_disk_free_bytes', registers, labelNames: ['member_id'],
      help: 'Bytes free for unprivileged use on the file system of this member\'s data folder (statfs bavail × bsize, at scrape time).',
      async collect() {
        const disk = await read();
        if (disk) this.set(m, disk.bavail * disk.bsize);
      },
    });
    new Gauge({
      name: 'handlefs_data_disk_size_bytes', registers, labelNames: ['member_id'],
      help: 'Size in bytes of the file system of this member\'s data folder (statfs blocks × bsize, at scrape time).',
      async collect() {
        const disk = await read();
        if (disk) this.set(m, disk.blocks * disk.bsize);
      },
    });
  }

  /** Counts one commit; kind comes from the commit rule's decision (or truncate/restore). */
  commit(kind: CommitKind): void {
    const counter = this.commits.get(kind);
    if (!counter) throw new Error(`unknown commit kind ${JSON.stringify(kind)}`);
    counter.inc();
  }

  sessionsExpired(count = 1): void {
    this.sessionsExpiredTotal.inc(count);
  }

  versionsDropped(count = 1): void {
    this.versionsDroppedTotal.inc(count);
  }

  /**
   * Records one answered call. code is grpc.status (OK for every reply,
   * POSIX errors included); errno is the reply's errno field (0: none).
   */
  request(method: string, code: grpc.status, seconds: number, errno: number): void {
    let hot = this.hot.get(method);
    if (!hot) {
      const labels = { member_id: this.memberId, method };
      hot = { ok: this.requests.labels({ ...labels, code: 'OK' }), duration: this.durationSeconds.labels(labels) };
      this.hot.set(method, hot);
    }
    hot.duration.observe(seconds);
    if (code === grpc.status.OK) hot.ok.inc();
    else this.requests.inc({ member_id: this.memberId, method, code: statusName(code) });
    if (errno !== 0) this.errnoReplies.inc({ member_id: this.memberId, method, errno: errnoLabel(errno) });
  }

  private stateForScrape(): Promise<StateGauges | undefined> {
    if (!this.pendingState) {
      this.pendingState = this.readState().finally(() => {
        this.pendingState = undefined;
      });
    }
    return this.pendingState;
  }

  /** Never rejects: a failure is counted and the last good values stand. */
  private async readState(): Promise<StateGauges | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the state callback took over ${this.stateTimeoutMs} ms`)), this.stateTimeoutMs);
        timer.unref();
      });
      const value = await Promise.race([Promise.resolve().then(this.source), timeout]);
      const problem = stateGaugesProblem(value);
      if (problem) throw new Error(problem);
      this.lastState = { ...value };
    } catch {
      this.stateCollectFailures.inc();
    } finally {
      clearTimeout(timer);
    }
    return this.lastState;
  }
}

function startAtZero(counter: Counter.Internal): Counter.Internal {
  counter.inc(0);
  return counter;
}

/** "NOT_FOUND" for 5; a number outside the enum keeps the label set bounded as "UNKNOWN". */
export function statusName(code: number): string {
  const name = (grpc.status as unknown as Record<number, string | undefined>)[code];
  return typeof name === 'string' ? name : 'UNKNOWN';
}

/** Errno names from the wire-contract table; anything else is one label, so a bug cannot grow the series without bound. */
function errnoLabel(errno: number): string {
  return isErrno(errno) ? errnoName(errno) : 'EUNKNOWN';
}

/** The status grpc-js sends for a callback error (as its serverErrorToStatus decides). */
function codeOfError(error: unknown): grpc.status {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'number' && Number.isInteger(code)) return code;
  }
  return grpc.status.UNKNOWN;
}

function errnoOfReply(reply: unknown): number {
  if (typeof reply !== 'object' || reply === null) return 0;
  const errno = (reply as { errno?: unknown }).errno;
  return typeof errno === 'number' && errno !== 0 ? errno : 0;
}

/**
 * Wraps a grpc-js service implementation (MetaService.implementation()'s
 * object of unary handlers) so each call is timed and counted by the status
 * its callback finally sends: handler errors mapped to gRPC codes, malformed
 * requests (INVALID_ARGUMENT) and POSIX errno replies alike. Replies, errors,
 * trailers and flags pass through untouched; a handler without a callback
 * (a streaming method) is passed through unwrapped.
 */
export function instrumentHandlers<I extends grpc.UntypedServiceImplementation>(handlers: I, metrics: MetaMetrics): I {
  const wrapped: grpc.UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(handlers)) {
    if (typeof handler !== 'function') throw new Error(`handler ${method} is not a function`);
    const unary = handler as (call: unknown, callback?: grpc.sendUnaryData<unknown>) => void;
    wrapped[method] = ((call: unknown, callback?: grpc.sendUnaryData<unknown>) => {
      if (typeof callback !== 'function') return unary(call, callback);
      const startNs = process.hrtime.bigint();
      let answered = false;
      const timed: grpc.sendUnaryData<unknown> = (error, value, trailer, flags) => {
        if (!answered) {
          // grpc-js sends only the first answer; count only that one.
          answered = true;
          const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
          metrics.request(method, error ? codeOfError(error) : grpc.status.OK, seconds, error ? 0 : errnoOfReply(value));
        }
        callback(error, value, trailer, flags);
      };
      return unary(call, timed);
    }) as grpc.UntypedHandleCall;
  }
  return wrapped as I;
}

