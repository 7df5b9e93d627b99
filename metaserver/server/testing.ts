/**
 * Test harness for the metadata server as real processes: N members of
 * dist/metaserver/server/server-main.js on 127.0.0.1 (spawned by
 * raft/node/process-cluster.ts's ProcessCluster, each with its own data folder
 * in a temp dir and HTTP /status for finding the leader), typed gRPC calls
 * answering {reply} | {error}, calls that follow the leader, kill -9 /
 * restart / wipe of one member, a look at a member's DATA/blocks, and test
 * sessions that number their sequences and can keep themselves alive.
 * Owns nothing of the server; must never leave a process or folder behind
 * (destroy() in afterAll kills and removes everything, even after a failure).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { MemberStatusJson } from '../../raft/node/member-process';
import { ProcessCluster, ProcessMember, assertDistIsFresh } from '../../raft/node/process-cluster';
import { MalformedRequest } from '../../proto/grpc-method';
import { randomBlock } from '../blocks/testing';
import * as p from '../../proto/meta-proto';
import { metaServerMainPath } from './main-path';

export const ROOT_HANDLE = 1;
export const ROOT_CALLER: p.Caller = { uid: 0, gid: 0, groups: [] };
export const DEFAULT_CALL_DEADLINE_MS = 5_000;
/** A call that never reached a (just restarted) member is sent this many times at most, this far apart. */
const UNREACHED_ATTEMPTS_MAX = 20;
const UNREACHED_PAUSE_MS = 100;
/** Starts of a test cluster tried when a port picked free was taken meanwhile. */
const START_ATTEMPTS_MAX = 3;
/** Every folder server-main is compiled from: a stale dist/ fails the test before it spawns anything. */
export const META_SOURCE_FOLDERS = [
  'metaserver/server', 'metaserver/state', 'metaserver/rules', 'metaserver/blocks', 'proto', 'raft/core', 'raft/node', 'raft/storage', 'raft/transport',
];

/** How many times a call is sent to find the leader (elections take a few hundred ms at tick 20 ms). */
const LEADER_ATTEMPTS_MAX = 80;
const LEADER_RETRY_PAUSE_MS = 100;
const STATUS_TIMEOUT_MS = 1_000;
const BLOCK_FOLDER_FILES_MAX = 100_000;

type MethodOf<M extends p.MetaMethod> = (typeof p.metaService)[M];
export type RequestOf<M extends p.MetaMethod> = Exclude<Parameters<MethodOf<M>['requestSerialize']>[0], MalformedRequest>;
export type ReplyOf<M extends p.MetaMethod> = ReturnType<MethodOf<M>['responseDeserialize']>;
export type Outcome<Res> = { reply: Res; error?: undefined } | { reply?: undefined; error: grpc.ServiceError };
type MetaClient = InstanceType<typeof p.MetaGrpcClient>;
type UnaryFn = (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: unknown) => void) => void;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value other than undefined/false; throws naming `what` and the last value seen. */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>, pauseMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${timeoutMs} ms${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    await sleep(pauseMs);
  }
}

export { metaServerMainPath } from './main-path';

export interface MetaClusterOptions {
  size?: number;
  /** Flags every member runs with (e.g. ['--keep-last', '2']). */
  extraArgs?: string[];
  tickMs?: number;
  electionTicks?: number;
  readyTimeoutMs?: number;
  /** Environment variables for the members (e.g. { HANDLEFS_DEBUG_UNSAFE: '1' }). */
  env?: Record<string, string>;
}

export class MetaTestCluster {
  private readonly clients = new Map<string, MetaClient>();
  private readonly sessions = new Set<TestSession>();

  private constructor(readonly processes: ProcessCluster) {}

  /** Spawns every member, waits for their ready lines and for a leader. Cleans up itself if that fails. */
  static async start(options: MetaClusterOptions = {}): Promise<MetaTestCluster> {
    assertDistIsFresh(META_SOURCE_FOLDERS);
    // Ports are picked free and then bound by the members: on a busy machine another process can take one in
    // between (EADDRINUSE). Such a start is retried with fresh ports, a bounded number of times.
    for (let attempt = 1; ; attempt++) {
      try {
        return await MetaTestCluster.startOnce(options);
      } catch (error) {
        if (attempt >= START_ATTEMPTS_MAX || !/EADDRINUSE/.test((error as Error).message)) throw error;
      }
    }
  }

  private static async startOnce(options: MetaClusterOptions): Promise<MetaTestCluster> {
    const processes = await ProcessCluster.create({
      size: options.size ?? 3,
      entryScript: metaServerMainPath(),
      httpPorts: true,
      passClientAddresses: true,
      tickMs: options.tickMs ?? 20,
      electionTicks: options.electionTicks ?? 10,
      extraArgs: options.extraArgs,
      env: options.env,
      readyTimeoutMs: options.readyTimeoutMs ?? 15_000,
    });
    const cluster = new MetaTestCluster(processes);
    try {
      await processes.startAll();
      await cluster.leader();
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  get members(): ProcessMember[] {
    return this.processes.members;
  }

  running(): ProcessMember[] {
    return this.processes.running();
  }

  member(id: string): ProcessMember {
    return this.processes.member(id);
  }

  /** A gRPC client to the member's client API; made anew after a restart (a fresh channel, not one in backoff). */
  client(member: ProcessMember): MetaClient {
    let client = this.clients.get(member.id);
    if (!client) {
      client = new p.MetaGrpcClient(member.clientAddress, grpc.credentials.createInsecure(), {
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1_000,
        'grpc.max_receive_message_length': 8 * 1024 * 1024,
      }) as MetaClient;
      this.clients.set(member.id, client);
    }
    return client;
  }

  private dropClient(member: ProcessMember): void {
    this.clients.get(member.id)?.close();
    this.clients.delete(member.id);
  }

  /**
   * One call to one member. A call that never reached it (the channel still
   * reconnecting to a member that just restarted) is sent again, a bounded
   * number of times; every answer the member gave is returned as it is.
   */
  async call<M extends p.MetaMethod>(member: ProcessMember, method: M, request: RequestOf<M>, deadlineMs = DEFAULT_CALL_DEADLINE_MS): Promise<Outcome<ReplyOf<M>>> {
    for (let attempt = 1; ; attempt++) {
      const client = this.client(member);
      const fn = (client as unknown as Record<string, UnaryFn>)[method];
      const outcome = await new Promise<Outcome<ReplyOf<M>>>((resolve) => {
        fn.call(client, request, { deadline: Date.now() + deadlineMs }, (error, reply) => resolve(error ? { error } : { reply: reply as ReplyOf<M> }));
      });
      const unreached = outcome.error?.code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED/.test(outcome.error.message);
      if (!unreached || attempt >= UNREACHED_ATTEMPTS_MAX || !member.child) return outcome;
      await sleep(UNREACHED_PAUSE_MS);
    }
  }

  /**
   * Calls whichever member leads: follows FAILED_PRECONDITION's leader hint,
   * waits out UNAVAILABLE / DEADLINE_EXCEEDED (elections, a leader loading
   * its sessions) and resends the same request — so a mutation keeps its
   * (session, sequence) and is applied at most once. Other errors return.
   */
  async onLeader<M extends p.MetaMethod>(method: M, request: RequestOf<M>, deadlineMs = DEFAULT_CALL_DEADLINE_MS): Promise<Outcome<ReplyOf<M>>> {
    let target: ProcessMember | undefined = this.running()[0];
    let last: Outcome<ReplyOf<M>> | undefined;
    for (let attempt = 0; attempt < LEADER_ATTEMPTS_MAX; attempt++) {
      const alive = this.running();
      if (alive.length === 0) throw new Error(`${method}: no member is running`);
      if (!target || !target.child) target = alive[attempt % alive.length];
      last = await this.call(target, method, request, deadlineMs);
      if (!last.error) return last;
      const code = last.error.code;
      if (code === grpc.status.FAILED_PRECONDITION) {
        const address: string = String(last.error.metadata.get(p.LEADER_ADDRESS_METADATA)[0] ?? '');
        const hinted: ProcessMember | undefined = alive.find((m) => m.clientAddress === address);
        if (hinted && hinted !== target) {
          target = hinted;
          continue;
        }
      } else if (code !== grpc.status.UNAVAILABLE && code !== grpc.status.DEADLINE_EXCEEDED) {
        return last;
      }
      await sleep(LEADER_RETRY_PAUSE_MS);
      target = alive[(alive.indexOf(target) + 1) % alive.length];
    }
    return last!;
  }

  /** The member's /status, or undefined when it does not answer. */
  async status(member: ProcessMember): Promise<MemberStatusJson | undefined> {
    if (!member.child || !member.httpAddress) return undefined;
    try {
      const response = await fetch(`http://${member.httpAddress}/status`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
      if (!response.ok) return undefined;
      return (await response.json()) as MemberStatusJson;
    } catch {
      return undefined;
    }
  }

  /** The running member that says (on /status) it leads, the highest term winning; waits for one. */
  async leader(timeoutMs = 15_000): Promise<ProcessMember> {
    return eventually('a leader', timeoutMs, async () => {
      const statuses = await Promise.all(this.running().map(async (member) => ({ member, status: await this.status(member) })));
      const leaders = statuses.filter((s) => s.status?.role === 'leader').sort((a, b) => b.status!.term - a.status!.term);
      return leaders[0]?.member;
    }, 50);
  }

  async followers(): Promise<ProcessMember[]> {
    const leader = await this.leader();
    return this.running().filter((m) => m !== leader);
  }

  /**
   * Waits until the member knows the current leader (so its reads can confirm
   * a read index) and has applied at least what the leader had committed when asked.
   */
  async caughtUp(member: ProcessMember, timeoutMs = 20_000): Promise<void> {
    const leaderStatus = await this.status(await this.leader());
    if (!leaderStatus) throw new Error('the leader did not report its status');
    await eventually(`${member.id} following ${leaderStatus.id} and applying up to ${leaderStatus.commitIndex}`, timeoutMs, async () => {
      const status = await this.status(member);
      return status !== undefined && status.leaderId === leaderStatus.id && status.appliedIndex >= leaderStatus.commitIndex;
    });
  }

  /** SIGKILL, and waits for the exit. */
  async kill9(member: ProcessMember): Promise<void> {
    this.dropClient(member);
    await this.processes.signal(member.id, 'SIGKILL');
  }

  /** SIGTERM (a graceful stop: a leader hands over first); resolves with the exit code. */
  async terminate(member: ProcessMember): Promise<number | null> {
    this.dropClient(member);
    return this.processes.signal(member.id, 'SIGTERM');
  }

  /** Starts a stopped member again (with its data folder as it is) and waits for its ready line. */
  async restart(member: ProcessMember): Promise<void> {
    if (member.child) throw new Error(`${member.id} is running: kill9 it first`);
    this.dropClient(member);
    await this.processes.start(member.id);
  }

  /** Removes a stopped member's whole data folder (Raft log, state, blocks): the member comes back empty. */
  wipe(member: ProcessMember): void {
    if (member.child) throw new Error(`${member.id} is running: kill9 it before wiping its data`);
    fs.rmSync(member.dataDir, { recursive: true, force: true });
  }

  /** The block ids stored in the member's DATA/blocks (its fan-out folders; quarantine and temp files left out). */
  blockIdsOnDisk(member: ProcessMember): Set<string> {
    const ids = new Set<string>();
    const root = path.join(member.dataDir, 'blocks');
    if (!fs.existsSync(root)) return ids;
    for (const a of fs.readdirSync(root)) {
      if (!/^[0-9a-f]{2}$/.test(a)) continue;
      for (const b of fs.readdirSync(path.join(root, a))) {
        if (!/^[0-9a-f]{2}$/.test(b)) continue;
        for (const name of fs.readdirSync(path.join(root, a, b))) {
          if (/^[0-9a-f]{64}$/.test(name)) ids.add(name);
          if (ids.size > BLOCK_FOLDER_FILES_MAX) throw new Error(`${root} holds more than ${BLOCK_FOLDER_FILES_MAX} blocks`);
        }
      }
    }
    return ids;
  }

  /** Opens a session on the leader; `keepAliveEveryMs` keeps it alive in the background until stop() or destroy(). */
  async openSession(options: { ttlMs?: number; name?: string; keepAliveEveryMs?: number } = {}): Promise<TestSession> {
    const opened = await this.onLeader('OpenSession', { ttlMs: options.ttlMs ?? 0, clientName: options.name ?? 'test' });
    if (opened.error) throw new Error(`OpenSession failed: ${opened.error.message}`);
    if (opened.reply.errno !== 0) throw new Error(`OpenSession answered errno ${opened.reply.errno}: ${opened.reply.message}`);
    const session = new TestSession(this, opened.reply.sessionId, opened.reply.ttlMs);
    this.sessions.add(session);
    if (options.keepAliveEveryMs !== undefined) session.keepAlive(options.keepAliveEveryMs);
    return session;
  }

  stderrReport(): string {
    return this.processes.stderrReport();
  }

  /** Stops keepalives, closes clients, kills every member and removes the data folders. Safe to call twice. */
  async destroy(): Promise<void> {
    for (const session of this.sessions) session.stopKeepAlive();
    this.sessions.clear();
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
    await this.processes.destroy();
  }
}

/** A client session: numbers its mutations' sequences, and can keep itself alive against whichever member leads. */
export class TestSession {
  private sequence = 0;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  /** KeepAlive answers other than success, for a test to inspect (bounded). */
  readonly keepAliveFailures: string[] = [];

  constructor(private readonly cluster: MetaTestCluster, readonly id: number, readonly ttlMs: number) {}

  /** A header with the next sequence (pass one back to retry it). */
  header(sequence = ++this.sequence): p.Header {
    return { sessionId: this.id, sequence, caller: ROOT_CALLER };
  }

  /** A mutation on the leader with the next sequence. */
  mutate<M extends p.MetaMethod>(method: M, request: Omit<RequestOf<M>, 'header'>, deadlineMs = DEFAULT_CALL_DEADLINE_MS): Promise<Outcome<ReplyOf<M>>> {
    return this.cluster.onLeader(method, { ...request, header: this.header() } as unknown as RequestOf<M>, deadlineMs);
  }

  keepAlive(everyMs: number): void {
    this.stopKeepAlive();
    const loop = async (): Promise<void> => {
      const outcome = await this.cluster.onLeader('KeepAlive', { sessionId: this.id }, 1_000).catch((error: Error) => ({ error }));
      const failure = outcome.error ? outcome.error.message : outcome.reply!.errno !== 0 ? `errno ${outcome.reply!.errno} ${outcome.reply!.sessionError}` : '';
      if (failure && this.keepAliveFailures.length < 100) this.keepAliveFailures.push(failure);
      if (this.keepAliveTimer) this.keepAliveTimer = setTimeout(() => void loop(), everyMs);
    };
    this.keepAliveTimer = setTimeout(() => void loop(), 0);
  }

  stopKeepAlive(): void {
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
  }
}

// ---- content helpers ---------------------------------------------------------

export const BLOCK_BYTES = 1 << 20;
/** Under ReadFh's cap (4 MiB - 64 KiB). */
const READ_RANGE_BYTES = 2 * 1024 * 1024;
const READ_RANGES_MAX = 1_000;

/** Content split into 1 MiB blocks, the last one short. */
export function blocksOf(content: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < content.byteLength; offset += BLOCK_BYTES) out.push(content.subarray(offset, Math.min(content.byteLength, offset + BLOCK_BYTES)));
  return out;
}

/** PutBlock of every block of `content` (throws on any failure); the ids in order. */
export async function uploadBlocks(session: TestSession, content: Uint8Array): Promise<string[]> {
  const ids: string[] = [];
  for (const block of blocksOf(content)) {
    const put = await session.mutate('PutBlock', { data: block, id: '' }, 15_000);
    if (put.error) throw new Error(`PutBlock failed: ${put.error.message}`);
    if (put.reply.errno !== 0) throw new Error(`PutBlock answered errno ${put.reply.errno}: ${put.reply.message}`);
    ids.push(put.reply.id);
  }
  return ids;
}

/** Every byte an fh pins, read from `member` in ranges of at most 2 MiB. */
export async function readThroughFh(cluster: MetaTestCluster, member: ProcessMember, fh: number, sessionId = 0): Promise<Buffer> {
  const parts: Buffer[] = [];
  let offset = 0;
  for (let range = 0; range < READ_RANGES_MAX; range++) {
    const read = await cluster.call(member, 'ReadFh', { fh, offset, length: READ_RANGE_BYTES, sessionId }, 15_000);
    if (read.error) throw new Error(`ReadFh(fh ${fh}, offset ${offset}) on ${member.id} failed: ${read.error.message}`);
    if (read.reply.errno !== 0) throw new Error(`ReadFh(fh ${fh}, offset ${offset}) on ${member.id} answered errno ${read.reply.errno}: ${read.reply.message}`);
    parts.push(Buffer.from(read.reply.data));
    offset += read.reply.data.byteLength;
    if (offset >= read.reply.sizeBytes || read.reply.data.byteLength === 0) return Buffer.concat(parts);
  }
  throw new Error(`ReadFh(fh ${fh}) did not reach the end in ${READ_RANGES_MAX} ranges`);
}

/** A version's bytes as GetVersion gives them: inline content, or its block ids read with GetBlock ('' = zeros). */
export async function readVersion(cluster: MetaTestCluster, member: ProcessMember, handle: number, version: number): Promise<{ info: p.VersionInfo; bytes: Buffer }> {
  const got = await cluster.call(member, 'GetVersion', { caller: ROOT_CALLER, handle, version });
  if (got.error) throw new Error(`GetVersion(${handle}, ${version}) failed: ${got.error.message}`);
  if (got.reply.errno !== 0 || !got.reply.info) throw new Error(`GetVersion(${handle}, ${version}) answered errno ${got.reply.errno}: ${got.reply.message}`);
  const info = got.reply.info;
  if (info.blocks.length === 0) return { info, bytes: Buffer.from(got.reply.content) };
  const parts: Buffer[] = [];
  for (const [index, id] of info.blocks.entries()) {
    const length = Math.min(info.blockSizeBytes, info.sizeBytes - index * info.blockSizeBytes);
    if (id === '') {
      parts.push(Buffer.alloc(length));
      continue;
    }
    const block = await cluster.call(member, 'GetBlock', { id }, 15_000);
    if (block.error) throw new Error(`GetBlock(${id}) failed: ${block.error.message}`);
    if (block.reply.errno !== 0) throw new Error(`GetBlock(${id}) answered errno ${block.reply.errno}: ${block.reply.message}`);
    parts.push(Buffer.from(block.reply.data));
  }
  return { info, bytes: Buffer.concat(parts) };
}

/** Deterministic bytes, different for each seed (blocks/testing.ts's generator). */
export function patternBytes(sizeBytes: number, seed: number): Buffer {
  return Buffer.from(randomBlock(sizeBytes, (seed * 2654435761) >>> 0));
}
