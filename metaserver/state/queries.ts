/**
 * The read side of the metadata state: getattr, lookup, readlink, readdir,
 * getxattr, listxattr and statfs, straight from LevelDB. The server calls them
 * after a ReadIndex, so they see at least every write acknowledged before the
 * read began. Must never write: a query changes nothing, not even atime.
 */
import { ClassicLevel } from 'classic-level';
import { PointReader } from './overlay';
import { MAX_BLOCK_IDS_PER_COMMAND } from './block-refs';
import { Errno, Result, fail, ok } from '../rules/errno';
import { FileType } from '../rules/modes';
import { checkName, checkXattrName } from '../rules/names';
import { Caller, R_OK, mayAccess, mayAccessXattr, mayLookup, xattrListable } from '../rules/permissions';
import {
  Attrs, COUNTERS_KEY, ConflictCopyRecord, Counters, FhRecord, Inode, VersionRecord, attrsOf, conflictCopyKey, conflictCopyRange, decodeDirent, decodeRecord,
  direntKey, direntName, direntRange, fhKey, inodeKey, readU64, sessionRange, versionKey, versionRange, xattrKey, Session, BlockRecord, blockIdOfKey, blockKey, blockRange,
  unreferencedBlockRange, unreferencedBlockKey,
} from './records';

/** At most this many entries per readdir page, whatever the caller asks. */
export const MAX_READDIR_PAGE_ENTRIES = 1_000;
/** Sessions counted by statfs in one call (the count is also kept in the counters record). */
const MAX_SESSIONS_LISTED = 100_000;

type Db = ClassicLevel<Buffer, Uint8Array>;

/** A session as sessions() lists it. */
export interface SessionSummary {
  id: number;
  ttlMs: number;
  clientName: string;
  /** Wall clock (ms since the epoch) of the leader that opened it. */
  createdAtMs: number;
  fhCount: number;
}

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

/** At most this many versions or conflict copies per listing page. */
export const MAX_VERSIONS_LISTED = 1_000;

/** A version's metadata without its content (what listVersions returns). */
export type VersionInfo = Omit<VersionRecord, 'inlineBase64'>;
export type ConflictCopyInfo = Omit<ConflictCopyRecord, 'inlineBase64'>;

function infoOf<T extends { inlineBase64: string }>(record: T): Omit<T, 'inlineBase64'> {
  const { inlineBase64: _content, ...info } = record;
  return info;
}

function bytesOf(record: { inlineBase64: string }): Uint8Array {
  return Buffer.from(record.inlineBase64, 'base64');
}

export class MetaQueries {
  /** Point reads go through the machine's record cache; ranges read LevelDB. */
  constructor(private readonly db: Db, private readonly records: PointReader) {}

  private async inode(handle: number): Promise<Inode | undefined> {
    if (!Number.isSafeInteger(handle) || handle < 1) return undefined;
    const bytes = await this.records.get(inodeKey(handle));
    return bytes ? decodeRecord<Inode>(bytes, 'inode') : undefined;
  }

  /** ESTALE for a handle that no longer exists, or whose generation is not the one given. */
  private async live(handle: number, generation?: number): Promise<Result<Inode>> {
    const inode = await this.inode(handle);
    if (!inode) return fail(Errno.ESTALE, `handle ${handle} does not exist`);
    if (generation !== undefined && inode.generation !== generation) return fail(Errno.ESTALE, `handle ${handle} is generation ${inode.generation}, not ${generation}`);
    return ok(inode);
  }

  /** A handle's type, generation and (directories) parent, for the subtree check of client tokens; undefined when it does not exist. */
  async placeOf(handle: number): Promise<{ type: Inode['type']; generation: number; parent?: number } | undefined> {
    const inode = await this.inode(handle);
    return inode === undefined ? undefined : { type: inode.type, generation: inode.generation, parent: inode.parent };
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
    const bytes = await this.records.get(direntKey(parent, checked.value));
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
    const value = inode.value.xattrs.includes(checked.value.name) ? await this.records.get(xattrKey(handle, checked.value.name)) : undefined;
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

  /** A regular file the caller may read. */
  private async readable(caller: Caller, handle: number): Promise<Result<Inode>> {
    const inode = await this.live(handle);
    if (!inode.ok) return inode;
    if (inode.value.type !== 'reg' || inode.value.headVersion === undefined) return fail(Errno.EINVAL, `handle ${handle} is a ${inode.value.type}: only regular files have versions`);
    const allowed = mayAccess(caller, inode.value, R_OK);
    return allowed.ok ? inode : allowed;
  }

  /** One version's metadata and bytes; ENOENT for a version the file does not have. */
  async getVersion(caller: Caller, handle: number, version: number): Promise<Result<{ info: VersionInfo; bytes: Uint8Array }>> {
    const inode = await this.readable(caller, handle);
    if (!inode.ok) return inode;
    if (!Number.isSafeInteger(version) || version < 1) return fail(Errno.EINVAL, `version ${String(version)} is not a version number (they start at 1)`);
    const bytes = await this.records.get(versionKey(handle, version));
    if (!bytes) return fail(Errno.ENOENT, `handle ${handle} has no version ${version} (head is ${inode.value.headVersion})`);
    const record = decodeRecord<VersionRecord>(bytes, 'version');
    return ok({ info: infoOf(record), bytes: bytesOf(record) });
  }

  /** Versions from `fromVersion` on, oldest first, at most `limit` (≤ MAX_VERSIONS_LISTED) per page. */
  async listVersions(caller: Caller, handle: number, fromVersion = 1, limit = MAX_VERSIONS_LISTED): Promise<Result<VersionInfo[]>> {
    const inode = await this.readable(caller, handle);
    if (!inode.ok) return inode;
    if (!Number.isSafeInteger(fromVersion) || fromVersion < 1) return fail(Errno.EINVAL, `fromVersion ${String(fromVersion)} is not a version number`);
    if (!Number.isInteger(limit) || limit < 1) return fail(Errno.EINVAL, `limit ${String(limit)} is not a positive integer`);
    const rows = await this.db.values({ ...versionRange(handle, fromVersion), limit: Math.min(limit, MAX_VERSIONS_LISTED) }).all();
    return ok(rows.map((value) => infoOf(decodeRecord<VersionRecord>(value, 'version'))));
  }

  /** A conflict copy a rejected commit left; ENOENT for one the file does not have. */
  async getConflictCopy(caller: Caller, handle: number, copy: number): Promise<Result<{ info: ConflictCopyInfo; bytes: Uint8Array }>> {
    const inode = await this.readable(caller, handle);
    if (!inode.ok) return inode;
    if (!Number.isSafeInteger(copy) || copy < 1) return fail(Errno.EINVAL, `conflict copy ${String(copy)} is not a copy number (they start at 1)`);
    const bytes = await this.records.get(conflictCopyKey(handle, copy));
    if (!bytes) return fail(Errno.ENOENT, `handle ${handle} has no conflict copy ${copy}`);
    const record = decodeRecord<ConflictCopyRecord>(bytes, 'conflict copy');
    return ok({ info: infoOf(record), bytes: bytesOf(record) });
  }

  /** The file's conflict copies, oldest first, at most MAX_VERSIONS_LISTED. */
  async listConflictCopies(caller: Caller, handle: number): Promise<Result<ConflictCopyInfo[]>> {
    const inode = await this.readable(caller, handle);
    if (!inode.ok) return inode;
    const rows = await this.db.values({ ...conflictCopyRange(handle), limit: MAX_VERSIONS_LISTED }).all();
    return ok(rows.map((value) => infoOf(decodeRecord<ConflictCopyRecord>(value, 'conflict copy'))));
  }

  /** An open fh; EBADF when it is not open, or (given a session) open in another session. */
  async getFh(fh: number, sessionId?: number): Promise<Result<FhRecord>> {
    if (!Number.isSafeInteger(fh) || fh < 1) return fail(Errno.EBADF, `fh ${String(fh)} is not an fh id`);
    const bytes = await this.records.get(fhKey(fh));
    if (!bytes) return fail(Errno.EBADF, `fh ${fh} is not open`);
    const record = decodeRecord<FhRecord>(bytes, 'fh');
    if (sessionId !== undefined && record.sessionId !== sessionId) return fail(Errno.EBADF, `fh ${fh} belongs to session ${record.sessionId}, not ${sessionId}`);
    return ok(record);
  }

  /**
   * What a read through the fh sees: its pinned version, whatever was
   * committed since (permission was checked at open, as POSIX does). EBADF
   * for an fh opened write-only.
   */
  async readThroughFh(fh: number, sessionId?: number): Promise<Result<{ info: VersionInfo; bytes: Uint8Array }>> {
    const record = await this.getFh(fh, sessionId);
    if (!record.ok) return record;
    if (!record.value.flags.read) return fail(Errno.EBADF, `fh ${fh} was opened write-only`);
    const bytes = await this.records.get(versionKey(record.value.handle, record.value.pinnedVersion));
    if (!bytes) throw new Error(`metastate: fh ${fh} pins version ${record.value.pinnedVersion} of handle ${record.value.handle}, which is missing`);
    const version = decodeRecord<VersionRecord>(bytes, 'version');
    return ok({ info: infoOf(version), bytes: bytesOf(version) });
  }

  /** Open fhs over all sessions. */
  async fhsOpen(): Promise<number> {
    const bytes = await this.records.get(COUNTERS_KEY);
    return bytes ? (decodeRecord<Counters>(bytes, 'counters').fhsOpen ?? 0) : 0;
  }

  async statfs(): Promise<Statfs> {
    const bytes = await this.records.get(COUNTERS_KEY);
    const counters = bytes ? decodeRecord<Counters>(bytes, 'counters') : { nextHandle: 1, inodesInUse: 0, sessionsOpen: 0 };
    return { inodesInUse: counters.inodesInUse, nextHandle: counters.nextHandle, sessionsOpen: counters.sessionsOpen };
  }

  /** The ids of open sessions, at most MAX_SESSIONS_LISTED. */
  async sessionIds(): Promise<number[]> {
    return (await this.sessions()).map((session) => session.id);
  }

  /**
   * Open sessions in id order with their TTLs (a new leader gives each its own
   * TTL afresh), who opened them and their open fh counts (the Admin session
   * listing), at most MAX_SESSIONS_LISTED.
   */
  async sessions(): Promise<SessionSummary[]> {
    const values = await this.db.values({ ...sessionRange, limit: MAX_SESSIONS_LISTED }).all();
    return values.map((bytes) => {
      const session = decodeRecord<Session>(bytes, 'session');
      return { id: session.id, ttlMs: session.ttlMs, clientName: session.clientName, createdAtMs: session.createdAtMs, fhCount: session.fhs?.length ?? 0 };
    });
  }

  /** The counters record: sizes of the state for metrics and fsck. */
  async counters(): Promise<Counters> {
    const bytes = await this.records.get(COUNTERS_KEY);
    return bytes ? decodeRecord<Counters>(bytes, 'counters') : { nextHandle: 1, inodesInUse: 0, sessionsOpen: 0 };
  }

  /** Whether the state knows the block at all (referenced, pinned or awaiting collection). */
  async hasBlockRecord(id: string): Promise<boolean> {
    return (await this.records.get(blockKey(id))) !== undefined;
  }

  /**
   * Blocks with no reference, in id order after `afterId` ('' = from the
   * start), at most `limit`: what the leader may propose to collect. The
   * leader walks on from the last id it saw, so pinned or young candidates at
   * the front never starve the rest.
   */
  async unreferencedBlocks(limit: number, afterId = ''): Promise<string[]> {
    const range = afterId === '' ? unreferencedBlockRange : { gt: unreferencedBlockKey(afterId), lt: unreferencedBlockRange.lt };
    const keys = await this.db.keys({ ...range, limit: Math.min(limit, MAX_BLOCK_IDS_PER_COMMAND) }).all();
    return keys.map(blockIdOfKey);
  }

  /** Every block some kept version or conflict copy references, in pages (block repair walks this). */
  async *referencedBlockIds(pageSize = 1_000): AsyncGenerator<string> {
    const iterator = this.db.iterator({ ...blockRange });
    try {
      for (;;) {
        const page = await iterator.nextv(pageSize);
        if (page.length === 0) return;
        for (const [key, value] of page) {
          if (decodeRecord<BlockRecord>(value, 'block').refs > 0) yield blockIdOfKey(key);
        }
      }
    } finally {
      await iterator.close();
    }
  }

  /**
   * Regular files above `afterHandle` that keep more than keepLast versions or
   * any conflict copy — the ones a retention pass may shrink — at most `limit`,
   * scanning at most `maxScanned` inodes. `next` resumes the scan (0 = done).
   */
  async retentionCandidates(afterHandle: number, keepLast: number, limit: number, maxScanned = 10_000): Promise<{ handles: number[]; next: number }> {
    const rows = await this.db.iterator({ gt: inodeKey(afterHandle), lt: inodeKey(Number.MAX_SAFE_INTEGER), limit: maxScanned }).all();
    const handles: number[] = [];
    for (const [key, value] of rows) {
      const inode = decodeRecord<Inode>(value, 'inode');
      if (inode.type !== 'reg' || inode.headVersion === undefined) continue;
      const versionsKept = inode.headVersion - (inode.firstVersion ?? 1) + 1;
      const copiesKept = (inode.conflictCopies ?? 0) - (inode.firstConflictCopy ?? 1) + 1;
      if (versionsKept > keepLast || copiesKept > 0) handles.push(readU64(key, 1));
      if (handles.length >= limit) return { handles, next: readU64(key, 1) };
    }
    return { handles, next: rows.length === maxScanned ? readU64(rows[rows.length - 1][0], 1) : 0 };
  }
}
