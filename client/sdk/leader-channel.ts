/**
 * Calls to the metadata cluster: one gRPC channel per member address, a guess
 * of the leader, and the retry loop every call goes through. FAILED_PRECONDITION
 * with a leader address redirects in one hop; UNAVAILABLE, DEADLINE_EXCEEDED
 * on one attempt, INTERNAL/UNKNOWN (an answer that does not decode),
 * RESOURCE_EXHAUSTED or a hint-less redirect move on with
 * exponential backoff and jitter; nothing outlives the call's overall deadline
 * (then MetaError ETIMEDOUT naming the method and the last error). The request
 * is resent unchanged, so a mutation keeps its (session, sequence). Owns
 * channels and retries only; must never build headers or read reply errnos.
 */
import * as grpc from '@grpc/grpc-js';
import { CLIENT_FLOW_OPTIONS } from '../../proto/flow-control';
import * as p from '../../proto/meta-proto';
import { ClientSecurity, PLAINTEXT } from '../../proto/tls';
import { EACCES, EINVAL, EIO, ECANCELED, ETIMEDOUT, MetaError } from './errors';

export interface Logger { info(msg: string, fields?: object): void; warn(msg: string, fields?: object): void }

export interface ChannelOptions {
  servers: string[];
  minBackoffMs: number;
  maxBackoffMs: number;
  /** One attempt's gRPC deadline (a dead or partitioned member costs at most this before the next is tried). */
  attemptTimeoutMs: number;
  logger?: Logger;
  /** TLS and the bearer token (proto/tls.ts), shared by Meta and BlockPeer calls; plaintext if absent. */
  security?: ClientSecurity;
  /** Where read-only calls go first (default 'leader'); see ReadFrom. */
  readFrom?: ReadFrom;
}

/**
 * 'leader': every call goes to the leader guess. 'first-listed': read-only
 * calls go to the first configured server first (a member near the client),
 * taking read load off the leader; they stay linearizable because a member
 * confirms a read index with the leader before it answers (like etcd's
 * follower reads). Mutations always follow the leader.
 */
export type ReadFrom = 'leader' | 'first-listed';
export const READ_FROM_CHOICES: readonly ReadFrom[] = ['leader', 'first-listed'];

/** Counters for tests and operators (monotonic). */
export interface CallStats {
  /** RPCs sent, per method (every attempt counts). */
  attempts: Record<string, number>;
  redirects: number;
  retries: number;
}

type Client = InstanceType<typeof p.MetaGrpcClient>;
type Unary = (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: unknown) => void) => void;

/** Redirects followed back to back without a pause (a hint loop during an election must not spin). */
const REDIRECTS_WITHOUT_PAUSE_MAX = 3;
/** Attempts per call whatever the deadline (a bound on the loop, far above what a deadline allows). */
const ATTEMPTS_MAX = 10_000;
/** Addresses learned from hints beyond the configured servers (a bound on channels). */
const CHANNELS_MAX = 64;
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** HTTP/2 pings while calls are waiting, and how long an answer may take: a silent member is noticed in ~2 s. */
const KEEPALIVE_TIME_MS = 1_000;
const KEEPALIVE_TIMEOUT_MS = 1_000;
/** How long an attempt waits for a connection to its member before moving on (a connect on a LAN takes milliseconds). */
const CONNECT_WAIT_MS = 1_000;

/**
 * gRPC failures after which the call moves on (another member, or the same
 * one after backoff) instead of failing: the member is down, slow, busy, or
 * answered bytes that do not decode (INTERNAL) or failed oddly (UNKNOWN) —
 * one misbehaving member must not fail a call the others can answer.
 */
const MOVE_ON_CODES = new Set<number>([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.INTERNAL, grpc.status.UNKNOWN]);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class LeaderChannel {
  private readonly clients = new Map<string, Client>();
  private readonly addresses: string[];
  private leaderGuess: string | undefined;
  private closed = false;
  readonly stats: CallStats = { attempts: {}, redirects: 0, retries: 0 };

  constructor(private readonly options: ChannelOptions) {
    if (options.servers.length === 0) throw new MetaError(EINVAL, 'MetaClientOptions.servers is empty: name at least one member (host:port)');
    for (const address of options.servers) {
      if (!/^[^\s:]+:\d{1,5}$/.test(address) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(address)) throw new MetaError(EINVAL, `server address "${address}" is not host:port`);
    }
    this.addresses = [...new Set(options.servers)];
  }

  /** The member calls go to first (the last one that answered a leader-only call, or a hint). */
  get leader(): string | undefined {
    return this.leaderGuess;
  }

  /**
   * Sends `request` until a member answers it or `deadlineAt` (Date.now() ms) passes.
   * Replies (whatever their errno) return; gRPC failures other than the retryable
   * ones throw MetaError (INVALID_ARGUMENT → EINVAL, others EIO).
   */
  async call<Res>(method: p.MetaMethod, request: unknown, deadlineAt: number): Promise<Res> {
    const readNearby = this.options.readFrom === 'first-listed' && !isLeaderOnly(method);
    let target = readNearby ? this.addresses[0] : this.leaderGuess ?? this.addresses[0];
    let lastError = 'no attempt made';
    let failures = 0;
    let redirectsInARow = 0;
    for (let attempt = 0; attempt < ATTEMPTS_MAX; attempt++) {
      if (this.closed) throw new MetaError(ECANCELED, `${method}: the client is closed`);
      const remainingMs = deadlineAt - Date.now();
      if (remainingMs <= 0) break;
      try {
        const reply = await this.once<Res>(target, method, request, Math.min(remainingMs, this.options.attemptTimeoutMs));
        if (isLeaderOnly(method)) this.leaderGuess = target;
        return reply;
      } catch (caught) {
        const error = caught as grpc.ServiceError;
        if (error instanceof MetaError) throw error;
        lastError = `${target}: ${grpc.status[error.code] ?? error.code} ${error.details ?? error.message}`;
        if (error.code === grpc.status.FAILED_PRECONDITION) {
          const hint = String(error.metadata?.get(p.LEADER_ADDRESS_METADATA)[0] ?? '');
          if (hint !== '' && hint !== target && redirectsInARow < REDIRECTS_WITHOUT_PAUSE_MAX && this.knows(hint)) {
            this.stats.redirects++;
            redirectsInARow++;
            target = hint;
            this.leaderGuess = hint;
            continue;
          }
        } else if (error.code === grpc.status.INVALID_ARGUMENT) {
          throw new MetaError(EINVAL, `${method}: the server refused the request: ${error.details}`);
        } else if (error.code === grpc.status.UNAUTHENTICATED || error.code === grpc.status.PERMISSION_DENIED) {
          throw new MetaError(EACCES, `${method}: ${lastError}`);
        } else if (!MOVE_ON_CODES.has(error.code)) {
          throw new MetaError(EIO, `${method}: ${lastError}`);
        }
        redirectsInARow = 0;
        this.stats.retries++;
        if (error.code !== grpc.status.RESOURCE_EXHAUSTED) {
          if (this.leaderGuess === target) this.leaderGuess = undefined;
          target = this.after(target);
        }
        await sleep(Math.min(this.backoffMs(failures++), Math.max(0, deadlineAt - Date.now())));
      }
    }
    throw new MetaError(ETIMEDOUT, `${method}: no answer from the cluster (${this.addresses.join(', ')}) before the deadline; last error: ${lastError}`);
  }

  close(): void {
    this.closed = true;
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  private knows(address: string): boolean {
    if (this.addresses.includes(address)) return true;
    if (this.addresses.length >= CHANNELS_MAX) return false;
    this.addresses.push(address);
    this.options.logger?.info('learned a member address from a leader hint', { address });
    return true;
  }

  private after(address: string): string {
    const index = this.addresses.indexOf(address);
    return this.addresses[(index + 1) % this.addresses.length];
  }

  /** Full-jitter-ish exponential backoff: half fixed, half random, so clients spread out. */
  private backoffMs(failures: number): number {
    const ceiling = Math.min(this.options.maxBackoffMs, this.options.minBackoffMs * 2 ** Math.min(failures, 20));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  private client(address: string): Client {
    let client = this.clients.get(address);
    if (!client) {
      const security = this.options.security ?? PLAINTEXT;
      client = new p.MetaGrpcClient(address, security.credentials, {
        ...security.clientOptions,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1_000,
        // A member that stops answering (SIGSTOP, a cut link) fails the calls waiting on it within keepalive
        // time + timeout, instead of holding them for the whole attempt timeout: they move to another member.
        'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
        'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
        ...CLIENT_FLOW_OPTIONS,
      }) as Client;
      this.clients.set(address, client);
    }
    return client;
  }

  /** The configured member addresses (not the ones learned from hints). */
  get members(): readonly string[] {
    return this.addresses;
  }

  /**
   * One attempt of a call on one member, over that member's channel (no
   * retry, no redirect): for calls a caller fans out itself, such as storing a
   * block on every member. gRPC failures reject with the ServiceError.
   */
  callMember<Req, Res>(address: string, definition: grpc.MethodDefinition<Req, Res>, request: Req, deadlineAt: number): Promise<Res> {
    if (this.closed) return Promise.reject(new MetaError(ECANCELED, `${definition.path}: the client is closed`));
    const client = this.client(address);
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(definition.path, definition.requestSerialize, definition.responseDeserialize, request, { deadline: deadlineAt }, (error, reply) => (error ? reject(error) : resolve(reply as Res)));
    });
  }

  private async once<Res>(address: string, method: p.MetaMethod, request: unknown, timeoutMs: number): Promise<Res> {
    const client = this.client(address);
    const fn = (client as unknown as Record<string, Unary>)[method];
    this.stats.attempts[method] = (this.stats.attempts[method] ?? 0) + 1;
    await connected(client, address, Math.min(timeoutMs, CONNECT_WAIT_MS));
    return new Promise((resolve, reject) => {
      fn.call(client, request, { deadline: Date.now() + timeoutMs }, (error, reply) => (error ? reject(error) : resolve(reply as Res)));
    });
  }
}

/**
 * Waits up to `waitMs` for a connection to the member. A call to a member whose packets are
 * dropped (a cut link, a blackholed route) otherwise waits, queued behind a TCP connect that never
 * answers, for its whole attempt timeout (5 s): the chaos runs' stall after a partitioned leader.
 * Rejects with UNAVAILABLE, which moves the call on.
 */
function connected(client: grpc.Client, address: string, waitMs: number): Promise<void> {
  const channel = client.getChannel();
  const deadline = Date.now() + waitMs;
  const unavailable = (why: string): Error => Object.assign(new Error(why), { code: grpc.status.UNAVAILABLE, details: why, metadata: new grpc.Metadata() });
  return new Promise((resolve, reject) => {
    // Bounded: each turn waits for a state change or the deadline, and the deadline ends it.
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return resolve();
      if (state === grpc.connectivityState.TRANSIENT_FAILURE || state === grpc.connectivityState.SHUTDOWN) return reject(unavailable(`${address} refused or dropped the connection`));
      if (Date.now() >= deadline) return reject(unavailable(`no connection to ${address} within ${waitMs} ms`));
      channel.watchConnectivityState(state, deadline, check);
    };
    check();
  });
}

const LEADER_ONLY = new Set<p.MetaMethod>([
  'OpenSession', 'KeepAlive', 'CloseSession', 'SetAttr', 'Mkdir', 'Create', 'Mknod', 'Symlink', 'Link', 'Unlink', 'Rmdir', 'Rename',
  'SetXattr', 'RemoveXattr', 'Open', 'Release', 'CommitVersion', 'RestoreVersion', 'PutBlock', 'PinBlocks',
]);

export function isLeaderOnly(method: p.MetaMethod): boolean {
  return LEADER_ONLY.has(method);
}
