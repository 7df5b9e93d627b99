/**
 * The metadata gRPC service (proto/metaserver.proto) over a RaftNode and the
 * MetaStateMachine. Mutations: check fields, stamp the leader's clock, encode
 * the command, propose, answer the state machine's result. Reads: ReadIndex,
 * then the machine's query (any member, issue 3 §5). Leader duties: session
 * keepalive tracking and expiry, driven by a timer here and decided by the
 * pure SessionTracker.
 * Owns the mapping of node errors to gRPC status codes and the member id →
 * client API address map used in NOT_LEADER hints. Must never read the state
 * for a reply before readIndex() resolved, never decide a POSIX answer itself
 * (apply does, so every member agrees), and never answer a POSIX error as a
 * gRPC error.
 */
import * as grpc from '@grpc/grpc-js';
import { NotLeaderError, ProposalRejectedError } from '../../raft/core/types';
import { RaftLogger } from '../../raft/node/node-logger';
import { NodeOverloadedError, NodeStoppedError, ProposalDroppedError, RaftTimeoutError } from '../../raft/node/pending';
import { RaftNode } from '../../raft/node/raft-node';
import { INLINE_LIMIT_BYTES } from '../rules/commit';
import { Errno, Result } from '../rules/errno';
import { checkXattrValue } from '../rules/names';
import { Caller as RuleCaller } from '../rules/permissions';
import { Command, MutationBody, TimeSpec as StateTimeSpec, encodeCommand } from '../state/commands';
import { CommitRejected, CommitResult, OpenResult } from '../state/fh-ops';
import { CommandResult, MetaStateMachine, OpenSessionResult, SESSION_EXPIRED_ERRNO } from '../state/meta-state-machine';
import { MAX_VERSIONS_LISTED, ConflictCopyInfo as StateConflictCopyInfo, VersionInfo as StateVersionInfo } from '../state/queries';
import { Attrs } from '../state/records';
import { MalformedRequest, isMalformedRequest } from '../../proto/grpc-method';
import * as p from './meta-proto';
import {
  MAX_CLIENT_NAME_CHARS, MAX_READ_LENGTH_BYTES, RequestError, inlineBytesOf, optionalUint, requireCaller, requireHeader, requireId, requirePolicy, requireString,
  requireUint, requireWritten, sessionTtlMs,
} from './request-checks';
import { SessionTracker } from './sessions';

export interface MetaServiceOptions {
  /** Member id → that member's client API address, for NOT_LEADER hints (the node only knows Raft addresses). */
  clientAddresses: ReadonlyMap<string, string>;
  /** How long a proposal or a ReadIndex waits for the cluster. */
  requestTimeoutMs: number;
  defaultSessionTtlMs: number;
  /** The largest TTL a client may ask for; also the grace of sessions inherited from an earlier leader. */
  maxSessionTtlMs: number;
  /** How often the leader looks for expired sessions. */
  expiryIntervalMs: number;
  /** expireSession proposals per round at most. */
  maxExpiriesPerRound: number;
  /** Sessions the leader tracks at most; OpenSession answers RESOURCE_EXHAUSTED beyond. */
  maxSessions: number;
  /** The wall clock stamped into commands (mtime/ctime). */
  wallClockMs: () => number;
  /** A monotonic clock for TTLs, so a wall-clock step never expires a session. */
  monotonicMs: () => number;
  logger: RaftLogger;
}

type RequestOf<M extends p.MetaMethod> = (typeof p.metaService)[M] extends grpc.MethodDefinition<infer Req, infer _Res> ? Exclude<Req, MalformedRequest> : never;
type ReplyOf<M extends p.MetaMethod> = (typeof p.metaService)[M] extends grpc.MethodDefinition<infer _Req, infer Res> ? Res : never;
type Handlers = { [M in p.MetaMethod]: (request: RequestOf<M>) => Promise<ReplyOf<M>> };

function grpcError(code: grpc.status, details: string, metadata?: grpc.Metadata): Partial<grpc.StatusObject> {
  return { code, details, metadata };
}

function failureFields(result: Result<unknown>): p.Reply {
  if (result.ok) return { errno: 0, message: '', sessionError: '' };
  const session = (result as { session?: string }).session;
  return { errno: result.errno, message: result.message, sessionError: session ?? '' };
}

function attrOf(attrs: Attrs): p.Attr {
  return { ...attrs };
}

function versionInfoOf(info: StateVersionInfo): p.VersionInfo {
  return {
    version: info.version, sizeBytes: info.sizeBytes, kind: info.kind, baseVersion: info.baseVersion, sessionId: info.sessionId, fh: info.fh ?? 0,
    commitTimeMs: info.commitTimeMs, mtimeMs: info.mtimeMs, changedExtents: info.changedExtents.map((e) => ({ offset: e.offset, length: e.length })),
    conflict: info.conflict, lostToVersion: info.lostToVersion ?? 0, overwroteVersion: info.overwroteVersion ?? 0,
  };
}

function conflictCopyInfoOf(info: StateConflictCopyInfo): p.ConflictCopyInfo {
  return { ...info, changedExtents: info.changedExtents.map((e) => ({ offset: e.offset, length: e.length })) };
}

const NO_COMMIT = { kind: '', version: 0, sizeBytes: 0, conflictVersion: 0, conflictCopy: 0, headVersion: 0 };

function timeSpec(field: string, spec: p.TimeSpec | null): StateTimeSpec | undefined {
  if (!spec) return undefined;
  return spec.now ? 'now' : requireUint(`${field}.ms`, spec.ms);
}

const MKNOD_TYPES = new Set(['reg', 'fifo', 'sock', 'chr', 'blk']);
/** Sessions opened while the leader is still loading its list, remembered until it is loaded. */
const MAX_OPENS_DURING_TAKEOVER = 10_000;
const LEADERSHIP_WATCH_MS = 50;

export class MetaService {
  private readonly tracker: SessionTracker;
  /** The term whose session list the tracker holds; 0 when not leading. */
  private trackedTerm = 0;
  private opensDuringTakeover: Array<{ sessionId: number; ttlMs: number }> = [];
  private timer: NodeJS.Timeout | undefined;
  private roundRunning = false;
  private lastExpiryScanMs = -Infinity;

  constructor(private readonly node: RaftNode, private readonly machine: MetaStateMachine, private readonly options: MetaServiceOptions) {
    this.tracker = new SessionTracker({ maxSessions: options.maxSessions });
  }

  /** Starts the leader-duty timer (session expiry). */
  start(): void {
    if (this.timer) return;
    // Leadership is watched often (a new leader answers KeepAlive only once it loaded its sessions); expiry scans run every expiryIntervalMs.
    this.timer = setInterval(() => void this.leaderRound(), Math.min(LEADERSHIP_WATCH_MS, this.options.expiryIntervalMs));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  // ---- leader duties ------------------------------------------------------

  /** One round: follow leadership changes, load sessions on takeover, expire what ran out. Rounds never overlap. */
  private async leaderRound(): Promise<void> {
    if (this.roundRunning) return;
    this.roundRunning = true;
    try {
      const status = this.node.status();
      if (status.role !== 'leader') {
        if (this.trackedTerm !== 0 || this.tracker.isLeading) this.tracker.stepDown();
        this.trackedTerm = 0;
        this.opensDuringTakeover = [];
        return;
      }
      if (this.trackedTerm !== status.term) {
        await this.takeOver(status.term);
        return;
      }
      const nowMs = this.options.monotonicMs();
      if (nowMs - this.lastExpiryScanMs < this.options.expiryIntervalMs) return;
      this.lastExpiryScanMs = nowMs;
      for (const sessionId of this.tracker.expiredAt(this.options.monotonicMs(), this.options.maxExpiriesPerRound)) {
        await this.node.propose(encodeCommand({ op: 'expireSession', sessionId, nowMs: this.options.wallClockMs() }), { timeoutMs: this.options.requestTimeoutMs });
        this.tracker.forget(sessionId);
        this.options.logger.info('session expired', { sessionId });
      }
    } catch (error) {
      this.options.logger.warn('session round failed', { error: (error as Error).message });
    } finally {
      this.roundRunning = false;
    }
  }

  /** Every session committed before this term gets a full TTL from now (issue 3 §1). */
  private async takeOver(term: number): Promise<void> {
    this.tracker.stepDown();
    this.trackedTerm = 0;
    // After a ReadIndex in this term, everything committed before it is applied here.
    await this.node.readIndex({ timeoutMs: this.options.requestTimeoutMs });
    const sessions = await this.machine.query.sessions();
    const now = this.node.status();
    if (now.role !== 'leader' || now.term !== term) return;
    this.tracker.becomeLeader(sessions, this.options.monotonicMs());
    for (const open of this.opensDuringTakeover) this.tracker.opened(open.sessionId, open.ttlMs, this.options.monotonicMs());
    this.opensDuringTakeover = [];
    this.trackedTerm = term;
    this.options.logger.info('session tracking started', { term, sessions: sessions.length });
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
    const address = this.options.clientAddresses.get(leaderId) ?? '';
    metadata.set(p.LEADER_ID_METADATA, leaderId);
    metadata.set(p.LEADER_ADDRESS_METADATA, address);
    return grpcError(grpc.status.FAILED_PRECONDITION, `not the leader; the leader is ${leaderId}${address ? ` at ${address}` : ' (client address unknown)'}`, metadata);
  }

  // ---- mutations and reads --------------------------------------------------

  private async mutate(header: p.Header | null, body: MutationBody): Promise<CommandResult> {
    const checked = requireHeader(header);
    return this.propose({ ...checked, nowMs: this.options.wallClockMs(), ...body } as Command);
  }

  private async propose(command: Command): Promise<CommandResult> {
    let data: Uint8Array;
    try {
      data = encodeCommand(command);
    } catch (error) {
      throw new RequestError((error as Error).message);
    }
    return (await this.node.propose(data, { timeoutMs: this.options.requestTimeoutMs })) as CommandResult;
  }

  private async linearizable(): Promise<void> {
    await this.node.readIndex({ timeoutMs: this.options.requestTimeoutMs });
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
      OpenSession: async (r: p.OpenSessionRequest): Promise<p.OpenSessionReply> => {
        const ttlMs = sessionTtlMs(r.ttlMs, this.options.defaultSessionTtlMs, this.options.maxSessionTtlMs);
        const clientName = requireString('client_name', r.clientName, MAX_CLIENT_NAME_CHARS);
        if (!this.tracker.hasRoom()) throw new NodeOverloadedError('sessions', this.options.maxSessions);
        const result = await this.propose({ op: 'openSession', ttlMs, clientName, nowMs: this.options.wallClockMs() });
        if (!result.ok) return { ...failureFields(result), sessionId: 0, ttlMs: 0 };
        const opened = result.value as OpenSessionResult;
        if (this.tracker.isLeading) this.tracker.opened(opened.sessionId, opened.ttlMs, this.options.monotonicMs());
        else if (this.opensDuringTakeover.length < MAX_OPENS_DURING_TAKEOVER) this.opensDuringTakeover.push({ sessionId: opened.sessionId, ttlMs: opened.ttlMs });
        return { errno: 0, message: '', sessionId: opened.sessionId, ttlMs: opened.ttlMs };
      },
      KeepAlive: async (r: p.KeepAliveRequest): Promise<p.KeepAliveReply> => {
        const sessionId = requireId('session_id', r.sessionId);
        const status = this.node.status();
        if (status.role !== 'leader') throw new NotLeaderError(status.leaderId, '');
        if (!this.tracker.isLeading || this.trackedTerm !== status.term) throw new NodeStoppedError('this leader is still loading its sessions; retry shortly');
        const ttlMs = this.tracker.keepAlive(sessionId, this.options.monotonicMs());
        if (ttlMs === undefined) return { errno: SESSION_EXPIRED_ERRNO, message: `session ${sessionId} is unknown, closed or expired`, sessionError: 'SESSION_EXPIRED', ttlMs: 0 };
        return { errno: 0, message: '', sessionError: '', ttlMs };
      },
      CloseSession: async (r: p.CloseSessionRequest): Promise<p.Reply> => {
        const result = await this.mutate(r.header, { op: 'closeSession' });
        if (this.tracker.isLeading && (result.ok || (result as { session?: string }).session === 'SESSION_EXPIRED')) this.tracker.forget(r.header!.sessionId);
        return failureFields(result);
      },
      Lookup: async (r: p.LookupRequest): Promise<p.AttrReply> => {
        const c = caller(r.caller);
        const parent = requireId('parent', r.parent);
        const name = requireString('name', r.name);
        await this.linearizable();
        const result = await q.lookup(c, parent, name);
        return { ...failureFields(result), attr: result.ok ? attrOf(result.value) : null };
      },
      GetAttr: async (r: p.GetAttrRequest): Promise<p.AttrReply> => {
        const handle = requireId('handle', r.handle);
        const generation = requireUint('generation', r.generation);
        await this.linearizable();
        const result = await q.getattr(handle, generation === 0 ? undefined : generation);
        return { ...failureFields(result), attr: result.ok ? attrOf(result.value) : null };
      },
      ReadLink: async (r: p.ReadLinkRequest): Promise<p.ReadLinkReply> => {
        const handle = requireId('handle', r.handle);
        await this.linearizable();
        const result = await q.readlink(handle);
        return { errno: result.ok ? 0 : result.errno, message: result.ok ? '' : result.message, target: result.ok ? result.value : '' };
      },
      ReadDir: async (r: p.ReadDirRequest): Promise<p.ReadDirReply> => {
        const c = caller(r.caller);
        const parent = requireId('parent', r.parent);
        const cookie = requireString('cookie', r.cookie);
        const limit = requireUint('limit', r.limit, 0xffffffff) || Number.MAX_SAFE_INTEGER;
        await this.linearizable();
        const result = await q.readdir(c, parent, cookie === '' ? undefined : cookie, limit);
        if (!result.ok) return { errno: result.errno, message: result.message, entries: [], cookie: '' };
        return { errno: 0, message: '', entries: result.value.entries, cookie: result.value.cookie ?? '' };
      },
      GetXattr: async (r: p.GetXattrRequest): Promise<p.GetXattrReply> => {
        const c = caller(r.caller);
        const handle = requireId('handle', r.handle);
        const name = requireString('name', r.name);
        await this.linearizable();
        const result = await q.getxattr(c, handle, name);
        return { errno: result.ok ? 0 : result.errno, message: result.ok ? '' : result.message, value: result.ok ? result.value : new Uint8Array() };
      },
      ListXattr: async (r: p.ListXattrRequest): Promise<p.ListXattrReply> => {
        const c = caller(r.caller);
        const handle = requireId('handle', r.handle);
        await this.linearizable();
        const result = await q.listxattr(c, handle);
        return { errno: result.ok ? 0 : result.errno, message: result.ok ? '' : result.message, names: result.ok ? result.value : [] };
      },
      StatFs: async (): Promise<p.StatFsReply> => {
        await this.linearizable();
        return { errno: 0, message: '', ...(await q.statfs()) };
      },
      SetAttr: async (r: p.SetAttrRequest): Promise<p.AttrReply> => {
        const result = await this.mutate(r.header, {
          op: 'setattr',
          handle: requireId('handle', r.handle),
          mode: optionalUint('mode', r.mode),
          uid: optionalUint('uid', r.uid),
          gid: optionalUint('gid', r.gid),
          sizeBytes: optionalUint('size_bytes', r.sizeBytes),
          atime: timeSpec('atime', r.atime),
          mtime: timeSpec('mtime', r.mtime),
        });
        return { ...failureFields(result), attr: result.ok ? attrOf(result.value as Attrs) : null };
      },
      Mkdir: async (r: p.MkdirRequest) => this.entryReply(await this.mutate(r.header, {
        op: 'mkdir', parent: requireId('parent', r.parent), name: requireString('name', r.name), mode: requireUint('mode', r.mode), umask: optionalUint('umask', r.umask),
      })),
      Create: async (r: p.CreateRequest) => this.entryReply(await this.mutate(r.header, {
        op: 'create', parent: requireId('parent', r.parent), name: requireString('name', r.name), mode: requireUint('mode', r.mode), umask: optionalUint('umask', r.umask), exclusive: r.exclusive === true,
        ...(r.open ? { open: { read: r.open.read === true, write: r.open.write === true, append: r.open.append === true } } : {}),
      })),
      Mknod: async (r: p.MknodRequest) => {
        if (!MKNOD_TYPES.has(r.fileType)) throw new RequestError(`file_type ${JSON.stringify(String(r.fileType).slice(0, 32))} is not reg, fifo, sock, chr or blk`);
        return this.entryReply(await this.mutate(r.header, {
          op: 'mknod', parent: requireId('parent', r.parent), name: requireString('name', r.name), fileType: r.fileType as 'reg',
          mode: requireUint('mode', r.mode), umask: optionalUint('umask', r.umask), rdev: requireUint('rdev', r.rdev, 0xffffffff),
        }));
      },
      Symlink: async (r: p.SymlinkRequest) => this.entryReply(await this.mutate(r.header, {
        op: 'symlink', parent: requireId('parent', r.parent), name: requireString('name', r.name), target: requireString('target', r.target),
      })),
      Link: async (r: p.LinkRequest) => this.entryReply(await this.mutate(r.header, {
        op: 'link', handle: requireId('handle', r.handle), newParent: requireId('new_parent', r.newParent), newName: requireString('new_name', r.newName),
      })),
      Unlink: async (r: p.UnlinkRequest) => failureFields(await this.mutate(r.header, { op: 'unlink', parent: requireId('parent', r.parent), name: requireString('name', r.name) })),
      Rmdir: async (r: p.RmdirRequest) => failureFields(await this.mutate(r.header, { op: 'rmdir', parent: requireId('parent', r.parent), name: requireString('name', r.name) })),
      Rename: async (r: p.RenameRequest) => failureFields(await this.mutate(r.header, {
        op: 'rename', fromParent: requireId('from_parent', r.fromParent), fromName: requireString('from_name', r.fromName),
        toParent: requireId('to_parent', r.toParent), toName: requireString('to_name', r.toName), noReplace: r.noReplace === true,
      })),
      SetXattr: async (r: p.SetXattrRequest): Promise<p.Reply> => {
        requireHeader(r.header);
        const value = r.value instanceof Uint8Array ? r.value : new Uint8Array();
        // Too large is a POSIX answer (E2BIG), and one that no state can change: no need to propose it.
        const size = checkXattrValue(value);
        if (!size.ok) return { errno: size.errno, message: size.message, sessionError: '' };
        return failureFields(await this.mutate(r.header, {
          op: 'setxattr', handle: requireId('handle', r.handle), name: requireString('name', r.name),
          valueBase64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'), flags: requireUint('flags', r.flags, 0xffffffff),
        }));
      },
      RemoveXattr: async (r: p.RemoveXattrRequest) => failureFields(await this.mutate(r.header, {
        op: 'removexattr', handle: requireId('handle', r.handle), name: requireString('name', r.name),
      })),
      ReadFh: async (r: p.ReadFhRequest): Promise<p.ReadFhReply> => {
        const fh = requireId('fh', r.fh);
        const offset = requireUint('offset', r.offset);
        const length = requireUint('length', r.length, MAX_READ_LENGTH_BYTES);
        const sessionId = requireUint('session_id', r.sessionId);
        await this.linearizable();
        const result = await q.readThroughFh(fh, sessionId === 0 ? undefined : sessionId);
        if (!result.ok) return { errno: result.errno, message: result.message, data: new Uint8Array(), version: 0, sizeBytes: 0 };
        const { info, bytes } = result.value;
        const start = Math.min(offset, bytes.byteLength);
        return { errno: 0, message: '', data: bytes.subarray(start, Math.min(bytes.byteLength, start + length)), version: info.version, sizeBytes: info.sizeBytes };
      },
      GetVersion: async (r: p.GetVersionRequest): Promise<p.GetVersionReply> => {
        const c = caller(r.caller);
        const handle = requireId('handle', r.handle);
        const version = requireId('version', r.version);
        await this.linearizable();
        const result = await q.getVersion(c, handle, version);
        if (!result.ok) return { errno: result.errno, message: result.message, info: null, content: new Uint8Array() };
        return { errno: 0, message: '', info: versionInfoOf(result.value.info), content: result.value.bytes };
      },
      ListVersions: async (r: p.ListVersionsRequest): Promise<p.ListVersionsReply> => {
        const c = caller(r.caller);
        const handle = requireId('handle', r.handle);
        const fromVersion = requireUint('from_version', r.fromVersion) || 1;
        const pageSize = Math.min(requireUint('limit', r.limit, 0xffffffff) || MAX_VERSIONS_LISTED, MAX_VERSIONS_LISTED);
        await this.linearizable();
        const result = await q.listVersions(c, handle, fromVersion, pageSize);
        if (!result.ok) return { errno: result.errno, message: result.message, versions: [], nextFromVersion: 0 };
        const versions = result.value.map(versionInfoOf);
        // Versions are numbered by key order, so the next page starts after the last one listed.
        const nextFromVersion = versions.length === pageSize ? versions[versions.length - 1].version + 1 : 0;
        return { errno: 0, message: '', versions, nextFromVersion };
      },
      GetConflictCopy: async (r: p.GetConflictCopyRequest): Promise<p.GetConflictCopyReply> => {
        const c = caller(r.caller);
        const handle = requireId('handle', r.handle);
        const copy = requireId('copy', r.copy);
        await this.linearizable();
        const result = await q.getConflictCopy(c, handle, copy);
        if (!result.ok) return { errno: result.errno, message: result.message, info: null, content: new Uint8Array() };
        return { errno: 0, message: '', info: conflictCopyInfoOf(result.value.info), content: result.value.bytes };
      },
      Open: async (r: p.OpenRequest): Promise<p.OpenReply> => {
        const handle = requireId('handle', r.handle);
        const result = await this.mutate(r.header, { op: 'open', handle, read: r.read === true, write: r.write === true, append: r.append === true });
        if (!result.ok) return { ...failureFields(result), fh: 0, version: 0, sizeBytes: 0, attr: null };
        const opened = result.value as OpenResult;
        // The open has applied on this member (propose resolved), so these attrs are at least as new as it.
        const attrs = await q.getattr(handle);
        return { ...failureFields(result), fh: opened.fh, version: opened.version, sizeBytes: opened.sizeBytes, attr: attrs.ok ? attrOf(attrs.value) : null };
      },
      Release: async (r: p.ReleaseRequest) => failureFields(await this.mutate(r.header, { op: 'release', fh: requireId('fh', r.fh) })),
      CommitVersion: async (r: p.CommitVersionRequest): Promise<p.CommitVersionReply> => {
        requireHeader(r.header);
        const fh = requireId('fh', r.fh);
        const baseVersion = requireId('base_version', r.baseVersion);
        const newSize = requireUint('new_size', r.newSize);
        const policy = requirePolicy(r.policy);
        const written = requireWritten(r.written);
        // Over the inline limit is a POSIX answer no state can change (as SetXattr's E2BIG): not proposed, and never near the command size cap.
        const carriedBytes = inlineBytesOf(r.written);
        if (carriedBytes > INLINE_LIMIT_BYTES) {
          return { errno: Errno.EFBIG, message: `a commit carries at most ${INLINE_LIMIT_BYTES} bytes of inline content, this one ${carriedBytes}; block content is not supported yet`, sessionError: '', ...NO_COMMIT };
        }
        const result = await this.mutate(r.header, { op: 'commitVersion', fh, baseVersion, written, newSize, policy });
        if (!result.ok) {
          const rejected = result as Partial<CommitRejected>;
          return { ...failureFields(result), ...NO_COMMIT, conflictCopy: rejected.conflictCopy ?? 0, headVersion: rejected.headVersion ?? 0 };
        }
        const committed = result.value as CommitResult;
        return {
          ...failureFields(result), ...NO_COMMIT, kind: committed.kind, version: committed.version, sizeBytes: committed.sizeBytes,
          conflictVersion: committed.conflictVersion ?? 0,
        };
      },
    };
  }

  /** The grpc-js implementation: malformed bytes and bad fields → INVALID_ARGUMENT; node errors → their status. */
  implementation(): grpc.UntypedServiceImplementation {
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(this.handlers()) as Array<[string, (request: unknown) => Promise<unknown>]>) {
      implementation[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const request = call.request;
        if (isMalformedRequest(request)) {
          callback(grpcError(grpc.status.INVALID_ARGUMENT, request.malformed));
          return;
        }
        let answer: Promise<unknown>;
        try {
          answer = handler(request);
        } catch (error) {
          answer = Promise.reject(error);
        }
        answer.then((reply) => callback(null, reply), (error: unknown) => callback(this.statusOf(error)));
      };
    }
    return implementation;
  }
}

