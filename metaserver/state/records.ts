/**
 * The LevelDB layout of the metadata state machine: binary keys (a prefix
 * byte, then big-endian u64 handles, then name bytes, so a directory's
 * entries are one ordered range) and the records stored under them. Owns
 * every key and value format; must never decide anything about files.
 *
 *   00 01                        applied index (u64)
 *   00 02                        counters {nextHandle, inodesInUse, sessionsOpen}
 *   10 <handle u64>              inode record
 *   20 <parent u64> <name utf8>  directory entry → child handle (u64) + type code (u8)
 *   30 <handle u64> <name utf8>  extended attribute value (raw bytes)
 *   40 <session u64>             session record
 *   41 <session u64> <seq u64>   stored result of a mutation the client has not acknowledged yet
 *   50 <handle u64> <version u64> version record (metadata + inline content)
 *   51 <handle u64> <copy u64>    conflict copy of a rejected commit
 *   60 <fh u64>                  open file handle record
 *   70 <block id, 32 bytes>      block record: references from kept versions and copies, upload pin
 *   72 <block id, 32 bytes>      the block has no reference: a collection candidate (value: since when)
 */
import { Extent } from '../rules/extents';
import { BLOCK_ID_PATTERN } from '../rules/retention';
import { FileType } from '../rules/modes';

export const ROOT_HANDLE = 1;
const PREFIX_META = 0x00;
const PREFIX_INODE = 0x10;
const PREFIX_DIRENT = 0x20;
const PREFIX_XATTR = 0x30;
const PREFIX_SESSION = 0x40;
const PREFIX_SESSION_RESULT = 0x41;
const PREFIX_VERSION = 0x50;
const PREFIX_CONFLICT_COPY = 0x51;
const PREFIX_FH = 0x60;
const PREFIX_BLOCK = 0x70;
const PREFIX_UNREFERENCED_BLOCK = 0x72;
const STATE_PREFIXES: ReadonlySet<number> = new Set([PREFIX_META, PREFIX_INODE, PREFIX_DIRENT, PREFIX_XATTR, PREFIX_SESSION, PREFIX_SESSION_RESULT, PREFIX_VERSION, PREFIX_CONFLICT_COPY, PREFIX_FH, PREFIX_BLOCK, PREFIX_UNREFERENCED_BLOCK]);

export const APPLIED_KEY = Buffer.from([PREFIX_META, 0x01]);
export const COUNTERS_KEY = Buffer.from([PREFIX_META, 0x02]);

export interface Inode {
  handle: number;
  /** The log index that created the inode: a handle never names two inodes, and a client can check it never did. */
  generation: number;
  type: FileType;
  /** Permission bits only (07777); the type lives in `type`. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  sizeBytes: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  rdev: number;
  /** Symlinks only. */
  target?: string;
  /** Directories only: the one parent (root names itself) and how many entries it holds. */
  parent?: number;
  entries?: number;
  /** Extended attribute names, sorted; their values live under their own keys. */
  xattrs: string[];
  /** Regular files only: the newest version (1, the empty file, is written by create). */
  headVersion?: number;
  /** Regular files only: how many conflict copies rejected commits left (numbered 1, 2, ...). */
  conflictCopies?: number;
  /** Regular files only: open fhs on this inode; while > 0 an inode with nlink 0 is kept. */
  openFhs?: number;
  /** Regular files only: how many open fhs pin each version (version → count); retention keeps these. */
  fhPins?: Record<string, number>;
  /** Regular files only: no version below this is kept (retention raises it), bounding walks over the history. */
  firstVersion?: number;
  /** Regular files only: no conflict copy below this is kept. */
  firstConflictCopy?: number;
}

/** What getattr and every creating command return (no internal bookkeeping). */
export type Attrs = Omit<Inode, 'parent' | 'entries' | 'xattrs' | 'target' | 'conflictCopies' | 'openFhs' | 'fhPins' | 'firstVersion' | 'firstConflictCopy'>;

export function attrsOf(inode: Inode): Attrs {
  return {
    handle: inode.handle,
    generation: inode.generation,
    type: inode.type,
    mode: inode.mode,
    uid: inode.uid,
    gid: inode.gid,
    nlink: inode.nlink,
    sizeBytes: inode.sizeBytes,
    atimeMs: inode.atimeMs,
    mtimeMs: inode.mtimeMs,
    ctimeMs: inode.ctimeMs,
    rdev: inode.rdev,
    ...(inode.headVersion === undefined ? {} : { headVersion: inode.headVersion }),
  };
}

export interface Counters {
  /** The next handle to hand out; handles are never reused. */
  nextHandle: number;
  inodesInUse: number;
  sessionsOpen: number;
  /** Open file handles over all sessions (absent in states written before fhs existed). */
  fhsOpen?: number;
  /** Kept versions of all files, those marked conflict, and conflict copies (for metrics and fsck). */
  versionsKept?: number;
  conflictVersions?: number;
  conflictCopiesKept?: number;
  /** Block records (referenced or pinned or awaiting collection). */
  blockRecords?: number;
}

export interface Session {
  id: number;
  clientName: string;
  ttlMs: number;
  createdAtMs: number;
  /** Every sequence below this was acknowledged by the client (its results are gone); a command below it is stale. */
  ackedBelow: number;
  /** Sequences at or above ackedBelow already applied, ascending; each result is under sessionResultKey. */
  outstanding: number[];
  /** The session's open fhs, in opening order (at most MAX_FHS_PER_SESSION), released when it closes or expires. */
  fhs?: number[];
}

/** Where a version came from: the empty version create writes, a commit decision (rules/commit.ts), or setattr's truncation. */
export type VersionKind = 'create' | 'fast-forward' | 'rebase' | 'conflict-lww' | 'truncate' | 'restore';

/**
 * A version's or conflict copy's bytes: inline (base64, ≤ INLINE_LIMIT_BYTES)
 * or, when `blocks` is present, content-addressed blocks (block i covers
 * [i·B, min((i+1)·B, size)); '' is a hole of zeros) and inlineBase64 is ''.
 */
export interface StoredContent {
  sizeBytes: number;
  inlineBase64: string;
  blocks?: string[];
  /** With blocks: B. */
  blockSizeBytes?: number;
}

/** One version of a regular file: metadata, change tracking and (inline, ≤ INLINE_LIMIT_BYTES) content. */
export interface VersionRecord extends StoredContent {
  version: number;
  sizeBytes: number;
  kind: VersionKind;
  /** The version the committing fh was built on (0 for version 1). */
  baseVersion: number;
  /** The session that committed it (the creating session for version 1). */
  sessionId: number;
  /** The fh that committed it (absent for version 1). */
  fh?: number;
  /** The leader's clock at commit; also the version's mtime. */
  commitTimeMs: number;
  mtimeMs: number;
  /** Bytes this version wrote relative to version - 1 (rules/extents.ts VersionChanges). */
  changedExtents: Extent[];
  /** Set on the old head when an lww commit overwrote some of its bytes: it holds the bytes that lost. */
  conflict: boolean;
  /** With conflict: the version that overwrote it. */
  lostToVersion?: number;
  /** On an lww winner: the version whose bytes it overwrote. */
  overwroteVersion?: number;
  /** kind restore: the version whose content it copied. */
  restoredFrom?: number;
}

/** The whole content of an fh whose commit was rejected (policy reject), kept beside the history. */
export interface ConflictCopyRecord extends StoredContent {
  copy: number;
  baseVersion: number;
  /** The head that had changed the same bytes; it stayed head. */
  lostToVersion: number;
  sizeBytes: number;
  sessionId: number;
  fh: number;
  commitTimeMs: number;
  /** Relative to baseVersion. */
  changedExtents: Extent[];
}

export interface FhFlags {
  read: boolean;
  write: boolean;
  append: boolean;
}

/** One content-addressed block known to the state. */
export interface BlockRecord {
  /** Kept versions and conflict copies listing it (a block listed twice by one version counts twice). */
  refs: number;
  /** An upload pin: the block may not be collected before this (the leader's clock), whatever refs says. */
  pinnedUntilMs: number;
}

/** An open file handle: reads see pinnedVersion until the fh commits. */
export interface FhRecord {
  id: number;
  handle: number;
  sessionId: number;
  pinnedVersion: number;
  flags: FhFlags;
  openedAtMs: number;
}

/** Whether a key belongs to the replicated state, so a snapshot may carry it (the applied index travels as snapshot metadata). */
export function isStateKey(key: Buffer): boolean {
  if (key.length === 0 || key.equals(APPLIED_KEY)) return false;
  return STATE_PREFIXES.has(key[0]);
}

export function readU64(bytes: Uint8Array, offset = 0): number {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < offset + 8) throw new Error(`metastate: u64 record truncated (${buffer.length} bytes)`);
  const value = buffer.readBigUInt64BE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`metastate: stored u64 ${value} is out of range`);
  return Number(value);
}

function keyWith2(prefix: number, id: number, second: number): Buffer {
  const key = Buffer.allocUnsafe(17);
  key[0] = prefix;
  key.writeBigUInt64BE(BigInt(id), 1);
  key.writeBigUInt64BE(BigInt(second), 9);
  return key;
}

function keyWith(prefix: number, id: number, name?: string): Buffer {
  const head = Buffer.allocUnsafe(9);
  head[0] = prefix;
  head.writeBigUInt64BE(BigInt(id), 1);
  return name === undefined ? head : Buffer.concat([head, Buffer.from(name, 'utf8')]);
}

export const inodeKey = (handle: number): Buffer => keyWith(PREFIX_INODE, handle);
export const direntKey = (parent: number, name: string): Buffer => keyWith(PREFIX_DIRENT, parent, name);
export const xattrKey = (handle: number, name: string): Buffer => keyWith(PREFIX_XATTR, handle, name);
export const sessionKey = (id: number): Buffer => keyWith(PREFIX_SESSION, id);
export const sessionResultKey = (id: number, sequence: number): Buffer => keyWith2(PREFIX_SESSION_RESULT, id, sequence);
export const versionKey = (handle: number, version: number): Buffer => keyWith2(PREFIX_VERSION, handle, version);
export const conflictCopyKey = (handle: number, copy: number): Buffer => keyWith2(PREFIX_CONFLICT_COPY, handle, copy);
export const fhKey = (fh: number): Buffer => keyWith(PREFIX_FH, fh);
export const blockKey = (id: string): Buffer => Buffer.concat([Buffer.from([PREFIX_BLOCK]), blockIdBytes(id)]);
export const unreferencedBlockKey = (id: string): Buffer => Buffer.concat([Buffer.from([PREFIX_UNREFERENCED_BLOCK]), blockIdBytes(id)]);
export const unreferencedBlockRange = { gte: Buffer.from([PREFIX_UNREFERENCED_BLOCK]), lt: Buffer.from([PREFIX_UNREFERENCED_BLOCK + 1]) };
export const blockRange = { gte: Buffer.from([PREFIX_BLOCK]), lt: Buffer.from([PREFIX_BLOCK + 1]) };

function blockIdBytes(id: string): Buffer {
  if (!BLOCK_ID_PATTERN.test(id)) throw new Error(`metastate: ${JSON.stringify(id.slice(0, 80))} is not a block id`);
  return Buffer.from(id, 'hex');
}

/** The block id in a 70/72 key. */
export function blockIdOfKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex', 1);
}
/** Every version of `handle` from `fromVersion` on, in version order. */
export const versionRange = (handle: number, fromVersion = 0): { gte: Buffer; lt: Buffer } => ({ gte: keyWith2(PREFIX_VERSION, handle, fromVersion), lt: keyWith(PREFIX_VERSION, handle + 1) });
export const conflictCopyRange = (handle: number): { gte: Buffer; lt: Buffer } => ({ gte: keyWith(PREFIX_CONFLICT_COPY, handle), lt: keyWith(PREFIX_CONFLICT_COPY, handle + 1) });
/** Every entry of `parent` sorts between these two keys (exclusive upper bound). */
export const direntRange = (parent: number): { gte: Buffer; lt: Buffer } => ({ gte: keyWith(PREFIX_DIRENT, parent), lt: keyWith(PREFIX_DIRENT, parent + 1) });
export const sessionRange = { gte: Buffer.from([PREFIX_SESSION]), lt: Buffer.from([PREFIX_SESSION + 1]) };

const TYPE_CODES: readonly FileType[] = ['reg', 'dir', 'lnk', 'fifo', 'sock', 'chr', 'blk'];

/** A directory entry's value carries the child's type, so readdir never reads the child's inode. */
export function encodeDirent(handle: number, type: FileType): Buffer {
  const out = Buffer.allocUnsafe(9);
  out.writeBigUInt64BE(BigInt(handle));
  out[8] = TYPE_CODES.indexOf(type);
  if (out[8] === 255) throw new Error(`metastate: unknown file type ${type}`);
  return out;
}

export function decodeDirent(bytes: Uint8Array): { handle: number; type: FileType } {
  const type = TYPE_CODES[bytes[8]];
  if (bytes.byteLength !== 9 || type === undefined) throw new Error(`metastate: directory entry record of ${bytes.byteLength} bytes (type code ${bytes[8]}) is corrupt`);
  return { handle: readU64(bytes), type };
}

/** The name part of a directory entry key. */
export function direntName(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8', 9);
}

// Records are JSON for now: small, and the layout is versioned by the snapshot magic.
export function encodeRecord(record: object): Buffer {
  return Buffer.from(JSON.stringify(record), 'utf8');
}

export function decodeRecord<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as T;
  } catch {
    throw new Error(`metastate: stored ${what} record is not valid JSON; the state folder is corrupt`);
  }
}
