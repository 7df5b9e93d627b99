/**
 * The contract between the FUSE host (fuse-host.ts) and whatever answers file-system calls
 * (memory-backend.ts for plumbing tests; the SDK-backed backend next).
 * Owns: the types a backend sees and the errno error it throws. It must never import fuse-native:
 * a backend is testable without a mount, and the host is testable without the cluster.
 *
 * Conventions every backend follows:
 * - Every method is async and either resolves or rejects with an error carrying a numeric `.errno`
 *   (positive like 2, or negative like Node's -2: the host uses Math.abs). Use `FsError`.
 *   Anything else (a bug) reaches the application as EIO and is logged by the host.
 * - `ctx` is the calling process (uid/gid/pid/umask from the FUSE request). The kernel does NOT check
 *   permissions (default_permissions is off): the backend must, with ctx.uid/ctx.gid.
 * - Paths are absolute inside the mount ("/", "/a/b"). Times are milliseconds since the epoch.
 * - Buffers passed in (write data, read target) live in fuse-native memory that is only valid until the
 *   returned promise settles: copy what you keep.
 */
import { constants as osConstants } from 'os';

/** A time utimens sets: ms since the epoch, the server's now, or null to leave it. */
export type TimeArg = number | 'now' | null;

export interface CallerContext {
  readonly uid: number;
  readonly gid: number;
  /** Thread id of the caller as the kernel reports it (equals the process id for single-threaded callers). */
  readonly pid: number;
  readonly umask: number;
}

export interface FileStat {
  mode: number;
  uid: number;
  gid: number;
  sizeBytes: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksizeBytes: number;
  /** 512-byte blocks, as stat(2) counts them. */
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
}

export interface StatFs {
  bsizeBytes: number;
  frsizeBytes: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemaxBytes: number;
}

/**
 * One method per operation fuse-native 2.2.6 forwards (opendir/releasedir/fsyncdir are answered by the
 * host; lock ops do not exist in fuse-native). `Fh` is the backend's own handle type: the host maps it to
 * the small integer the kernel sees.
 */
export interface FileSystemBackend<Fh> {
  getattr(ctx: CallerContext, path: string): Promise<FileStat>;
  /** fstat through an open handle: must work after the file was unlinked or renamed. */
  fgetattr(ctx: CallerContext, path: string, fh: Fh): Promise<FileStat>;
  access(ctx: CallerContext, path: string, mode: number): Promise<void>;
  /** Names only, without "." and "..". */
  readdir(ctx: CallerContext, path: string): Promise<string[]>;
  statfs(ctx: CallerContext, path: string): Promise<StatFs>;

  open(ctx: CallerContext, path: string, flags: number): Promise<Fh>;
  /** O_CREAT open: `flags` are the open(2) flags (O_EXCL is already enforced by the kernel's lookup). */
  create(ctx: CallerContext, path: string, mode: number, flags: number): Promise<Fh>;
  /** Fills `target` from `positionBytes`; returns the byte count (0 at end of file). */
  read(ctx: CallerContext, path: string, fh: Fh, target: Buffer, positionBytes: number): Promise<number>;
  /** Returns the byte count written (must be data.length unless an error is thrown). */
  write(ctx: CallerContext, path: string, fh: Fh, data: Buffer, positionBytes: number): Promise<number>;
  /** Called on every close(2) of a descriptor (there may be several per open). */
  flush(ctx: CallerContext, path: string, fh: Fh): Promise<void>;
  fsync(ctx: CallerContext, path: string, fh: Fh, dataOnly: boolean): Promise<void>;
  /** The last close of an open: the handle is gone afterwards. Errors here cannot reach the application. */
  release(ctx: CallerContext, path: string, fh: Fh): Promise<void>;
  truncate(ctx: CallerContext, path: string, sizeBytes: number): Promise<void>;
  ftruncate(ctx: CallerContext, path: string, fh: Fh, sizeBytes: number): Promise<void>;

  mkdir(ctx: CallerContext, path: string, mode: number): Promise<void>;
  rmdir(ctx: CallerContext, path: string): Promise<void>;
  /** Open handles on the file must keep working (read, write, fgetattr) until released. */
  unlink(ctx: CallerContext, path: string): Promise<void>;
  rename(ctx: CallerContext, fromPath: string, toPath: string): Promise<void>;
  link(ctx: CallerContext, existingPath: string, newPath: string): Promise<void>;
  symlink(ctx: CallerContext, target: string, linkPath: string): Promise<void>;
  readlink(ctx: CallerContext, path: string): Promise<string>;
  mknod(ctx: CallerContext, path: string, mode: number, rdev: number): Promise<void>;

  // The attribute calls take `openFh` when the path is no longer the file's: libfuse renamed a file
  // unlinked while open to .fuse_hidden*, and fchmod/fchown/futimens/f*xattr reach it through that
  // name. The backend then acts on the file that fh holds open.
  chmod(ctx: CallerContext, path: string, mode: number, openFh?: Fh): Promise<void>;
  /** -1 means "leave unchanged" (chown(2) semantics). */
  chown(ctx: CallerContext, path: string, uid: number, gid: number, openFh?: Fh): Promise<void>;
  /** null = UTIME_OMIT (leave unchanged); 'now' = UTIME_NOW (utimensat lets anyone who may write set it). */
  utimens(ctx: CallerContext, path: string, atimeMs: TimeArg, mtimeMs: TimeArg, openFh?: Fh): Promise<void>;

  /** flags: XATTR_CREATE (1) / XATTR_REPLACE (2). */
  setxattr(ctx: CallerContext, path: string, name: string, value: Buffer, flags: number, openFh?: Fh): Promise<void>;
  /** Throw ENODATA when the attribute is absent. */
  getxattr(ctx: CallerContext, path: string, name: string, openFh?: Fh): Promise<Buffer>;
  listxattr(ctx: CallerContext, path: string, openFh?: Fh): Promise<string[]>;
  removexattr(ctx: CallerContext, path: string, name: string, openFh?: Fh): Promise<void>;

  /** Called once on SIGTERM/SIGINT after the kernel mount is detached: flush, release, close sessions. */
  shutdown(): Promise<void>;
}

/** An error a backend throws; `errno` is positive (ENOENT = 2). */
export class FsError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(code: keyof typeof osConstants.errno, detail?: string) {
    const errno = osConstants.errno[code];
    super(detail ? `${code}: ${detail}` : code);
    this.errno = errno;
    this.code = code;
  }
}

export function fsError(code: keyof typeof osConstants.errno, detail?: string): FsError {
  return new FsError(code, detail);
}

/** Negative errno for fuse-native, or null when `err` carries none (a bug, not a file-system answer). */
export function negativeErrnoOf(err: unknown): number | null {
  if (err !== null && typeof err === 'object') {
    const e = err as { errno?: unknown; code?: unknown };
    if (typeof e.errno === 'number' && Number.isInteger(e.errno) && e.errno !== 0) return -Math.abs(e.errno);
    if (typeof e.code === 'string' && e.code in osConstants.errno) {
      return -osConstants.errno[e.code as keyof typeof osConstants.errno];
    }
  }
  return null;
}
