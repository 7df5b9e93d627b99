/**
 * One load-generating process of the metadata bench (bench/meta-bench.ts forks
 * it with --worker): its own gRPC client, ONE session whose in-flight slots
 * share the dedup window (each mutation names the lowest sequence still
 * waiting, so the servers keep only unacknowledged answers), KeepAlive every
 * TTL/3, and the create cycle (Create with open → CommitVersion with release:
 * two calls, as a FUSE create/write/close) or the getattr loop, driven by the
 * parent over IPC (ready → start → measure → stop → result). Owns the calls
 * and the sequences; must never talk to anything but the members it was given.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import * as p from '../proto/meta-proto';

export type PhaseKind = 'create' | 'getattr' | 'getattr-batched';

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
type Client = InstanceType<typeof p.MetaGrpcClient>;
type Unary<Req, Res> = (request: Req, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: Res) => void) => void;

const ROOT_HANDLE = 1;
const CALLER: p.Caller = { uid: 0, gid: 0, groups: [] };
const CALL_DEADLINE_MS = 5_000;
/** Redirects and retries per call before it counts as an error. */
const MAX_ATTEMPTS = 50;
const RETRY_PAUSE_MS = 20;
/** Latency samples kept per worker (a few MB over IPC at most). */
const MAX_LATENCY_SAMPLES = 500_000;
/** Files each getattr worker makes to read (per slot, bounded). */
const GETATTR_FILES_PER_SLOT = 8;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class CallError extends Error {}

/** A client that calls the leader, following FAILED_PRECONDITION hints (handlefs-leader-address) and retrying UNAVAILABLE/DEADLINE_EXCEEDED. */
export class MetaBenchClient {
  private readonly clients = new Map<string, Client>();
  leaderAddress: string;

  constructor(private readonly memberAddresses: string[], leaderGuess: string) {
    this.leaderAddress = leaderGuess;
  }

  private client(address: string): Client {
    let client = this.clients.get(address);
    if (!client) {
      client = new p.MetaGrpcClient(address, grpc.credentials.createInsecure()) as unknown as Client;
      this.clients.set(address, client);
    }
    return client;
  }

  private once<Req, Res>(method: p.MetaMethod, request: Req): Promise<Res> {
    const client = this.client(this.leaderAddress);
    const fn = (client as unknown as Record<string, Unary<Req, Res>>)[method];
    return new Promise((resolve, reject) => {
      fn.call(client, request, { deadline: Date.now() + CALL_DEADLINE_MS }, (error, reply) => (error ? reject(error) : resolve(reply as Res)));
    });
  }

  /** The same request (same session and sequence, so exactly once) until an answer, at most MAX_ATTEMPTS times. */
  async call<Req, Res>(method: p.MetaMethod, request: Req): Promise<Res> {
    let last = '';
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        return await this.once<Req, Res>(method, request);
      } catch (caught) {
        const error = caught as grpc.ServiceError;
        last = `${method}: ${error.code} ${error.details ?? error.message}`;
        if (error.code === grpc.status.FAILED_PRECONDITION) {
          const hint = String(error.metadata?.get(p.LEADER_ADDRESS_METADATA)[0] ?? '');
          if (hint && hint !== this.leaderAddress && this.memberAddresses.includes(hint)) {
            this.leaderAddress = hint;
            continue;
          }
          this.leaderAddress = this.memberAddresses[(this.memberAddresses.indexOf(this.leaderAddress) + 1) % this.memberAddresses.length];
        } else if (error.code !== grpc.status.UNAVAILABLE && error.code !== grpc.status.DEADLINE_EXCEEDED && error.code !== grpc.status.RESOURCE_EXHAUSTED) {
          throw new CallError(last);
        }
        await sleep(RETRY_PAUSE_MS);
      }
    }
    throw new CallError(`${last} (gave up after ${MAX_ATTEMPTS} attempts)`);
  }

  async openSession(name: string): Promise<{ sessionId: number; ttlMs: number }> {
    const reply = await this.call<p.OpenSessionRequest, p.OpenSessionReply>('OpenSession', { ttlMs: 0, clientName: name });
    if (reply.errno !== 0) throw new CallError(`OpenSession: errno ${reply.errno} ${reply.message}`);
    return { sessionId: reply.sessionId, ttlMs: reply.ttlMs };
  }

  async closeSession(sessionId: number, sequence: number): Promise<void> {
    // No firstUnacked: closing forgets every stored answer anyway.
    await this.call<p.CloseSessionRequest, p.Reply>('CloseSession', { header: { sessionId, sequence, caller: CALLER } });
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/** The session's sequences: each mutation takes the next; the lowest still waiting is what the servers must remember from. */
class Sequencer {
  private next = 1;
  private readonly waiting = new Set<number>();

  constructor(readonly sessionId: number) {}

  /** A header for a new mutation; call done() with its sequence once its answer arrived. */
  take(): p.Header {
    const sequence = this.next++;
    this.waiting.add(sequence);
    let firstUnacked = sequence;
    for (const waiting of this.waiting) firstUnacked = Math.min(firstUnacked, waiting);
    return { sessionId: this.sessionId, sequence, firstUnacked, caller: CALLER };
  }

  done(header: p.Header): void {
    this.waiting.delete(header.sequence);
  }
}

/**
 * Concurrent getattrs of one process sent as one GetAttrs call (one ReadIndex
 * on the server): each caller still gets its own linearizable answer, read
 * after its call began. What a FUSE client does with concurrent lookups.
 */
class GetAttrCoalescer {
  private pending: Array<{ handle: number; resolve: (reply: p.AttrReply) => void; reject: (error: Error) => void }> = [];
  private scheduled = false;

  constructor(private readonly client: MetaBenchClient, private readonly maxItems = 1024) {}

  getattr(handle: number): Promise<p.AttrReply> {
    return new Promise((resolve, reject) => {
      this.pending.push({ handle, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxItems);
      this.client.call<p.GetAttrsRequest, p.GetAttrsReply>('GetAttrs', { items: batch.map((item) => ({ handle: item.handle, generation: 0 })) }).then(
        (reply) => batch.forEach((item, i) => item.resolve(reply.items[i])),
        (error: Error) => batch.forEach((item) => item.reject(error)),
      );
    }
  }
}

/** One in-flight slot; the slots of a worker share its session. */
interface Slot { made: number }

function checked<T extends p.ErrnoFields & { sessionError?: string }>(method: string, reply: T): T {
  if (reply.errno !== 0) throw new CallError(`${method}: errno ${reply.errno} ${reply.sessionError ? `(${reply.sessionError}) ` : ''}${reply.message}`);
  return reply;
}

export function runWorker(config: WorkerConfig): void {
  /** Resolves once the message left (so a disconnect right after cannot drop it). */
  const send = (message: WorkerMessage) => new Promise<void>((resolve) => { if (process.send) process.send(message, undefined, {}, () => resolve()); else resolve(); });
  const client = new MetaBenchClient(config.memberAddresses, config.leaderAddress);
  const coalescer = new GetAttrCoalescer(client);
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
  let keepAliveTimer: NodeJS.Timeout | undefined;
  const slots: Slot[] = [];
  let session: Sequencer | undefined;
  /** A mutation with the next sequence, retried with the same one until answered. */
  const mutate = async <Req extends { header: p.Header | null }, Res>(method: p.MetaMethod, request: Omit<Req, 'header'>): Promise<Res> => {
    const header = session!.take();
    try {
      return await client.call<Req, Res>(method, { ...request, header } as Req);
    } finally {
      session!.done(header);
    }
  };

  const createCycle = async (slot: Slot, index: number): Promise<number> => {
    const name = `f${index}-${slot.made++}`;
    const created = checked('Create', await mutate<p.CreateRequest, p.EntryReply>('Create', {
      parent: directory, name, mode: 0o644, exclusive: true, open: { read: false, write: true, append: false },
    }));
    const opened = created.opened!;
    checked('CommitVersion', await mutate<p.CommitVersionRequest, p.CommitVersionReply>('CommitVersion', {
      fh: opened.fh, baseVersion: opened.version, written: [{ offset: 0, data: value }], newSize: value.length, policy: p.ConflictPolicy.LWW, release: true,
    }));
    return created.attr!.handle;
  };

  const loop = async (slot: Slot, index: number): Promise<void> => {
    let next = index;
    while (running) {
      const t0 = performance.now();
      try {
        if (config.kind === 'create') {
          await createCycle(slot, index);
        } else {
          next = (next + 1 + index) % files.length;
          checked('GetAttr', config.kind === 'getattr-batched' ? await coalescer.getattr(files[next]) : await client.call<p.GetAttrRequest, p.AttrReply>('GetAttr', { handle: files[next], generation: 0 }));
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
    const { sessionId, ttlMs } = await client.openSession(`meta-bench-${config.directoryName}`);
    session = new Sequencer(sessionId);
    // KeepAlive is the only thing that resets a TTL; every TTL/3 keeps a slow round from losing the session.
    keepAliveTimer = setInterval(() => {
      client.call<p.KeepAliveRequest, p.KeepAliveReply>('KeepAlive', { sessionId }).catch(() => { errors++; });
    }, Math.max(100, Math.floor(ttlMs / 3)));
    for (let i = 0; i < config.slots; i++) slots.push({ made: 0 });
    const made = checked('Mkdir', await mutate<p.MkdirRequest, p.EntryReply>('Mkdir', { parent: ROOT_HANDLE, name: config.directoryName, mode: 0o755 }));
    directory = made.attr!.handle;
    if (config.kind !== 'create') {
      await Promise.all(slots.map(async (slot, index) => {
        for (let f = 0; f < GETATTR_FILES_PER_SLOT; f++) files.push(await createCycle(slot, index));
      }));
    }
  };

  const finish = async (): Promise<void> => {
    running = false;
    if (measuring) measuredMs = performance.now() - measureStartedAt;
    measuring = false;
    await Promise.all(workers);
    if (keepAliveTimer) clearInterval(keepAliveTimer);
    // Closing the sessions keeps the cluster's session table from growing across phases; a failure here is not the bench's concern.
    if (session) await client.closeSession(session.sessionId, session.take().sequence).catch(() => {});
    const copy = Buffer.from(latencies.buffer, 0, samples * Float64Array.BYTES_PER_ELEMENT);
    await send({ type: 'result', ops, errors, lastError, measuredMs, latenciesBase64: copy.toString('base64') });
    client.close();
    process.disconnect?.();
  };

  let workers: Promise<void>[] = [];
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'start') {
      running = true;
      workers = slots.map((slot, index) => loop(slot, index));
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
    if (keepAliveTimer) clearInterval(keepAliveTimer);
    setTimeout(() => process.exit(0), 2_000).unref();
  });
  prepare().then(() => send({ type: 'ready' }), async (error: Error) => {
    await send({ type: 'failed', error: error.message });
    client.close();
    process.disconnect?.();
  });
}
