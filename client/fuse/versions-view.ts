/**
 * The read-only `<mount>/.versions/` tree: for every regular file `/a/b`,
 * `/.versions/a/b/` is a directory holding one file per kept version, named
 * by its number, with the version's size and its commit time as mtime;
 * directories mirror the real tree so it can be walked. Owns the mapping of
 * those paths to (handle, version); must never change anything (every
 * change under it answers EROFS) and never list itself in the real root.
 */
import { constants as C } from 'fs';
import { BLOCK_SIZE_BYTES, MetaClient } from '../sdk';
import type { Caller } from '../sdk';
import { FileStat, fsError } from './filesystem';

export const VERSIONS_DIR = '/.versions';
/** Versions listed per file at most (the servers keep what retention allows). */
const MAX_VERSIONS_LISTED = 100_000;

export type VersionsTarget =
  | { kind: 'root' }
  /** A real directory or a regular file seen as the directory of its versions. */
  | { kind: 'dir'; realPath: string; handle: number; isFile: boolean }
  | { kind: 'version'; realPath: string; handle: number; version: number; sizeBytes: number; commitTimeMs: number };

export function isVersionsPath(path: string): boolean {
  return path === VERSIONS_DIR || path.startsWith(VERSIONS_DIR + '/');
}

function dirStat(ino: number, mtimeMs: number): FileStat {
  return { mode: C.S_IFDIR | 0o555, uid: 0, gid: 0, sizeBytes: 0, nlink: 2, ino, rdev: 0, blksizeBytes: BLOCK_SIZE_BYTES, blocks: 0, atimeMs: mtimeMs, mtimeMs, ctimeMs: mtimeMs };
}

export class VersionsView {
  constructor(private readonly sdk: MetaClient, private readonly resolve: (caller: Caller, realPath: string) => Promise<number>) {}

  /** What a path under /.versions names (ENOENT when nothing). */
  async target(caller: Caller, path: string): Promise<VersionsTarget> {
    const rest = path.slice(VERSIONS_DIR.length);
    if (rest === '' || rest === '/') return { kind: 'root' };
    const realPath = rest;
    // A version file is /.versions/<file>/<N>: try the whole path as a real path first.
    try {
      const handle = await this.resolve(caller, realPath);
      const attr = await this.sdk.getattr(handle);
      return { kind: 'dir', realPath, handle, isFile: attr.type === 'reg' };
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOENT' && (error as { code?: string }).code !== 'ENOTDIR') throw error;
    }
    const slash = realPath.lastIndexOf('/');
    const filePath = realPath.slice(0, slash) || '/';
    const number = Number(realPath.slice(slash + 1));
    if (!Number.isSafeInteger(number) || number < 1) throw fsError('ENOENT', `${path}: no such version`);
    const handle = await this.resolve(caller, filePath);
    const { info } = await this.sdk.versionInfo(handle, number, caller);
    return { kind: 'version', realPath: filePath, handle, version: number, sizeBytes: info.sizeBytes, commitTimeMs: info.commitTimeMs };
  }

  async getattr(caller: Caller, path: string): Promise<FileStat> {
    const target = await this.target(caller, path);
    if (target.kind === 'root') return dirStat(0, 0);
    if (target.kind === 'dir') return dirStat(target.handle, (await this.sdk.getattr(target.handle)).mtimeMs);
    return {
      mode: C.S_IFREG | 0o444, uid: 0, gid: 0, sizeBytes: target.sizeBytes, nlink: 1, ino: 0, rdev: 0, blksizeBytes: BLOCK_SIZE_BYTES,
      blocks: Math.ceil(target.sizeBytes / 512), atimeMs: target.commitTimeMs, mtimeMs: target.commitTimeMs, ctimeMs: target.commitTimeMs,
    };
  }

  async readdir(caller: Caller, path: string): Promise<string[]> {
    const target = await this.target(caller, path);
    if (target.kind === 'version') throw fsError('ENOTDIR', path);
    const handle = target.kind === 'root' ? 1 : target.handle;
    if (target.kind === 'dir' && target.isFile) {
      const names: string[] = [];
      for await (const v of this.sdk.listVersions(handle, caller)) {
        names.push(String(v.version));
        if (names.length >= MAX_VERSIONS_LISTED) break;
      }
      return names;
    }
    const names: string[] = [];
    for await (const entry of this.sdk.readdir(handle, caller)) names.push(entry.name);
    return names;
  }
}
