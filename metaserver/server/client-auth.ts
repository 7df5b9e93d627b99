/**
 * Who may call the client port (Meta, Admin and BlockPeer): the bearer tokens
 * of --auth-token-file and what each may do, enforced in one place, a wrapper
 * every service added to the server goes through (AuthenticatingServer).
 * An unauthenticated call is answered UNAUTHENTICATED before any handler
 * runs, so it never reaches the state machine; a read-only token's changes
 * are answered EROFS (Meta) or PERMISSION_DENIED (Admin, BlockPeer) the same way.
 * Client certificates (--client-auth cert) are checked earlier, in the TLS
 * handshake (proto/tls.ts): a client without one never gets a call through.
 *
 * Owns: the token file's format and checks, the policy lookup and the list of
 * methods that only read. Must never read the file after start-up,
 * log a token, or let a call through whose method it does not know.
 *
 * Token file: one grant per line, `TOKEN [ro|rw] [name=NAME] [subtree=/PATH]`;
 * `#` starts a comment; blank lines are skipped. A subtree grant's calls also
 * go through subtree-guard.ts (docs/security.md "Subtree restriction").
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { AUTHORIZATION_METADATA, TOKEN_MAX_BYTES, checkToken } from '../../proto/tls';
import { Errno } from '../rules/errno';
import { SubtreeGuard, normalizeSubtree } from './subtree-guard';

const TOKEN_FILE_MAX_BYTES = 1024 * 1024;
const TOKENS_MAX = 10_000;
const BEARER_PREFIX = 'Bearer ';

export class AuthConfigError extends Error {
  constructor(problem: string) {
    super(problem);
    this.name = 'AuthConfigError';
  }
}

export interface Grant {
  /** For logs: name=... or "line N". */
  name: string;
  readOnly: boolean;
  /** Normalized absolute path of the only directory tree this token may reach; undefined for the whole tree. */
  subtree?: string;
}

/** The tokens a server accepts; keys are SHA-256 of the token, so lookups leak nothing about a token's bytes. */
export interface TokenPolicy {
  grants: Map<string, Grant>;
  /** What this member sends on its own BlockPeer calls to the others: the first read-write token of the file. */
  memberToken: string;
}

function digest(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

/** Parses a token file; every problem names the file and line. */
export function parseTokenFile(text: string, file: string): TokenPolicy {
  const grants = new Map<string, Grant>();
  let memberToken: string | undefined;
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const where = `${file}:${index + 1}`;
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const [token, ...options] = line.split(/\s+/);
    try {
      checkToken(token, where);
    } catch (error) {
      throw new AuthConfigError((error as Error).message);
    }
    let readOnly = false;
    let name = `line ${index + 1}`;
    let subtree: string | undefined;
    for (const option of options) {
      if (option === 'ro') readOnly = true;
      else if (option === 'rw') readOnly = false;
      else if (option.startsWith('name=') && /^name=[A-Za-z0-9_.@-]{1,64}$/.test(option)) name = option.slice(5);
      else if (option.startsWith('subtree=')) {
        try {
          const path = normalizeSubtree(option.slice('subtree='.length));
          subtree = path === '/' ? undefined : path;
        } catch (error) {
          throw new AuthConfigError(`${where}: ${(error as Error).message}`);
        }
      } else throw new AuthConfigError(`${where}: unknown option ${JSON.stringify(option)} (expected ro, rw, name=NAME or subtree=/PATH)`);
    }
    const key = digest(token);
    if (grants.has(key)) throw new AuthConfigError(`${where}: this token is already granted by ${grants.get(key)!.name}`);
    if (grants.size >= TOKENS_MAX) throw new AuthConfigError(`${file}: more than ${TOKENS_MAX} tokens`);
    grants.set(key, subtree === undefined ? { name, readOnly } : { name, readOnly, subtree });
    // Members' BlockPeer calls need the whole tree: a subtree token is never the member token.
    if (!readOnly && subtree === undefined) memberToken ??= token;
  }
  if (grants.size === 0) throw new AuthConfigError(`${file}: no token in the file`);
  if (memberToken === undefined) throw new AuthConfigError(`${file}: needs at least one read-write token without subtree= (members use the first one for their BlockPeer calls to each other)`);
  return { grants, memberToken };
}

export function readTokenPolicy(file: string): TokenPolicy {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new AuthConfigError(`--auth-token-file: ${file} is not a regular file`);
    if (stat.size > TOKEN_FILE_MAX_BYTES) throw new AuthConfigError(`--auth-token-file: ${file} is ${stat.size} bytes, over ${TOKEN_FILE_MAX_BYTES}`);
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof AuthConfigError) throw error;
    throw new AuthConfigError(`--auth-token-file: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseTokenFile(text, file);
}

/**
 * "Service/Method" of every call that only reads (or only keeps a session
 * alive): a read-only token may make these and nothing else. Fail closed: a
 * method added to a service later counts as a change until it is listed here.
 */
const READS = new Set([
  'Meta/OpenSession', 'Meta/KeepAlive', 'Meta/CloseSession', 'Meta/Lookup', 'Meta/GetAttr', 'Meta/GetAttrs', 'Meta/ReadLink', 'Meta/ReadDir',
  'Meta/GetXattr', 'Meta/ListXattr', 'Meta/StatFs', 'Meta/ReadFh', 'Meta/GetVersion', 'Meta/ListVersions', 'Meta/GetConflictCopy',
  'Meta/Release', 'Meta/GetBlock', 'Meta/HasBlocks',
  'Admin/Status', 'Admin/FsckScan', 'Admin/ReferencedBlocks',
  'BlockPeer/FetchBlock', 'BlockPeer/HasBlocks',
]);
/** The services the wrapper knows; a method of any other is refused at addService (fail closed). */
const KNOWN_SERVICES = new Set(['Meta', 'Admin', 'BlockPeer']);

function serviceMethod(path: string): string {
  const match = /^\/[^/]*?\.?([A-Za-z0-9_]+)\/([A-Za-z0-9_]+)$/.exec(path);
  if (match === null) throw new Error(`client auth: cannot read the method path ${JSON.stringify(path)}`);
  return `${match[1]}/${match[2]}`;
}

function changes(method: string, request: unknown): boolean {
  if (method === 'Meta/Open') {
    const open = request as { write?: unknown; append?: unknown } | null;
    return open === null || typeof open !== 'object' || open.write !== false || open.append !== false;
  }
  return !READS.has(method);
}

/** Reads "Bearer TOKEN" from a call's metadata; undefined when absent or malformed. */
function bearerOf(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get(AUTHORIZATION_METADATA);
  if (values.length !== 1 || typeof values[0] !== 'string') return undefined;
  const value = values[0];
  if (value.length > BEARER_PREFIX.length + TOKEN_MAX_BYTES || !value.startsWith(BEARER_PREFIX)) return undefined;
  return value.slice(BEARER_PREFIX.length);
}

export interface AuthCounters {
  refusedUnauthenticated: number;
  refusedReadOnly: number;
  refusedOutsideSubtree: number;
}

type UnaryHandler = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

/** Wraps one service's handlers with the token check. */
export function guardService(
  definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation, policy: TokenPolicy, counters: AuthCounters, subtrees?: SubtreeGuard,
): grpc.UntypedServiceImplementation {
  const guarded: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    if (method.requestStream || method.responseStream) throw new Error(`client auth: ${method.path} is a streaming method; only unary calls are guarded`);
    const qualified = serviceMethod(method.path);
    if (!KNOWN_SERVICES.has(qualified.split('/')[0])) throw new Error(`client auth: unknown service of ${method.path}; add it to KNOWN_SERVICES with its mutations`);
    const handler = implementation[name] as UnaryHandler | undefined;
    if (typeof handler !== 'function') throw new Error(`client auth: no handler for ${method.path}`);
    const isMeta = qualified.startsWith('Meta/');
    guarded[name] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const token = bearerOf(call.metadata);
      const grant = token === undefined ? undefined : policy.grants.get(digest(token));
      if (grant === undefined) {
        counters.refusedUnauthenticated++;
        callback({ code: grpc.status.UNAUTHENTICATED, details: token === undefined ? 'no bearer token (authorization: Bearer TOKEN); this server requires one' : 'the bearer token is not valid' });
        return;
      }
      if (grant.readOnly && changes(qualified, call.request)) {
        counters.refusedReadOnly++;
        const message = `token ${grant.name} is read-only: ${qualified} refused`;
        if (isMeta) callback(null, { errno: Errno.EROFS, message });
        else callback({ code: grpc.status.PERMISSION_DENIED, details: message });
        return;
      }
      if (grant.subtree === undefined) {
        handler(call, callback);
        return;
      }
      admitInSubtree(qualified, grant.subtree, call, callback, handler, counters, subtrees);
    }) as grpc.UntypedHandleCall;
  }
  return guarded;
}

/** Deadline of a call, or 30 s from now when the client set none. */
function deadlineMsOf(call: grpc.ServerUnaryCall<unknown, unknown>): number {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  return Number.isFinite(ms) && ms > 0 ? ms : Date.now() + 30_000;
}

/** Runs the handler only if the subtree guard admits the call; OpenSession's reply then carries the subtree root. */
function admitInSubtree(
  qualified: string, subtree: string, call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>, handler: UnaryHandler,
  counters: AuthCounters, subtrees: SubtreeGuard | undefined,
): void {
  if (subtrees === undefined) {
    // Fail closed: a server built without the state to check against grants nothing to subtree tokens.
    callback({ code: grpc.status.PERMISSION_DENIED, details: `this server cannot check subtree restrictions; ${qualified} refused` });
    return;
  }
  subtrees.admit(qualified, call.request, subtree, deadlineMsOf(call)).then((admission) => {
    if (!admission.admit) {
      counters.refusedOutsideSubtree++;
      if ('reply' in admission) callback(null, admission.reply);
      else callback({ code: grpc.status[admission.status], details: admission.details });
      return;
    }
    if (qualified !== 'Meta/OpenSession') {
      handler(call, callback);
      return;
    }
    handler(call, (error, reply) => {
      if (error || reply === null || typeof reply !== 'object') callback(error, reply);
      else callback(null, { ...(reply as object), rootHandle: admission.rootHandle, rootGeneration: admission.rootGeneration });
    });
  }, (error: unknown) => callback({ code: grpc.status.UNAVAILABLE, details: `subtree check failed: ${(error as Error).message}` }));
}

/**
 * A grpc.Server whose every service goes through guardService: nothing added
 * to it can skip the check. Without a policy it is a plain grpc.Server.
 */
export class AuthenticatingServer extends grpc.Server {
  readonly authCounters: AuthCounters = { refusedUnauthenticated: 0, refusedReadOnly: 0, refusedOutsideSubtree: 0 };

  /** `subtrees` checks the calls of subtree= tokens against the member's state; without it they are all refused. */
  constructor(private readonly policy: TokenPolicy | undefined, options?: grpc.ServerOptions, private readonly subtrees?: SubtreeGuard) {
    super(options);
  }

  override addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    super.addService(service, this.policy === undefined ? implementation : guardService(service, implementation, this.policy, this.authCounters, this.subtrees));
  }
}
