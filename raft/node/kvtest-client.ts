/**
 * Clients of the kvtest API for tests and the bench: one member's client
 * (unary calls and a pipelined put stream) and a cluster client that follows
 * NotLeader hints. Owns retries with explicit bounds; must never retry a put
 * whose outcome is unknown under the same key as if it had failed (callers
 * use unique keys and treat "unknown" as "maybe applied").
 */
import * as grpc from '@grpc/grpc-js';
import {
  DumpResponse, GetResponse, KvTestGrpcClient, PutBatch, PutRequest, PutResponse, PutResults, StatusResponse, TransferLeadershipResponse,
} from './kvtest-proto';

type Callback<T> = (error: grpc.ServiceError | null, value?: T) => void;
type UnaryFn<Req, Res> = (request: Req, options: grpc.CallOptions, callback: Callback<Res>) => grpc.ClientUnaryCall;
interface RawClient extends grpc.Client {
  Put: UnaryFn<PutRequest, PutResponse>;
  Get: UnaryFn<{ key: string; local: boolean }, GetResponse>;
  Dump: UnaryFn<{ limit: number }, DumpResponse>;
  Status: UnaryFn<Record<string, never>, StatusResponse>;
  TransferLeadership: UnaryFn<{ to: string; timeoutMs: number }, TransferLeadershipResponse>;
  PutStream: (options?: grpc.CallOptions) => grpc.ClientDuplexStream<PutBatch, PutResults>;
}

const DEFAULT_DEADLINE_MS = 3_000;

function unary<Req, Res>(fn: UnaryFn<Req, Res>, client: RawClient, request: Req, deadlineMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn.call(client, request, { deadline: Date.now() + deadlineMs }, (error, value) => {
      if (error) reject(error);
      else resolve(value as Res);
    });
  });
}

/** One member's kvtest API. */
export class KvTestClient {
  private readonly raw: RawClient;

  constructor(readonly address: string) {
    this.raw = new KvTestGrpcClient(address, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 500,
    }) as unknown as RawClient;
  }

  put(key: string, value: Uint8Array, deadlineMs = DEFAULT_DEADLINE_MS): Promise<PutResponse> {
    return unary(this.raw.Put, this.raw, { requestId: 0, key, value }, deadlineMs);
  }

  get(key: string, local = false, deadlineMs = DEFAULT_DEADLINE_MS): Promise<GetResponse> {
    return unary(this.raw.Get, this.raw, { key, local }, deadlineMs);
  }

  dump(limit: number, deadlineMs = DEFAULT_DEADLINE_MS): Promise<DumpResponse> {
    return unary(this.raw.Dump, this.raw, { limit }, deadlineMs);
  }

  status(deadlineMs = DEFAULT_DEADLINE_MS): Promise<StatusResponse> {
    return unary(this.raw.Status, this.raw, {}, deadlineMs);
  }

  transferLeadership(to: string, timeoutMs: number): Promise<TransferLeadershipResponse> {
    return unary(this.raw.TransferLeadership, this.raw, { to, timeoutMs }, timeoutMs + DEFAULT_DEADLINE_MS);
  }

  /** A bidirectional stream: many puts in flight, each answered when applied. */
  openPutStream(maxInFlight: number): PutStream {
    return new PutStream(this.raw.PutStream(), maxInFlight);
  }

  close(): void {
    this.raw.close();
  }
}

/** Puts pipelined over one stream, matched to their answers by request id; puts made in one turn of the event loop leave in one message. */
export class PutStream {
  private nextRequestId = 1;
  private readonly waiting = new Map<number, { resolve: (r: PutResponse) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;
  private outgoing: PutRequest[] = [];
  private flushScheduled = false;

  constructor(private readonly call: grpc.ClientDuplexStream<PutBatch, PutResults>, private readonly maxInFlight: number) {
    call.on('data', (message: PutResults) => {
      for (const response of message.results) {
        const waiter = this.waiting.get(response.requestId);
        if (!waiter) continue;
        this.waiting.delete(response.requestId);
        waiter.resolve(response);
      }
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      for (const waiter of this.waiting.values()) waiter.reject(error);
      this.waiting.clear();
    };
    call.on('error', fail);
    call.on('end', () => fail(new Error('put stream ended')));
  }

  get inFlight(): number {
    return this.waiting.size;
  }

  put(key: string, value: Uint8Array): Promise<PutResponse> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiting.size >= this.maxInFlight) return Promise.reject(new Error(`put stream: more than ${this.maxInFlight} puts in flight`));
    const requestId = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(requestId, { resolve, reject });
      this.outgoing.push({ requestId, key, value });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          const puts = this.outgoing;
          this.outgoing = [];
          if (!this.failure) this.call.write({ puts });
        });
      }
    });
  }

  close(): void {
    this.call.end();
    this.call.cancel();
  }
}

export interface ClusterPutResult {
  index: number;
  /** The member that answered (the leader at that moment). */
  memberId: string;
  attempts: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Follows the leader across members by NotLeader hints; when no hint is
 * known it tries the members in turn. Every call is bounded by its deadline.
 */
export class ClusterKvClient {
  private readonly clients = new Map<string, KvTestClient>();
  private leaderGuess: string;

  constructor(clientAddresses: Record<string, string>, private readonly retryPauseMs = 50) {
    for (const [id, address] of Object.entries(clientAddresses)) this.clients.set(id, new KvTestClient(address));
    const ids = [...this.clients.keys()];
    if (ids.length === 0) throw new Error('cluster client: no members given');
    this.leaderGuess = ids[0];
  }

  member(id: string): KvTestClient {
    const client = this.clients.get(id);
    if (!client) throw new Error(`cluster client: unknown member ${id}`);
    return client;
  }

  get memberIds(): string[] {
    return [...this.clients.keys()];
  }

  /**
   * Puts until a member acknowledges or the deadline passes. A put whose
   * answer was lost may have applied anyway: callers use a unique key per
   * put, so a retry never turns a lost answer into a lost write.
   */
  async put(key: string, value: Uint8Array, timeoutMs: number): Promise<ClusterPutResult> {
    return this.withLeader(timeoutMs, async (client, id, remainingMs) => {
      const response = await client.put(key, value, Math.min(remainingMs, DEFAULT_DEADLINE_MS));
      if (response.notLeader || response.error) return { retry: true, hint: response.notLeader?.leaderId, why: response.error || 'not leader' };
      return { retry: false, value: { index: response.index, memberId: id } };
    }, (value, attempts) => ({ ...value, attempts }));
  }

  /** A linearizable read through whichever member leads. */
  async get(key: string, timeoutMs: number): Promise<{ found: boolean; value: Uint8Array }> {
    return this.withLeader(timeoutMs, async (client, _id, remainingMs) => {
      const response = await client.get(key, false, Math.min(remainingMs, DEFAULT_DEADLINE_MS));
      if (response.notLeader || response.error) return { retry: true, hint: response.notLeader?.leaderId, why: response.error || 'not leader' };
      return { retry: false, value: { found: response.found, value: response.value } };
    }, (value) => value);
  }

  private async withLeader<T, R>(
    timeoutMs: number,
    attempt: (client: KvTestClient, id: string, remainingMs: number) => Promise<{ retry: true; hint?: string; why: string } | { retry: false; value: T }>,
    finish: (value: T, attempts: number) => R,
  ): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    const ids = [...this.clients.keys()];
    let lastProblem = 'no attempt made';
    for (let attempts = 1; Date.now() < deadline; attempts++) {
      const id = this.leaderGuess;
      try {
        const outcome = await attempt(this.member(id), id, Math.max(1, deadline - Date.now()));
        if (!outcome.retry) return finish(outcome.value, attempts);
        lastProblem = `${id}: ${outcome.why}`;
        if (outcome.hint && outcome.hint !== id && this.clients.has(outcome.hint)) {
          this.leaderGuess = outcome.hint;
          continue;
        }
      } catch (error) {
        lastProblem = `${id}: ${(error as Error).message}`;
      }
      this.leaderGuess = ids[(ids.indexOf(id) + 1) % ids.length];
      await sleep(this.retryPauseMs);
    }
    throw new Error(`cluster client: no member answered within ${timeoutMs} ms (last: ${lastProblem})`);
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
  }
}
