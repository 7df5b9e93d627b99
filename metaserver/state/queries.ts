/**
 * The read side of the metadata state: getattr, lookup, readlink, readdir,
 * getxattr, listxattr and statfs, straight from LevelDB. The server calls them
 * after a ReadIndex, so they see at least every write acknowledged before the
 * read began. Must never write: a query changes nothing, not even atime.
 */
import { ClassicLevel } from 'classic-level';
import { Errno, Result, fail, ok } from '../rules/errno';
import { FileType } from '../rules/modes';
import { checkName, checkXattrName } from '../rules/names';
import { Caller, R_OK, mayAccess, mayAccessXattr, mayLookup, xattrListable } from '../rules/permissions';
import { Attrs, COUNTERS_KEY, Counters, Inode, attrsOf, decodeDirent, decodeRecord, direntKey, direntName, direntRange, inodeKey, readU64, sessionRange, xattrKey } from './records';

/** At most this many entries per readdir page, whatever the caller asks. */
export const MAX_READDIR_PAGE_ENTRIES = 1_000;
/** Sessions counted by statfs in one call (the count is also kept in the counters record). */
const MAX_SESSIONS_LISTED = 100_000;

type Db = ClassicLevel<Buffer, Uint8Array>;

export interface DirEntry {
  name: string;
  handle: number;
  type: FileType;
}

export interface ReaddirPage {
  entries: DirEntry[];
  /** Pass back to continue after the last entry; undefined when the directory is done. */
  cookie?: string;
}

export interface Statfs {
  inodesInUse: number;
  nextHandle: number;
  sessionsOpen: number;
}

export class MetaQueries {
  constructor(private readonly db: Db) {}

  private async inode(handle: number): Promise<Inode | undefined> {
    if (!Number.isSafeInteger(handle) || handle < 1) return undefined;
    const bytes = await this.db.get(inodeKey(handle));
    return bytes ? decodeRecord<Inode>(bytes, 'inode') : undefined;
  }

  /** ESTALE for a handle that no longer exists, or whose generation is not the one given. */
  private async live(handle: number, generation?: number): Promise<Result<Inode>> {
    const inode = await this.inode(handle);
    if (!inode) return fail(Errno.ESTALE, `handle ${handle} does not exist`);
    if (generation !== undefined && inode.generation !== generation) return fail(Errno.ESTALE, `handle ${handle} is generation ${inode.generation}, not ${generation}`);
    return ok(inode);
  }

  async getattr(handle: number, generation?: number): Promise<Result<Attrs>> {
    const inode = await this.live(handle, generation);
    return inode.ok ? ok(attrsOf(inode.value)) : inode;
  }

  async lookup(caller: Caller, parent: number, name: string): Promise<Result<Attrs>> {
    const checked = checkName(name);
    if (!checked.ok) return checked;
    const dir = await this.live(parent);
    if (!dir.ok) return dir;
    const allowed = mayLookup(caller, dir.value);
    if (!allowed.ok) return allowed;
    const bytes = await this.db.get(direntKey(parent, checked.value));
    if (!bytes) return fail(Errno.ENOENT, `no entry ${JSON.stringify(checked.value)} in directory ${parent}`);
    const child = await this.inode(decodeDirent(bytes).handle);
    if (!child) throw new Error(`metastate: entry ${checked.value} in ${parent} names a missing handle`);
    return ok(attrsOf(child));
  }

  async readlink(handle: number): Promise<Result<string>> {
    const inode = await this.live(handle);
    if (!inode.ok) return inode;
    if (inode.value.type !== 'lnk' || inode.value.target === undefined) return fail(Errno.EINVAL, `handle ${handle} is a ${inode.value.type}, not a symlink`);
    return ok(inode.value.target);
  }

  /**
   * One page of a directory in UTF-8 byte order of names, starting after
   * `cookie` (the last name of the previous page). Reads only this page's
   * keys, so a huge directory never sits in memory.
   */
  async readdir(caller: Caller, parent: number, cookie: string | undefined, limit: number): Promise<Result<ReaddirPage>> {
    if (!Number.isInteger(limit) || limit < 1) return fail(Errno.EINVAL, `readdir limit ${String(limit)} is not a positive integer`);
    if (cookie !== undefined) {
      const checked = checkName(cookie);
      if (!checked.ok) return fail(Errno.EINVAL, `readdir cookie is not a name: ${checked.message}`);
    }
    const dir = await this.live(parent);
    if (!dir.ok) return dir;
    if (dir.value.type !== 'dir') return fail(Errno.ENOTDIR, `handle ${parent} is a ${dir.value.type}, not a directory`);
    const allowed = mayAccess(caller, dir.value, R_OK);
    if (!allowed.ok) return allowed;
    const pageEntries = Math.min(limit, MAX_READDIR_PAGE_ENTRIES);
    const range = direntRange(parent);
    const options = cookie === undefined ? { gte: range.gte, lt: range.lt } : { gt: direntKey(parent, cookie), lt: range.lt };
    // One more than the page, to know whether the directory goes on.
    const rows = await this.db.iterator({ ...options, limit: pageEntries + 1 }).all();
    const entries: DirEntry[] = [];
    for (const [key, value] of rows.slice(0, pageEntries)) entries.push({ name: direntName(key), ...decodeDirent(value) });
    const more = rows.length > pageEntries;
    return ok(more ? { entries, cookie: entries[entries.length - 1].name } : { entries });
  }

  async getxattr(caller: Caller, handle: number, name: string): Promise<Result<Uint8Array>> {
    const inode = await this.live(handle);
    if (!inode.ok) return inode;
    const checked = checkXattrName(name);
    if (!checked.ok) return checked;
    const allowed = mayAccessXattr(caller, inode.value, checked.value.namespace, R_OK);
    if (!allowed.ok) return allowed;
    const value = inode.value.xattrs.includes(checked.value.name) ? await this.db.get(xattrKey(handle, checked.value.name)) : undefined;
    if (!value) return fail(Errno.ENODATA, `no attribute ${JSON.stringify(checked.value.name)}`);
    return ok(value);
  }

  async listxattr(caller: Caller, handle: number): Promise<Result<string[]>> {
    const inode = await this.live(handle);
    if (!inode.ok) return inode;
    return ok(inode.value.xattrs.filter((name) => {
      const parsed = checkXattrName(name);
      return parsed.ok && xattrListable(caller, parsed.value.namespace);
    }));
  }

  async statfs(): Promise<Statfs> {
    const bytes = await this.db.get(COUNTERS_KEY);
    const counters = bytes ? decodeRecord<Counters>(bytes, 'counters') : { nextHandle: 1, inodesInUse: 0, sessionsOpen: 0 };
    return { inodesInUse: counters.inodesInUse, nextHandle: counters.nextHandle, sessionsOpen: counters.sessionsOpen };
  }

  /** The ids of open sessions (for the leader's expiry timers after it takes over), at most MAX_SESSIONS_LISTED. */
  async sessionIds(): Promise<number[]> {
    const keys = await this.db.keys({ ...sessionRange, limit: MAX_SESSIONS_LISTED }).all();
    return keys.map((key) => readU64(key, 1));
  }
}
