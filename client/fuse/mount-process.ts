/**
 * The mount process: `node dist/client/fuse/mount-process.js <dir> --servers HOST:PORT,... [options]`
 * (or `--backend memory` for plumbing tests), started by
 * mount-control.startMount with the env from fuse-loader.mountProcessEnv.
 * Owns: one FUSE mount for its whole life, its backend, and the stdout protocol (one JSON object per line:
 * {"event":"ready",...}, {"event":"stats",...} on SIGUSR2, {"event":"unmounted"}); logs go to stderr.
 * It must never spawn a child (libfuse's /dev/fuse descriptor would leak into it), never touch its own
 * mount, and on SIGTERM/SIGINT it detaches the mount, shuts the backend down and exits 0.
 */
import * as path from 'path';
import { FileSystemBackend } from './filesystem';
import { loadFuseNative } from './fuse-loader';
import { DEFAULT_HOST_OPTIONS, FuseHostOptions, createFuseHost } from './fuse-host';
import { MemoryBackend } from './memory-backend';
import { MOUNT_SHUTDOWN_LIMIT_MS } from './mount-control';
import { MountGauges, MountMetrics } from './mount-metrics';
import { MetaBackend, resolveMountRoot } from './meta-backend';
import { MetaClient, READ_FROM_CHOICES } from '../sdk';
import type { Policy, ReadFrom } from '../sdk';
import { ClientTlsOptions, readTokenFile } from '../../proto/tls';


export interface MountArgs {
  mountpoint: string;
  backend: 'cluster' | 'memory';
  /** cluster: the metadata servers' client API addresses. */
  servers: string[];
  policy: Policy;
  deadlineMs: number;
  /** Memory for block contents (the mount's read and write cache). */
  cacheSizeBytes: number;
  /** HOST:PORT for GET /metrics, or undefined for none. */
  metricsAddress?: string;
  host: Omit<FuseHostOptions, 'log'>;
  /** TLS to the servers (--tls-ca, and --tls-cert/--tls-key when they require client certificates). */
  tls?: ClientTlsOptions;
  /** --token-file: the file holding the bearer token (read when connecting). */
  tokenFile?: string;
  /** --subdir: the directory shown as the mount's root, from the session's root ('/a/b'); undefined: the whole tree. */
  subdir?: string;
  /** --read-from: where lookups, stats and reads go first (client/sdk ReadFrom; default the leader). */
  readFrom: ReadFrom;
}

const DEFAULT_CACHE_SIZE_MIB = 256;
/** The cache must hold a few whole 1 MiB blocks to read ahead at all; beyond 64 GiB is a typo. */
const CACHE_SIZE_MIB_MIN = 8;
const CACHE_SIZE_MIB_MAX = 65_536;

const USAGE = 'usage: mount-process <dir> (--servers HOST:PORT,... | --backend memory) [--policy lww|reject] [--deadline-ms 30000] ' +
  '[--attr-timeout-s S] [--entry-timeout-s S] [--negative-timeout-s S] [--allow-other] [--read-only] [--op-timeout-ms MS] ' +
  '[--cache-size-mib 256] [--metrics-address HOST:PORT] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--token-file FILE] [--subdir /PATH] [--read-from leader|first-listed]';

/** Parses argv (after the script name). Throws a message naming the bad argument. */
export function parseMountArgs(argv: readonly string[]): MountArgs {
  const rest = [...argv];
  const dir = rest.shift();
  if (!dir || dir.startsWith('--')) throw new Error(USAGE);
  const host = { ...DEFAULT_HOST_OPTIONS };
  let backend: string | undefined;
  let servers: string[] = [];
  let policy: Policy = 'lww';
  let deadlineMs = 30_000;
  let cacheSizeMib = DEFAULT_CACHE_SIZE_MIB;
  let metricsAddress: string | undefined;
  const tlsFiles: Record<string, string> = {};
  let tokenFile: string | undefined;
  let subdir: string | undefined;
  let readFrom: ReadFrom = 'leader';
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || v.trim() === '' || !Number.isFinite(n) || n < 0) throw new Error(`${flag} needs a non-negative number, got ${v}`);
    return n;
  };
  while (rest.length > 0) {
    const flag = rest.shift()!;
    switch (flag) {
      case '--backend': backend = rest.shift(); break;
      case '--servers': servers = (rest.shift() ?? '').split(',').map((a) => a.trim()).filter(Boolean); break;
      case '--policy': {
        const value = rest.shift();
        if (value !== 'lww' && value !== 'reject') throw new Error(`--policy must be lww or reject, got ${value}`);
        policy = value;
        break;
      }
      case '--deadline-ms': deadlineMs = num(flag, rest.shift()); break;
      case '--attr-timeout-s': host.attrTimeoutS = num(flag, rest.shift()); break;
      case '--entry-timeout-s': host.entryTimeoutS = num(flag, rest.shift()); break;
      case '--negative-timeout-s': host.negativeTimeoutS = num(flag, rest.shift()); break;
      case '--op-timeout-ms': host.opTimeoutMs = num(flag, rest.shift()); break;
      case '--cache-size-mib': cacheSizeMib = num(flag, rest.shift()); break;
      case '--metrics-address': {
        const value = rest.shift() ?? '';
        if (!/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/.test(value)) throw new Error(`--metrics-address must be HOST:PORT, got ${JSON.stringify(value)}`);
        metricsAddress = value;
        break;
      }
      case '--tls-ca': case '--tls-cert': case '--tls-key': {
        const value = rest.shift();
        if (!value || value.startsWith('--')) throw new Error(`${flag} needs a file`);
        tlsFiles[flag] = value;
        break;
      }
      case '--token-file': {
        tokenFile = rest.shift();
        if (!tokenFile || tokenFile.startsWith('--')) throw new Error(`${flag} needs a file`);
        break;
      }
      case '--subdir': {
        const value = rest.shift() ?? '';
        const parts = value.split('/').filter(Boolean);
        if (!value.startsWith('/') || parts.some((part) => part === '.' || part === '..')) throw new Error(`--subdir must be an absolute path without "." or "..", got ${JSON.stringify(value)}`);
        subdir = parts.length === 0 ? undefined : '/' + parts.join('/');
        break;
      }
      case '--read-from': {
        const value = rest.shift();
        if (!READ_FROM_CHOICES.includes(value as ReadFrom)) throw new Error(`--read-from must be ${READ_FROM_CHOICES.join(' or ')}, got ${JSON.stringify(value)}`);
        readFrom = value as ReadFrom;
        break;
      }
      case '--allow-other': host.allowOther = true; break;
      case '--read-only': host.readOnly = true; break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  backend ??= 'cluster';
  if (backend !== 'memory' && backend !== 'cluster') throw new Error(`--backend must be cluster or memory, got ${backend}`);
  if (backend === 'memory' && subdir !== undefined) throw new Error('--subdir needs the cluster backend');
  if (backend === 'cluster' && servers.length === 0) throw new Error(`--servers HOST:PORT,... is required\n${USAGE}`);
  if (!(deadlineMs >= 100)) throw new Error(`--deadline-ms must be at least 100, got ${deadlineMs}`);
  if (!Number.isInteger(cacheSizeMib) || cacheSizeMib < CACHE_SIZE_MIB_MIN || cacheSizeMib > CACHE_SIZE_MIB_MAX) {
    throw new Error(`--cache-size-mib must be an integer from ${CACHE_SIZE_MIB_MIN} to ${CACHE_SIZE_MIB_MAX}, got ${cacheSizeMib}`);
  }
  if (('--tls-cert' in tlsFiles) !== ('--tls-key' in tlsFiles)) throw new Error('--tls-cert and --tls-key go together');
  if (('--tls-cert' in tlsFiles) && !('--tls-ca' in tlsFiles)) throw new Error('--tls-cert needs --tls-ca (the cluster CA)');
  const tls = tlsFiles['--tls-ca'] === undefined ? undefined : { caFile: tlsFiles['--tls-ca'], certFile: tlsFiles['--tls-cert'], keyFile: tlsFiles['--tls-key'] };
  return { mountpoint: path.resolve(dir), backend, servers, policy, deadlineMs, cacheSizeBytes: cacheSizeMib * 1024 * 1024, metricsAddress, host, tls, tokenFile, subdir, readFrom };
}

function emit(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(event) + '\n');
}

/** The HOST:PORT a metrics server listens on (the real port when 0 was asked). */
function addressOf(server: import('node:http').Server): string {
  const bound = server.address();
  return typeof bound === 'object' && bound !== null ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : String(bound);
}

function log(line: string): void {
  process.stderr.write(`[mount ${process.pid}] ${line}\n`);
}

async function main(): Promise<void> {
  process.stdout.on('error', () => undefined); // a parent that went away must not crash the mount
  const args = parseMountArgs(process.argv.slice(2));
  const loaded = loadFuseNative();
  let gauges = (): MountGauges => ({ dirtyBytes: 0, blockCacheBytes: 0, openFiles: 0 });
  const metrics = args.metricsAddress !== undefined ? new MountMetrics(() => gauges()) : undefined;
  let backend: FileSystemBackend<number>;
  if (args.backend === 'memory') {
    backend = new MemoryBackend();
  } else {
    const sdk = await MetaClient.connect({ servers: args.servers, deadlineMs: args.deadlineMs, readFrom: args.readFrom, tls: args.tls, token: args.tokenFile === undefined ? undefined : readTokenFile(args.tokenFile), clientName: `mount ${args.mountpoint} pid ${process.pid}`, logger: { info: (m, f) => log(f ? `${m} ${JSON.stringify(f)}` : m), warn: (m, f) => log(f ? `${m} ${JSON.stringify(f)}` : m) } });
    let rootHandle: number | undefined;
    try {
      rootHandle = args.subdir === undefined ? undefined : await resolveMountRoot(sdk, args.subdir);
    } catch (error) {
      await sdk.close().catch(() => undefined);
      throw error;
    }
    const meta = new MetaBackend(sdk, {
      rootHandle,
      policy: args.policy, readOnly: args.host.readOnly, entryCacheMs: args.host.entryTimeoutS * 1000, blockCacheBytes: args.cacheSizeBytes, log,
      onCommitFailure: metrics ? (errno) => metrics.commitFailed(errno) : undefined,
    });
    gauges = () => meta.gauges();
    backend = meta;
  }
  const host = createFuseHost(loaded, args.mountpoint, backend, { ...args.host, log, observe: metrics ? (op, result, seconds) => metrics.observeRequest(op, result, seconds) : undefined });
  const metricsServer = metrics && args.metricsAddress !== undefined ? await metrics.listen(args.metricsAddress) : undefined;

  let stopping = false;
  const stop = async (why: string, code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    metricsServer?.close();
    const detached = host.detach();
    if (detached !== 0) log(`umount2(${args.mountpoint}) failed: errno ${-detached} (not root? run: fusermount -u ${args.mountpoint})`);
    const limit = setTimeout(() => { log('backend shutdown exceeded its limit'); process.exit(1); }, MOUNT_SHUTDOWN_LIMIT_MS);
    try {
      await backend.shutdown();
    } catch (e) {
      log(`backend shutdown failed: ${String(e)}`);
      code = 1;
    }
    clearTimeout(limit);
    emit({ event: 'unmounted', reason: why, detached: detached === 0 });
    process.exit(detached === 0 ? code : 1);
  };
  process.on('SIGTERM', () => void stop('SIGTERM', 0));
  process.on('SIGINT', () => void stop('SIGINT', 0));
  process.on('SIGUSR2', () => emit({ event: 'stats', ...host.stats() }));
  process.on('uncaughtException', (e) => { log(`uncaught: ${e.stack ?? String(e)}`); void stop('uncaughtException', 1); });
  process.on('unhandledRejection', (e) => { log(`unhandled rejection: ${String(e)}`); });

  await host.mount();
  emit({ event: 'ready', pid: process.pid, mountpoint: args.mountpoint, backend: args.backend,
    libfuse: loaded.libfuseLoadedFrom, options: args.host, metrics: metricsServer ? addressOf(metricsServer) : undefined });
}

if (require.main === module) {
  main().catch((e: unknown) => {
    log(`mount failed: ${e instanceof Error ? e.message : String(e)}`);
    emit({ event: 'failed', error: e instanceof Error ? e.message : String(e) });
    process.exit(2);
  });
}
