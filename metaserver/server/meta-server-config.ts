/**
 * Command-line configuration of the metadata server (server-main.ts). The
 * Raft flags (--id, --listen, --data, --peers, --client-listen, --tick-ms, ...)
 * are parsed and checked by raft/node/server-config.ts's parseServerArgs;
 * this file takes out the metaserver's own flags first (--clients and the
 * session TTLs) and checks them. Must never open sockets or databases.
 */
import { MAX_KEEP_LAST, MAX_SESSION_TTL_MS } from '../state/commands';
import { ServerConfig, ServerConfigError, parseServerArgs, requireDebugUnsafeEnv } from '../../raft/node/server-config';
import { parseHostPort } from '../../raft/transport/options';
import { ServerLimits } from './limits';
import { TlsConfigError, TlsMaterial, loadTlsMaterial } from '../../proto/tls';
import { AuthConfigError, TokenPolicy, readTokenPolicy } from './client-auth';

export const META_USAGE = `usage: node dist/metaserver/server/server-main.js --id ID --listen HOST:PORT --client-listen HOST:PORT --data DIR
  --peers ID=RAFT_HOST:PORT,... [--clients ID=CLIENT_HOST:PORT,...] [--session-ttl-ms 10000] [--max-session-ttl-ms 60000]
  [--keep-last 10] [--keep-younger-than-ms 3600000] [--keep-conflicts-younger-than-ms 604800000] [--block-gc-grace-ms 600000]
  [--duty-interval-ms 10000] [--block-pin-ttl-ms 600000] [--block-repair-interval-ms 30000] [--read-only] [--max-inodes N] [--max-block-bytes N] [--min-free-disk-bytes 67108864]
  [--config FILE.json] [--tls-ca FILE --tls-cert FILE --tls-key FILE] [--client-auth cert|none] [--auth-token-file FILE]
  [--metrics-listen HOST:PORT] [--tick-ms 50] [--election-ticks 10] [--heartbeat-ticks 1] [--snapshot-entries 10000]
  [--snapshot-trailing-entries 1000] [--join] [--verbose]
  --data DIR holds DIR/raft (the Raft log) and DIR/state (the metadata state).
  --clients names every member's client API address, so a follower can send clients to the leader in one hop.
  --tls-ca/--tls-cert/--tls-key (all three or none): TLS on the client port and mutual TLS between members;
  --client-auth cert: clients must present a certificate signed by the CA; --auth-token-file: bearer tokens (docs/security.md).
  Chaos-test fault switches, refused unless HANDLEFS_DEBUG_UNSAFE=1 (they make the cluster wrong on purpose):
  [--debug-unsafe ack-before-commit,stale-reads,no-dedup,no-session-expiry] [--debug-follower-apply-delay-ms N]
  [--debug-fsync-delay-ms N] [--debug-fsync-delay-file FILE] (chaos-tests/debug-faults/README.md).`;

/**
 * debug-unsafe fault switches (--debug-unsafe NAME[,NAME]): each makes the
 * cluster wrong in the way one chaos checker must catch.
 *   ack-before-commit: a mutation is answered before its entry is committed;
 *   stale-reads: reads skip ReadIndex and answer from local state on any member;
 *   no-dedup: the state machine applies a retried (session, sequence) again;
 *   no-session-expiry: the leader never expires a session (nor its fhs).
 */
export const DEBUG_UNSAFE_NAMES = ['ack-before-commit', 'stale-reads', 'no-dedup', 'no-session-expiry'] as const;
export type DebugUnsafeName = (typeof DEBUG_UNSAFE_NAMES)[number];
/** The largest follower apply delay (--debug-follower-apply-delay-ms): a lagging follower, not a stopped one. */
const MAX_DEBUG_FOLLOWER_APPLY_DELAY_MS = 10_000;

export interface MetaServerConfig {
  raft: ServerConfig;
  clientListenAddress: string;
  /** Member id → client API address (this member's own --client-listen included). */
  clientAddresses: Map<string, string>;
  defaultSessionTtlMs: number;
  maxSessionTtlMs: number;
  /** Version retention (rules/retention.ts), applied by the leader's retention passes. */
  retention: { keepLast: number; keepYoungerThanMs: number; keepConflictsYoungerThanMs: number };
  /** A block unreferenced for this long may be collected. */
  blockGcGraceMs: number;
  /** How often the leader runs a retention pass and a block collection. */
  dutyIntervalMs: number;
  /** How long an upload pins a block it has not committed yet. */
  blockPinTtlMs: number;
  /** How often each member looks for referenced blocks it lacks. */
  blockRepairIntervalMs: number;
  limits: ServerLimits;
  /** TLS on every port but metrics (--tls-*); plaintext when absent. The same material is in raft.tls. */
  tls?: TlsMaterial;
  /** --client-auth cert: the client port's TLS handshake requires a certificate signed by the CA. */
  requireClientCertificate: boolean;
  /** --auth-token-file: every call on the client port needs one of these bearer tokens. */
  tokenPolicy?: TokenPolicy;
  /** debug-unsafe: the fault switches on (empty in any normal run). */
  debugUnsafe: ReadonlySet<DebugUnsafeName>;
  /** debug-unsafe: a member that is not the leader waits this long before each apply (0: none), so stale reads are visible. */
  debugFollowerApplyDelayMs: number;
}

const META_FLAGS = new Set([
  '--clients', '--session-ttl-ms', '--max-session-ttl-ms', '--keep-last', '--keep-younger-than-ms', '--keep-conflicts-younger-than-ms', '--block-gc-grace-ms',
  '--duty-interval-ms', '--block-pin-ttl-ms', '--block-repair-interval-ms', '--max-inodes', '--max-block-bytes', '--min-free-disk-bytes',
  '--tls-ca', '--tls-cert', '--tls-key', '--client-auth', '--auth-token-file', '--debug-unsafe', '--debug-follower-apply-delay-ms',
]);
const DAY_MS = 24 * 60 * 60 * 1000;

function intFlag(flag: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) fail(`${flag} must be an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
  return parsed;
}

function fail(problem: string): never {
  throw new ServerConfigError(problem);
}

function ttlFlag(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 100 || parsed > MAX_SESSION_TTL_MS) fail(`${flag} must be an integer in 100..${MAX_SESSION_TTL_MS}, got ${JSON.stringify(value)}`);
  return parsed;
}

function parseClients(value: string, memberIds: ReadonlySet<string>): Map<string, string> {
  const clients = new Map<string, string>();
  for (const item of value.split(',')) {
    const separator = item.indexOf('=');
    if (separator <= 0) fail(`--clients: ${JSON.stringify(item)} is not ID=HOST:PORT`);
    const id = item.slice(0, separator).trim();
    const address = item.slice(separator + 1).trim();
    if (!memberIds.has(id)) fail(`--clients: ${JSON.stringify(id)} is not one of the --peers (${[...memberIds].join(', ')})`);
    if (clients.has(id)) fail(`--clients: member ${id} given twice`);
    try {
      parseHostPort(address, false);
    } catch (error) {
      fail(`--clients (member ${id}): ${(error as Error).message}`);
    }
    clients.set(id, address);
  }
  return clients;
}

export function parseMetaServerArgs(argv: readonly string[]): MetaServerConfig {
  const own = new Map<string, string>();
  const rest: string[] = [];
  let readOnly = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--read-only') {
      readOnly = true;
      continue;
    }
    const equals = arg.indexOf('=');
    const flag = arg.startsWith('--') && equals > 0 ? arg.slice(0, equals) : arg;
    if (!META_FLAGS.has(flag)) { rest.push(arg); continue; }
    const value = flag !== arg ? arg.slice(equals + 1) : argv[++i];
    if (value === undefined || value.startsWith('--')) fail(`${flag} needs a value\n${META_USAGE}`);
    if (own.has(flag)) fail(`${flag} given twice`);
    own.set(flag, value);
  }
  let raft: ServerConfig;
  try {
    raft = parseServerArgs(rest);
  } catch (error) {
    // The Raft parser's usage text names the kvtest server: show ours instead.
    if (error instanceof ServerConfigError) fail(`${error.message.replace(/^bad configuration: /, '').split('\nusage:')[0]}\n${META_USAGE}`);
    throw error;
  }
  if (!raft.clientListenAddress) fail(`--client-listen is required\n${META_USAGE}`);
  const clientAddresses = own.has('--clients') ? parseClients(own.get('--clients')!, new Set(raft.members.map((m) => m.id))) : new Map<string, string>();
  if (!clientAddresses.has(raft.id)) clientAddresses.set(raft.id, raft.clientListenAddress);
  // The founders' bootstrap membership carries the --clients addresses, replicated from then on (as etcd's clientURLs).
  // Only those given explicitly: every founder must write identical bootstrap entries, so --clients must match as --peers does.
  if (own.has('--clients')) raft.members = raft.members.map((m) => (clientAddresses.has(m.id) ? { ...m, clientAddress: clientAddresses.get(m.id) } : m));
  const defaultSessionTtlMs = ttlFlag('--session-ttl-ms', own.get('--session-ttl-ms'), 10_000);
  const maxSessionTtlMs = ttlFlag('--max-session-ttl-ms', own.get('--max-session-ttl-ms'), Math.max(60_000, defaultSessionTtlMs));
  if (defaultSessionTtlMs > maxSessionTtlMs) fail(`--session-ttl-ms (${defaultSessionTtlMs}) exceeds --max-session-ttl-ms (${maxSessionTtlMs})`);
  const retention = {
    keepLast: intFlag('--keep-last', own.get('--keep-last'), 10, 1, MAX_KEEP_LAST),
    keepYoungerThanMs: intFlag('--keep-younger-than-ms', own.get('--keep-younger-than-ms'), 60 * 60 * 1000, 0, 3650 * DAY_MS),
    keepConflictsYoungerThanMs: intFlag('--keep-conflicts-younger-than-ms', own.get('--keep-conflicts-younger-than-ms'), 7 * DAY_MS, 0, 3650 * DAY_MS),
  };
  const blockGcGraceMs = intFlag('--block-gc-grace-ms', own.get('--block-gc-grace-ms'), 10 * 60 * 1000, 0, 30 * DAY_MS);
  const dutyIntervalMs = intFlag('--duty-interval-ms', own.get('--duty-interval-ms'), 10_000, 100, DAY_MS);
  const limits: ServerLimits = {
    readOnly,
    maxInodes: intFlag('--max-inodes', own.get('--max-inodes'), 0, 0, Number.MAX_SAFE_INTEGER),
    maxBlockBytes: intFlag('--max-block-bytes', own.get('--max-block-bytes'), 0, 0, Number.MAX_SAFE_INTEGER),
    minFreeDiskBytes: intFlag('--min-free-disk-bytes', own.get('--min-free-disk-bytes'), 64 * 1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
  };
  const blockPinTtlMs = intFlag('--block-pin-ttl-ms', own.get('--block-pin-ttl-ms'), 10 * 60 * 1000, 1_000, DAY_MS);
  const blockRepairIntervalMs = intFlag('--block-repair-interval-ms', own.get('--block-repair-interval-ms'), 30_000, 100, DAY_MS);
  const security = parseSecurity(own);
  if (security.tls !== undefined) raft.tls = security.tls;
  return {
    ...security,
    ...parseDebugUnsafe(own),
    raft, clientListenAddress: raft.clientListenAddress, clientAddresses, defaultSessionTtlMs, maxSessionTtlMs, retention, blockGcGraceMs, dutyIntervalMs, blockPinTtlMs,
    blockRepairIntervalMs, limits,
  };
}

/** debug-unsafe: the fault switches, refused without HANDLEFS_DEBUG_UNSAFE=1 and naming an unknown switch. */
function parseDebugUnsafe(own: ReadonlyMap<string, string>): { debugUnsafe: ReadonlySet<DebugUnsafeName>; debugFollowerApplyDelayMs: number } {
  const debugUnsafe = new Set<DebugUnsafeName>();
  const names = own.get('--debug-unsafe');
  if (names !== undefined) {
    requireDebugUnsafeEnv('--debug-unsafe');
    for (const name of names.split(',').map((n) => n.trim())) {
      if (!(DEBUG_UNSAFE_NAMES as readonly string[]).includes(name)) fail(`--debug-unsafe: unknown switch ${JSON.stringify(name.slice(0, 64))}; known: ${DEBUG_UNSAFE_NAMES.join(', ')}`);
      debugUnsafe.add(name as DebugUnsafeName);
    }
  }
  const delay = own.get('--debug-follower-apply-delay-ms');
  if (delay !== undefined) requireDebugUnsafeEnv('--debug-follower-apply-delay-ms', 'it makes followers lag on purpose (with stale-reads, their reads go stale)');
  return { debugUnsafe, debugFollowerApplyDelayMs: intFlag('--debug-follower-apply-delay-ms', delay, 0, 0, MAX_DEBUG_FOLLOWER_APPLY_DELAY_MS) };
}

/** The TLS and client-authentication flags; files are read and checked here, so a bad one stops the server before it starts. */
function parseSecurity(own: ReadonlyMap<string, string>): { tls?: TlsMaterial; requireClientCertificate: boolean; tokenPolicy?: TokenPolicy } {
  const tlsFlags = ['--tls-ca', '--tls-cert', '--tls-key'];
  const given = tlsFlags.filter((flag) => own.has(flag));
  if (given.length > 0 && given.length < 3) fail(`${tlsFlags.filter((flag) => !own.has(flag)).join(' and ')} missing: --tls-ca, --tls-cert and --tls-key go together (a member needs all three)`);
  let tls: TlsMaterial | undefined;
  if (given.length === 3) {
    try {
      tls = loadTlsMaterial({ caFile: own.get('--tls-ca')!, certFile: own.get('--tls-cert')!, keyFile: own.get('--tls-key')! });
    } catch (error) {
      if (error instanceof TlsConfigError) fail(`TLS: ${error.message}`);
      throw error;
    }
  }
  const clientAuth = own.get('--client-auth') ?? 'none';
  if (clientAuth !== 'cert' && clientAuth !== 'none') fail(`--client-auth must be cert or none, got ${JSON.stringify(clientAuth)}`);
  if (clientAuth === 'cert' && tls === undefined) fail('--client-auth cert needs TLS: give --tls-ca, --tls-cert and --tls-key');
  let tokenPolicy: TokenPolicy | undefined;
  const tokenFile = own.get('--auth-token-file');
  if (tokenFile !== undefined) {
    try {
      tokenPolicy = readTokenPolicy(tokenFile);
    } catch (error) {
      if (error instanceof AuthConfigError) fail(error.message);
      throw error;
    }
  }
  return { tls, requireClientCertificate: clientAuth === 'cert', tokenPolicy };
}
