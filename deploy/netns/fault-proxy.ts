/**
 * A fault-injecting TCP proxy (issue 5 §1: this kernel has no netem, so
 * delay, bandwidth limits, stalls and cuts come from here). It listens on one
 * address and forwards every connection to one target, byte for byte, with
 * per-direction delay (+ jitter), a per-direction bandwidth cap, stalls (stop
 * forwarding for N ms, then go on with nothing lost) and cuts (reset every
 * connection and every new one until healed), all changeable while it runs.
 *
 * Owns only its listener and the connections it accepted. Must never reorder
 * or drop bytes of a live connection (TCP is a stream: delay shifts it,
 * never reshuffles it), never hold more than `bufferLimitBytes` per direction
 * of a connection (it stops reading — backpressure — instead), and never
 * forward to any address but its target. Loopback use only (tests, demos).
 */
import * as net from 'node:net';

export type Direction = 'toTarget' | 'toClient';
const DIRECTIONS: readonly Direction[] = ['toTarget', 'toClient'];

export interface DirectionFaults {
  delayMs: number;
  /** Each chunk's delay is delayMs + a uniform draw in [0, jitterMs) (kept in order). */
  jitterMs: number;
  /** 0: unlimited. */
  bandwidthBytesPerS: number;
}

export interface FaultProxyOptions {
  /** HOST:PORT to listen on (port 0: a free one; read `address`). */
  listen: string;
  /** HOST:PORT every connection is forwarded to. */
  target: string;
  /** Bytes one direction of one connection may hold before the proxy stops reading that side (default 1 MiB). */
  bufferLimitBytes?: number;
  /** Connections at once; more are reset (default 1024). */
  maxConnections?: number;
  /** Initial faults, both directions (default none). */
  faults?: Partial<DirectionFaults>;
  /** Jitter's random source (default Math.random); a test passes a seeded one. */
  random?: () => number;
}

export interface FaultProxyStats {
  connections: number;
  accepted: number;
  /** Connections reset on arrival (cut, or over maxConnections) or because the target refused. */
  refused: number;
  bytesToTarget: number;
  bytesToClient: number;
  /** The most any one direction of any connection held at once (the buffer limit's witness). */
  maxQueuedBytes: number;
}

const DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024;
const DEFAULT_MAX_CONNECTIONS = 1024;
/** Chunks are forwarded at most this big, so a bandwidth cap paces smoothly. */
const SLICE_BYTES = 16 * 1024;
const MAX_DELAY_MS = 600_000;
const MAX_STALL_MS = 3_600_000;

export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65_535) throw new Error(`${what} must be HOST:PORT, got ${JSON.stringify(value)}`);
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

function checkFaults(faults: Partial<DirectionFaults>): void {
  for (const [key, value] of Object.entries(faults)) {
    if (value === undefined) continue;
    const max = key === 'bandwidthBytesPerS' ? Number.MAX_SAFE_INTEGER : MAX_DELAY_MS;
    if (!Number.isFinite(value) || value < 0 || value > max) throw new Error(`fault ${key} must be a number in 0..${max}, got ${value}`);
  }
}

/** One direction of one connection: a bounded queue of chunks, each with the time it may leave. */
class Pump {
  private readonly queue: Array<{ chunk: Buffer; dueAtMs: number }> = [];
  private queuedBytes = 0;
  private lastDueAtMs = 0;
  /** When the bandwidth cap lets the next byte leave. */
  private nextSendAtMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingForDrain = false;
  private ended = false;
  private paused = false;

  constructor(
    private readonly from: net.Socket, private readonly to: net.Socket, private readonly direction: Direction, private readonly proxy: FaultProxy,
  ) {
    from.on('data', (data: Buffer) => this.push(data));
    from.on('end', () => { this.ended = true; this.pump(); });
  }

  private push(data: Buffer): void {
    const faults = this.proxy.faultsOf(this.direction);
    const nowMs = Date.now();
    for (let offset = 0; offset < data.length; offset += SLICE_BYTES) {
      const chunk = data.subarray(offset, offset + SLICE_BYTES);
      const dueAtMs = Math.max(this.lastDueAtMs, nowMs + faults.delayMs + (faults.jitterMs > 0 ? this.proxy.random() * faults.jitterMs : 0));
      this.lastDueAtMs = dueAtMs;
      this.queue.push({ chunk, dueAtMs });
      this.queuedBytes += chunk.length;
    }
    this.proxy.noteQueued(this.queuedBytes);
    if (this.queuedBytes >= this.proxy.bufferLimitBytes && !this.paused) {
      this.paused = true;
      this.from.pause();
    }
    this.pump();
  }

  /** Forwards every chunk that may leave now; schedules itself for the next one. */
  pump(): void {
    if (this.timer !== undefined || this.waitingForDrain || this.to.destroyed) return;
    while (this.queue.length > 0) {
      const head = this.queue[0];
      const faults = this.proxy.faultsOf(this.direction);
      const nowMs = Date.now();
      const readyAtMs = Math.max(head.dueAtMs, this.proxy.stalledUntilMs, faults.bandwidthBytesPerS > 0 ? this.nextSendAtMs : 0);
      if (readyAtMs > nowMs) {
        this.timer = setTimeout(() => { this.timer = undefined; this.pump(); }, Math.ceil(readyAtMs - nowMs));
        return;
      }
      this.queue.shift();
      this.queuedBytes -= head.chunk.length;
      if (faults.bandwidthBytesPerS > 0) this.nextSendAtMs = Math.max(nowMs, this.nextSendAtMs) + (head.chunk.length * 1000) / faults.bandwidthBytesPerS;
      this.proxy.counted(this.direction, head.chunk.length);
      if (this.paused && this.queuedBytes <= this.proxy.bufferLimitBytes / 2) {
        this.paused = false;
        this.from.resume();
      }
      if (!this.to.write(head.chunk)) {
        this.waitingForDrain = true;
        this.to.once('drain', () => { this.waitingForDrain = false; this.pump(); });
        return;
      }
    }
    if (this.ended) this.to.end();
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }
}

class ProxiedConnection {
  private readonly pumps: Pump[];
  private closed = false;

  constructor(readonly client: net.Socket, readonly server: net.Socket, private readonly proxy: FaultProxy) {
    this.pumps = [new Pump(client, server, 'toTarget', proxy), new Pump(server, client, 'toClient', proxy)];
    for (const socket of [client, server]) {
      socket.on('error', () => this.reset());
      socket.on('close', () => this.close());
    }
  }

  /** Both sides get an RST (what a dead link or a crashed peer looks like to a client that writes). */
  reset(): void {
    if (this.closed) return;
    for (const socket of [this.client, this.server]) if (!socket.destroyed) socket.resetAndDestroy();
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    // A side that closed after a clean end lets the other finish writing what is queued (half-close).
    if (this.client.destroyed && this.server.destroyed) {
      this.closed = true;
      for (const pump of this.pumps) pump.stop();
      this.proxy.forget(this);
    }
  }

  wake(): void {
    for (const pump of this.pumps) pump.pump();
  }
}

export class FaultProxy {
  readonly bufferLimitBytes: number;
  readonly random: () => number;
  stalledUntilMs = 0;
  private readonly faults: Record<Direction, DirectionFaults>;
  private readonly connections = new Set<ProxiedConnection>();
  private readonly maxConnections: number;
  private readonly target: { host: string; port: number };
  private cutOff = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly totals = { accepted: 0, refused: 0, bytesToTarget: 0, bytesToClient: 0, maxQueuedBytes: 0 };

  private constructor(private readonly server: net.Server, options: FaultProxyOptions) {
    this.bufferLimitBytes = options.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES;
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.random = options.random ?? Math.random;
    this.target = parseHostPort(options.target, 'target');
    const initial = { delayMs: 0, jitterMs: 0, bandwidthBytesPerS: 0, ...options.faults };
    checkFaults(initial);
    this.faults = { toTarget: { ...initial }, toClient: { ...initial } };
    if (!Number.isInteger(this.bufferLimitBytes) || this.bufferLimitBytes < SLICE_BYTES) throw new Error(`bufferLimitBytes must be an integer ≥ ${SLICE_BYTES}`);
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Starts listening; resolves once bound. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const listen = parseHostPort(options.listen, 'listen');
    parseHostPort(options.target, 'target');
    const server = net.createServer({ pauseOnConnect: true, noDelay: true });
    const proxy = new FaultProxy(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => { server.off('error', reject); resolve(); });
    });
    return proxy;
  }

  /** HOST:PORT the proxy listens on (the real port). */
  get address(): string {
    const bound = this.server.address() as net.AddressInfo;
    return bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  }

  faultsOf(direction: Direction): DirectionFaults {
    return this.faults[direction];
  }

  /** Changes the faults of one direction or both; applies to chunks arriving from now on. */
  setFaults(faults: Partial<DirectionFaults>, direction: Direction | 'both' = 'both'): void {
    checkFaults(faults);
    for (const d of direction === 'both' ? DIRECTIONS : [direction]) {
      this.faults[d] = { ...this.faults[d], ...Object.fromEntries(Object.entries(faults).filter(([, v]) => v !== undefined)) };
    }
    this.wakeAll();
  }

  setDelay(delayMs: number, jitterMs = 0, direction: Direction | 'both' = 'both'): void {
    this.setFaults({ delayMs, jitterMs }, direction);
  }

  setBandwidth(bytesPerS: number, direction: Direction | 'both' = 'both'): void {
    this.setFaults({ bandwidthBytesPerS: bytesPerS }, direction);
  }

  /** Forwards nothing, either way, for `ms` (bytes keep arriving into the bounded buffers); then goes on. */
  stall(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0 || ms > MAX_STALL_MS) throw new Error(`stall must be 0..${MAX_STALL_MS} ms, got ${ms}`);
    this.stalledUntilMs = Date.now() + ms;
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => { this.stallTimer = undefined; this.wakeAll(); }, ms);
  }

  /** Ends a stall now. */
  unstall(): void {
    this.stalledUntilMs = 0;
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.wakeAll();
  }

  /** Resets every connection, and every new one until heal(): the target looks dead. */
  cut(): void {
    this.cutOff = true;
    for (const connection of [...this.connections]) connection.reset();
  }

  heal(): void {
    this.cutOff = false;
  }

  get isCut(): boolean {
    return this.cutOff;
  }

  stats(): FaultProxyStats {
    return { connections: this.connections.size, ...this.totals };
  }

  /** Stops listening and resets every connection. */
  async close(): Promise<void> {
    this.cut();
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- for the pumps -----------------------------------------------------------

  counted(direction: Direction, bytes: number): void {
    if (direction === 'toTarget') this.totals.bytesToTarget += bytes;
    else this.totals.bytesToClient += bytes;
  }

  noteQueued(bytes: number): void {
    if (bytes > this.totals.maxQueuedBytes) this.totals.maxQueuedBytes = bytes;
  }

  forget(connection: ProxiedConnection): void {
    this.connections.delete(connection);
  }

  private wakeAll(): void {
    for (const connection of this.connections) connection.wake();
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    if (this.cutOff || this.connections.size >= this.maxConnections) {
      this.totals.refused++;
      client.resetAndDestroy();
      return;
    }
    this.totals.accepted++;
    client.setNoDelay(true);
    const server = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
    const connection = new ProxiedConnection(client, server, this);
    this.connections.add(connection);
    let connected = false;
    server.once('connect', () => { connected = true; client.resume(); });
    server.once('error', () => { if (!connected) this.totals.refused++; });
  }
}

export const PROXY_CONSOLE_HELP = 'commands: delay MS [JITTER_MS] [to-target|to-client] | bandwidth BYTES_PER_S [to-target|to-client] | stall MS | unstall | cut | heal | stats';

/**
 * One line of the proxy's console (`handlefs hosts proxy` reads them from
 * stdin): changes the faults at run time. Returns what to print; throws a
 * message for a bad line (the proxy is left as it was).
 */
export function applyProxyCommand(proxy: FaultProxy, line: string): string {
  const [verb, ...words] = line.trim().split(/\s+/);
  const numberAt = (i: number, what: string): number => {
    const value = Number(words[i]);
    if (words[i] === undefined || !Number.isFinite(value)) throw new Error(`${verb} needs ${what}, got ${JSON.stringify(words[i] ?? '')}`);
    return value;
  };
  const directionAt = (i: number): Direction | 'both' => {
    const word = words[i];
    if (word === undefined) return 'both';
    if (word === 'to-target') return 'toTarget';
    if (word === 'to-client') return 'toClient';
    throw new Error(`direction must be to-target or to-client, got ${JSON.stringify(word)}`);
  };
  switch (verb) {
    case 'delay': {
      const jitterGiven = words[1] !== undefined && !words[1].startsWith('to-');
      proxy.setDelay(numberAt(0, 'milliseconds'), jitterGiven ? numberAt(1, 'jitter milliseconds') : 0, directionAt(jitterGiven ? 2 : 1));
      return `delay set: ${JSON.stringify({ toTarget: proxy.faultsOf('toTarget'), toClient: proxy.faultsOf('toClient') })}`;
    }
    case 'bandwidth':
      proxy.setBandwidth(numberAt(0, 'bytes per second (0: unlimited)'), directionAt(1));
      return `bandwidth set: ${JSON.stringify({ toTarget: proxy.faultsOf('toTarget').bandwidthBytesPerS, toClient: proxy.faultsOf('toClient').bandwidthBytesPerS })}`;
    case 'stall':
      proxy.stall(numberAt(0, 'milliseconds'));
      return `stalled for ${words[0]} ms`;
    case 'unstall':
      proxy.unstall();
      return 'forwarding again';
    case 'cut':
      proxy.cut();
      return 'cut: every connection reset, new ones refused until heal';
    case 'heal':
      proxy.heal();
      return 'healed: accepting connections';
    case 'stats':
      return JSON.stringify({ ...proxy.stats(), cut: proxy.isCut, faults: { toTarget: proxy.faultsOf('toTarget'), toClient: proxy.faultsOf('toClient') } });
    default:
      throw new Error(`unknown command ${JSON.stringify(verb ?? '')}; ${PROXY_CONSOLE_HELP}`);
  }
}
