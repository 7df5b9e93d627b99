/**
 * MetaClient: typed async methods for every metadata-server call, over a
 * LeaderChannel (leader following, deadlines) and a SessionKeeper (exactly
 * once, keepalive, expiry). Errno answers become MetaError; getattrs are
 * coalesced; readdir and listVersions page internally. Path helpers live in
 * paths.ts. Owns the call shapes; must never import anything but proto/ and
 * this folder.
 */
import { createHash } from 'node:crypto';
import * as p from '../../proto/meta-proto';
import { CommitConflictError, EBUSY, EINVAL, EIO, ENOENT, ENOTCONN, MetaError } from './errors';
import { BlockUploader, UploadStats } from './block-uploader';
import { GetAttrCoalescer } from './getattr-coalescer';
import { CallStats, LeaderChannel, Logger, READ_FROM_CHOICES, ReadFrom } from './leader-channel';
import { ClientSecurity, ClientTlsOptions, clientSecurityFromFiles } from '../../proto/tls';
import { SessionKeeper } from './session-keeper';
import * as paths from './paths';

export type { Attr, Caller, DirEntry, StatFsReply, VersionInfo } from '../../proto/meta-proto';

import { BLOCK_SIZE_BYTES, ROOT_HANDLE } from './constants';
/** One ReadFh asks for at most this (the server caps a read at 4 MiB - 64 KiB). */
export const READ_CHUNK_BYTES = 2 * 1024 * 1024;
const HAS_BLOCKS_MAX = 1024;
/** Pages of one readdir / listVersions (1,000 entries a page: a billion entries). */
const PAGES_MAX = 1_000_000;
/** Open fhs this client remembers the session of (beyond, the oldest are forgotten: readFh then sends the current session). */
const TRACKED_FHS_MAX = 100_000;

export interface MetaClientOptions {
  servers: string[];
  deadlineMs?: number;
  sessionTtlMs?: number;
  clientName?: string;
  caller?: p.Caller;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  logger?: Logger;
  /** One attempt's timeout before the next member is tried (default min(deadlineMs, 5,000)). */
  attemptTimeoutMs?: number;
  /** Called when an expired session was replaced: every fh of the old session is gone. */
  onSessionReplaced?: (oldSessionId: number, newSessionId: number) => void;
  /** TLS to the servers (PEM files): the cluster CA, and this client's certificate and key when the servers require one. */
  tls?: ClientTlsOptions;
  /** A bearer token sent with every call (servers started with --auth-token-file). */
  token?: string;
  /** Where read-only calls go first: 'leader' (default) or 'first-listed' (the first of `servers`; leader-channel.ts ReadFrom). */
  readFrom?: ReadFrom;
}

export type FileType = 'reg' | 'fifo' | 'sock' | 'chr' | 'blk';
export type TimeChange = 'now' | number;
export interface AttrChanges { mode?: number; uid?: number; gid?: number; sizeBytes?: number; atime?: TimeChange; mtime?: TimeChange }
export interface OpenFlags { read: boolean; write: boolean; append: boolean }
export interface OpenedFh { fh: number; version: number; sizeBytes: number }
/**
 * What an fh's commit carries. `truncatedTo`: the lowest size the fh cut the file to, when below
 * its base's size (O_TRUNC, ftruncate) — whatever it wrote afterwards; without it a whole-file
 * rewrite racing a longer concurrent write would keep that write's tail.
 */
export type CommitContent =
  | { kind: 'inline'; written: Array<{ offset: number; data: Uint8Array }>; newSize: number; truncatedTo?: number }
  | { kind: 'blocks'; blocks: string[]; writtenExtents: Array<{ offset: number; length: number }>; newSize: number; truncatedTo?: number };
export interface CommitOutcome { kind: string; version: number; sizeBytes: number; conflictVersion: number }
export type Policy = 'lww' | 'reject';

/** What MetaClient.stats reports (monotonic counters, for tests and operators). */
export interface ClientStats {
  calls: CallStats;
  getattr: { batches: number; items: number };
  session: { keepAlives: number; keepAliveFailures: number; windowFullRetries: number; sessionsOpened: number };
  uploads: UploadStats;
}

export class MetaClient {
  private readonly deadlineMs: number;
  private readonly caller: p.Caller;
  private readonly coalescer: GetAttrCoalescer;
  private readonly uploader: BlockUploader;
  /** fh → the session it was opened in. */
  private readonly fhSessions = new Map<number, number>();

  private constructor(private readonly channel: LeaderChannel, private readonly session: SessionKeeper, options: MetaClientOptions) {
    this.deadlineMs = options.deadlineMs ?? 30_000;
    this.caller = options.caller ?? { uid: 0, gid: 0, groups: [] };
    this.uploader = new BlockUploader(channel, {
      pin: async (ids, newBytes) => checked('PinBlocks', await this.mutate<p.PinBlocksReply>('PinBlocks', { ids, newBytes } satisfies Omit<p.PinBlocksRequest, 'header'>)).appliedIndex,
      putViaLeader: async (data, id) => {
        const reply = checked('PutBlock', await this.mutate<p.PutBlockReply>('PutBlock', { data, id } satisfies Omit<p.PutBlockRequest, 'header'>));
        if (reply.id !== id) throw new MetaError(EIO, `PutBlock answered id ${reply.id} for a block whose SHA-256 is ${id}`);
      },
    });
    this.coalescer = new GetAttrCoalescer(
      (item) => this.read<p.AttrReply>('GetAttr', item),
      (items) => this.read<p.GetAttrsReply>('GetAttrs', { items }),
    );
  }

  /** Opens a session on the cluster (following the leader) and starts its keepalive. */
  static async connect(options: MetaClientOptions): Promise<MetaClient> {
    const deadlineMs = options.deadlineMs ?? 30_000;
    if (!(deadlineMs > 0)) throw new MetaError(EINVAL, `deadlineMs must be > 0, got ${deadlineMs}`);
    const minBackoffMs = options.minBackoffMs ?? 25;
    const maxBackoffMs = options.maxBackoffMs ?? 1_000;
    if (!(minBackoffMs > 0 && maxBackoffMs >= minBackoffMs)) throw new MetaError(EINVAL, `backoff bounds must be 0 < min ≤ max, got ${minBackoffMs}..${maxBackoffMs}`);
    if (options.readFrom !== undefined && !READ_FROM_CHOICES.includes(options.readFrom)) {
      throw new MetaError(EINVAL, `readFrom must be one of ${READ_FROM_CHOICES.join(', ')}, got ${JSON.stringify(options.readFrom)}`);
    }
    let security: ClientSecurity;
    try {
      security = clientSecurityFromFiles(options.tls, options.token);
    } catch (error) {
      throw new MetaError(EINVAL, (error as Error).message);
    }
    const channel = new LeaderChannel({ servers: options.servers, minBackoffMs, maxBackoffMs, attemptTimeoutMs: options.attemptTimeoutMs ?? Math.min(deadlineMs, 5_000), logger: options.logger, security, readFrom: options.readFrom });
    const session = new SessionKeeper(channel, {
      ttlMs: options.sessionTtlMs ?? 0, clientName: options.clientName ?? `handlefs-sdk-${process.pid}`, minBackoffMs, maxBackoffMs,
      logger: options.logger, onSessionReplaced: options.onSessionReplaced,
    });
    try {
      await session.open(Date.now() + deadlineMs);
    } catch (error) {
      channel.close();
      throw error;
    }
    return new MetaClient(channel, session, options);
  }

  get sessionId(): number {
    return this.session.sessionId;
  }

  /** The handle of the directory this client may reach: the file system root, or its token's subtree (docs/security.md). */
  get rootHandle(): number {
    return this.session.rootHandle || ROOT_HANDLE;
  }

  /** The member this client sends leader-only calls to first. */
  get leaderAddress(): string | undefined {
    return this.channel.leader;
  }

  get stats(): ClientStats {
    return { calls: this.channel.stats, getattr: this.coalescer.stats, session: { ...this.session.stats, sessionsOpened: this.session.sessionsOpened }, uploads: { ...this.uploader.stats } };
  }

  async close(): Promise<void> {
    await this.session.close();
    this.channel.close();
  }

  // ---- namespace reads -------------------------------------------------------

  async lookup(parent: number, name: string, caller?: p.Caller): Promise<p.Attr> {
    return attrOf('Lookup', await this.read<p.AttrReply>('Lookup', { caller: this.who(caller), parent, name } satisfies p.LookupRequest));
  }

  async getattr(handle: number, generation = 0): Promise<p.Attr> {
    return attrOf('GetAttr', await this.coalescer.getattr({ handle, generation }));
  }

  async *readdir(parent: number, caller?: p.Caller): AsyncIterable<p.DirEntry> {
    let cookie = '';
    for (let page = 0; page < PAGES_MAX; page++) {
      const reply = checked('ReadDir', await this.read<p.ReadDirReply>('ReadDir', { caller: this.who(caller), parent, cookie, limit: 0 } satisfies p.ReadDirRequest));
      yield* reply.entries;
      if (reply.cookie === '') return;
      if (reply.cookie === cookie) throw new MetaError(EIO, `ReadDir(${parent}) answered the same cookie twice`);
      cookie = reply.cookie;
    }
    throw new MetaError(EIO, `ReadDir(${parent}) did not end within ${PAGES_MAX} pages`);
  }

  async readlink(handle: number): Promise<string> {
    return checked('ReadLink', await this.read<p.ReadLinkReply>('ReadLink', { handle } satisfies p.ReadLinkRequest)).target;
  }

  async statfs(): Promise<p.StatFsReply> {
    return checked('StatFs', await this.read<p.StatFsReply>('StatFs', {}));
  }

  async getxattr(handle: number, name: string, caller?: p.Caller): Promise<Uint8Array> {
    return checked('GetXattr', await this.read<p.GetXattrReply>('GetXattr', { caller: this.who(caller), handle, name } satisfies p.GetXattrRequest)).value;
  }

  async listxattr(handle: number, caller?: p.Caller): Promise<string[]> {
    return checked('ListXattr', await this.read<p.ListXattrReply>('ListXattr', { caller: this.who(caller), handle } satisfies p.ListXattrRequest)).names;
  }

  // ---- namespace mutations ---------------------------------------------------

  async setattr(handle: number, changes: AttrChanges, caller?: p.Caller): Promise<p.Attr> {
    const time = (t: TimeChange | undefined): p.TimeSpec | null => (t === undefined ? null : t === 'now' ? { now: true, ms: 0 } : { now: false, ms: t });
    const body: Omit<p.SetAttrRequest, 'header'> = { handle, mode: changes.mode, uid: changes.uid, gid: changes.gid, sizeBytes: changes.sizeBytes, atime: time(changes.atime), mtime: time(changes.mtime) };
    return attrOf('SetAttr', await this.mutate<p.AttrReply>('SetAttr', body, caller));
  }

  async mkdir(parent: number, name: string, mode: number, caller?: p.Caller, umask?: number): Promise<p.Attr> {
    return attrOf('Mkdir', await this.mutate<p.EntryReply>('Mkdir', { parent, name, mode, umask } satisfies Omit<p.MkdirRequest, 'header'>, caller));
  }

  async create(parent: number, name: string, mode: number, opts: { exclusive: boolean; open?: OpenFlags; umask?: number }, caller?: p.Caller): Promise<{ attr: p.Attr; created: boolean; opened?: OpenedFh }> {
    const body: Omit<p.CreateRequest, 'header'> = { parent, name, mode, umask: opts.umask, exclusive: opts.exclusive, open: opts.open ?? null };
    const reply = await this.mutate<p.EntryReply>('Create', body, caller);
    const attr = attrOf('Create', reply);
    if (!opts.open) return { attr, created: reply.created };
    if (!reply.opened) throw new MetaError(EIO, `Create(${parent}, ${JSON.stringify(name)}) with open flags answered no fh`);
    const opened = { fh: reply.opened.fh, version: reply.opened.version, sizeBytes: reply.opened.sizeBytes };
    this.trackFh(opened.fh);
    return { attr, created: reply.created, opened };
  }

  async mknod(parent: number, name: string, fileType: FileType, mode: number, rdev: number, caller?: p.Caller, umask?: number): Promise<p.Attr> {
    return attrOf('Mknod', await this.mutate<p.EntryReply>('Mknod', { parent, name, fileType, mode, rdev, umask } satisfies Omit<p.MknodRequest, 'header'>, caller));
  }

  async symlink(parent: number, name: string, target: string, caller?: p.Caller): Promise<p.Attr> {
    return attrOf('Symlink', await this.mutate<p.EntryReply>('Symlink', { parent, name, target } satisfies Omit<p.SymlinkRequest, 'header'>, caller));
  }

  async link(handle: number, newParent: number, newName: string, caller?: p.Caller): Promise<p.Attr> {
    return attrOf('Link', await this.mutate<p.EntryReply>('Link', { handle, newParent, newName } satisfies Omit<p.LinkRequest, 'header'>, caller));
  }

  async unlink(parent: number, name: string, caller?: p.Caller): Promise<void> {
    checked('Unlink', await this.mutate<p.Reply>('Unlink', { parent, name } satisfies Omit<p.UnlinkRequest, 'header'>, caller));
  }

  async rmdir(parent: number, name: string, caller?: p.Caller): Promise<void> {
    checked('Rmdir', await this.mutate<p.Reply>('Rmdir', { parent, name } satisfies Omit<p.RmdirRequest, 'header'>, caller));
  }

  async rename(fromParent: number, fromName: string, toParent: number, toName: string, opts: { noReplace?: boolean } = {}, caller?: p.Caller): Promise<void> {
    const body: Omit<p.RenameRequest, 'header'> = { fromParent, fromName, toParent, toName, noReplace: opts.noReplace === true };
    checked('Rename', await this.mutate<p.Reply>('Rename', body, caller));
  }

  async setxattr(handle: number, name: string, value: Uint8Array, flags: number, caller?: p.Caller): Promise<void> {
    checked('SetXattr', await this.mutate<p.Reply>('SetXattr', { handle, name, value, flags } satisfies Omit<p.SetXattrRequest, 'header'>, caller));
  }

  async removexattr(handle: number, name: string, caller?: p.Caller): Promise<void> {
    checked('RemoveXattr', await this.mutate<p.Reply>('RemoveXattr', { handle, name } satisfies Omit<p.RemoveXattrRequest, 'header'>, caller));
  }

  // ---- files and versions ----------------------------------------------------

  /** Opens the file: the fh belongs to this client's session and pins the head version. Namespace-like: a session expiry is retried. */
  async open(handle: number, flags: OpenFlags, caller?: p.Caller): Promise<{ fh: number; version: number; sizeBytes: number; attr: p.Attr | null }> {
    const reply = checked('Open', await this.mutate<p.OpenReply>('Open', { handle, ...flags } satisfies Omit<p.OpenRequest, 'header'>, caller));
    this.trackFh(reply.fh);
    return { fh: reply.fh, version: reply.version, sizeBytes: reply.sizeBytes, attr: reply.attr ?? null };
  }

  /** Releasing an fh whose session expired succeeds quietly: the expiry released it already. */
  async release(fh: number): Promise<void> {
    try {
      this.assertFhSession('Release', fh);
      checked('Release', await this.mutate<p.Reply>('Release', { fh } satisfies Omit<p.ReleaseRequest, 'header'>, undefined, true));
    } catch (error) {
      if (!(error instanceof MetaError && error.sessionError === 'SESSION_EXPIRED')) throw error;
    } finally {
      this.fhSessions.delete(fh);
    }
  }

  async commit(fh: number, baseVersion: number, content: CommitContent, opts: { policy?: Policy; release?: boolean } = {}): Promise<CommitOutcome> {
    this.assertFhSession('CommitVersion', fh);
    const policy = (opts.policy ?? 'lww') === 'lww' ? p.ConflictPolicy.LWW : p.ConflictPolicy.REJECT;
    const cut = content.truncatedTo !== undefined ? { truncated: true, truncatedTo: content.truncatedTo } : {};
    const body: Omit<p.CommitVersionRequest, 'header'> = content.kind === 'inline'
      ? { fh, baseVersion, written: content.written, newSize: content.newSize, policy, release: opts.release === true, ...cut }
      : { fh, baseVersion, written: [], newSize: content.newSize, policy, release: opts.release === true, blockForm: true, blocks: content.blocks, writtenExtents: content.writtenExtents, ...cut };
    const reply = await this.mutate<p.CommitVersionReply>('CommitVersion', body, undefined, true);
    if (reply.errno === EBUSY && reply.conflictCopy > 0) throw new CommitConflictError(`CommitVersion(fh ${fh}): ${reply.message}`, reply.conflictCopy, reply.headVersion);
    checked('CommitVersion', reply);
    if (opts.release === true) this.fhSessions.delete(fh);
    return { kind: reply.kind, version: reply.version, sizeBytes: reply.sizeBytes, conflictVersion: reply.conflictVersion };
  }

  /** Bytes of the version the fh pins; a length over READ_CHUNK_BYTES is read in several calls. */
  async readFh(fh: number, offset: number, length: number): Promise<{ data: Uint8Array; version: number; sizeBytes: number }> {
    const sessionId = this.assertFhSession('ReadFh', fh);
    const parts: Uint8Array[] = [];
    let version = 0;
    let sizeBytes = 0;
    let done = 0;
    do {
      const want = Math.min(READ_CHUNK_BYTES, length - done);
      const reply = checked('ReadFh', await this.read<p.ReadFhReply>('ReadFh', { fh, offset: offset + done, length: want, sessionId } satisfies p.ReadFhRequest));
      version = reply.version;
      sizeBytes = reply.sizeBytes;
      parts.push(reply.data);
      done += reply.data.byteLength;
      if (reply.data.byteLength < want) break;
    } while (done < length);
    return { data: parts.length === 1 ? parts[0] : Buffer.concat(parts), version, sizeBytes };
  }

  /** Uploads one block (≤ 1 MiB), pinned, to a majority of the members (block-uploader.ts); returns its id (SHA-256 hex). */
  async putBlock(data: Uint8Array): Promise<string> {
    if (data.byteLength > BLOCK_SIZE_BYTES) throw new MetaError(EINVAL, `putBlock: a block holds at most ${BLOCK_SIZE_BYTES} bytes, got ${data.byteLength}`);
    const id = sha256(data);
    await this.uploader.upload(data, id, Date.now() + this.deadlineMs);
    return id;
  }

  /** Pins a block a majority holds already: false when its bytes must be sent (putBlock). */
  async pinBlock(id: string): Promise<boolean> {
    const reply = await this.mutate<p.PutBlockReply>('PutBlock', { data: new Uint8Array(), id } satisfies Omit<p.PutBlockRequest, 'header'>);
    if (reply.errno === ENOENT) return false;
    checked('PutBlock', reply);
    return true;
  }

  /** A block from any member, its SHA-256 checked (EIO on a mismatch). */
  async getBlock(id: string): Promise<Uint8Array> {
    const reply = checked('GetBlock', await this.read<p.GetBlockReply>('GetBlock', { id } satisfies p.GetBlockRequest));
    const actual = sha256(reply.data);
    if (actual !== id) throw new MetaError(EIO, `GetBlock(${id}) answered bytes whose SHA-256 is ${actual}`);
    return reply.data;
  }

  async hasBlocks(ids: string[]): Promise<boolean[]> {
    const present: boolean[] = [];
    for (let start = 0; start < ids.length; start += HAS_BLOCKS_MAX) {
      const chunk = ids.slice(start, start + HAS_BLOCKS_MAX);
      const reply = await this.read<p.HasBlocksReply>('HasBlocks', { ids: chunk } satisfies p.HasBlocksRequest);
      if (reply.present.length !== chunk.length) throw new MetaError(EIO, `HasBlocks answered ${reply.present.length} flags for ${chunk.length} ids`);
      present.push(...reply.present);
    }
    return present;
  }

  /** Whole content of a version or conflict copy: its inline bytes, or its blocks fetched 4 at a time and checked (holes as zeros). */
  private async contentOf(info: { sizeBytes: number; blocks: string[]; blockSizeBytes: number }, inline: Uint8Array): Promise<Uint8Array> {
    if (info.blocks.length === 0) return inline;
    const content = Buffer.alloc(info.sizeBytes);
    await paths.boundedParallel(info.blocks.map((id, index) => async () => {
      if (id === '') return;
      const block = await this.getBlock(id);
      content.set(block.subarray(0, Math.max(0, Math.min(block.byteLength, info.sizeBytes - index * info.blockSizeBytes))), index * info.blockSizeBytes);
    }), paths.PARALLEL_BLOCKS);
    return content;
  }

  /** A kept version's metadata (its block ids, for block content) without fetching its content. */
  async versionInfo(handle: number, version: number, caller?: p.Caller): Promise<{ info: p.VersionInfo; inlineContent: Uint8Array }> {
    const reply = checked('GetVersion', await this.read<p.GetVersionReply>('GetVersion', { caller: this.who(caller), handle, version } satisfies p.GetVersionRequest));
    if (!reply.info) throw new MetaError(EIO, `GetVersion(${handle}, ${version}) answered no version info`);
    return { info: reply.info, inlineContent: reply.content };
  }

  /** A kept version and its whole content (block content fetched and checked, holes as zeros). */
  async getVersion(handle: number, version: number, caller?: p.Caller): Promise<{ info: p.VersionInfo; content: Uint8Array }> {
    const reply = checked('GetVersion', await this.read<p.GetVersionReply>('GetVersion', { caller: this.who(caller), handle, version } satisfies p.GetVersionRequest));
    if (!reply.info) throw new MetaError(EIO, `GetVersion(${handle}, ${version}) answered no version info`);
    return { info: reply.info, content: await this.contentOf(reply.info, reply.content) };
  }

  /** A rejected commit's content, kept beside the history (numbered 1, 2, ... per file), with block content fetched and checked. */
  async getConflictCopy(handle: number, copy: number, caller?: p.Caller): Promise<{ info: p.ConflictCopyInfo; content: Uint8Array }> {
    const reply = checked('GetConflictCopy', await this.read<p.GetConflictCopyReply>('GetConflictCopy', { caller: this.who(caller), handle, copy } satisfies p.GetConflictCopyRequest));
    if (!reply.info) throw new MetaError(EIO, `GetConflictCopy(${handle}, ${copy}) answered no info`);
    return { info: reply.info, content: await this.contentOf(reply.info, reply.content) };
  }

  async *listVersions(handle: number, caller?: p.Caller): AsyncIterable<p.VersionInfo> {
    let fromVersion = 0;
    for (let page = 0; page < PAGES_MAX; page++) {
      const reply = checked('ListVersions', await this.read<p.ListVersionsReply>('ListVersions', { caller: this.who(caller), handle, fromVersion, limit: 0 } satisfies p.ListVersionsRequest));
      yield* reply.versions;
      if (reply.nextFromVersion === 0) return;
      if (reply.nextFromVersion <= fromVersion) throw new MetaError(EIO, `ListVersions(${handle}) went backwards (${fromVersion} → ${reply.nextFromVersion})`);
      fromVersion = reply.nextFromVersion;
    }
    throw new MetaError(EIO, `ListVersions(${handle}) did not end within ${PAGES_MAX} pages`);
  }

  async restoreVersion(handle: number, version: number, caller?: p.Caller): Promise<{ version: number; sizeBytes: number }> {
    const reply = checked('RestoreVersion', await this.mutate<p.RestoreVersionReply>('RestoreVersion', { handle, version } satisfies Omit<p.RestoreVersionRequest, 'header'>, caller));
    return { version: reply.version, sizeBytes: reply.sizeBytes };
  }

  // ---- path helpers (paths.ts) -------------------------------------------------

  resolve(path: string, caller?: p.Caller, opts: { followLast?: boolean } = {}): Promise<p.Attr> {
    return paths.resolve(this, path, caller, opts.followLast === true);
  }

  /**
   * A whole file. Without `version`: through an fh that pins the head (an Open, one log entry).
   * `version: 'head'`: the head as of a linearizable lookup, fetched as a kept version (no log entry;
   * looked up again if retention drops it meanwhile). A number: that kept version.
   */
  readFile(path: string, opts: { version?: number | 'head' } = {}, caller?: p.Caller): Promise<Uint8Array> {
    return paths.readFile(this, path, opts, caller);
  }

  writeFile(path: string, data: Uint8Array, opts: { policy?: Policy; mode?: number } = {}, caller?: p.Caller): Promise<CommitOutcome> {
    return paths.writeFile(this, path, data, opts, caller);
  }

  // ---- plumbing ------------------------------------------------------------------

  private who(caller: p.Caller | undefined): p.Caller {
    return caller ?? this.caller;
  }

  private read<Res>(method: p.MetaMethod, request: object): Promise<Res> {
    return this.channel.call<Res>(method, request, Date.now() + this.deadlineMs);
  }

  private mutate<Res extends p.Reply>(method: p.MetaMethod, body: object, caller?: p.Caller, holdsFh = false): Promise<Res> {
    return this.session.mutate<Res>(method, body, this.who(caller), holdsFh, Date.now() + this.deadlineMs);
  }

  private trackFh(fh: number): void {
    if (this.fhSessions.size >= TRACKED_FHS_MAX) this.fhSessions.delete(this.fhSessions.keys().next().value as number);
    this.fhSessions.set(fh, this.session.sessionId);
  }

  /** The session an fh was opened in; ENOTCONN at once if that session was replaced since (its fhs died with it). */
  private assertFhSession(method: string, fh: number): number {
    const opened = this.fhSessions.get(fh);
    if (opened === undefined) return this.session.sessionId;
    if (opened !== this.session.sessionId) {
      throw new MetaError(ENOTCONN, `${method}(fh ${fh}): its session ${opened} expired (now session ${this.session.sessionId})`, 'SESSION_EXPIRED');
    }
    return opened;
  }
}

function checked<T extends p.ErrnoFields & { sessionError?: string }>(method: string, reply: T): T {
  if (reply.errno !== 0) throw new MetaError(reply.errno, `${method}: ${reply.message}`, reply.sessionError);
  return reply;
}

function attrOf(method: string, reply: p.AttrReply): p.Attr {
  checked(method, reply);
  if (!reply.attr) throw new MetaError(EIO, `${method} answered success without attributes`);
  return reply.attr;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
