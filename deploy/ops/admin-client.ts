/**
 * The operator commands' side of proto/admin.proto: one gRPC channel per
 * server address, calls answering {reply} | {error} with a message that names
 * the address, a Status sweep over every --servers address and every member
 * client address their answers name (as `etcdctl --cluster`: one address is
 * enough), and calls that follow the leader (its hint metadata, else a fresh
 * sweep) a bounded number of times. Owns talking to servers only; must never
 * decide what a command prints or change anything on its own initiative.
 */
import * as grpc from '@grpc/grpc-js';
import * as a from '../../proto/admin-proto';
import { ClientSecurity, PLAINTEXT } from '../../proto/tls';
import { MalformedRequest } from '../../proto/grpc-method';
import { parseHostPort } from '../../raft/transport/options';

type MethodOf<M extends a.AdminMethod> = (typeof a.adminService)[M];
export type RequestOf<M extends a.AdminMethod> = Exclude<Parameters<MethodOf<M>['requestSerialize']>[0], MalformedRequest>;
export type ReplyOf<M extends a.AdminMethod> = ReturnType<MethodOf<M>['responseDeserialize']>;
export type Outcome<Res> = { reply: Res; error?: undefined } | { reply?: undefined; error: CallError };
type UnaryFn = (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: unknown) => void) => void;

export const STATUS_DEADLINE_MS = 2_000;
/** Leader hints followed (or sweeps made) for one call before it gives up. */
const LEADER_ATTEMPTS_MAX = 20;
const LEADER_RETRY_PAUSE_MS = 250;
const SERVERS_MAX = 64;
/** Addresses known at most: the --servers plus those learned from answers and hints. */
const KNOWN_ADDRESSES_MAX = 2 * SERVERS_MAX;
/** Status rounds of one sweep: the --servers, then addresses their answers named, then addresses those named. */
const SWEEP_ROUNDS_MAX = 3;

/** A failed call: the gRPC code and a message naming the server that answered (or did not). */
export class CallError extends Error {
  constructor(
    readonly address: string,
    readonly code: grpc.status,
    message: string,
    readonly hint: { leaderId?: string; leaderAddress?: string; unreachable?: boolean } = {},
  ) {
    super(message);
  }

  get leaderId(): string {
    return this.hint.leaderId ?? '';
  }

  get leaderAddress(): string {
    return this.hint.leaderAddress ?? '';
  }

  /** True when the server never answered (down, refused, or silent past the deadline). */
  get unreachable(): boolean {
    return this.hint.unreachable ?? false;
  }
}

/** Bad command-line input: the command prints it and exits 2. */
export class UsageError extends Error {}

/** A "host:port,host:port" list, checked (each address named when malformed, duplicates refused). */
export function parseServers(value: string | undefined): string[] {
  if (value === undefined || value.trim() === '') throw new UsageError('--servers HOST:PORT,... is required (the members\' client API addresses; or set HANDLEFS_SERVERS)');
  const servers: string[] = [];
  for (const item of value.split(',')) {
    const address = item.trim();
    try {
      parseHostPort(address, false);
    } catch (error) {
      throw new UsageError(`--servers: ${(error as Error).message}`);
    }
    if (servers.includes(address)) throw new UsageError(`--servers: ${address} given twice`);
    servers.push(address);
  }
  if (servers.length > SERVERS_MAX) throw new UsageError(`--servers: at most ${SERVERS_MAX} addresses, got ${servers.length}`);
  return servers;
}

export interface Answer {
  address: string;
  status?: a.StatusReply;
  error?: CallError;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class AdminClient {
  private readonly channels = new Map<string, InstanceType<typeof a.AdminGrpcClient>>();
  /** The --servers first, then client addresses learned from Status answers and leader hints (bounded). */
  private readonly known: string[];

  /** security: TLS and the bearer token of every channel (proto/tls.ts); plaintext by default. */
  constructor(readonly servers: string[], private readonly security: ClientSecurity = PLAINTEXT) {
    this.known = [...servers];
  }

  /** Every address this client asks in a sweep: the --servers and the members' addresses learned since. */
  get addresses(): readonly string[] {
    return this.known;
  }

  /** Remembers a member's client address named by a server (a hint, a member list); malformed or excess ones are ignored. */
  learn(address: string | undefined): void {
    if (!address || this.known.includes(address) || this.known.length >= KNOWN_ADDRESSES_MAX) return;
    try {
      parseHostPort(address, false);
    } catch {
      return;
    }
    this.known.push(address);
  }

  private learnFrom(status: a.StatusReply): void {
    this.learn(status.leaderClientAddress);
    for (const member of status.members) this.learn(member.clientAddress);
  }

  private channel(address: string): InstanceType<typeof a.AdminGrpcClient> {
    let client = this.channels.get(address);
    if (!client) {
      if (this.channels.size >= 2 * SERVERS_MAX) throw new Error(`more than ${2 * SERVERS_MAX} server addresses contacted`);
      client = new a.AdminGrpcClient(address, this.security.credentials, { ...this.security.clientOptions, 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 });
      this.channels.set(address, client);
    }
    return client;
  }

  async call<M extends a.AdminMethod>(address: string, method: M, request: RequestOf<M>, deadlineMs: number): Promise<Outcome<ReplyOf<M>>> {
    const client = this.channel(address);
    const fn = (client as unknown as Record<string, UnaryFn>)[method];
    return new Promise((resolve) => {
      fn.call(client, request, { deadline: Date.now() + deadlineMs }, (error, reply) => {
        if (!error) {
          resolve({ reply: reply as ReplyOf<M> });
          return;
        }
        const leaderId = String(error.metadata?.get(a.LEADER_ID_METADATA)[0] ?? '');
        const leaderAddress = String(error.metadata?.get(a.LEADER_ADDRESS_METADATA)[0] ?? '');
        this.learn(leaderAddress);
        const details = (error.details || error.message).replace(/\.?\s*Resolution note:\s*$/, '');
        const refused = error.code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED|connect/i.test(details);
        const silent = error.code === grpc.status.DEADLINE_EXCEEDED && /Deadline exceeded/i.test(details);
        const message = refused ? `${address} is unreachable (${details})`
          : silent ? `${address} did not answer within ${deadlineMs} ms`
          : error.code === grpc.status.UNIMPLEMENTED ? `${address} does not serve the admin API (an older server, or not a handlefs member)`
          : `${address}: ${details}`;
        resolve({ error: new CallError(address, error.code, message, { leaderId, leaderAddress, unreachable: refused || silent }) });
      });
    });
  }

  /**
   * Status of every known address at once, then of the member client
   * addresses the answers named that were not asked yet (bounded rounds), so
   * a sweep from one member's address reaches every member it knows of.
   */
  async sweep(deadlineMs = STATUS_DEADLINE_MS): Promise<Answer[]> {
    const answers: Answer[] = [];
    const asked = new Set<string>();
    for (let round = 0; round < SWEEP_ROUNDS_MAX; round++) {
      const batch = this.known.filter((address) => !asked.has(address));
      if (batch.length === 0) break;
      for (const address of batch) asked.add(address);
      const got = await Promise.all(batch.map(async (address): Promise<Answer> => {
        const outcome = await this.call(address, 'Status', {}, deadlineMs);
        return outcome.error ? { address, error: outcome.error } : { address, status: outcome.reply };
      }));
      for (const x of got) if (x.status) this.learnFrom(x.status);
      answers.push(...got);
    }
    return answers;
  }

  /** The answering member that says it leads (the highest term wins), or undefined. */
  static leaderOf(answers: Answer[]): Answer | undefined {
    return answers.filter((x) => x.status?.role === 'leader').sort((x, y) => y.status!.term - x.status!.term)[0];
  }

  /**
   * Sends `request` to the leader: found by a sweep, then by the hints of
   * FAILED_PRECONDITION answers. UNAVAILABLE (an election, a member stopping)
   * waits and sweeps again. Other errors are returned as they are.
   */
  async onLeader<M extends a.AdminMethod>(method: M, request: RequestOf<M>, deadlineMs: number): Promise<Outcome<ReplyOf<M>>> {
    let target: string | undefined;
    let last: Outcome<ReplyOf<M>> | undefined;
    let lastSweep: Answer[] = [];
    for (let attempt = 0; attempt < LEADER_ATTEMPTS_MAX; attempt++) {
      if (!target) {
        lastSweep = await this.sweep();
        target = AdminClient.leaderOf(lastSweep)?.address;
        if (!target) {
          if (lastSweep.every((x) => x.error)) return { error: unreachableCluster(lastSweep) };
          await sleep(LEADER_RETRY_PAUSE_MS);
          continue;
        }
      }
      last = await this.call(target, method, request, deadlineMs);
      if (!last.error) return last;
      const error = last.error;
      if (error.code === grpc.status.FAILED_PRECONDITION && error.leaderId) {
        target = error.leaderAddress || lastSweep.find((x) => x.status?.id === error.leaderId)?.address;
        continue;
      }
      if (error.code !== grpc.status.UNAVAILABLE) return last;
      target = undefined;
      await sleep(LEADER_RETRY_PAUSE_MS);
    }
    if (last) return last;
    return { error: new CallError(this.known.join(','), grpc.status.UNAVAILABLE, `no leader found in ${LEADER_ATTEMPTS_MAX} attempts (${describeSweep(lastSweep)})`) };
  }

  close(): void {
    for (const client of this.channels.values()) client.close();
    this.channels.clear();
  }
}

/** One line per server of a sweep: "m1 at 127.0.0.1:7101 (follower, leader m2)" or the error. */
export function describeSweep(answers: Answer[]): string {
  return answers.map((x) => (x.status ? `${x.status.id} at ${x.address} (${x.status.role}${x.status.leaderId ? `, leader ${x.status.leaderId}` : ', no leader'})` : x.error!.message)).join('; ');
}

export function unreachableCluster(answers: Answer[]): CallError {
  return new CallError(answers.map((x) => x.address).join(','), grpc.status.UNAVAILABLE,
    `the cluster is unreachable: no server answered (${answers.map((x) => x.error?.message ?? x.address).join('; ')})`, { unreachable: true });
}

/** The leader's session listing as `listSessions` answers it (proto/admin.proto SessionsReply, with the leader named). */
export interface SessionList {
  leaderId: string;
  term: number;
  appliedIndex: number;
  /** The leader's wall clock when it answered (ms since the epoch). */
  wallClockMs: number;
  /** How often the leader looks for overdue sessions: an overdue session goes within about this (+ a commit), fewer than maxExpiriesPerRound at a time. */
  expiryIntervalMs: number;
  maxExpiriesPerRound: number;
  /** Untracked first, then the soonest to expire, then by id. */
  sessions: a.SessionInfo[];
  truncated: boolean;
  /** Sessions in the state; untracked and overdue count over all of them. */
  total: number;
  untracked: number;
  overdue: number;
}

export const SESSIONS_DEADLINE_MS = 10_000;
/** Sessions one listing returns at most (the server's bound). */
export const SESSIONS_LIMIT_MAX = 10_000;

/**
 * Every client session as the leader sees it (`handlefs sessions --json`).
 * `servers`: one or more members' client addresses ("h:p", "h:p,h:p" or a
 * list); the call finds and follows the leader. Rejects with a CallError
 * (code, message naming the server) when no leader answers, and with a
 * UsageError for a malformed address or limit.
 */
export async function listSessions(
  servers: string | readonly string[],
  security: ClientSecurity = PLAINTEXT,
  options: { limit?: number; deadlineMs?: number } = {},
): Promise<SessionList> {
  const client = new AdminClient(parseServers(typeof servers === 'string' ? servers : servers.join(',')), security);
  try {
    const limit = options.limit ?? 0;
    if (!Number.isInteger(limit) || limit < 0 || limit > SESSIONS_LIMIT_MAX) throw new UsageError(`limit must be an integer in 0..${SESSIONS_LIMIT_MAX} (0 = all up to ${SESSIONS_LIMIT_MAX}), got ${limit}`);
    const outcome = await client.onLeader('Sessions', { limit }, options.deadlineMs ?? SESSIONS_DEADLINE_MS);
    if (outcome.error) throw outcome.error;
    const r = outcome.reply;
    return {
      leaderId: r.id, term: r.term, appliedIndex: r.appliedIndex, wallClockMs: r.wallClockMs, expiryIntervalMs: r.expiryIntervalMs, maxExpiriesPerRound: r.maxExpiriesPerRound,
      sessions: r.sessions, truncated: r.truncated, total: r.total, untracked: r.untracked, overdue: r.overdue,
    };
  } finally {
    client.close();
  }
}
