/**
 * An in-memory FileSystemBackend, only for testing the FUSE plumbing (fuse-host, mount-process) without
 * the cluster. Owns: a tree of inodes in this process's memory. It must never be used for user data and
 * does no permission checks (that is the real backend's job); it does keep POSIX shapes the tests look at
 * (nlink, unlinked-but-open files, times, owners from the caller context).
 */
import { constants as C } from 'fs';
import { CallerContext, FileStat, FileSystemBackend, StatFs, TimeArg, fsError } from './filesystem';

const O_ACCMODE = 3; // not in fs.constants typings
const MAX_FILE_BYTES = 256 * 1024 * 1024;
const MAX_INODES = 100_000;
const MAX_NAME_BYTES = 255;
const MAX_XATTR_VALUE_BYTES = 64 * 1024;

interface Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  rdev: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  data: Buffer;
  sizeBytes: number;
  children: Map<string, Inode> | null;
  target: string;
  xattrs: Map<string, Buffer>;
  openCount: number;
}

export class MemoryBackend implements FileSystemBackend<number> {
  private nextIno = 1;
  private inodeCount = 0;
  private readonly root: Inode;
  private readonly handles = new Map<number, Inode>();
  private nextFh = 1;

  constructor() {
    this.root = this.newInode({ uid: 0, gid: 0, pid: 0, umask: 0 }, C.S_IFDIR | 0o777);
    this.root.nlink = 2;
  }

  private newInode(ctx: CallerContext, mode: number): Inode {
    if (this.inodeCount >= MAX_INODES) throw fsError('ENOSPC', 'memory backend inode limit');
    this.inodeCount++;
    const now = Date.now();
    const isDir = (mode & C.S_IFMT) === C.S_IFDIR;
    return {
      ino: this.nextIno++, mode, uid: ctx.uid, gid: ctx.gid, nlink: isDir ? 2 : 1, rdev: 0,
      atimeMs: now, mtimeMs: now, ctimeMs: now, data: Buffer.alloc(0), sizeBytes: 0,
      children: isDir ? new Map() : null, target: '', xattrs: new Map(), openCount: 0,
    };
  }

  private split(path: string): string[] {
    if (!path.startsWith('/')) throw fsError('EINVAL', `relative path ${path}`);
    const parts = path.split('/').filter((s) => s.length > 0);
    for (const p of parts) if (Buffer.byteLength(p) > MAX_NAME_BYTES) throw fsError('ENAMETOOLONG');
    return parts;
  }

  private lookup(path: string): Inode {
    let node = this.root;
    for (const name of this.split(path)) {
      if (!node.children) throw fsError('ENOTDIR');
      const next = node.children.get(name);
      if (!next) throw fsError('ENOENT', path);
      node = next;
    }
    return node;
  }

  private parentOf(path: string): { dir: Inode; name: string } {
    const parts = this.split(path);
    const name = parts.pop();
    if (name === undefined) throw fsError('EBUSY', 'the root');
    const dir = this.lookup('/' + parts.join('/'));
    if (!dir.children) throw fsError('ENOTDIR');
    return { dir, name };
  }

  private add(ctx: CallerContext, path: string, mode: number): Inode {
    const { dir, name } = this.parentOf(path);
    if (dir.children!.has(name)) throw fsError('EEXIST', path);
    const node = this.newInode(ctx, mode);
    dir.children!.set(name, node);
    if (node.children) dir.nlink++;
    dir.mtimeMs = dir.ctimeMs = Date.now();
    return node;
  }

  private dropLink(node: Inode): void {
    node.nlink--;
    node.ctimeMs = Date.now();
    if (node.nlink <= 0 && node.openCount === 0) this.inodeCount--;
  }

  private stat(n: Inode): FileStat {
    return {
      mode: n.mode, uid: n.uid, gid: n.gid, sizeBytes: n.sizeBytes, nlink: n.nlink, ino: n.ino, rdev: n.rdev,
      blksizeBytes: 4096, blocks: Math.ceil(n.sizeBytes / 512), atimeMs: n.atimeMs, mtimeMs: n.mtimeMs, ctimeMs: n.ctimeMs,
    };
  }

  private handle(fh: number): Inode {
    const n = this.handles.get(fh);
    if (!n) throw fsError('EBADF');
    return n;
  }

  private resize(n: Inode, sizeBytes: number): void {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) throw fsError('EINVAL');
    if (sizeBytes > MAX_FILE_BYTES) throw fsError('EFBIG');
    if (sizeBytes > n.data.length) {
      const grown = Buffer.alloc(Math.min(MAX_FILE_BYTES, Math.max(sizeBytes, n.data.length * 2)));
      n.data.copy(grown, 0, 0, n.sizeBytes);
      n.data = grown;
    } else if (sizeBytes < n.sizeBytes) {
      n.data.fill(0, sizeBytes, n.sizeBytes); // a later extension must read zeros
    }
    n.sizeBytes = sizeBytes;
    n.mtimeMs = n.ctimeMs = Date.now();
  }

  async getattr(_ctx: CallerContext, path: string): Promise<FileStat> { return this.stat(this.lookup(path)); }
  async fgetattr(_ctx: CallerContext, _path: string, fh: number): Promise<FileStat> { return this.stat(this.handle(fh)); }
  async access(_ctx: CallerContext, path: string): Promise<void> { this.lookup(path); }
  async readdir(_ctx: CallerContext, path: string): Promise<string[]> {
    const n = this.lookup(path);
    if (!n.children) throw fsError('ENOTDIR');
    return [...n.children.keys()];
  }
  async statfs(): Promise<StatFs> {
    return { bsizeBytes: 4096, frsizeBytes: 4096, blocks: 1 << 20, bfree: 1 << 19, bavail: 1 << 19,
      files: MAX_INODES, ffree: MAX_INODES - this.inodeCount, favail: MAX_INODES - this.inodeCount, namemaxBytes: MAX_NAME_BYTES };
  }

  private openInode(n: Inode, flags: number): number {
    if (n.children && (flags & O_ACCMODE) !== C.O_RDONLY) throw fsError('EISDIR');
    if ((flags & C.O_TRUNC) && (flags & O_ACCMODE) !== C.O_RDONLY) this.resize(n, 0);
    const fh = this.nextFh++;
    this.handles.set(fh, n);
    n.openCount++;
    return fh;
  }
  async open(_ctx: CallerContext, path: string, flags: number): Promise<number> { return this.openInode(this.lookup(path), flags); }
  async create(ctx: CallerContext, path: string, mode: number, flags: number): Promise<number> {
    return this.openInode(this.add(ctx, path, C.S_IFREG | (mode & 0o7777 & ~ctx.umask)), flags & ~C.O_TRUNC);
  }
  async read(_ctx: CallerContext, _path: string, fh: number, target: Buffer, positionBytes: number): Promise<number> {
    const n = this.handle(fh);
    if (positionBytes >= n.sizeBytes) return 0;
    const end = Math.min(n.sizeBytes, positionBytes + target.length);
    n.data.copy(target, 0, positionBytes, end);
    return end - positionBytes;
  }
  async write(_ctx: CallerContext, _path: string, fh: number, data: Buffer, positionBytes: number): Promise<number> {
    const n = this.handle(fh);
    const end = positionBytes + data.length;
    if (end > n.sizeBytes) this.resize(n, end);
    data.copy(n.data, positionBytes);
    n.mtimeMs = n.ctimeMs = Date.now();
    return data.length;
  }
  async flush(): Promise<void> {}
  async fsync(): Promise<void> {}
  async release(_ctx: CallerContext, _path: string, fh: number): Promise<void> {
    const n = this.handle(fh);
    this.handles.delete(fh);
    n.openCount--;
    if (n.openCount === 0 && n.nlink <= 0) this.inodeCount--;
  }
  async truncate(_ctx: CallerContext, path: string, sizeBytes: number): Promise<void> { this.resize(this.lookup(path), sizeBytes); }
  async ftruncate(_ctx: CallerContext, _path: string, fh: number, sizeBytes: number): Promise<void> { this.resize(this.handle(fh), sizeBytes); }

  async mkdir(ctx: CallerContext, path: string, mode: number): Promise<void> { this.add(ctx, path, C.S_IFDIR | (mode & 0o7777 & ~ctx.umask)); }
  async rmdir(_ctx: CallerContext, path: string): Promise<void> {
    const { dir, name } = this.parentOf(path);
    const n = dir.children!.get(name);
    if (!n) throw fsError('ENOENT');
    if (!n.children) throw fsError('ENOTDIR');
    if (n.children.size > 0) throw fsError('ENOTEMPTY');
    dir.children!.delete(name);
    dir.nlink--;
    n.nlink = 1;
    this.dropLink(n);
  }
  async unlink(_ctx: CallerContext, path: string): Promise<void> {
    const { dir, name } = this.parentOf(path);
    const n = dir.children!.get(name);
    if (!n) throw fsError('ENOENT');
    if (n.children) throw fsError('EISDIR');
    dir.children!.delete(name);
    dir.mtimeMs = dir.ctimeMs = Date.now();
    this.dropLink(n);
  }
  async rename(_ctx: CallerContext, fromPath: string, toPath: string): Promise<void> {
    const from = this.parentOf(fromPath);
    const n = from.dir.children!.get(from.name);
    if (!n) throw fsError('ENOENT');
    if (n.children && (toPath + '/').startsWith(fromPath + '/')) throw fsError('EINVAL', 'into its own subtree');
    const to = this.parentOf(toPath);
    const old = to.dir.children!.get(to.name);
    if (old === n) return;
    if (old) {
      if (old.children && !n.children) throw fsError('EISDIR');
      if (!old.children && n.children) throw fsError('ENOTDIR');
      if (old.children && old.children.size > 0) throw fsError('ENOTEMPTY');
      if (old.children) { to.dir.nlink--; old.nlink = 1; }
      this.dropLink(old);
    }
    from.dir.children!.delete(from.name);
    to.dir.children!.set(to.name, n);
    if (n.children) { from.dir.nlink--; to.dir.nlink++; }
    const now = Date.now();
    from.dir.mtimeMs = to.dir.mtimeMs = n.ctimeMs = now;
  }
  async link(_ctx: CallerContext, existingPath: string, newPath: string): Promise<void> {
    const n = this.lookup(existingPath);
    if (n.children) throw fsError('EPERM', 'hard link to a directory');
    const { dir, name } = this.parentOf(newPath);
    if (dir.children!.has(name)) throw fsError('EEXIST');
    dir.children!.set(name, n);
    n.nlink++;
    n.ctimeMs = Date.now();
  }
  async symlink(ctx: CallerContext, target: string, linkPath: string): Promise<void> {
    const n = this.add(ctx, linkPath, C.S_IFLNK | 0o777);
    n.target = target;
    n.sizeBytes = Buffer.byteLength(target);
  }
  async readlink(_ctx: CallerContext, path: string): Promise<string> {
    const n = this.lookup(path);
    if ((n.mode & C.S_IFMT) !== C.S_IFLNK) throw fsError('EINVAL');
    return n.target;
  }
  async mknod(ctx: CallerContext, path: string, mode: number, rdev: number): Promise<void> {
    this.add(ctx, path, mode & ~ctx.umask).rdev = rdev;
  }
  async chmod(_ctx: CallerContext, path: string, mode: number): Promise<void> {
    const n = this.lookup(path);
    n.mode = (n.mode & C.S_IFMT) | (mode & 0o7777);
    n.ctimeMs = Date.now();
  }
  async chown(_ctx: CallerContext, path: string, uid: number, gid: number): Promise<void> {
    const n = this.lookup(path);
    if (uid !== -1) n.uid = uid;
    if (gid !== -1) n.gid = gid;
    n.ctimeMs = Date.now();
  }
  async utimens(_ctx: CallerContext, path: string, atimeArg: TimeArg, mtimeArg: TimeArg): Promise<void> {
    const atimeMs = atimeArg === 'now' ? Date.now() : atimeArg;
    const mtimeMs = mtimeArg === 'now' ? Date.now() : mtimeArg;
    const n = this.lookup(path);
    if (atimeMs !== null) n.atimeMs = atimeMs;
    if (mtimeMs !== null) n.mtimeMs = mtimeMs;
    n.ctimeMs = Date.now();
  }
  async setxattr(_ctx: CallerContext, path: string, name: string, value: Buffer, flags: number): Promise<void> {
    const n = this.lookup(path);
    if (value.length > MAX_XATTR_VALUE_BYTES) throw fsError('E2BIG');
    if ((flags & 1) && n.xattrs.has(name)) throw fsError('EEXIST');
    if ((flags & 2) && !n.xattrs.has(name)) throw fsError('ENODATA');
    n.xattrs.set(name, Buffer.from(value)); // copy: `value` is fuse-native memory
  }
  async getxattr(_ctx: CallerContext, path: string, name: string): Promise<Buffer> {
    const v = this.lookup(path).xattrs.get(name);
    if (!v) throw fsError('ENODATA');
    return v;
  }
  async listxattr(_ctx: CallerContext, path: string): Promise<string[]> { return [...this.lookup(path).xattrs.keys()]; }
  async removexattr(_ctx: CallerContext, path: string, name: string): Promise<void> {
    if (!this.lookup(path).xattrs.delete(name)) throw fsError('ENODATA');
  }
  async shutdown(): Promise<void> {}
}
