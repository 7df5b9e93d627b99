/**
 * The replicated commands of the metadata state machine and their encoding in
 * the Raft log: versioned compact JSON ({"v":1,"op":...}). Owns the shape and
 * the strict decoding of every command; a malformed entry decodes to an error
 * string, never a throw, so every member answers it the same way. Must never
 * read a clock or the state: each command carries everything apply needs.
 *
 * Why JSON and not protobuf: commands are small (names ≤ 255 bytes, xattr
 * values ≤ 64 KiB as base64), apply only decodes (the leader encodes once, so
 * byte-for-byte encoder determinism is irrelevant to replay), the log stays
 * readable when debugging, and the "v" field lets a later slice add a binary
 * form for hot commands (commit) without breaking entries already in logs.
 */
import { ConflictPolicy } from '../rules/commit';
import { Caller } from '../rules/permissions';
import { BLOCK_ID_PATTERN, checkBlockIds } from '../rules/retention';
import { MAX_BLOCK_IDS_PER_COMMAND } from './block-refs';

export const COMMAND_VERSION = 1;
/**
 * A log entry larger than this is refused at decode. The largest legal
 * commands are a commit's block list (~67 bytes per 1 MiB block: about 15,000
 * blocks, a 15 GiB file) and an xattr of 64 KiB in base64.
 */
export const MAX_COMMAND_BYTES = 1024 * 1024;
/** The largest keepLast a retention policy may set (history-ops.ts looks at 10,000 versions per decision). */
export const MAX_KEEP_LAST = 1000;
/** Blocks one version may list (see MAX_COMMAND_BYTES). */
export const MAX_BLOCKS_PER_VERSION = 15_000;

/** Who, which retry slot and which leader clock reading a mutation carries. */
export interface MutationHeader {
  sessionId: number;
  sequence: number;
  /**
   * The client's lowest sequence whose answer it has not received yet
   * (≤ sequence; absent = sequence): results below it can be forgotten. This
   * is what lets one session keep many mutations in flight.
   */
  firstUnacked?: number;
  caller: Caller;
  /** The leader's clock when it proposed: the only time apply ever uses. */
  nowMs: number;
  /** Blocks the leader built after a NEEDS_ASSEMBLY answer, valid only while the head is still forHead (state/version-content.ts). */
  assembled?: { forHead: number; ids: Array<[number, string]> };
}

/** A time in setattr: the command's nowMs, or an explicit ms since the epoch. */
export type TimeSpec = 'now' | number;

/** Bytes an inline commit wrote at an offset of the fh's version, base64 in the log. */
export interface WrittenRange {
  offset: number;
  dataBase64: string;
}

/** At most this many written ranges per commit (rules/extents.ts DEFAULT_EXTENT_LIMITS.maxExtentsPerCommit). */
export const MAX_WRITTEN_RANGES = 4096;

export interface OpenFlags {
  read: boolean;
  write: boolean;
  append: boolean;
}

export type MutationBody =
  | { op: 'closeSession' }
  | { op: 'mkdir'; parent: number; name: string; mode: number; umask?: number }
  /** With `open`, the created (or, without exclusive, existing) file is also opened, as FUSE's create does: one entry, not two. */
  | { op: 'create'; parent: number; name: string; mode: number; umask?: number; exclusive: boolean; open?: OpenFlags }
  | { op: 'mknod'; parent: number; name: string; fileType: 'reg' | 'fifo' | 'sock' | 'chr' | 'blk'; mode: number; umask?: number; rdev: number }
  | { op: 'symlink'; parent: number; name: string; target: string }
  | { op: 'link'; handle: number; newParent: number; newName: string }
  | { op: 'unlink'; parent: number; name: string }
  | { op: 'rmdir'; parent: number; name: string }
  | { op: 'rename'; fromParent: number; fromName: string; toParent: number; toName: string; noReplace?: boolean }
  | { op: 'setattr'; handle: number; mode?: number; uid?: number; gid?: number; sizeBytes?: number; atime?: TimeSpec; mtime?: TimeSpec }
  | { op: 'setxattr'; handle: number; name: string; valueBase64: string; flags: number }
  | { op: 'removexattr'; handle: number; name: string }
  | { op: 'open'; handle: number; read: boolean; write: boolean; append: boolean }
  | { op: 'release'; fh: number }
  /** With `release`, a successful commit also releases the fh (close = flush + release, one entry). */
  /**
   * Inline form: `written` carries the bytes (base inline, newSize ≤ 4 KiB).
   * Block form: `blocks` lists the fh's whole version as block ids ('' = hole)
   * and `writtenExtents` the ranges it wrote; `written` is empty.
   */
  | {
      op: 'commitVersion'; fh: number; baseVersion: number; written: WrittenRange[]; newSize: number; policy: ConflictPolicy; release?: boolean;
      /** The lowest size the fh cut the file to, below its base's size (rules/commit.ts CommitRequest.truncatedTo). */
      truncatedTo?: number;
      blocks?: string[]; writtenExtents?: Array<{ offset: number; length: number }>;
    }
  /** An upload pin (state/block-refs.ts): these blocks are not collected before untilMs. */
  | { op: 'pinBlocks'; ids: string[]; untilMs: number }
  /** A new head with the content of an older version (kept in the history). */
  | { op: 'restoreVersion'; handle: number; version: number }

export type MutationCommand = MutationHeader & MutationBody;

export type Command =
  | { op: 'openSession'; ttlMs: number; clientName: string; nowMs: number }
  /** Proposed by the leader when its own clock says the session's TTL ran out. */
  | { op: 'expireSession'; sessionId: number; nowMs: number }
  /** Proposed by the leader: drop the versions of one file its retention policy no longer keeps. */
  | { op: 'retainVersions'; handle: number; nowMs: number; keepLast: number; keepYoungerThanMs: number; keepConflictsYoungerThanMs: number }
  /** Proposed by the leader: delete these blocks if, at this log position, nothing references or pins them and graceMs passed. */
  | { op: 'collectBlocks'; ids: string[]; nowMs: number; graceMs: number }
  /** Proposed by the leader for `handlefs fsck --repair` (state/repair-ops.ts): each fix applies only if the record is as the check saw it. */
  | { op: 'repairNamespace'; nowMs: number; nlink: NlinkFix[]; collect: OrphanCollect[] }
  | MutationCommand;

/** Set handle's nlink from fromNlink (what the check saw) to toNlink (what its entries say). */
export interface NlinkFix { handle: number; generation: number; fromNlink: number; toNlink: number }
/** Remove a non-directory no entry names and no fh holds, if its nlink is still what the check saw. */
export interface OrphanCollect { handle: number; generation: number; nlink: number }
/** Fixes one repairNamespace command may carry, of each kind. */
export const MAX_REPAIRS_PER_COMMAND = 1024;

export type CommandOp = Command['op'];

const MAX_CLIENT_NAME_CHARS = 256;
export const MAX_SESSION_TTL_MS = 24 * 60 * 60 * 1000;
const MAX_STRING_CHARS = 8192;

export function encodeCommand(command: Command): Uint8Array {
  const bytes = Buffer.from(JSON.stringify({ v: COMMAND_VERSION, ...command }), 'utf8');
  if (bytes.length > MAX_COMMAND_BYTES) throw new Error(`metastate: command ${command.op} is ${bytes.length} bytes, more than ${MAX_COMMAND_BYTES}`);
  return bytes;
}

/** The command an entry holds, or a string naming what is wrong with it. */
export function decodeCommand(data: Uint8Array): Command | string {
  if (data.byteLength === 0) return 'empty command';
  if (data.byteLength > MAX_COMMAND_BYTES) return `command of ${data.byteLength} bytes exceeds ${MAX_COMMAND_BYTES}`;
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch {
    return 'command is not JSON';
  }
  if (!isObject(raw)) return 'command is not an object';
  if (raw.v !== COMMAND_VERSION) return `unknown command version ${String(raw.v)}`;
  const f = new Fields(raw);
  try {
    return decodeBody(f);
  } catch (error) {
    if (error instanceof FieldError) return error.message;
    throw error;
  }
}

function decodeBody(f: Fields): Command {
  const op = f.str('op');
  switch (op) {
    case 'openSession': {
      const ttlMs = f.int('ttlMs', 1, MAX_SESSION_TTL_MS);
      const clientName = f.str('clientName');
      if (clientName.length > MAX_CLIENT_NAME_CHARS) throw new FieldError(`clientName longer than ${MAX_CLIENT_NAME_CHARS} characters`);
      return { op, ttlMs, clientName, nowMs: f.int('nowMs', 0) };
    }
    case 'expireSession':
      return { op, sessionId: f.int('sessionId', 1), nowMs: f.int('nowMs', 0) };
    case 'retainVersions':
      return {
        op, handle: f.handle('handle'), nowMs: f.int('nowMs', 0), keepLast: f.int('keepLast', 1, MAX_KEEP_LAST),
        keepYoungerThanMs: f.int('keepYoungerThanMs', 0), keepConflictsYoungerThanMs: f.int('keepConflictsYoungerThanMs', 0),
      };
    case 'collectBlocks':
      return { op, ids: f.blockIds('ids', false, MAX_BLOCK_IDS_PER_COMMAND), nowMs: f.int('nowMs', 0), graceMs: f.int('graceMs', 0) };
    case 'repairNamespace':
      return {
        op, nowMs: f.int('nowMs', 0),
        nlink: f.objects('nlink', MAX_REPAIRS_PER_COMMAND).map((x) => ({ handle: x.handle('handle'), generation: x.int('generation', 1), fromNlink: x.int('fromNlink', 0), toNlink: x.int('toNlink', 0) })),
        collect: f.objects('collect', MAX_REPAIRS_PER_COMMAND).map((x) => ({ handle: x.handle('handle'), generation: x.int('generation', 1), nlink: x.int('nlink', 0) })),
      };
  }
  const sequence = f.int('sequence', 1);
  const header: MutationHeader = {
    sessionId: f.int('sessionId', 1),
    sequence,
    firstUnacked: f.optInt('firstUnacked', 1, sequence),
    caller: f.caller(),
    nowMs: f.int('nowMs', 0),
  };
  if (header.firstUnacked === undefined) delete header.firstUnacked;
  const assembled = f.assembled();
  if (assembled) header.assembled = assembled;
  switch (op) {
    case 'closeSession':
      return { ...header, op };
    case 'mkdir':
      return { ...header, op, parent: f.handle('parent'), name: f.str('name'), mode: f.int('mode', 0), umask: f.optInt('umask', 0) };
    case 'create':
      return { ...header, op, parent: f.handle('parent'), name: f.str('name'), mode: f.int('mode', 0), umask: f.optInt('umask', 0), exclusive: f.bool('exclusive'), open: f.optOpenFlags('open') };
    case 'mknod': {
      const fileType = f.str('fileType');
      if (fileType !== 'reg' && fileType !== 'fifo' && fileType !== 'sock' && fileType !== 'chr' && fileType !== 'blk') throw new FieldError(`mknod fileType ${JSON.stringify(fileType)} is not reg, fifo, sock, chr or blk`);
      return { ...header, op, parent: f.handle('parent'), name: f.str('name'), fileType, mode: f.int('mode', 0), umask: f.optInt('umask', 0), rdev: f.int('rdev', 0, 0xffffffff) };
    }
    case 'symlink':
      return { ...header, op, parent: f.handle('parent'), name: f.str('name'), target: f.str('target') };
    case 'link':
      return { ...header, op, handle: f.handle('handle'), newParent: f.handle('newParent'), newName: f.str('newName') };
    case 'unlink':
    case 'rmdir':
      return { ...header, op, parent: f.handle('parent'), name: f.str('name') };
    case 'rename':
      return { ...header, op, fromParent: f.handle('fromParent'), fromName: f.str('fromName'), toParent: f.handle('toParent'), toName: f.str('toName'), noReplace: f.optBool('noReplace') };
    case 'setattr':
      return {
        ...header,
        op,
        handle: f.handle('handle'),
        mode: f.optInt('mode', 0),
        uid: f.optInt('uid', 0),
        gid: f.optInt('gid', 0),
        sizeBytes: f.optInt('sizeBytes', 0),
        atime: f.optTime('atime'),
        mtime: f.optTime('mtime'),
      };
    case 'setxattr':
      return { ...header, op, handle: f.handle('handle'), name: f.str('name'), valueBase64: f.str('valueBase64', MAX_COMMAND_BYTES), flags: f.int('flags', 0) };
    case 'removexattr':
      return { ...header, op, handle: f.handle('handle'), name: f.str('name') };
    case 'open':
      return { ...header, op, handle: f.handle('handle'), read: f.bool('read'), write: f.bool('write'), append: f.bool('append') };
    case 'release':
      return { ...header, op, fh: f.int('fh', 1) };
    case 'commitVersion': {
      const policy = f.str('policy');
      if (policy !== 'lww' && policy !== 'reject') throw new FieldError(`policy ${JSON.stringify(policy).slice(0, 64)} is neither lww nor reject`);
      const command: Extract<Command, { op: 'commitVersion' }> = { ...header, op, fh: f.int('fh', 1), baseVersion: f.int('baseVersion', 1), written: f.written(), newSize: f.int('newSize', 0), policy };
      if (f.optBool('release')) command.release = true;
      if (f.has('truncatedTo')) command.truncatedTo = f.int('truncatedTo', 0);
      if (f.has('blocks')) {
        command.blocks = f.blockIds('blocks', true, MAX_BLOCKS_PER_VERSION);
        command.writtenExtents = f.extents('writtenExtents');
        if (command.written.length > 0) throw new FieldError('a block-form commit carries no inline written bytes');
      }
      return command;
    }
    case 'pinBlocks':
      return { ...header, op, ids: f.blockIds('ids', false, MAX_BLOCK_IDS_PER_COMMAND), untilMs: f.int('untilMs', 0) };
    case 'restoreVersion':
      return { ...header, op, handle: f.handle('handle'), version: f.int('version', 1) };
    default:
      throw new FieldError(`unknown op ${JSON.stringify(op).slice(0, 64)}`);
  }
}

class FieldError extends Error {}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Typed, bounded reads of a decoded JSON object; each failure names the field. */
class Fields {
  constructor(private readonly raw: Record<string, unknown>) {}

  str(name: string, maxChars = MAX_STRING_CHARS): string {
    const value = this.raw[name];
    if (typeof value !== 'string') throw new FieldError(`field ${name} must be a string`);
    if (value.length > maxChars) throw new FieldError(`field ${name} is longer than ${maxChars} characters`);
    return value;
  }

  int(name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.raw[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new FieldError(`field ${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value) ?? 'nothing'}`);
    }
    return value;
  }

  optInt(name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    return this.raw[name] === undefined ? undefined : this.int(name, min, max);
  }

  handle(name: string): number {
    return this.int(name, 1);
  }

  bool(name: string): boolean {
    const value = this.raw[name];
    if (typeof value !== 'boolean') throw new FieldError(`field ${name} must be a boolean`);
    return value;
  }

  optBool(name: string): boolean | undefined {
    return this.raw[name] === undefined ? undefined : this.bool(name);
  }

  optOpenFlags(name: string): OpenFlags | undefined {
    const value = this.raw[name];
    if (value === undefined) return undefined;
    if (!isObject(value)) throw new FieldError(`field ${name} must be an object`);
    const inner = new Fields(value);
    return { read: inner.bool('read'), write: inner.bool('write'), append: inner.bool('append') };
  }

  optTime(name: string): TimeSpec | undefined {
    const value = this.raw[name];
    if (value === undefined || value === 'now') return value;
    return this.int(name, 0);
  }

  /** Written ranges: offsets and canonical base64 (Buffer.from ignores stray characters, so a round trip is required). */
  has(name: string): boolean {
    return this.raw[name] !== undefined;
  }

  /** An array of at most maxItems objects, each read through its own Fields. */
  objects(name: string, maxItems: number): Fields[] {
    const value = this.raw[name];
    if (!Array.isArray(value)) throw new FieldError(`field ${name} must be an array`);
    if (value.length > maxItems) throw new FieldError(`field ${name} holds ${value.length} items, more than ${maxItems}`);
    return value.map((item, i) => {
      if (!isObject(item)) throw new FieldError(`field ${name}[${i}] must be an object`);
      return new Fields(item);
    });
  }

  blockIds(name: string, allowHoles: boolean, maxIds: number): string[] {
    const checked = checkBlockIds(this.raw[name], `field ${name}`, allowHoles, maxIds);
    if (!checked.ok) throw new FieldError(checked.message);
    return checked.value;
  }

  extents(name: string): Array<{ offset: number; length: number }> {
    const value = this.raw[name];
    if (!Array.isArray(value)) throw new FieldError(`field ${name} must be a list`);
    if (value.length > MAX_WRITTEN_RANGES) throw new FieldError(`field ${name} holds ${value.length} ranges, more than ${MAX_WRITTEN_RANGES}`);
    return value.map((item: unknown, i) => {
      if (!isObject(item)) throw new FieldError(`${name}[${i}] must be an object`);
      const inner = new Fields(item);
      return { offset: inner.int('offset', 0), length: inner.int('length', 1) };
    });
  }

  assembled(): { forHead: number; ids: Array<[number, string]> } | undefined {
    const value = this.raw.assembled;
    if (value === undefined) return undefined;
    if (!isObject(value)) throw new FieldError('field assembled must be an object');
    const inner = new Fields(value);
    const ids = value.ids;
    if (!Array.isArray(ids) || ids.length > MAX_BLOCKS_PER_VERSION) throw new FieldError(`field assembled.ids must be a list of at most ${MAX_BLOCKS_PER_VERSION} pairs`);
    for (const [i, pair] of ids.entries()) {
      const ok = Array.isArray(pair) && pair.length === 2 && Number.isSafeInteger(pair[0]) && pair[0] >= 0 && typeof pair[1] === 'string' && (pair[1] === '' || BLOCK_ID_PATTERN.test(pair[1]));
      if (!ok) throw new FieldError(`assembled.ids[${i}] is not a [block index, block id] pair`);
    }
    return { forHead: inner.int('forHead', 1), ids: ids as Array<[number, string]> };
  }

  written(): WrittenRange[] {
    const value = this.raw.written;
    if (!Array.isArray(value)) throw new FieldError('field written must be a list');
    if (value.length > MAX_WRITTEN_RANGES) throw new FieldError(`field written holds ${value.length} ranges, more than ${MAX_WRITTEN_RANGES}`);
    return value.map((item: unknown, i) => {
      if (!isObject(item)) throw new FieldError(`written[${i}] must be an object`);
      const inner = new Fields(item);
      const dataBase64 = inner.str('dataBase64', MAX_COMMAND_BYTES);
      if (Buffer.from(dataBase64, 'base64').toString('base64') !== dataBase64) throw new FieldError(`written[${i}].dataBase64 is not canonical base64`);
      if (dataBase64.length === 0) throw new FieldError(`written[${i}] holds no bytes`);
      return { offset: inner.int('offset', 0), dataBase64 };
    });
  }

  caller(): Caller {
    const value = this.raw.caller;
    if (!isObject(value)) throw new FieldError('field caller must be an object');
    const inner = new Fields(value);
    const groups = value.groups;
    if (!Array.isArray(groups)) throw new FieldError('field caller.groups must be a list');
    // checkCaller bounds the list and each id later; here only the JSON types.
    if (!groups.every((g) => typeof g === 'number')) throw new FieldError('field caller.groups must hold numbers');
    return { uid: inner.int('uid', 0, 0xffffffff), gid: inner.int('gid', 0, 0xffffffff), groups: groups as number[] };
  }
}

/** The handles, directory entries and fhs a command names: what apply will read first (records.ts keys), for one batched prefetch. */
export function keysNamedBy(command: Command, keys: { session(id: number): Buffer; inode(handle: number): Buffer; dirent(parent: number, name: string): Buffer; fh(id: number): Buffer }): Buffer[] {
  const named: Buffer[] = [];
  if ('sessionId' in command) named.push(keys.session(command.sessionId));
  switch (command.op) {
    case 'mkdir':
    case 'create':
    case 'mknod':
    case 'symlink':
    case 'unlink':
    case 'rmdir':
      named.push(keys.inode(command.parent), keys.dirent(command.parent, command.name));
      break;
    case 'link':
      named.push(keys.inode(command.handle), keys.inode(command.newParent), keys.dirent(command.newParent, command.newName));
      break;
    case 'rename':
      named.push(keys.inode(command.fromParent), keys.inode(command.toParent), keys.dirent(command.fromParent, command.fromName), keys.dirent(command.toParent, command.toName));
      break;
    case 'setattr':
    case 'setxattr':
    case 'removexattr':
    case 'open':
    case 'restoreVersion':
    case 'retainVersions':
      named.push(keys.inode(command.handle));
      break;
    case 'release':
    case 'commitVersion':
      named.push(keys.fh(command.fh));
      break;
  }
  return named;
}
