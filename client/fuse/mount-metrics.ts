/**
 * The mount's Prometheus metrics (`handlefs mount --metrics-address HOST:PORT`,
 * GET /metrics): FUSE requests by op and answer, their latency, failed commits
 * by errno (the writes an application was told did not land), dirty and cached
 * bytes, open files, plus the Node process metrics. The names are the ones
 * deploy/monitoring's alert rules and dashboard use.
 *
 * Owns the registry and its small HTTP server; must never touch the mount
 * (the server answers from memory) nor block a FUSE answer on a scrape.
 * client/ may not import raft/, so this does not reuse the members' server.
 */
import * as http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MountGauges {
  dirtyBytes: number;
  blockCacheBytes: number;
  openFiles: number;
}

/** Latency buckets (seconds): from a cached getattr (~50 µs) to a commit stalled by a leader change. */
const DURATION_BUCKETS_S = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Distinct ops and answers are bounded by FUSE's op list and errno names; this guards label growth anyway. */
const LABEL_VALUES_MAX = 256;
const SCRAPE_BODY_TIMEOUT_MS = 5_000;

export class MountMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'op' | 'result'>;
  private readonly durations: Histogram<'op'>;
  private readonly commitFailures: Counter<'errno'>;
  private readonly labelsSeen = new Set<string>();

  constructor(gauges: () => MountGauges) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'handlefs_mount_requests_total', help: 'FUSE requests answered, by op and answer (ok or an errno name)', labelNames: ['op', 'result'], registers });
    this.durations = new Histogram({ name: 'handlefs_mount_request_duration_seconds', help: 'Time from a FUSE request to its answer', labelNames: ['op'], buckets: DURATION_BUCKETS_S, registers });
    this.commitFailures = new Counter({ name: 'handlefs_mount_commit_failures_total', help: 'Commits (flush, fsync, close) that failed, by errno: writes an application was told did not land', labelNames: ['errno'], registers });
    new Gauge({ name: 'handlefs_mount_dirty_bytes', help: 'Written bytes not yet uploaded or committed', registers, collect() { this.set(gauges().dirtyBytes); } });
    new Gauge({ name: 'handlefs_mount_block_cache_bytes', help: 'Block contents held in the mount\'s cache', registers, collect() { this.set(gauges().blockCacheBytes); } });
    new Gauge({ name: 'handlefs_mount_open_files', help: 'Files open through the mount', registers, collect() { this.set(gauges().openFiles); } });
    collectDefaultMetrics({ register: this.registry });
  }

  /** One answered FUSE request. */
  observeRequest(op: string, result: string, seconds: number): void {
    if (!this.admit(`${op}\u0000${result}`)) return;
    this.requests.inc({ op, result });
    this.durations.observe({ op }, seconds);
  }

  commitFailed(errno: string): void {
    if (!this.admit(`commit\u0000${errno}`)) return;
    this.commitFailures.inc({ errno });
  }

  private admit(key: string): boolean {
    if (this.labelsSeen.has(key)) return true;
    if (this.labelsSeen.size >= LABEL_VALUES_MAX) return false;
    this.labelsSeen.add(key);
    return true;
  }

  /** Serves GET /metrics and /healthz on `address` (HOST:PORT); resolves once listening. */
  listen(address: string): Promise<http.Server> {
    const separator = address.lastIndexOf(':');
    const host = address.slice(0, separator).replace(/^\[|\]$/g, '');
    const port = Number(address.slice(separator + 1));
    if (separator <= 0 || !Number.isInteger(port) || port < 0 || port > 65_535) return Promise.reject(new Error(`--metrics-address must be HOST:PORT, got ${JSON.stringify(address)}`));
    const server = http.createServer((request, response) => {
      response.setTimeout(SCRAPE_BODY_TIMEOUT_MS, () => response.destroy());
      const route = (request.url ?? '').split('?')[0];
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (route === '/metrics') {
        this.registry.metrics().then(
          (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          (error: Error) => response.writeHead(500).end(error.message),
        );
      } else if (route === '/healthz') {
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}\n');
      } else {
        response.writeHead(404).end();
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', (error) => reject(new Error(`--metrics-address ${address}: ${error.message}`)));
      server.listen(port, host, () => resolve(server));
    });
  }
}
