/**
 * The FileSystemBackend over the metadata cluster (client/sdk): paths resolve
 * to handles through the servers (with a short-lived entry cache), every open
 * is an fh on the leader pinning the version it reads, writes go into the
 * fh's WriteBuffer and are committed as a new version on flush, fsync and
 * close — durable on a quorum before those return. Owns the open-file table,
 * the mapping of POSIX calls to SDK calls and of SDK errors to errnos. Must
 * never answer a close or fsync before its commit is acknowledged, and never
 * drop a write silently: a failed commit comes back from flush/fsync/close.
 *
 * Reads come from the pinned version's content: inline bytes, or blocks
 * through the mount's block cache (content-addressed, so never stale) with
 * one block of read-ahead. `/.versions/<path>/<N>` (versions-view.ts) opens
 * kept versions read-only through the same reading path.
 */
import { constants as C } from 'fs';
import { BLOCK_SIZE_BYTES, MetaClient, MetaError } from '../sdk';
import type { Attr, Caller, Policy } from '../sdk';
import { CallerContext, FileStat, FileSystemBackend, StatFs, TimeArg, fsError } from './filesystem';
import { BlockCache } from './block-cache';
import { VersionsView, isVersionsPath } from './versions-view';
import { FileContent, OpenFile, requireFileSize } from './file-content';

const O_ACCMODE = 3;
/** The mount acting for the kernel (a change the kernel made on a writer's behalf). */
const ROOT_CALLER: Caller = { uid: 0, gid: 0, groups: [] };
/** Entry cache: path → handle, this long (the kernel caches entries for entry_timeout as well). */
const DEFAULT_ENTRY_CACHE_MS = 1_000;
/** Releases of clean fhs on their way at once (release() waits beyond this); the SDK bounds the session window anyway. */
const RELEASES_IN_FLIGHT_MAX = 64;
/** Attributes this long, in the mount (not the kernel): stat of a file another mount changed is at most this old; open is always fresh. */
const ATTR_CACHE_MS = 1_000;
const MAX_CACHED_ENTRIES = 100_000;
const MAX_OPEN_FILES = 100_000;
const NAME_MAX_BYTES = 255;

export interface MetaBackendOptions {
  policy?: Policy;
  readOnly?: boolean;
  entryCacheMs?: number;
  /** Memory for block contents this mount read or wrote (default 256 MiB). */
  blockCacheBytes?: number;
  log?: (line: string) => void;
  /**
   * The directory shown as the mount's root (--subdir, resolved by resolveMountRoot); default: the
   * session's root (the file system root, or the token's subtree).
   */
  rootHandle?: number;
  /** Called with the errno name of every failed commit (flush, fsync, close, release): for the mount's metrics. */
  onCommitFailure?: (errno: string) => void;
}

const DEFAULT_BLOCK_CACHE_BYTES = 256 * 1024 * 1024;

function entryKey(ctx: CallerContext, path: string): string {
  return `${ctx.uid}:${ctx.gid}${path}`;
}

function callerOf(ctx: CallerContext): Caller {
  return { uid: ctx.uid, gid: ctx.gid, groups: [] };
}

function split(path: string): string[] {
  if (!path.startsWith('/')) throw fsError('EINVAL', `relative path ${path}`);
  return path.split('/').filter((part) => part.length > 0);
}

function parentAndName(path: string): { parentPath: string; name: string } {
  const parts = split(path);
  const name = parts.pop();
  if (name === undefined) throw fsError('EINVAL', 'the root has no parent');
  // fuse-native hands names over as JavaScript strings, decoding bytes that are not UTF-8 to U+FFFD: such a name
  // would be stored as something else than what the application asked for, so it is refused instead.
  if (name.includes('\uFFFD')) throw fsError('EILSEQ', `the name ${JSON.stringify(name)} is not valid UTF-8 (handlefs names are UTF-8)`);
  if (Buffer.byteLength(name, 'utf8') > NAME_MAX_BYTES) throw fsError('ENAMETOOLONG', `${name.length}-character name`);
  return { parentPath: '/' + parts.join('/'), name };
}

const TYPE_BITS: Record<string, number> = { reg: C.S_IFREG, dir: C.S_IFDIR, lnk: C.S_IFLNK, fifo: C.S_IFIFO, sock: C.S_IFSOCK, chr: C.S_IFCHR, blk: C.S_IFBLK };

function statOf(attr: Attr): FileStat {
  return {
    mode: (TYPE_BITS[attr.type] ?? C.S_IFREG) | attr.mode, uid: attr.uid, gid: attr.gid, sizeBytes: attr.sizeBytes, nlink: attr.nlink, ino: attr.handle,
    rdev: attr.rdev, blksizeBytes: BLOCK_SIZE_BYTES, blocks: Math.ceil(attr.sizeBytes / 512), atimeMs: attr.atimeMs, mtimeMs: attr.mtimeMs, ctimeMs: attr.ctimeMs,
  };
}

function fileTypeOf(mode: number): 'reg' | 'fifo' | 'sock' | 'chr' | 'blk' {
  switch (mode & C.S_IFMT) {
    case C.S_IFIFO: return 'fifo';
    case C.S_IFSOCK: return 'sock';
    case C.S_IFCHR: return 'chr';
    case C.S_IFBLK: return 'blk';
    default: return 'reg';
  }
}

function openFlagsOf(flags: number): { read: boolean; write: boolean; append: boolean } {
  const access = flags & O_ACCMODE;
  return { read: access !== C.O_WRONLY, write: access !== C.O_RDONLY, append: (flags & C.O_APPEND) !== 0 };
}

/**
 * The handle of `subdir` (a --subdir path, relative to the session's root), checked to be a
 * directory: the root a mount restricted to a subtree shows (like ceph-fuse -r or JuiceFS --subdir).
 * The walk is the mount's own (root caller), so the mounting user needs no search permission on the way.
 */
export async function resolveMountRoot(sdk: MetaClient, subdir: string): Promise<number> {
  let handle = sdk.rootHandle;
  for (const part of split(subdir)) {
    if (part === '.' || part === '..') throw new Error(`--subdir ${subdir}: "." and ".." are not allowed`);
    let attr: Attr;
    try {
      attr = await sdk.lookup(handle, part, ROOT_CALLER);
    } catch (error) {
      throw new Error(`--subdir ${subdir}: cannot look up ${JSON.stringify(part)}: ${(error as Error).message}`);
    }
    if (attr.type !== 'dir') throw new Error(`--subdir ${subdir}: ${JSON.stringify(part)} is a ${attr.type}, not a directory`);
    handle = attr.handle;
  }
  return handle;
}

export class MetaBackend implements FileSystemBackend<number> {
  private readonly files = new Map<number, OpenFile>();
  private readonly releasesInFlight = new Set<Promise<void>>();
  private nextLocalFh = 1;
  private readonly entries = new Map<string, { handle: number; untilMs: number }>();
  private readonly policy: Policy;
  private readonly entryCacheMs: number;
  private readonly content: FileContent;
  private readonly versions: VersionsView;
  private readonly attrCache = new Map<number, { attr: Attr; untilMs: number }>();
  /** Counts this mount's changes (attrsChanged): an answer read before the latest one is not cached. */
  private attrEpoch = 0;
  private readonly log: (line: string) => void;
  private readonly rootHandle: number;

  constructor(private readonly sdk: MetaClient, private readonly options: MetaBackendOptions = {}) {
    this.policy = options.policy ?? 'lww';
    this.entryCacheMs = options.entryCacheMs ?? DEFAULT_ENTRY_CACHE_MS;
    this.log = options.log ?? (() => {});
    this.rootHandle = options.rootHandle ?? sdk.rootHandle;
    this.content = new FileContent(sdk, new BlockCache((id) => this.sdk.getBlock(id), options.blockCacheBytes ?? DEFAULT_BLOCK_CACHE_BYTES), this.policy);
    this.versions = new VersionsView(sdk, (caller, realPath) => this.handleOf({ uid: caller.uid, gid: caller.gid, pid: 0, umask: 0 }, realPath));
  }

  /** Every change under /.versions answers EROFS. */
  private guardChange(...paths: string[]): void {
    this.guardWritable();
    if (paths.some(isVersionsPath)) throw fsError('EROFS', 'the versions under /.versions are read-only');
  }

  // ---- paths -------------------------------------------------------------------

  /** The handle a path names; `fresh` skips the entry cache for the last component (open: close-to-open must see renames). */
  private async handleOf(ctx: CallerContext, path: string, fresh = false): Promise<number> {
    const parts = split(path);
    let handle = this.rootHandle;
    let walked = '';
    for (const [i, part] of parts.entries()) {
      walked += '/' + part;
      const cached = this.entries.get(entryKey(ctx, walked));
      const last = i === parts.length - 1;
      if (cached && cached.untilMs > Date.now() && !(fresh && last)) {
        handle = cached.handle;
        continue;
      }
      const epoch = this.attrEpoch;
      const attr = await this.sdk.lookup(handle, part, callerOf(ctx));
      handle = attr.handle;
      this.remember(ctx, walked, handle);
      // The lookup answered the attributes too: the getattr the kernel sends next needs no round trip.
      this.storeAttr(attr, epoch);
    }
    return handle;
  }

  /** What `ctx` looked up (entries are per caller: the servers checked that caller's search permission on the way). */
  private remember(ctx: CallerContext, path: string, handle: number): void {
    if (this.entries.size >= MAX_CACHED_ENTRIES) this.entries.clear();
    this.entries.set(entryKey(ctx, path), { handle, untilMs: Date.now() + this.entryCacheMs });
  }

  /** Forgets a path and everything below it, for every caller (after this mount renamed or removed it). */
  private forget(path: string): void {
    for (const key of this.entries.keys()) {
      const keyPath = key.slice(key.indexOf('/'));
      if (keyPath === path || keyPath.startsWith(path + '/')) this.entries.delete(key);
    }
  }

  /**
   * Runs an operation that resolved paths through the entry cache; if the
   * servers answer ESTALE (a cached handle was removed by another mount), the
   * paths' cached entries go and the operation runs once more, resolving anew.
   */
  private async uncached<T>(paths: string[], run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof MetaError) || error.code !== 'ESTALE') throw error;
      for (const path of paths) {
        const parts = split(path);
        for (let i = 1; i <= parts.length; i++) this.forget('/' + parts.slice(0, i).join('/'));
      }
      return run();
    }
  }

  /** The file an attribute call acts on: the one `openFh` holds open (its path may be gone), else the path's. */
  private async targetOf(ctx: CallerContext, path: string, openFh: number | undefined): Promise<number> {
    return openFh !== undefined ? this.file(openFh).handle : this.handleOf(ctx, path);
  }

  private async parentOf(ctx: CallerContext, path: string): Promise<{ parent: number; name: string }> {
    const { parentPath, name } = parentAndName(path);
    return { parent: await this.handleOf(ctx, parentPath), name };
  }

  private file(fh: number): OpenFile {
    const file = this.files.get(fh);
    if (!file) throw fsError('EBADF', `fh ${fh} is not open`);
    return file;
  }

  private guardWritable(): void {
    if (this.options.readOnly) throw fsError('EROFS', 'mounted read-only');
  }

  // ---- attributes --------------------------------------------------------------

  async getattr(ctx: CallerContext, path: string): Promise<FileStat> {
    if (isVersionsPath(path)) return this.versions.getattr(callerOf(ctx), path);
    return this.uncached([path], async () => {
      const handle = await this.handleOf(ctx, path);
      return this.statOfHandle(handle);
    });
  }

  async fgetattr(ctx: CallerContext, path: string, fh: number): Promise<FileStat> {
    const file = this.file(fh);
    if (file.versionView) return this.versions.getattr(callerOf(ctx), path);
    return this.statOfHandle(file.handle, file);
  }

  /** The server's attributes, with the size of a write this mount has not committed yet (read-your-writes for stat). */
  /**
   * A handle's attributes, cached for ATTR_CACHE_MS (the kernel caches none:
   * see fuse-host.ts). An open stores the attributes it read, so what a
   * reader sees after open is never older than the open (close-to-open);
   * anything this mount changes drops the cache.
   */
  private async attrOf(handle: number): Promise<Attr> {
    const cached = this.attrCache.get(handle);
    if (cached && cached.untilMs > Date.now()) return cached.attr;
    const epoch = this.attrEpoch;
    const attr = await this.sdk.getattr(handle);
    this.storeAttr(attr, epoch);
    return attr;
  }

  /**
   * Caches attributes a call read, unless this mount changed something since that call began
   * (`epoch`): an answer from before a commit arriving after it must not refill the cache with
   * the old size (a chaos run read its own 10-byte write back as 9 bytes that way).
   */
  private storeAttr(attr: Attr | null | undefined, epoch: number): void {
    if (!attr || epoch !== this.attrEpoch) return;
    // Nor may a slow answer replace a newer version's attributes another call stored meanwhile.
    const cached = this.attrCache.get(attr.handle);
    if (cached && (cached.attr.headVersion ?? 0) > (attr.headVersion ?? 0)) return;
    if (this.attrCache.size >= MAX_CACHED_ENTRIES) this.attrCache.clear();
    this.attrCache.set(attr.handle, { attr, untilMs: Date.now() + ATTR_CACHE_MS });
  }

  /** This mount changed something: cached attributes (sizes, link counts, times of parents) may all be stale. */
  private attrsChanged(): void {
    this.attrEpoch++;
    this.attrCache.clear();
  }

  /**
   * A handle's attributes; the size is what this mount reads: an unflushed write's size when any
   * fh of the mount holds one; else, while the file is open here, the size of the version the fh
   * pins (asked through that fh, or the newest pinned one: the kernel's fstat asks by path). A size
   * from a version committed elsewhere after the open made readers cut the version they read short
   * (Node's readFile reads fstat's size): the chaos runs' linearizability checker caught it.
   */
  private async statOfHandle(handle: number, through?: OpenFile): Promise<FileStat> {
    const stat = statOf(await this.attrOf(handle));
    let dirty = false;
    let newestPinned: OpenFile | undefined;
    for (const file of this.files.values()) {
      if (file.handle !== handle || file.versionView) continue;
      if (file.buffer?.dirty) {
        stat.sizeBytes = file.buffer.size;
        dirty = true;
      } else if (!newestPinned || file.version > newestPinned.version) {
        newestPinned = file;
      }
    }
    const pinned = through && !through.versionView ? through : newestPinned;
    if (!dirty && pinned) stat.sizeBytes = pinned.baseSizeBytes;
    stat.blocks = Math.ceil(stat.sizeBytes / 512);
    return stat;
  }

  async access(ctx: CallerContext, path: string, mode: number): Promise<void> {
    if (isVersionsPath(path)) {
      await this.versions.getattr(callerOf(ctx), path);
      if ((mode & C.W_OK) !== 0) throw fsError('EROFS');
      return;
    }
    return this.uncached([path], async () => {
      const attr = await this.attrOf(await this.handleOf(ctx, path));
      if (mode === C.F_OK) return;
      if (ctx.uid === 0) {
        // root may do anything but execute a file nobody may execute.
        if ((mode & C.X_OK) !== 0 && attr.type !== 'dir' && (attr.mode & 0o111) === 0) throw fsError('EACCES');
        return;
      }
      const bits = ctx.uid === attr.uid ? (attr.mode >> 6) & 7 : ctx.gid === attr.gid ? (attr.mode >> 3) & 7 : attr.mode & 7;
      if ((mode & bits) !== mode) throw fsError('EACCES', `mode ${mode.toString(8)} on ${path}`);
    });
  }

  async statfs(): Promise<StatFs> {
    const s = await this.sdk.statfs();
    const blockBytes = BLOCK_SIZE_BYTES;
    const freeBlocks = Math.floor(s.diskFreeBytes / blockBytes);
    const usedBlocks = Math.ceil(s.blockBytesStored / blockBytes);
    const fileLimit = s.maxInodes > 0 ? s.maxInodes : Math.max(s.inodesInUse * 2, 1_000_000_000);
    return {
      bsizeBytes: blockBytes, frsizeBytes: blockBytes, blocks: usedBlocks + freeBlocks, bfree: freeBlocks, bavail: freeBlocks,
      files: fileLimit, ffree: Math.max(0, fileLimit - s.inodesInUse), favail: Math.max(0, fileLimit - s.inodesInUse), namemaxBytes: NAME_MAX_BYTES,
    };
  }

  async readdir(ctx: CallerContext, path: string): Promise<string[]> {
    if (isVersionsPath(path)) return this.versions.readdir(callerOf(ctx), path);
    return this.uncached([path], async () => {
      const handle = await this.handleOf(ctx, path);
      const names: string[] = [];
      for await (const entry of this.sdk.readdir(handle, callerOf(ctx))) {
        names.push(entry.name);
        this.remember(ctx, path === '/' ? `/${entry.name}` : `${path}/${entry.name}`, entry.handle);
      }
      return names;
    });
  }

  // ---- open files --------------------------------------------------------------

  private track(handle: number, opened: { fh: number; version: number; sizeBytes: number }, flags: OpenFile['flags']): number {
    if (this.files.size >= MAX_OPEN_FILES) throw fsError('EMFILE', `${MAX_OPEN_FILES} files open on this mount`);
    const local = this.nextLocalFh++;
    this.files.set(local, { handle, serverFh: opened.fh, version: opened.version, baseSizeBytes: opened.sizeBytes, flags, sealedAtMs: new Map() });
    return local;
  }

  async open(ctx: CallerContext, path: string, flags: number): Promise<number> {
    if (isVersionsPath(path)) return this.openVersion(ctx, path, flags);
    return this.uncached([path], async () => {
      const openFlags = openFlagsOf(flags);
      if (openFlags.write) this.guardWritable();
      const handle = await this.handleOf(ctx, path, true);
      const epoch = this.attrEpoch;
      const opened = await this.sdk.open(handle, openFlags, callerOf(ctx));
      this.storeAttr(opened.attr, epoch);
      const fh = this.track(handle, opened, openFlags);
      if ((flags & C.O_TRUNC) !== 0 && openFlags.write) await this.content.truncate(this.file(fh), 0);
      return fh;
    });
  }

  async create(ctx: CallerContext, path: string, mode: number, flags: number): Promise<number> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      const { parent, name } = await this.parentOf(ctx, path);
      const openFlags = openFlagsOf(flags);
      const created = await this.sdk.create(parent, name, mode & 0o7777, { exclusive: (flags & C.O_EXCL) !== 0, open: openFlags, umask: ctx.umask }, callerOf(ctx));
      this.attrsChanged();
      this.storeAttr(created.attr, this.attrEpoch);
      if (!created.opened) throw fsError('EIO', `create of ${path} answered no fh`);
      this.remember(ctx, path, created.attr.handle);
      const fh = this.track(created.attr.handle, created.opened, openFlags);
      if (!created.created && (flags & C.O_TRUNC) !== 0 && openFlags.write) await this.content.truncate(this.file(fh), 0);
      return fh;
    });
  }

  /** A kept version under /.versions, opened read-only: reads come from the version's content, no fh on the servers. */
  private async openVersion(ctx: CallerContext, path: string, flags: number): Promise<number> {
    if (openFlagsOf(flags).write || (flags & C.O_TRUNC) !== 0) throw fsError('EROFS', 'the versions under /.versions are read-only');
    const target = await this.versions.target(callerOf(ctx), path);
    if (target.kind !== 'version') throw fsError('EISDIR', path);
    const local = this.track(target.handle, { fh: 0, version: target.version, sizeBytes: target.sizeBytes }, { read: true, write: false, append: false });
    this.file(local).versionView = true;
    return local;
  }

  async read(_ctx: CallerContext, _path: string, fh: number, target: Buffer, positionBytes: number): Promise<number> {
    const bytes = await this.content.read(this.file(fh), positionBytes, target.length);
    target.set(bytes);
    return bytes.byteLength;
  }

  async write(_ctx: CallerContext, _path: string, fh: number, data: Buffer, positionBytes: number): Promise<number> {
    const file = this.file(fh);
    if (file.flags.append) await this.commitOtherWriters(file);
    await this.content.write(file, data, positionBytes);
    return data.length;
  }

  /**
   * O_APPEND on one mount: each fh buffers its own writes and the servers append an fh's records at
   * commit, so two descriptors appending in turn would land per descriptor, not in the order written.
   * Before an append, what other fhs of this mount have written to the same file is committed, so the
   * append goes after it. Costs a commit each time appenders take turns; single writers pay nothing.
   */
  private async commitOtherWriters(file: OpenFile): Promise<void> {
    for (const other of this.files.values()) {
      if (other === file || other.handle !== file.handle || !other.buffer?.dirty) continue;
      await this.commitOrReport(other, false);
    }
  }

  async flush(_ctx: CallerContext, _path: string, fh: number): Promise<void> {
    await this.commitOrReport(this.file(fh), false);
  }

  async fsync(_ctx: CallerContext, _path: string, fh: number): Promise<void> {
    await this.commitOrReport(this.file(fh), false);
  }

  async release(_ctx: CallerContext, _path: string, fh: number): Promise<void> {
    const file = this.file(fh);
    this.files.delete(fh);
    if (file.versionView) return;
    if (!file.buffer?.dirty) {
      await this.releaseInBackground(file);
      return;
    }
    try {
      await this.content.commit(file, true);
      this.attrsChanged();
    } catch (error) {
      this.options.onCommitFailure?.(errnoCodeOf(error));
      // close(2) already returned (flush reported what it could); the fh goes with the session at the latest.
      this.log(`release of fh ${file.serverFh} (handle ${file.handle}) failed: ${(error as Error).message}`);
      await this.sdk.release(file.serverFh).catch(() => {});
    }
  }

  /** Commits a dirty buffer; a failure is reported here once and the buffer dropped (its bytes are in a conflict copy or lost to a refused commit: the error says which). */
  private async commitOrReport(file: OpenFile, release: boolean): Promise<void> {
    if (!file.buffer?.dirty) return;
    try {
      await this.content.commit(file, release);
    } catch (error) {
      this.options.onCommitFailure?.(errnoCodeOf(error));
      throw error;
    } finally {
      this.attrsChanged();
    }
  }

  /** What the mount holds in memory now (its metrics' gauges). */
  gauges(): { dirtyBytes: number; blockCacheBytes: number; openFiles: number } {
    let dirtyBytes = 0;
    for (const file of this.files.values()) dirtyBytes += file.buffer?.heldBytes ?? 0;
    return { dirtyBytes, blockCacheBytes: this.content.cachedBytes, openFiles: this.files.size };
  }

  async truncate(ctx: CallerContext, path: string, sizeBytes: number): Promise<void> {
    requireFileSize(sizeBytes);
    return this.uncached([path], async () => {
      this.guardChange(path);
      const handle = await this.handleOf(ctx, path);
      // An fh of this mount writing the file takes the truncation into its own next commit.
      const writer = [...this.files.values()].find((file) => file.handle === handle && file.buffer?.dirty);
      if (writer) {
        await this.content.truncate(writer, sizeBytes);
        return;
      }
      await this.sdk.setattr(handle, { sizeBytes }, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  async ftruncate(_ctx: CallerContext, _path: string, fh: number, sizeBytes: number): Promise<void> {
    const file = this.file(fh);
    if (!file.flags.write) throw fsError('EBADF', 'not open for writing');
    await this.content.truncate(file, sizeBytes);
  }

  // ---- namespace -----------------------------------------------------------------

  async mkdir(ctx: CallerContext, path: string, mode: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      const { parent, name } = await this.parentOf(ctx, path);
      this.remember(ctx, path, (await this.sdk.mkdir(parent, name, mode & 0o7777, callerOf(ctx), ctx.umask)).handle);
    }).finally(() => this.attrsChanged());
  }

  async rmdir(ctx: CallerContext, path: string): Promise<void> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      const { parent, name } = await this.parentOf(ctx, path);
      this.forget(path);
      await this.sdk.rmdir(parent, name, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  async unlink(ctx: CallerContext, path: string): Promise<void> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      const { parent, name } = await this.parentOf(ctx, path);
      this.forget(path);
      await this.sdk.unlink(parent, name, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  async rename(ctx: CallerContext, fromPath: string, toPath: string): Promise<void> {
    return this.uncached([fromPath, toPath], async () => {
      this.guardChange(fromPath, toPath);
      const from = await this.parentOf(ctx, fromPath);
      const to = await this.parentOf(ctx, toPath);
      this.forget(fromPath);
      this.forget(toPath);
      await this.sdk.rename(from.parent, from.name, to.parent, to.name, {}, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  async link(ctx: CallerContext, existingPath: string, newPath: string): Promise<void> {
    return this.uncached([existingPath, newPath], async () => {
      this.guardChange(existingPath, newPath);
      const handle = await this.handleOf(ctx, existingPath);
      const { parent, name } = await this.parentOf(ctx, newPath);
      await this.sdk.link(handle, parent, name, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  async symlink(ctx: CallerContext, target: string, linkPath: string): Promise<void> {
    return this.uncached([linkPath], async () => {
      this.guardChange(linkPath);
      const { parent, name } = await this.parentOf(ctx, linkPath);
      await this.sdk.symlink(parent, name, target, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  async readlink(ctx: CallerContext, path: string): Promise<string> {
    if (isVersionsPath(path)) throw fsError('EINVAL', `${path} is not a symbolic link`);
    return this.uncached([path], async () => {
      return this.sdk.readlink(await this.handleOf(ctx, path));
    });
  }

  async mknod(ctx: CallerContext, path: string, mode: number, rdev: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      const { parent, name } = await this.parentOf(ctx, path);
      await this.sdk.mknod(parent, name, fileTypeOf(mode), mode & 0o7777, rdev, callerOf(ctx), ctx.umask);
    }).finally(() => this.attrsChanged());
  }

  async chmod(ctx: CallerContext, path: string, mode: number, openFh?: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      const handle = await this.targetOf(ctx, path, openFh);
      const wanted = mode & 0o7777;
      const attr = await this.sdk.getattr(handle);
      // The kernel clears setuid/setgid itself when someone else writes the file, as a mode change from the writer:
      // that change (only those bits dropped) is write(2)'s, not chmod(2)'s, so it is not the owner's alone.
      const writeBit = ctx.gid === attr.gid ? 0o020 : 0o002;
      const mayWrite = (attr.mode & writeBit) !== 0;
      const killpriv = ctx.uid !== attr.uid && mayWrite && (attr.mode & 0o6000) !== 0 && wanted === (attr.mode & ~0o6000 & 0o7777);
      await this.sdk.setattr(handle, { mode: wanted }, killpriv ? ROOT_CALLER : callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  async chown(ctx: CallerContext, path: string, uid: number, gid: number, openFh?: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      const changes: { uid?: number; gid?: number } = {};
      if (uid !== -1 && uid !== 0xffffffff) changes.uid = uid;
      if (gid !== -1 && gid !== 0xffffffff) changes.gid = gid;
      await this.sdk.setattr(await this.targetOf(ctx, path, openFh), changes, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  async utimens(ctx: CallerContext, path: string, atimeMs: TimeArg, mtimeMs: TimeArg, openFh?: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      const changes: { atime?: number | 'now'; mtime?: number | 'now' } = {};
      if (atimeMs !== null) changes.atime = atimeMs === 'now' ? 'now' : Math.max(0, Math.floor(atimeMs));
      if (mtimeMs !== null) changes.mtime = mtimeMs === 'now' ? 'now' : Math.max(0, Math.floor(mtimeMs));
      await this.sdk.setattr(await this.targetOf(ctx, path, openFh), changes, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  // ---- extended attributes ---------------------------------------------------------

  async setxattr(ctx: CallerContext, path: string, name: string, value: Buffer, flags: number, openFh?: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      if (name.startsWith('user.handlefs.')) throw fsError('EPERM', `${name} is maintained by handlefs`);
      await this.sdk.setxattr(await this.targetOf(ctx, path, openFh), name, Buffer.from(value), flags, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  async getxattr(ctx: CallerContext, path: string, name: string, openFh?: number): Promise<Buffer> {
    return this.uncached([path], async () => {
      // The kernel asks this before every write; no file carries it, so answer without a round trip.
      if (name === 'security.capability' || isVersionsPath(path)) throw fsError('ENODATA');
      const handle = await this.targetOf(ctx, path, openFh);
      if (name === 'user.handlefs.handle') return Buffer.from(String(handle));
      if (name === 'user.handlefs.version') {
        const attr = await this.sdk.getattr(handle);
        if (attr.type !== 'reg') throw fsError('ENODATA');
        return Buffer.from(String(attr.headVersion ?? 0));
      }
      // The SDK's MetaError carries the errno (ENODATA for a missing attribute) the host answers.
      return Buffer.from(await this.sdk.getxattr(handle, name, callerOf(ctx)));
    });
  }

  async listxattr(ctx: CallerContext, path: string, openFh?: number): Promise<string[]> {
    if (isVersionsPath(path)) return [];
    return this.uncached([path], async () => {
      const handle = await this.targetOf(ctx, path, openFh);
      const names = await this.sdk.listxattr(handle, callerOf(ctx));
      return [...names, 'user.handlefs.handle', 'user.handlefs.version'];
    });
  }

  async removexattr(ctx: CallerContext, path: string, name: string, openFh?: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardChange(path);
      if (name.startsWith('user.handlefs.')) throw fsError('EPERM', `${name} is maintained by handlefs`);
      await this.sdk.removexattr(await this.targetOf(ctx, path, openFh), name, callerOf(ctx));
    }).finally(() => this.attrsChanged());
  }

  /** SIGTERM/SIGINT: commit what every open file holds, release the fhs, close the session. */
  /**
   * A clean fh's Release is sent without holding the kernel's answer: close(2)
   * has returned already and nothing can fail that an application could hear
   * of, so libfuse's worker need not wait a quorum write for it. Waits only
   * when RELEASES_IN_FLIGHT_MAX are on their way; shutdown waits for all.
   */
  private async releaseInBackground(file: OpenFile): Promise<void> {
    // Bounded: each turn waits for one of the releases in flight to end.
    while (this.releasesInFlight.size >= RELEASES_IN_FLIGHT_MAX) await Promise.race(this.releasesInFlight);
    const released: Promise<void> = this.sdk.release(file.serverFh).catch((error: Error) => {
      // The fh goes with the session at the latest.
      this.log(`release of fh ${file.serverFh} (handle ${file.handle}) failed: ${error.message}`);
    }).finally(() => this.releasesInFlight.delete(released));
    this.releasesInFlight.add(released);
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.releasesInFlight]);
    for (const [fh, file] of [...this.files]) {
      this.files.delete(fh);
      try {
        if (file.buffer?.dirty) await this.content.commit(file, true);
        else await this.sdk.release(file.serverFh);
      } catch (error) {
        this.log(`shutdown: fh ${file.serverFh} (handle ${file.handle}) could not be committed: ${(error as Error).message}`);
      }
    }
    await this.sdk.close();
  }
}

/** An error's errno name (MetaError and FsError carry one), else EIO. */
function errnoCodeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : 'EIO';
}
