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
 * one block of read-ahead. Not here yet: the `.versions` directory.
 */
import { constants as C } from 'fs';
import { BLOCK_SIZE_BYTES, INLINE_LIMIT_BYTES, MetaClient, MetaError, ROOT_HANDLE } from '../sdk';
import type { Attr, Caller, Policy } from '../sdk';
import { CallerContext, FileStat, FileSystemBackend, StatFs, fsError } from './filesystem';
import { BlockCache } from './block-cache';
import { WriteBuffer } from './write-buffer';

const O_ACCMODE = 3;
/** Unsealed written bytes one open file holds before it commits on its own (a version mid-write). */
const MAX_DIRTY_BYTES_PER_FH = 64 * 1024 * 1024;
/** An uploaded block committed later than this after its upload is pinned again first (the servers' pin lasts 10 min). */
const REPIN_AFTER_MS = 5 * 60 * 1000;
/** Entry cache: path → handle, this long (the kernel caches entries for entry_timeout as well). */
const DEFAULT_ENTRY_CACHE_MS = 1_000;
const MAX_CACHED_ENTRIES = 100_000;
const MAX_OPEN_FILES = 100_000;
const NAME_MAX_BYTES = 255;
/** Uploads of one commit in flight at once. */
const UPLOAD_PARALLELISM = 4;

export interface MetaBackendOptions {
  policy?: Policy;
  readOnly?: boolean;
  entryCacheMs?: number;
  /** Memory for block contents this mount read or wrote (default 256 MiB). */
  blockCacheBytes?: number;
  log?: (line: string) => void;
}

const DEFAULT_BLOCK_CACHE_BYTES = 256 * 1024 * 1024;

interface OpenFile {
  handle: number;
  serverFh: number;
  /** The version reads see and the next commit is based on. */
  version: number;
  baseSizeBytes: number;
  /** The base version's content: its block ids, or its inline bytes; fetched on first need. */
  base?: Promise<{ blocks?: string[]; inline?: Uint8Array }>;
  flags: { read: boolean; write: boolean; append: boolean };
  buffer?: WriteBuffer;
  /** When each sealed block was uploaded, to pin it again before a late commit. */
  sealedAtMs: Map<string, number>;
  /** The last commit failed: flush/fsync/close report it once. */
  failure?: unknown;
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

/** The SDK's errors carry errno already; anything else is a bug the host reports as EIO. */
function asFsError(error: unknown): unknown {
  if (error instanceof MetaError) return error;
  return error;
}

export class MetaBackend implements FileSystemBackend<number> {
  private readonly files = new Map<number, OpenFile>();
  private nextLocalFh = 1;
  private readonly entries = new Map<string, { handle: number; untilMs: number }>();
  private readonly policy: Policy;
  private readonly entryCacheMs: number;
  private readonly blockCache: BlockCache;
  private readonly log: (line: string) => void;

  constructor(private readonly sdk: MetaClient, private readonly options: MetaBackendOptions = {}) {
    this.policy = options.policy ?? 'lww';
    this.entryCacheMs = options.entryCacheMs ?? DEFAULT_ENTRY_CACHE_MS;
    this.log = options.log ?? (() => {});
    this.blockCache = new BlockCache((id) => this.sdk.getBlock(id), options.blockCacheBytes ?? DEFAULT_BLOCK_CACHE_BYTES);
  }

  // ---- paths -------------------------------------------------------------------

  /** The handle a path names; `fresh` skips the entry cache for the last component (open: close-to-open must see renames). */
  private async handleOf(ctx: CallerContext, path: string, fresh = false): Promise<number> {
    const parts = split(path);
    let handle = ROOT_HANDLE;
    let walked = '';
    for (const [i, part] of parts.entries()) {
      walked += '/' + part;
      const cached = this.entries.get(walked);
      const last = i === parts.length - 1;
      if (cached && cached.untilMs > Date.now() && !(fresh && last)) {
        handle = cached.handle;
        continue;
      }
      handle = (await this.sdk.lookup(handle, part, callerOf(ctx))).handle;
      this.remember(walked, handle);
    }
    return handle;
  }

  private remember(path: string, handle: number): void {
    if (this.entries.size >= MAX_CACHED_ENTRIES) this.entries.clear();
    this.entries.set(path, { handle, untilMs: Date.now() + this.entryCacheMs });
  }

  /** Forgets a path and everything below it (after this mount renamed or removed it). */
  private forget(path: string): void {
    for (const key of this.entries.keys()) if (key === path || key.startsWith(path + '/')) this.entries.delete(key);
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
        for (let i = 1; i <= parts.length; i++) this.entries.delete('/' + parts.slice(0, i).join('/'));
      }
      return run();
    }
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
    return this.uncached([path], async () => {
      const handle = await this.handleOf(ctx, path);
      return this.statOfHandle(handle);
    });
  }

  async fgetattr(_ctx: CallerContext, _path: string, fh: number): Promise<FileStat> {
    return this.statOfHandle(this.file(fh).handle);
  }

  /** The server's attributes, with the size of a write this mount has not committed yet (read-your-writes for stat). */
  private async statOfHandle(handle: number): Promise<FileStat> {
    const stat = statOf(await this.sdk.getattr(handle));
    for (const file of this.files.values()) {
      if (file.handle === handle && file.buffer?.dirty) {
        stat.sizeBytes = file.buffer.size;
        stat.blocks = Math.ceil(stat.sizeBytes / 512);
      }
    }
    return stat;
  }

  async access(ctx: CallerContext, path: string, mode: number): Promise<void> {
    return this.uncached([path], async () => {
      const attr = await this.sdk.getattr(await this.handleOf(ctx, path));
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
    return this.uncached([path], async () => {
      const handle = await this.handleOf(ctx, path);
      const names: string[] = [];
      for await (const entry of this.sdk.readdir(handle, callerOf(ctx))) {
        names.push(entry.name);
        this.remember(path === '/' ? `/${entry.name}` : `${path}/${entry.name}`, entry.handle);
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
    return this.uncached([path], async () => {
      const openFlags = openFlagsOf(flags);
      if (openFlags.write) this.guardWritable();
      const handle = await this.handleOf(ctx, path, true);
      const opened = await this.sdk.open(handle, openFlags, callerOf(ctx));
      const fh = this.track(handle, opened, openFlags);
      if ((flags & C.O_TRUNC) !== 0 && openFlags.write) this.bufferOf(this.file(fh)).truncate(0);
      return fh;
    });
  }

  async create(ctx: CallerContext, path: string, mode: number, flags: number): Promise<number> {
    return this.uncached([path], async () => {
      this.guardWritable();
      const { parent, name } = await this.parentOf(ctx, path);
      const openFlags = openFlagsOf(flags);
      const created = await this.sdk.create(parent, name, mode & 0o7777, { exclusive: (flags & C.O_EXCL) !== 0, open: openFlags, umask: ctx.umask }, callerOf(ctx));
      if (!created.opened) throw fsError('EIO', `create of ${path} answered no fh`);
      this.remember(path, created.attr.handle);
      const fh = this.track(created.attr.handle, created.opened, openFlags);
      if (!created.created && (flags & C.O_TRUNC) !== 0 && openFlags.write) this.bufferOf(this.file(fh)).truncate(0);
      return fh;
    });
  }

  private bufferOf(file: OpenFile): WriteBuffer {
    file.buffer ??= new WriteBuffer(file.baseSizeBytes, BLOCK_SIZE_BYTES, MAX_DIRTY_BYTES_PER_FH);
    return file.buffer;
  }

  /** The base version's content description (as the mount's trusted root: the fh already passed its permission check at open). */
  private baseOf(file: OpenFile): Promise<{ blocks?: string[]; inline?: Uint8Array }> {
    file.base ??= this.sdk.versionInfo(file.handle, file.version).then(({ info, inlineContent }) =>
      info.blocks.length > 0 || info.sizeBytes > INLINE_LIMIT_BYTES ? { blocks: info.blocks } : { inline: inlineContent });
    return file.base;
  }

  /** Bytes of the fh's base version (shorter at its end). */
  private readBase(file: OpenFile): (offset: number, length: number) => Promise<Uint8Array> {
    return async (offset, length) => {
      const end = Math.min(file.baseSizeBytes, offset + length);
      if (offset >= end) return new Uint8Array();
      const base = await this.baseOf(file);
      if (!base.blocks) return (base.inline ?? new Uint8Array()).subarray(offset, end);
      const out = new Uint8Array(end - offset);
      const b = BLOCK_SIZE_BYTES;
      const last = Math.floor((end - 1) / b);
      for (let index = Math.floor(offset / b); index <= last; index++) {
        const id = base.blocks[index];
        if (id === undefined) throw fsError('EIO', `version ${file.version} of handle ${file.handle} lists no block ${index}`);
        if (id === '') continue; // a hole: zeros
        const bytes = await this.blockCache.get(id);
        const from = Math.max(offset, index * b);
        const to = Math.min(end, index * b + bytes.byteLength);
        out.set(bytes.subarray(from - index * b, to - index * b), from - offset);
      }
      // Sequential readers want the next block next.
      const ahead = base.blocks[last + 1];
      if (ahead) this.blockCache.prefetch(ahead);
      return out;
    };
  }

  private readonly readSealed = (id: string): Promise<Uint8Array> => this.blockCache.get(id);

  async read(_ctx: CallerContext, _path: string, fh: number, target: Buffer, positionBytes: number): Promise<number> {
    const file = this.file(fh);
    try {
      const bytes = file.buffer?.dirty
        ? await file.buffer.read(positionBytes, target.length, this.readBase(file), this.readSealed)
        : await this.readBase(file)(positionBytes, Math.max(0, Math.min(target.length, file.baseSizeBytes - positionBytes)));
      target.set(bytes);
      return bytes.byteLength;
    } catch (error) {
      throw asFsError(error);
    }
  }

  async write(_ctx: CallerContext, _path: string, fh: number, data: Buffer, positionBytes: number): Promise<number> {
    const file = this.file(fh);
    if (!file.flags.write) throw fsError('EBADF', 'not open for writing');
    const buffer = this.bufferOf(file);
    const position = file.flags.append ? buffer.size : positionBytes;
    const end = position + data.length;
    for (const sealed of buffer.sealedIn(position, end)) buffer.reloadSealed(sealed.index, await this.sdk.getBlock(sealed.id));
    if (!buffer.fits(position, data.length)) {
      // Too much unsealed data (scattered small writes): commit what there is as a version now.
      await this.commit(file, false);
      return this.write(_ctx, _path, fh, data, positionBytes);
    }
    const full = buffer.write(position, Buffer.from(data));
    // A block the writes filled streams to the servers now, freeing its memory.
    for (const index of full) {
      const bytes = buffer.fullBlock(index);
      const id = await this.sdk.putBlock(bytes);
      this.blockCache.put(id, Uint8Array.from(bytes));
      buffer.seal(index, id);
      file.sealedAtMs.set(id, Date.now());
    }
    return data.length;
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
    try {
      if (file.buffer?.dirty) await this.commit(file, true);
      else await this.sdk.release(file.serverFh);
    } catch (error) {
      // close(2) already returned (flush reported what it could); the fh goes with the session at the latest.
      this.log(`release of fh ${file.serverFh} (handle ${file.handle}) failed: ${(error as Error).message}`);
      await this.sdk.release(file.serverFh).catch(() => {});
    }
  }

  /** Commits a dirty buffer; a failure is reported here once and the buffer dropped (its bytes are in a conflict copy or lost to a refused commit: the error says which). */
  private async commitOrReport(file: OpenFile, release: boolean): Promise<void> {
    if (file.failure !== undefined) {
      const failure = file.failure;
      file.failure = undefined;
      throw failure;
    }
    if (!file.buffer?.dirty) return;
    await this.commit(file, release);
  }

  /**
   * One commit of the fh's buffer: the inline form, or the block form with
   * the changed blocks uploaded first. Afterwards the fh is based on the new
   * version and the buffer is empty. EBUSY under policy reject: the content
   * is kept as a conflict copy on the servers and the buffer is dropped.
   */
  private async commit(file: OpenFile, release: boolean): Promise<void> {
    const buffer = file.buffer;
    if (!buffer) return;
    const base = await this.baseOf(file);
    const plan = await buffer.plan(INLINE_LIMIT_BYTES, { blocks: base.blocks }, this.readBase(file), this.readSealed);
    try {
      let outcome;
      if (plan.kind === 'inline') {
        outcome = await this.sdk.commit(file.serverFh, file.version, { kind: 'inline', written: plan.written, newSize: plan.newSize }, { policy: this.policy, release });
      } else {
        const ids = await this.uploadPlan(file, plan.blocks);
        outcome = await this.sdk.commit(file.serverFh, file.version, { kind: 'blocks', blocks: ids, writtenExtents: plan.writtenExtents, newSize: plan.newSize }, { policy: this.policy, release });
      }
      // The new version may differ from what this fh sent (the servers may have rebased it): its content is fetched when needed.
      file.version = outcome.version;
      file.baseSizeBytes = outcome.sizeBytes;
      file.base = undefined;
    } catch (error) {
      if (error instanceof MetaError && error.code === 'EBUSY') {
        // Rejected: the servers kept this content as a conflict copy; the fh stays on its base.
        file.buffer = undefined;
        file.sealedAtMs.clear();
      }
      throw asFsError(error);
    }
    file.buffer = undefined;
    file.sealedAtMs.clear();
  }

  private async uploadPlan(file: OpenFile, blocks: Array<{ id: string } | { upload: Uint8Array }>): Promise<string[]> {
    const ids: string[] = new Array<string>(blocks.length);
    const nowMs = Date.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      // Bounded: each turn takes the next block index.
      for (let i = next++; i < blocks.length; i = next++) {
        const block = blocks[i];
        if ('id' in block) {
          const sealedAt = file.sealedAtMs.get(block.id);
          if (sealedAt !== undefined && nowMs - sealedAt > REPIN_AFTER_MS && !(await this.sdk.pinBlock(block.id))) {
            throw fsError('EIO', `uploaded block ${block.id} was collected before its commit`);
          }
          ids[i] = block.id;
        } else {
          if (block.upload.every((byte) => byte === 0)) {
            ids[i] = '';
          } else {
            ids[i] = await this.sdk.putBlock(block.upload);
            this.blockCache.put(ids[i], block.upload);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(UPLOAD_PARALLELISM, blocks.length) }, worker));
    return ids;
  }

  async truncate(ctx: CallerContext, path: string, sizeBytes: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      const handle = await this.handleOf(ctx, path);
      // An fh of this mount writing the file takes the truncation into its own next commit.
      const writer = [...this.files.values()].find((file) => file.handle === handle && file.buffer?.dirty);
      if (writer) {
        this.truncateBuffer(writer, sizeBytes);
        return;
      }
      await this.sdk.setattr(handle, { sizeBytes }, callerOf(ctx));
    });
  }

  async ftruncate(_ctx: CallerContext, _path: string, fh: number, sizeBytes: number): Promise<void> {
    const file = this.file(fh);
    if (!file.flags.write) throw fsError('EBADF', 'not open for writing');
    this.truncateBuffer(file, sizeBytes);
  }

  private truncateBuffer(file: OpenFile, sizeBytes: number): void {
    const buffer = this.bufferOf(file);
    if (buffer.sealedIn(sizeBytes, sizeBytes + 1).length > 0) throw fsError('EIO', 'truncating inside a block already uploaded: commit first');
    buffer.truncate(sizeBytes);
  }

  // ---- namespace -----------------------------------------------------------------

  async mkdir(ctx: CallerContext, path: string, mode: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      const { parent, name } = await this.parentOf(ctx, path);
      this.remember(path, (await this.sdk.mkdir(parent, name, mode & 0o7777, callerOf(ctx), ctx.umask)).handle);
    });
  }

  async rmdir(ctx: CallerContext, path: string): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      const { parent, name } = await this.parentOf(ctx, path);
      this.forget(path);
      await this.sdk.rmdir(parent, name, callerOf(ctx));
    });
  }

  async unlink(ctx: CallerContext, path: string): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      const { parent, name } = await this.parentOf(ctx, path);
      this.forget(path);
      await this.sdk.unlink(parent, name, callerOf(ctx));
    });
  }

  async rename(ctx: CallerContext, fromPath: string, toPath: string): Promise<void> {
    return this.uncached([fromPath, toPath], async () => {
      this.guardWritable();
      const from = await this.parentOf(ctx, fromPath);
      const to = await this.parentOf(ctx, toPath);
      this.forget(fromPath);
      this.forget(toPath);
      await this.sdk.rename(from.parent, from.name, to.parent, to.name, {}, callerOf(ctx));
    });
  }

  async link(ctx: CallerContext, existingPath: string, newPath: string): Promise<void> {
    return this.uncached([existingPath, newPath], async () => {
      this.guardWritable();
      const handle = await this.handleOf(ctx, existingPath);
      const { parent, name } = await this.parentOf(ctx, newPath);
      await this.sdk.link(handle, parent, name, callerOf(ctx));
    });
  }

  async symlink(ctx: CallerContext, target: string, linkPath: string): Promise<void> {
    return this.uncached([linkPath], async () => {
      this.guardWritable();
      const { parent, name } = await this.parentOf(ctx, linkPath);
      await this.sdk.symlink(parent, name, target, callerOf(ctx));
    });
  }

  async readlink(ctx: CallerContext, path: string): Promise<string> {
    return this.uncached([path], async () => {
      return this.sdk.readlink(await this.handleOf(ctx, path));
    });
  }

  async mknod(ctx: CallerContext, path: string, mode: number, rdev: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      const { parent, name } = await this.parentOf(ctx, path);
      await this.sdk.mknod(parent, name, fileTypeOf(mode), mode & 0o7777, rdev, callerOf(ctx), ctx.umask);
    });
  }

  async chmod(ctx: CallerContext, path: string, mode: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      await this.sdk.setattr(await this.handleOf(ctx, path), { mode: mode & 0o7777 }, callerOf(ctx));
    });
  }

  async chown(ctx: CallerContext, path: string, uid: number, gid: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      const changes: { uid?: number; gid?: number } = {};
      if (uid !== -1 && uid !== 0xffffffff) changes.uid = uid;
      if (gid !== -1 && gid !== 0xffffffff) changes.gid = gid;
      await this.sdk.setattr(await this.handleOf(ctx, path), changes, callerOf(ctx));
    });
  }

  async utimens(ctx: CallerContext, path: string, atimeMs: number | null, mtimeMs: number | null): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      const changes: { atime?: number; mtime?: number } = {};
      if (atimeMs !== null) changes.atime = Math.max(0, Math.floor(atimeMs));
      if (mtimeMs !== null) changes.mtime = Math.max(0, Math.floor(mtimeMs));
      await this.sdk.setattr(await this.handleOf(ctx, path), changes, callerOf(ctx));
    });
  }

  // ---- extended attributes ---------------------------------------------------------

  async setxattr(ctx: CallerContext, path: string, name: string, value: Buffer, flags: number): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      if (name.startsWith('user.handlefs.')) throw fsError('EPERM', `${name} is maintained by handlefs`);
      await this.sdk.setxattr(await this.handleOf(ctx, path), name, Buffer.from(value), flags, callerOf(ctx));
    });
  }

  async getxattr(ctx: CallerContext, path: string, name: string): Promise<Buffer> {
    return this.uncached([path], async () => {
      // The kernel asks this before every write; no file carries it, so answer without a round trip.
      if (name === 'security.capability') throw fsError('ENODATA');
      const handle = await this.handleOf(ctx, path);
      if (name === 'user.handlefs.handle') return Buffer.from(String(handle));
      if (name === 'user.handlefs.version') {
        const attr = await this.sdk.getattr(handle);
        if (attr.type !== 'reg') throw fsError('ENODATA');
        return Buffer.from(String(attr.headVersion ?? 0));
      }
      try {
        return Buffer.from(await this.sdk.getxattr(handle, name, callerOf(ctx)));
      } catch (error) {
        throw asFsError(error);
      }
    });
  }

  async listxattr(ctx: CallerContext, path: string): Promise<string[]> {
    return this.uncached([path], async () => {
      const handle = await this.handleOf(ctx, path);
      const names = await this.sdk.listxattr(handle, callerOf(ctx));
      return [...names, 'user.handlefs.handle', 'user.handlefs.version'];
    });
  }

  async removexattr(ctx: CallerContext, path: string, name: string): Promise<void> {
    return this.uncached([path], async () => {
      this.guardWritable();
      if (name.startsWith('user.handlefs.')) throw fsError('EPERM', `${name} is maintained by handlefs`);
      await this.sdk.removexattr(await this.handleOf(ctx, path), name, callerOf(ctx));
    });
  }

  /** SIGTERM/SIGINT: commit what every open file holds, release the fhs, close the session. */
  async shutdown(): Promise<void> {
    for (const [fh, file] of [...this.files]) {
      this.files.delete(fh);
      try {
        if (file.buffer?.dirty) await this.commit(file, true);
        else await this.sdk.release(file.serverFh);
      } catch (error) {
        this.log(`shutdown: fh ${file.serverFh} (handle ${file.handle}) could not be committed: ${(error as Error).message}`);
      }
    }
    await this.sdk.close();
  }
}
