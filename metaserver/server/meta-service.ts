/**
 * The metadata gRPC service (proto/metaserver.proto) over a RaftNode and the
 * MetaStateMachine: sessions and the namespace here, fhs, versions and blocks
 * in file-handlers.ts, the leader's timed duties in leader-duties.ts.
 * Mutations: check fields, stamp the leader's clock, encode the command,
 * propose, answer the state machine's result (building blocks the state asks
 * for and proposing again). Reads: ReadIndex, then the machine's query (any
 * member, issue 3 §5). Every call waits at most until the client's deadline.
 * Owns the mapping of node errors to gRPC status codes and the member id →
 * client API address map used in NOT_LEADER hints. Must never read the state
 * for a reply before readIndex() resolved, never decide a POSIX answer itself
 * (apply does, so every member agrees), and never answer a POSIX error as a
 * gRPC error.
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { NotLeaderError, ProposalRejectedError } from '../../raft/core/types';
import { RaftLogger } from '../../raft/node/node-logger';
import { NodeOverloadedError, NodeStoppedError, ProposalDroppedError, RaftTimeoutError } from '../../raft/node/pending';
import { RaftNode } from '../../raft/node/raft-node';
import { checkXattrValue } from '../rules/names';
import { Caller as RuleCaller } from '../rules/permissions';
import { Command, MutationBody, MutationCommand, TimeSpec as StateTimeSpec, encodeCommand } from '../state/commands';
import { OpenResult } from '../state/fh-ops';
import { CommandResult, MetaStateMachine, OpenSessionResult, SESSION_EXPIRED_ERRNO } from '../state/meta-state-machine';
import { Attrs } from '../state/records';
import { isAssemblyRequired } from '../state/version-content';
import { isMalformedRequest } from '../../proto/grpc-method';
import { BlockAccess } from './block-access';
import { fileHandlers } from './file-handlers';
import { LeaderDuties } from './leader-duties';
import { ServerLimits, Usage, limitRefusal } from './limits';
import { MetaMetrics } from './meta-metrics';
import * as p from '../../proto/meta-proto';
import { MAX_CLIENT_NAME_CHARS, RequestError, optionalUint, requireCaller, requireHeader, requireId, requireString, requireUint, sessionTtlMs } from './request-checks';
import { CallInfo, Handlers, ServiceContext, attrOf, failureFields, memberClientAddress } from './service-context';

export interface MetaServiceOptions {
  /** Member id → client API address from the configuration: NOT_LEADER hints fall back to it when the replicated membership has none. */
  clientAddresses: ReadonlyMap<string, string>;
  /** How long a proposal or a ReadIndex waits when the client set no deadline; a deadline is honoured up to maxRequestTimeoutMs. */
  requestTimeoutMs: number;
  maxRequestTimeoutMs: number;
  defaultSessionTtlMs: number;
  /** The largest TTL a client may ask for. */
  maxSessionTtlMs: number;
  /** Sessions the leader tracks at most; OpenSession answers RESOURCE_EXHAUSTED beyond. */
  maxSessions: number;
  /** The wall clock stamped into commands (mtime/ctime). */
  wallClockMs: () => number;
  logger: RaftLogger;
  metrics?: MetaMetrics;
  limits: ServerLimits;
  blockPinTtlMs: number;
  /** The data folder, whose disk's free space --min-free-disk-bytes guards. */
  dataDir: string;
  /** debug-unsafe fault switches (--debug-unsafe; only with HANDLEFS_DEBUG_UNSAFE=1): ack-before-commit and stale-reads act here. */
  debugUnsafe?: ReadonlySet<string>;
}

/** How often the usage the limits are checked against is read again. */
const USAGE_REFRESH_MS = 1_000;

function grpcError(code: grpc.status, details: string, metadata?: grpc.Metadata): Partial<grpc.StatusObject> {
  return { code, details, metadata };
}

function timeSpec(field: string, spec: p.TimeSpec | null): StateTimeSpec | undefined {
  if (!spec) return undefined;
  return spec.now ? 'now' : requireUint(`${field}.ms`, spec.ms);
}

const MKNOD_TYPES = new Set(['reg', 'fifo', 'sock', 'chr', 'blk']);
/** Getattrs one GetAttrs call may carry. */
const MAX_GETATTRS_ITEMS = 1024;

function checkGetAttr(prefix: string, r: p.GetAttrRequest): { handle: number; generation: number } {
  return { handle: requireId(`${prefix}handle`, r.handle), generation: requireUint(`${prefix}generation`, r.generation) };
}

/** A commit whose head keeps moving while the leader builds its blocks gives up after this many builds (EAGAIN). */
const MAX_ASSEMBLY_ROUNDS = 4;
/** Time kept back from the client's deadline so the answer still reaches it. */
const DEADLINE_MARGIN_MS = 20;

export class MetaService implements ServiceContext {
  readonly metrics?: MetaMetrics;
  readonly blockPinTtlMs: number;
  private lastUsage: { atMs: number; usage: Usage } | undefined;

  constructor(
    private readonly node: RaftNode,
    readonly machine: MetaStateMachine,
    readonly blocks: BlockAccess,
    private readonly duties: LeaderDuties,
    private readonly options: MetaServiceOptions,
  ) {
    this.metrics = options.metrics;
    this.blockPinTtlMs = options.blockPinTtlMs;
  }

  // ---- errors ------------------------------------------------------------

  private statusOf(error: unknown): Partial<grpc.StatusObject> {
    if (error instanceof RequestError) return grpcError(grpc.status.INVALID_ARGUMENT, error.message);
    if (error instanceof NotLeaderError) return this.notLeader(error.leaderId);
    if (error instanceof RaftTimeoutError) return grpcError(grpc.status.DEADLINE_EXCEEDED, error.message);
    if (error instanceof NodeOverloadedError) return grpcError(grpc.status.RESOURCE_EXHAUSTED, error.message);
    if (error instanceof NodeStoppedError || error instanceof ProposalDroppedError || error instanceof ProposalRejectedError) {
      return grpcError(grpc.status.UNAVAILABLE, error.message);
    }
    this.options.logger.error('request failed', { error: error instanceof Error ? error.stack : String(error) });
    return grpcError(grpc.status.INTERNAL, error instanceof Error ? error.message : String(error));
  }

  /** FAILED_PRECONDITION naming the leader's client address, or UNAVAILABLE when no leader is known. */
  private notLeader(leaderId: string): Partial<grpc.StatusObject> {
    if (!leaderId || leaderId === this.node.status().id) return grpcError(grpc.status.UNAVAILABLE, 'no leader is known; retry shortly');
    const metadata = new grpc.Metadata();
    const address = memberClientAddress(leaderId, this.node.status().membership.members, this.options.clientAddresses);
    metadata.set(p.LEADER_ID_METADATA, leaderId);
    metadata.set(p.LEADER_ADDRESS_METADATA, address);
    return grpcError(grpc.status.FAILED_PRECONDITION, `not the leader; the leader is ${leaderId}${address ? ` at ${address}` : ' (client address unknown)'}`, metadata);
  }

  // ---- mutations and reads --------------------------------------------------

  /** How long the cluster may take for this call: until the client's deadline (bounded), or the default. */
  private timeoutMs(call: CallInfo): number {
    const left = call.deadlineMs - Date.now() - DEADLINE_MARGIN_MS;
    return Math.max(1, Math.min(left, this.options.maxRequestTimeoutMs));
  }

  async mutate(header: p.Header | null, body: MutationBody, call: CallInfo, newBlockBytes = 0): Promise<CommandResult> {
    const checked = requireHeader(header);
    const refused = limitRefusal(body, this.options.limits, await this.usage(), newBlockBytes);
    if (refused) return refused;
    let command = { ...checked, nowMs: this.options.wallClockMs(), ...body } as MutationCommand;
    for (let round = 1; ; round++) {
      const result = this.options.debugUnsafe?.has('ack-before-commit') ? await this.debugProposeUncommitted(command, call) : await this.propose(command, call);
      if (!isAssemblyRequired(result) || round >= MAX_ASSEMBLY_ROUNDS) return result;
      // The state needs blocks only the leader can build (rebased or truncated content); build, store on a majority, propose again.
      command = { ...command, nowMs: this.options.wallClockMs(), assembled: await this.blocks.assemble(result.assembly, call.deadlineMs) };
    }
  }

  /** Usage for the limits, read again at most once a second (only when a limit needs it). */
  private async usage(): Promise<Usage> {
    const { maxInodes, maxBlockBytes, minFreeDiskBytes } = this.options.limits;
    if (maxInodes === 0 && maxBlockBytes === 0 && minFreeDiskBytes === 0) return { inodesInUse: 0, blockBytesStored: 0, diskFreeBytes: Number.MAX_SAFE_INTEGER };
    const nowMs = Date.now();
    if (!this.lastUsage || nowMs - this.lastUsage.atMs >= USAGE_REFRESH_MS) {
      const disk = await fs.promises.statfs(this.options.dataDir);
      this.lastUsage = {
        atMs: nowMs,
        usage: { inodesInUse: (await this.machine.query.counters()).inodesInUse, blockBytesStored: this.blocks.store.stats().bytes, diskFreeBytes: disk.bavail * disk.bsize },
      };
    }
    return this.lastUsage.usage;
  }

  private async propose(command: Command, call: CallInfo): Promise<CommandResult> {
    let data: Uint8Array;
    try {
      data = encodeCommand(command);
    } catch (error) {
      throw new RequestError((error as Error).message);
    }
    return (await this.node.propose(data, { timeoutMs: this.timeoutMs(call) })) as CommandResult;
  }

  async linearizable(call: CallInfo): Promise<void> {
    // debug-unsafe stale-reads: no ReadIndex, so any member (a follower behind, a deposed leader) answers from what it has applied.
    if (this.options.debugUnsafe?.has('stale-reads')) return;
    await this.node.readIndex({ timeoutMs: this.timeoutMs(call) });
  }

  /**
   * debug-unsafe ack-before-commit: proposes, waits until every entry before
   * this one is applied here, and answers with the result this entry WILL
   * have if it commits (the state machine's dry run, so the reply is exact and
   * clients go on normally) — before a majority holds it. A leader that dies
   * or is cut off before its followers store the entry has acknowledged a
   * write the new leader never had. (This is how "acknowledge before fsync"
   * is made observable here: kill -9 keeps the page cache, so a skipped fsync
   * alone loses nothing; answering before the majority's durable copy is the
   * same wrongness at the level a process kill can show.)
   */
  private async debugProposeUncommitted(command: MutationCommand, call: CallInfo): Promise<CommandResult> {
    let data: Uint8Array;
    try {
      data = encodeCommand(command);
    } catch (error) {
      throw new RequestError((error as Error).message);
    }
    const { index, applied } = this.node.debugProposeUncommitted(data, { timeoutMs: this.timeoutMs(call) });
    const real = applied as Promise<CommandResult>;
    if (index === 0) return real;
    real.catch(() => {}); // answered early: a later failure of the entry is the fault this switch injects
    let settled = false;
    void real.then(() => { settled = true; }, () => { settled = true; });
    // Bounded by the call's deadline; polls every millisecond (a debug path, not worth a waiter list).
    while ((await this.machine.appliedIndex()) < index - 1) {
      if (settled || Date.now() >= call.deadlineMs) return real;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const predicted = await this.machine.debugPredict(command, index);
    // Already applied meanwhile (so committed): the real answer. Blocks to build: the real path too.
    if (predicted === undefined || isAssemblyRequired(predicted) || (await this.machine.appliedIndex()) >= index) return real;
    return predicted;
  }

  private async getattrReply(item: { handle: number; generation: number }): Promise<p.AttrReply> {
    const result = await this.machine.query.getattr(item.handle, item.generation === 0 ? undefined : item.generation);
    return { ...failureFields(result), attr: result.ok ? attrOf(result.value) : null };
  }

  private entryReply(result: CommandResult): p.EntryReply {
    const value = result.ok ? (result.value as { attrs: Attrs; created?: boolean; open?: OpenResult }) : undefined;
    const opened = value?.open ? { fh: value.open.fh, version: value.open.version, sizeBytes: value.open.sizeBytes } : null;
    return { ...failureFields(result), attr: value ? attrOf(value.attrs) : null, created: value?.created ?? false, opened };
  }

  private handlers(): Handlers {
    const q = this.machine.query;
    const caller = (c: p.Caller | null): RuleCaller => requireCaller('caller', c);
    return {
      ...fileHandlers(this),
      OpenSession: async (r: p.OpenSessionRequest, call): Promise<p.OpenSessionReply> => {
        const ttlMs = sessionTtlMs(r.ttlMs, this.options.defaultSessionTtlMs, this.options.maxSessionTtlMs);
        const clientName = requireString('client_name', r.clientName, MAX_CLIENT_NAME_CHARS);
        if (!this.duties.hasRoom()) throw new NodeOverloadedError('sessions', this.options.maxSessions);
        const result = await this.propose({ op: 'openSession', ttlMs, clientName, nowMs: this.options.wallClockMs() }, call);
        if (!result.ok) return { ...failureFields(result), sessionId: 0, ttlMs: 0 };
        const opened = result.value as OpenSessionResult;
        this.duties.sessionOpened(opened.sessionId, opened.ttlMs);
        return { errno: 0, message: '', sessionId: opened.sessionId, ttlMs: opened.ttlMs };
      },
      KeepAlive: async (r: p.KeepAliveRequest, call): Promise<p.KeepAliveReply> => {
        const sessionId = requireId('session_id', r.sessionId);
        const ttlMs = this.duties.keepAlive(sessionId);
        if (ttlMs === undefined) return { errno: SESSION_EXPIRED_ERRNO, message: `session ${sessionId} is unknown, closed or expired`, sessionError: 'SESSION_EXPIRED', ttlMs: 0 };
        return { errno: 0, message: '', sessionError: '', ttlMs };
      },
      CloseSession: async (r: p.CloseSessionRequest, call): Promise<p.Reply> => {
        const result = await this.mutate(r.header, { op: 'closeSession' }, call);
        if (result.ok || (result as { session?: string }).session === 'SESSION_EXPIRED') this.duties.sessionClosed(r.header!.sessionId);
        return failureFields(result);
      },
      Lookup: async (r: p.LookupRequest, call): Promise<p.AttrReply> => {
        const c = caller(r.caller);
        const parent = requireId('parent', r.parent);
        const name = requireString('name', r.name);
        await this.linearizable(call);
        const result = await q.lookup(c, parent, name);
        return { ...failureFields(result), attr: result.ok ? attrOf(result.value) : null };
      },
      GetAttr: async (r: p.GetAttrRequest, call): Promise<p.AttrReply> => {
        const item = checkGetAttr('', r);
        await this.linearizable(call);
        return this.getattrReply(item);
      },
      GetAttrs: async (r: p.GetAttrsRequest, call): Promise<p.GetAttrsReply> => {
        const items = r.items ?? [];
        if (items.length > MAX_GETATTRS_ITEMS) throw new RequestError(`items holds ${items.length} getattrs, more than ${MAX_GETATTRS_ITEMS}`);
        const checked = items.map((item, i) => checkGetAttr(`items[${i}].`, item));
        await this.linearizable(call);
        return { items: await Promise.all(checked.map((item) => this.getattrReply(item))) };
      },
      ReadLink: async (r: p.ReadLinkRequest, call): Promise<p.ReadLinkReply> => {
        const handle = requireId('handle', r.handle);
        await this.linearizable(call);
        const result = await q.readlink(handle);
        return { errno: result.ok ? 0 : result.errno, message: result.ok ? '' : result.message, target: result.ok ? result.value : '' };
      },
      ReadDir: async (r: p.ReadDirRequest, call): Promise<p.ReadDirReply> => {
        const c = caller(r.caller);
        const parent = requireId('parent', r.parent);
        const cookie = requireString('cookie', r.cookie);
        const limit = requireUint('limit', r.limit, 0xffffffff) || Number.MAX_SAFE_INTEGER;
        await this.linearizable(call);
        const result = await q.readdir(c, parent, cookie === '' ? undefined : cookie, limit);
        if (!result.ok) return { errno: result.errno, message: result.message, entries: [], cookie: '' };
        return { errno: 0, message: '', entries: result.value.entries, cookie: result.value.cookie ?? '' };
      },
      GetXattr: async (r: p.GetXattrRequest, call): Promise<p.GetXattrReply> => {
        const c = caller(r.caller);
        const handle = requireId('handle', r.handle);
        const name = requireString('name', r.name);
        await this.linearizable(call);
        const result = await q.getxattr(c, handle, name);
        return { errno: result.ok ? 0 : result.errno, message: result.ok ? '' : result.message, value: result.ok ? result.value : new Uint8Array() };
      },
      ListXattr: async (r: p.ListXattrRequest, call): Promise<p.ListXattrReply> => {
        const c = caller(r.caller);
        const handle = requireId('handle', r.handle);
        await this.linearizable(call);
        const result = await q.listxattr(c, handle);
        return { errno: result.ok ? 0 : result.errno, message: result.ok ? '' : result.message, names: result.ok ? result.value : [] };
      },
      StatFs: async (_r, call): Promise<p.StatFsReply> => {
        await this.linearizable(call);
        const { readOnly, maxInodes, maxBlockBytes } = this.options.limits;
        const disk = await fs.promises.statfs(this.options.dataDir);
        return {
          errno: 0, message: '', ...(await q.statfs()), maxInodes, maxBlockBytes, readOnly, blockBytesStored: this.blocks.store.stats().bytes, diskFreeBytes: disk.bavail * disk.bsize,
        };
      },
      SetAttr: async (r: p.SetAttrRequest, call): Promise<p.AttrReply> => {
        const result = await this.mutate(r.header, {
          op: 'setattr',
          handle: requireId('handle', r.handle),
          mode: optionalUint('mode', r.mode),
          uid: optionalUint('uid', r.uid),
          gid: optionalUint('gid', r.gid),
          sizeBytes: optionalUint('size_bytes', r.sizeBytes),
          atime: timeSpec('atime', r.atime),
          mtime: timeSpec('mtime', r.mtime),
        }, call);
        return { ...failureFields(result), attr: result.ok ? attrOf(result.value as Attrs) : null };
      },
      Mkdir: async (r: p.MkdirRequest, call) => this.entryReply(await this.mutate(r.header, {
        op: 'mkdir', parent: requireId('parent', r.parent), name: requireString('name', r.name), mode: requireUint('mode', r.mode), umask: optionalUint('umask', r.umask),
      }, call)),
      Create: async (r: p.CreateRequest, call) => this.entryReply(await this.mutate(r.header, {
        op: 'create', parent: requireId('parent', r.parent), name: requireString('name', r.name), mode: requireUint('mode', r.mode), umask: optionalUint('umask', r.umask), exclusive: r.exclusive === true,
        ...(r.open ? { open: { read: r.open.read === true, write: r.open.write === true, append: r.open.append === true } } : {}),
      }, call)),
      Mknod: async (r: p.MknodRequest, call) => {
        if (!MKNOD_TYPES.has(r.fileType)) throw new RequestError(`file_type ${JSON.stringify(String(r.fileType).slice(0, 32))} is not reg, fifo, sock, chr or blk`);
        return this.entryReply(await this.mutate(r.header, {
          op: 'mknod', parent: requireId('parent', r.parent), name: requireString('name', r.name), fileType: r.fileType as 'reg',
          mode: requireUint('mode', r.mode), umask: optionalUint('umask', r.umask), rdev: requireUint('rdev', r.rdev, 0xffffffff),
        }, call));
      },
      Symlink: async (r: p.SymlinkRequest, call) => this.entryReply(await this.mutate(r.header, {
        op: 'symlink', parent: requireId('parent', r.parent), name: requireString('name', r.name), target: requireString('target', r.target),
      }, call)),
      Link: async (r: p.LinkRequest, call) => this.entryReply(await this.mutate(r.header, {
        op: 'link', handle: requireId('handle', r.handle), newParent: requireId('new_parent', r.newParent), newName: requireString('new_name', r.newName),
      }, call)),
      Unlink: async (r: p.UnlinkRequest, call) => failureFields(await this.mutate(r.header, { op: 'unlink', parent: requireId('parent', r.parent), name: requireString('name', r.name) }, call)),
      Rmdir: async (r: p.RmdirRequest, call) => failureFields(await this.mutate(r.header, { op: 'rmdir', parent: requireId('parent', r.parent), name: requireString('name', r.name) }, call)),
      Rename: async (r: p.RenameRequest, call) => failureFields(await this.mutate(r.header, {
        op: 'rename', fromParent: requireId('from_parent', r.fromParent), fromName: requireString('from_name', r.fromName),
        toParent: requireId('to_parent', r.toParent), toName: requireString('to_name', r.toName), noReplace: r.noReplace === true,
      }, call)),
      SetXattr: async (r: p.SetXattrRequest, call): Promise<p.Reply> => {
        requireHeader(r.header);
        const value = r.value instanceof Uint8Array ? r.value : new Uint8Array();
        // Too large is a POSIX answer (E2BIG), and one that no state can change: no need to propose it.
        const size = checkXattrValue(value);
        if (!size.ok) return { errno: size.errno, message: size.message, sessionError: '' };
        return failureFields(await this.mutate(r.header, {
          op: 'setxattr', handle: requireId('handle', r.handle), name: requireString('name', r.name),
          valueBase64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'), flags: requireUint('flags', r.flags, 0xffffffff),
        }, call));
      },
      RemoveXattr: async (r: p.RemoveXattrRequest, call) => failureFields(await this.mutate(r.header, {
        op: 'removexattr', handle: requireId('handle', r.handle), name: requireString('name', r.name),
      }, call)),
    };
  }

  /** The client's deadline, or the default request timeout from now when it set none. */
  private deadlineOf(call: grpc.ServerUnaryCall<unknown, unknown>): number {
    const deadline = call.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() : Number(deadline);
    return Number.isFinite(ms) && ms > 0 ? ms : Date.now() + this.options.requestTimeoutMs;
  }

  /** The grpc-js implementation: malformed bytes and bad fields → INVALID_ARGUMENT; node errors → their status. */
  implementation(): grpc.UntypedServiceImplementation {
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(this.handlers()) as Array<[string, (request: unknown, call: CallInfo) => Promise<unknown>]>) {
      implementation[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const request = call.request;
        if (isMalformedRequest(request)) {
          callback(grpcError(grpc.status.INVALID_ARGUMENT, request.malformed));
          return;
        }
        let answer: Promise<unknown>;
        try {
          answer = handler(request, { deadlineMs: this.deadlineOf(call) });
        } catch (error) {
          answer = Promise.reject(error);
        }
        answer.then((reply) => callback(null, reply), (error: unknown) => callback(this.statusOf(error)));
      };
    }
    return implementation;
  }
}

