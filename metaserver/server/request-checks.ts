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
import { MAX_SESSION_TTL_MS } from '../state/commands';
import { Caller, Header } from './meta-proto';

/** Strings longer than this cannot be decoded from a command (state/commands.ts), so they are refused here. */
export const MAX_REQUEST_STRING_CHARS = 8192;
export const MAX_CLIENT_NAME_CHARS = 256;

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
  caller: RuleCaller;
}

export function requireHeader(header: Header | null | undefined): CheckedHeader {
  if (!header) throw new RequestError('header is missing (every mutation carries session_id, sequence and caller)');
  return {
    sessionId: requireId('header.session_id', header.sessionId),
    sequence: requireId('header.sequence', header.sequence),
    caller: requireCaller('header.caller', header.caller),
  };
}

/** The TTL a session is opened with: 0 means the server's default; at most maxTtlMs. */
export function sessionTtlMs(requested: number, defaultTtlMs: number, maxTtlMs: number): number {
  if (maxTtlMs > MAX_SESSION_TTL_MS) throw new Error(`max session TTL ${maxTtlMs} ms exceeds the state machine's ${MAX_SESSION_TTL_MS} ms`);
  if (requested === 0) return defaultTtlMs;
  return requireUint('ttl_ms', requested, maxTtlMs) || defaultTtlMs;
}
