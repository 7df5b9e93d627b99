/**
 * Checks of request fields before anything is proposed or read: a request
 * that cannot be a meaningful call (missing header, id 0, a uint64 beyond 2^53,
 * an oversized string, an unknown file type) is a RequestError the service
 * answers with INVALID_ARGUMENT naming the field. Must never decide a POSIX
 * answer that depends on the state (a too-long name is ENAMETOOLONG from the
 * state machine, after the session check): those are answers, not malformed
 * requests.
 */
import { Caller as RuleCaller, checkCaller } from '../rules/permissions';
import { ConflictPolicy as RuleConflictPolicy } from '../rules/commit';
import { MAX_SESSION_TTL_MS, MAX_WRITTEN_RANGES, WrittenRange as StateWrittenRange } from '../state/commands';
import { checkBlockIds } from '../rules/retention';
import { Caller, ConflictPolicy, Extent, Header, WrittenRange } from '../../proto/meta-proto';

/** Strings longer than this cannot be decoded from a command (state/commands.ts), so they are refused here. */
export const MAX_REQUEST_STRING_CHARS = 8192;
export const MAX_CLIENT_NAME_CHARS = 256;
/** The most bytes one ReadFh answers (a gRPC message is 4 MiB at most by default; headroom for the reply's other fields). */
export const MAX_READ_LENGTH_BYTES = 4 * 1024 * 1024 - 64 * 1024;

export class RequestError extends Error {
  readonly code = 'INVALID_ARGUMENT';
}

export function requireId(field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RequestError(`${field} must be an integer in [1, 2^53-1], got ${String(value)}`);
  return value;
}

export function requireUint(field: string, value: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) throw new RequestError(`${field} must be an integer in [0, ${max}], got ${String(value)}`);
  return value;
}

export function optionalUint(field: string, value: number | undefined | null): number | undefined {
  return value === undefined || value === null ? undefined : requireUint(field, value);
}

export function requireString(field: string, value: string, maxChars = MAX_REQUEST_STRING_CHARS): string {
  if (typeof value !== 'string') throw new RequestError(`${field} must be a string`);
  if (value.length > maxChars) throw new RequestError(`${field} is ${value.length} characters, more than ${maxChars}`);
  return value;
}

export function requireCaller(field: string, caller: Caller | null | undefined): RuleCaller {
  if (!caller) throw new RequestError(`${field} is missing`);
  const checked = checkCaller(caller);
  if (!checked.ok) throw new RequestError(`${field}: ${checked.message}`);
  return { uid: caller.uid, gid: caller.gid, groups: caller.groups };
}

export interface CheckedHeader {
  sessionId: number;
  sequence: number;
  firstUnacked?: number;
  caller: RuleCaller;
}

export function requireHeader(header: Header | null | undefined): CheckedHeader {
  if (!header) throw new RequestError('header is missing (every mutation carries session_id, sequence and caller)');
  const sequence = requireId('header.sequence', header.sequence);
  const firstUnacked = requireUint('header.first_unacked', header.firstUnacked ?? 0);
  if (firstUnacked > sequence) throw new RequestError(`header.first_unacked ${firstUnacked} is above header.sequence ${sequence}`);
  return {
    sessionId: requireId('header.session_id', header.sessionId),
    sequence,
    ...(firstUnacked > 0 ? { firstUnacked } : {}),
    caller: requireCaller('header.caller', header.caller),
  };
}

/** The TTL a session is opened with: 0 means the server's default; at most maxTtlMs. */
export function sessionTtlMs(requested: number, defaultTtlMs: number, maxTtlMs: number): number {
  if (maxTtlMs > MAX_SESSION_TTL_MS) throw new Error(`max session TTL ${maxTtlMs} ms exceeds the state machine's ${MAX_SESSION_TTL_MS} ms`);
  if (requested === 0) return defaultTtlMs;
  return requireUint('ttl_ms', requested, maxTtlMs) || defaultTtlMs;
}

/**
 * A commit's written ranges as the command carries them. Each range holds
 * bytes at a non-negative safe offset whose end is a safe integer; the count
 * is the command decoder's cap. The total size is not checked here: over the
 * inline limit is a POSIX answer (EFBIG), see inlineBytesOf.
 */
export function requireWritten(ranges: WrittenRange[] | null | undefined): StateWrittenRange[] {
  const list = ranges ?? [];
  if (!Array.isArray(list)) throw new RequestError('written must be a list');
  if (list.length > MAX_WRITTEN_RANGES) throw new RequestError(`written holds ${list.length} ranges, more than ${MAX_WRITTEN_RANGES}`);
  return list.map((range, i) => {
    const offset = requireUint(`written[${i}].offset`, range.offset);
    const data = range.data instanceof Uint8Array ? range.data : new Uint8Array();
    if (data.byteLength === 0) throw new RequestError(`written[${i}].data is empty (a range carries at least one byte)`);
    if (offset + data.byteLength > Number.MAX_SAFE_INTEGER) throw new RequestError(`written[${i}] ends beyond 2^53-1`);
    return { offset, dataBase64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
  });
}

/** The bytes a commit request carries in all (before any check, so an oversized one is answered without encoding it). */
export function inlineBytesOf(ranges: WrittenRange[] | null | undefined): number {
  let total = 0;
  for (const range of ranges ?? []) total += range.data instanceof Uint8Array ? range.data.byteLength : 0;
  return total;
}

/** A block-form commit's extents: non-empty, safe, at most MAX_WRITTEN_RANGES. */
export function requireExtents(field: string, extents: Extent[] | null | undefined): Array<{ offset: number; length: number }> {
  const list = extents ?? [];
  if (list.length > MAX_WRITTEN_RANGES) throw new RequestError(`${field} holds ${list.length} ranges, more than ${MAX_WRITTEN_RANGES}`);
  return list.map((extent, i) => {
    const offset = requireUint(`${field}[${i}].offset`, extent.offset);
    const length = requireId(`${field}[${i}].length`, extent.length);
    if (offset + length > Number.MAX_SAFE_INTEGER) throw new RequestError(`${field}[${i}] ends beyond 2^53-1`);
    return { offset, length };
  });
}

/** Block ids ('' = a hole, where allowed), at most maxIds: rules/retention.ts checkBlockIds, as a RequestError. */
export function requireBlockIds(field: string, ids: string[] | null | undefined, allowHoles: boolean, maxIds: number): string[] {
  const checked = checkBlockIds(ids ?? [], field, allowHoles, maxIds);
  if (!checked.ok) throw new RequestError(checked.message);
  return checked.value;
}

export function requirePolicy(value: number): RuleConflictPolicy {
  if (value === ConflictPolicy.LWW) return 'lww';
  if (value === ConflictPolicy.REJECT) return 'reject';
  throw new RequestError(`policy ${String(value)} is neither LWW (0) nor REJECT (1)`);
}
