/**
 * The FUSE host: a fuse-native Fuse subclass that answers every kernel request from a FileSystemBackend.
 * Owns: the libfuse mount options, the kernel-visible file-handle table, the caller context of each
 * request, fuse-native's argument quirks (see README "Workarounds") and per-op counters.
 * It must never throw into fuse-native (every request is answered exactly once, errors become a negative
 * errno), never touch its own mount, and never spawn a child (fuse-native's own unmount runs
 * `fusermount -uz` through exec: we never call it).
 */
import * as path from 'path';
import { constants as osConstants } from 'os';
import { constants as fsConstants } from 'fs';
import { CallerContext, FileStat, FileSystemBackend, StatFs, TimeArg, negativeErrnoOf } from './filesystem';
import { LoadedFuseNative } from './fuse-loader';

const TRACE_ERRNO_ANSWERS = process.env.HANDLEFS_FUSE_TRACE === '1';
/** What the patched binding sends for UTIME_NOW (2^62, exact as a double; UTIME_OMIT is 2^64-1). */
const UTIME_NOW_FROM_PATCH = 2 ** 62;

export interface FuseHostOptions {
  /** Kernel attribute / entry / negative-lookup cache lifetimes, seconds (libfuse accepts fractions). */
  attrTimeoutS: number;
  entryTimeoutS: number;
  negativeTimeoutS: number;
  allowOther: boolean;
  readOnly: boolean;
  /** fuse-native answers ETIMEDOUT when a backend call exceeds this (must exceed the SDK deadline). */
  opTimeoutMs: number;
  /** Bound on simultaneously open kernel file handles; beyond it open/create fail with ENFILE. */
  maxOpenFiles: number;
  fsName: string;
  log: (line: string) => void;
  /** Called once per answered request: its op, 'ok' or the errno name, and its time in seconds (metrics). */
  observe?: (op: string, result: string, seconds: number) => void;
}

export const DEFAULT_HOST_OPTIONS: Omit<FuseHostOptions, 'log'> = {
  // Close-to-open across mounts: the kernel neither refreshes a cached size on open nor forgets a
  // cached "no such name" when another mount creates it, so attributes and negative entries are not
  // cached by default (entries are: an open resolves its path afresh in the backend).
  attrTimeoutS: 0, entryTimeoutS: 1, negativeTimeoutS: 0, allowOther: false, readOnly: false,
  opTimeoutMs: 60_000, maxOpenFiles: 65_536, fsName: 'handlefs',
};

/** libfuse's max_write cannot exceed 128 KiB with FUSE 2.9 (no max_pages). */
export const MAX_WRITE_BYTES = 131_072;
/** fuse-native copies the option string into a 1024-byte buffer. */
const MAX_OPTION_STRING_BYTES = 1000;
/** libfuse's name for a file unlinked while open (hard_remove off): ".fuse_hidden" + 16 hex digits. */
const HIDDEN_NAME = /^\.fuse_hidden[0-9a-f]{16}$/;
const UINT32_MAX = 0xffff_ffff;
const TWO_POW_32 = 4_294_967_296;
const MAX_KERNEL_FH = 0x7fff_ffff;
const E = osConstants.errno;
const ERRNO_NAMES = new Map(Object.entries(E).map(([name, value]) => [value, name]));

function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** The -o string handed to libfuse unchanged. default_permissions stays OFF: the backend checks with ctx. */
export function buildFuseOptionString(o: Omit<FuseHostOptions, 'log'>): string {
  for (const [name, v] of [['attrTimeoutS', o.attrTimeoutS], ['entryTimeoutS', o.entryTimeoutS], ['negativeTimeoutS', o.negativeTimeoutS]] as const) {
    if (!Number.isFinite(v) || v < 0 || v > 86_400) throw new Error(`fuse options: ${name} must be within 0..86400 s, got ${v}`);
  }
  if (!/^[A-Za-z0-9_.:@/-]{1,64}$/.test(o.fsName)) throw new Error(`fuse options: bad fsName ${JSON.stringify(o.fsName)}`);
  const opts = [
    // atomic_o_trunc: O_TRUNC reaches open() instead of a separate truncate first, so a rewrite is one version, not an empty one and then the new one.
    `fsname=${o.fsName}`, 'subtype=handlefs', 'big_writes', `max_write=${MAX_WRITE_BYTES}`, 'use_ino', 'atomic_o_trunc',
    `attr_timeout=${o.attrTimeoutS}`, `entry_timeout=${o.entryTimeoutS}`, `negative_timeout=${o.negativeTimeoutS}`,
  ];
  if (o.allowOther) opts.push('allow_other');
  if (o.readOnly) opts.push('ro');
  const s = '-o' + opts.join(',');
  if (s.length > MAX_OPTION_STRING_BYTES) throw new Error(`fuse options: option string too long (${s.length} bytes)`);
  return s;
}

export interface HostStats {
  ops: Record<string, number>;
  writeCalls: number;
  writeBytes: number;
  maxWriteBytes: number;
  /** write calls by size in bytes (at most 64 distinct sizes kept). */
  writeSizes: Record<string, number>;
  readCalls: number;
  maxReadBytes: number;
  errorsByOp: Record<string, number>;
  unexpectedErrors: number;
  openFiles: number;
  hiddenFiles: number;
  lastCallerByOp: Record<string, CallerContext>;
}

export interface FuseHost {
  mount(): Promise<void>;
  /** umount2(MNT_DETACH) through the patched binding: 0 or a negative errno. */
  detach(): number;
  stats(): HostStats;
}

type Signal = (res: number, ...rest: unknown[]) => void;
type NativeHandler = (nativeRequest: Buffer, opCode: number, ...args: unknown[]) => unknown;

interface OpenEntry<Fh> { fh: Fh; path: string }

const OP_NAMES = ['access', 'statfs', 'fgetattr', 'getattr', 'flush', 'fsync', 'readdir', 'truncate', 'ftruncate',
  'utimens', 'readlink', 'chown', 'chmod', 'mknod', 'setxattr', 'getxattr', 'listxattr', 'removexattr', 'open', 'read',
  'write', 'release', 'create', 'unlink', 'rename', 'link', 'symlink', 'mkdir', 'rmdir'] as const;

/** Encodes a stat the way fuse-native's C populate_stat reads it (18 x uint32, times in ms). */
function statArray(st: FileStat): Uint32Array {
  const a = new Uint32Array(18);
  const put64 = (i: number, n: number): void => {
    const v = Math.max(0, Math.floor(n));
    a[i] = v % TWO_POW_32;
    a[i + 1] = Math.floor(v / TWO_POW_32);
  };
  a[0] = st.mode; a[1] = st.uid; a[2] = st.gid; put64(3, st.sizeBytes);
  a[5] = 0; a[6] = st.nlink; a[7] = st.ino; a[8] = st.rdev; a[9] = st.blksizeBytes; put64(10, st.blocks);
  put64(12, st.atimeMs); put64(14, st.mtimeMs); put64(16, st.ctimeMs);
  return a;
}

function statfsArray(s: StatFs): Uint32Array {
  const cap = (n: number): number => Math.min(UINT32_MAX, Math.max(0, Math.floor(n)));
  return Uint32Array.from([s.bsizeBytes, s.frsizeBytes, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.favail, 0, 0, s.namemaxBytes].map(cap));
}

export function createFuseHost<Fh>(loaded: LoadedFuseNative, mountpoint: string, backend: FileSystemBackend<Fh>, options: FuseHostOptions): FuseHost {
  const optionString = buildFuseOptionString(options);
  const log = options.log;
  const callerOffset = loaded.callerOffsetBytes;
  const NOBODY: CallerContext = { uid: 65534, gid: 65534, pid: 0, umask: 0o022 };

  const stats: HostStats = {
    ops: {}, writeCalls: 0, writeBytes: 0, maxWriteBytes: 0, writeSizes: {}, readCalls: 0, maxReadBytes: 0,
    errorsByOp: {}, unexpectedErrors: 0, openFiles: 0, hiddenFiles: 0, lastCallerByOp: {},
  };
  const entries = new Map<number, OpenEntry<Fh>>();
  const byPath = new Map<string, Set<number>>();
  /** Paths libfuse renamed to .fuse_hidden*: the backend already unlinked the file, only open fhs remain. */
  const hidden = new Set<string>();
  let nextFh = 1;
  // Written by the wrapped native handler just before the _op_ method runs (same tick, single thread).
  let currentCaller: CallerContext = NOBODY;

  const ops: Record<string, unknown> = {};
  for (const name of OP_NAMES) ops[name] = (): never => { throw new Error(`unreachable: ${name} is answered by HandlefsFuse`); };

  function indexAdd(p: string, hostFh: number): void {
    let set = byPath.get(p);
    if (!set) byPath.set(p, (set = new Set()));
    set.add(hostFh);
  }
  function indexRemove(p: string, hostFh: number): void {
    const set = byPath.get(p);
    if (!set) return;
    set.delete(hostFh);
    if (set.size === 0) byPath.delete(p);
  }
  /** Keeps open fhs pointing at the current name after a rename of a file or of a directory above it. */
  function indexRename(from: string, to: string): void {
    const moved: [string, Set<number>][] = [];
    for (const [p, set] of byPath) {
      if (p === from || p.startsWith(from + '/')) moved.push([p, set]);
    }
    for (const [p, set] of moved) {
      const np = to + p.slice(from.length);
      byPath.delete(p);
      byPath.set(np, set);
      for (const fhId of set) { const e = entries.get(fhId); if (e) e.path = np; }
      if (hidden.delete(p)) hidden.add(np);
    }
  }
  function allocFh(entry: OpenEntry<Fh>): number {
    if (entries.size >= options.maxOpenFiles) return -E.ENFILE;
    for (let tries = 0; tries <= entries.size; tries++) {
      const id = nextFh;
      nextFh = nextFh >= MAX_KERNEL_FH ? 1 : nextFh + 1;
      if (!entries.has(id)) {
        entries.set(id, entry);
        indexAdd(entry.path, id);
        return id;
      }
    }
    throw new Error('fh table: no free id although below maxOpenFiles');
  }
  function anyOpenFh(p: string): OpenEntry<Fh> | undefined {
    const set = byPath.get(p);
    if (!set) return undefined;
    for (const id of set) return entries.get(id);
    return undefined;
  }
  function errnoFor(op: string, p: string, err: unknown): number {
    const neg = negativeErrnoOf(err);
    stats.errorsByOp[op] = (stats.errorsByOp[op] ?? 0) + 1;
    if (neg !== null) {
      // HANDLEFS_FUSE_TRACE=1: every errno answer on stderr, for debugging a mount.
      if (TRACE_ERRNO_ANSWERS) log(`fuse ${op} ${JSON.stringify(p)}: errno ${-neg}: ${err instanceof Error ? err.message : String(err)}`);
      return neg;
    }
    stats.unexpectedErrors++;
    log(`fuse ${op} ${JSON.stringify(p)}: unexpected error (answered EIO): ${err instanceof Error ? err.stack : String(err)}`);
    return -E.EIO;
  }

  /**
   * Runs one backend call and answers the kernel exactly once. `answer` turns the result into the signal
   * call; `fail` sends a negative errno (with whatever trailing buffers the op needs).
   */
  function run<T>(op: string, p: string, work: (ctx: CallerContext) => Promise<T>, answer: (v: T) => void, fail: (neg: number) => void): void {
    const ctx = currentCaller;
    stats.ops[op] = (stats.ops[op] ?? 0) + 1;
    stats.lastCallerByOp[op] = ctx;
    const observe = options.observe;
    const startedAt = observe ? performance.now() : 0;
    const failAndObserve = observe ? (neg: number): void => {
      fail(neg);
      observe(op, errnoName(-neg), (performance.now() - startedAt) / 1000);
    } : fail;
    let promise: Promise<T>;
    try { promise = work(ctx); } catch (e) { promise = Promise.reject(e); }
    promise.then((v) => {
      try {
        answer(v);
        observe?.(op, 'ok', (performance.now() - startedAt) / 1000);
      } catch (e) { failAndObserve(errnoFor(op, p, e)); }
    }, (e: unknown) => failAndObserve(errnoFor(op, p, e)));
  }
  const plain = (signal: Signal) => (neg: number): void => signal(neg);
  const ok = (signal: Signal) => (): void => signal(0);
  function entryOf(fd: number): OpenEntry<Fh> {
    const e = entries.get(fd);
    if (!e) throw Object.assign(new Error(`unknown fh ${fd}`), { errno: E.EBADF });
    return e;
  }
  const size64 = (lo: number, hi: number): number => lo + hi * TWO_POW_32;
  const utime = (lo: number, hi: number): TimeArg => {
    const ms = size64(lo, hi);
    if (ms === UTIME_NOW_FROM_PATCH) return 'now';
    return ms >= Number.MAX_SAFE_INTEGER ? null : ms; // 2^64-1 from the patch = UTIME_OMIT
  };
  const noHidden = (p: string): void => {
    if (hidden.has(p)) throw Object.assign(new Error(`${p} was unlinked`), { errno: E.ENOENT });
  };
  /** For a .fuse_hidden* name: the fh that holds the unlinked file open (the backend acts through it); else undefined. */
  const openFhOfHidden = (p: string): Fh | undefined => {
    if (!hidden.has(p)) return undefined;
    const e = anyOpenFh(p);
    if (!e) throw Object.assign(new Error(`${p} was unlinked and is open no more`), { errno: E.ENOENT });
    return e.fh;
  };

  const Base = loaded.Fuse as unknown as new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => {
    mount(cb: (err: Error | null) => void): void;
    _makeHandlerArray(): NativeHandler[];
    _fuseOptions(): string;
  };

  class HandlefsFuse extends Base {
    override _fuseOptions(): string { return optionString; }

    /** Wraps every native handler to copy the caller {uid,gid,pid,umask} the patched C layer stored. */
    override _makeHandlerArray(): NativeHandler[] {
      return super._makeHandlerArray().map((handler) => {
        if (typeof handler !== 'function') return handler;
        return (req: Buffer, opCode: number, ...args: unknown[]): unknown => {
          currentCaller = {
            uid: req.readUInt32LE(callerOffset), gid: req.readUInt32LE(callerOffset + 4),
            pid: req.readUInt32LE(callerOffset + 8), umask: req.readUInt32LE(callerOffset + 12),
          };
          return handler(req, opCode, ...args);
        };
      });
    }

    _op_getattr(signal: Signal, p: string): void {
      run('getattr', p, (ctx) => {
        if (hidden.has(p)) {
          const e = anyOpenFh(p);
          if (!e) throw Object.assign(new Error('hidden without fh'), { errno: E.ENOENT });
          return backend.fgetattr(ctx, e.path, e.fh);
        }
        return backend.getattr(ctx, p);
      }, (st) => signal(0, statArray(st)), plain(signal));
    }
    // fuse-native routes fgetattr to getattr(path) and drops the fh: answer through the fh instead.
    _op_fgetattr(signal: Signal, p: string, fd: number): void {
      run('fgetattr', p, (ctx) => {
        if (fd === 0) return backend.getattr(ctx, p);
        const e = entryOf(fd);
        return backend.fgetattr(ctx, e.path, e.fh);
      }, (st) => signal(0, statArray(st)), plain(signal));
    }
    _op_access(signal: Signal, p: string, mode: number): void {
      run('access', p, (ctx) => { noHidden(p); return backend.access(ctx, p, mode); }, ok(signal), plain(signal));
    }
    _op_statfs(signal: Signal, p: string): void {
      run('statfs', p, (ctx) => backend.statfs(ctx, p), (s) => signal(0, statfsArray(s)), plain(signal));
    }
    _op_readdir(signal: Signal, p: string): void {
      run('readdir', p, (ctx) => backend.readdir(ctx, p), (names) => signal(0, names, []), plain(signal));
    }
    _op_open(signal: Signal, p: string, flags: number): void {
      run('open', p, async (ctx) => {
        noHidden(p);
        const fh = await backend.open(ctx, p, flags);
        return this.register(ctx, p, fh);
      }, (id) => signal(0, id), plain(signal));
    }
    // The patched binding passes the open flags as a third argument (fuse-native passes only the mode).
    _op_create(signal: Signal, p: string, mode: number, flags: number | undefined): void {
      run('create', p, async (ctx) => {
        const fh = await backend.create(ctx, p, mode, flags ?? fsConstants.O_WRONLY);
        return this.register(ctx, p, fh);
      }, (id) => signal(0, id), plain(signal));
    }
    async register(ctx: CallerContext, p: string, fh: Fh): Promise<number> {
      const id = allocFh({ fh, path: p });
      stats.openFiles = entries.size;
      if (id < 0) {
        await backend.release(ctx, p, fh).catch((e: unknown) => log(`fuse release after ENFILE ${p}: ${String(e)}`));
        throw Object.assign(new Error('too many open files'), { errno: -id });
      }
      return id;
    }
    _op_read(signal: Signal, p: string, fd: number, buf: Buffer, len: number, offLo: number, offHi: number): void {
      stats.readCalls++;
      stats.maxReadBytes = Math.max(stats.maxReadBytes, len);
      run('read', p, async (ctx) => {
        const e = entryOf(fd);
        const n = await backend.read(ctx, e.path, e.fh, buf.subarray(0, len), size64(offLo, offHi));
        if (!Number.isInteger(n) || n < 0 || n > len) throw new Error(`backend read returned ${n} for ${len} bytes`);
        return n;
      }, (n) => signal(n, 0, buf.buffer), (neg) => signal(neg, 0, buf.buffer));
    }
    _op_write(signal: Signal, p: string, fd: number, buf: Buffer, len: number, offLo: number, offHi: number): void {
      stats.writeCalls++;
      stats.writeBytes += len;
      stats.maxWriteBytes = Math.max(stats.maxWriteBytes, len);
      const key = String(len);
      if (key in stats.writeSizes || Object.keys(stats.writeSizes).length < 64) stats.writeSizes[key] = (stats.writeSizes[key] ?? 0) + 1;
      run('write', p, async (ctx) => {
        const e = entryOf(fd);
        const n = await backend.write(ctx, e.path, e.fh, buf.subarray(0, len), size64(offLo, offHi));
        if (!Number.isInteger(n) || n < 0 || n > len) throw new Error(`backend write returned ${n} for ${len} bytes`);
        return n;
      }, (n) => signal(n, 0, buf.buffer), (neg) => signal(neg, 0, buf.buffer));
    }
    _op_flush(signal: Signal, p: string, fd: number): void {
      run('flush', p, (ctx) => { const e = entryOf(fd); return backend.flush(ctx, e.path, e.fh); }, ok(signal), plain(signal));
    }
    _op_fsync(signal: Signal, p: string, datasync: number, fd: number): void {
      run('fsync', p, (ctx) => { const e = entryOf(fd); return backend.fsync(ctx, e.path, e.fh, datasync !== 0); }, ok(signal), plain(signal));
    }
    _op_release(signal: Signal, p: string, fd: number): void {
      run('release', p, async (ctx) => {
        const e = entries.get(fd);
        if (!e) return; // nothing to release: answered 0, the kernel forgets the fh either way
        entries.delete(fd);
        indexRemove(e.path, fd);
        stats.openFiles = entries.size;
        await backend.release(ctx, e.path, e.fh);
      }, ok(signal), plain(signal));
    }
    _op_truncate(signal: Signal, p: string, lo: number, hi: number): void {
      run('truncate', p, (ctx) => {
        if (hidden.has(p)) {
          const e = anyOpenFh(p);
          if (!e) throw Object.assign(new Error('hidden without fh'), { errno: E.ENOENT });
          return backend.ftruncate(ctx, e.path, e.fh, size64(lo, hi));
        }
        return backend.truncate(ctx, p, size64(lo, hi));
      }, ok(signal), plain(signal));
    }
    _op_ftruncate(signal: Signal, p: string, fd: number, lo: number, hi: number): void {
      run('ftruncate', p, (ctx) => { const e = entryOf(fd); return backend.ftruncate(ctx, e.path, e.fh, size64(lo, hi)); }, ok(signal), plain(signal));
    }
    _op_mkdir(signal: Signal, p: string, mode: number): void {
      run('mkdir', p, (ctx) => backend.mkdir(ctx, p, mode), ok(signal), plain(signal));
    }
    _op_rmdir(signal: Signal, p: string): void {
      run('rmdir', p, (ctx) => backend.rmdir(ctx, p), ok(signal), plain(signal));
    }
    _op_unlink(signal: Signal, p: string): void {
      run('unlink', p, async (ctx) => {
        // libfuse unlinks its hidden name after the last release: the backend file is already gone.
        if (hidden.delete(p)) { stats.hiddenFiles = hidden.size; return; }
        await backend.unlink(ctx, p);
      }, ok(signal), plain(signal));
    }
    _op_rename(signal: Signal, from: string, to: string): void {
      run('rename', from, async (ctx) => {
        if (HIDDEN_NAME.test(path.posix.basename(to)) && byPath.has(from) && !hidden.has(from)) {
          // libfuse "hides" a file unlinked while open by renaming it. Unlink it for real in the backend
          // (open handles keep it alive there) so no .fuse_hidden file is ever visible to other mounts.
          await backend.unlink(ctx, from);
          indexRename(from, to);
          hidden.add(to);
          stats.hiddenFiles = hidden.size;
          return;
        }
        noHidden(from);
        await backend.rename(ctx, from, to);
        indexRename(from, to);
      }, ok(signal), plain(signal));
    }
    _op_link(signal: Signal, existing: string, newPath: string): void {
      run('link', newPath, (ctx) => { noHidden(existing); return backend.link(ctx, existing, newPath); }, ok(signal), plain(signal));
    }
    _op_symlink(signal: Signal, target: string, linkPath: string): void {
      run('symlink', linkPath, (ctx) => backend.symlink(ctx, target, linkPath), ok(signal), plain(signal));
    }
    _op_readlink(signal: Signal, p: string): void {
      run('readlink', p, (ctx) => backend.readlink(ctx, p), (t) => signal(0, t), plain(signal));
    }
    _op_mknod(signal: Signal, p: string, mode: number, dev: number): void {
      run('mknod', p, (ctx) => backend.mknod(ctx, p, mode, dev), ok(signal), plain(signal));
    }
    _op_chmod(signal: Signal, p: string, mode: number): void {
      run('chmod', p, (ctx) => backend.chmod(ctx, p, mode, openFhOfHidden(p)), ok(signal), plain(signal));
    }
    _op_chown(signal: Signal, p: string, uid: number, gid: number): void {
      const unchanged = (id: number): number => (id === UINT32_MAX ? -1 : id);
      run('chown', p, (ctx) => backend.chown(ctx, p, unchanged(uid), unchanged(gid), openFhOfHidden(p)), ok(signal), plain(signal));
    }
    // The patched binding passes atime then mtime (fuse-native passes atime twice).
    _op_utimens(signal: Signal, p: string, aLo: number, aHi: number, mLo: number, mHi: number): void {
      run('utimens', p, (ctx) => backend.utimens(ctx, p, utime(aLo, aHi), utime(mLo, mHi), openFhOfHidden(p)), ok(signal), plain(signal));
    }
    _op_setxattr(signal: Signal, p: string, name: string, value: Buffer, _position: number, flags: number): void {
      run('setxattr', p, (ctx) => backend.setxattr(ctx, p, name, value, flags, openFhOfHidden(p)),
        () => signal(0, value.buffer), (neg) => signal(neg, value.buffer));
    }
    _op_getxattr(signal: Signal, p: string, name: string, target: Buffer): void {
      run('getxattr', p, (ctx) => backend.getxattr(ctx, p, name, openFhOfHidden(p)), (value) => {
        if (target.length === 0) return signal(value.length, target.buffer); // size probe
        if (value.length > target.length) return signal(-E.ERANGE, target.buffer);
        value.copy(target);
        signal(value.length, target.buffer);
      }, (neg) => signal(neg, target.buffer));
    }
    _op_listxattr(signal: Signal, p: string, target: Buffer): void {
      run('listxattr', p, (ctx) => backend.listxattr(ctx, p, openFhOfHidden(p)), (names) => {
        const packed = Buffer.concat(names.map((n) => Buffer.from(n + '\0', 'utf8')));
        if (target.length === 0) return signal(packed.length, target.buffer);
        if (packed.length > target.length) return signal(-E.ERANGE, target.buffer);
        packed.copy(target);
        signal(packed.length, target.buffer);
      }, (neg) => signal(neg, target.buffer));
    }
    _op_removexattr(signal: Signal, p: string, name: string): void {
      run('removexattr', p, (ctx) => backend.removexattr(ctx, p, name, openFhOfHidden(p)), ok(signal), plain(signal));
    }
  }

  // force:false — fuse-native's "force" would exec fusermount from this process. mkdir:false — the parent prepares the dir.
  const fuse = new HandlefsFuse(mountpoint, ops, { force: false, mkdir: false, timeout: options.opTimeoutMs });
  return {
    mount: () => new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve()))),
    detach: () => loaded.umount(mountpoint),
    stats: () => ({ ...stats, ops: { ...stats.ops }, writeSizes: { ...stats.writeSizes }, errorsByOp: { ...stats.errorsByOp }, lastCallerByOp: { ...stats.lastCallerByOp } }),
  };
}
