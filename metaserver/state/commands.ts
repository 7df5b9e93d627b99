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

export const COMMAND_VERSION = 1;
/** A log entry larger than this is refused at decode (the largest legal command is an xattr of 64 KiB in base64). */
export const MAX_COMMAND_BYTES = 128 * 1024;

/** Who, which retry slot and which leader clock reading a mutation carries. */
export interface MutationHeader {
  sessionId: number;
  sequence: number;
  caller: Caller;
  /** The leader's clock when it proposed: the only time apply ever uses. */
  nowMs: number;
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

export type MutationBody =
  | { op: 'closeSession' }
  | { op: 'mkdir'; parent: number; name: string; mode: number; umask?: number }
  | { op: 'create'; parent: number; name: string; mode: number; umask?: number; exclusive: boolean }
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
  | { op: 'commitVersion'; fh: number; baseVersion: number; written: WrittenRange[]; newSize: number; policy: ConflictPolicy };

export type MutationCommand = MutationHeader & MutationBody;

export type Command =
  | { op: 'openSession'; ttlMs: number; clientName: string; nowMs: number }
  /** Proposed by the leader when its own clock says the session's TTL ran out. */
  | { op: 'expireSession'; sessionId: number }
  | MutationCommand;

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
      return { op, sessionId: f.int('sessionId', 1) };
  }
  const header: MutationHeader = {
    sessionId: f.int('sessionId', 1),
    sequence: f.int('sequence', 1),
    caller: f.caller(),
    nowMs: f.int('nowMs', 0),
  };
  switch (op) {
    case 'closeSession':
      return { ...header, op };
    case 'mkdir':
      return { ...header, op, parent: f.handle('parent'), name: f.str('name'), mode: f.int('mode', 0), umask: f.optInt('umask', 0) };
    case 'create':
      return { ...header, op, parent: f.handle('parent'), name: f.str('name'), mode: f.int('mode', 0), umask: f.optInt('umask', 0), exclusive: f.bool('exclusive') };
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
      return { ...header, op, fh: f.int('fh', 1), baseVersion: f.int('baseVersion', 1), written: f.written(), newSize: f.int('newSize', 0), policy };
    }
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

  optInt(name: string, min: number): number | undefined {
    return this.raw[name] === undefined ? undefined : this.int(name, min);
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

  optTime(name: string): TimeSpec | undefined {
    const value = this.raw[name];
    if (value === undefined || value === 'now') return value;
    return this.int(name, 0);
  }

  /** Written ranges: offsets and canonical base64 (Buffer.from ignores stray characters, so a round trip is required). */
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
