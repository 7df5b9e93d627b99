/**
 * The client's commands of the `handlefs` CLI: mount (foreground or as a
 * background daemon), umount, and the version commands (versions, cat,
 * restore) for a path inside a mount or, with --servers, a path in the
 * cluster. Owns argument parsing and what each prints; the mount itself is
 * client/fuse's, the calls the SDK's. Must never leave a mount behind it
 * started and failed, and never touch the servers but through the SDK.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MetaClient, MetaError } from '../sdk';
import { STOP_LIMIT_MS, findMounts, forceUnmount, isMounted, isStale, mountProcessesOf, startDaemonMount, startMount } from '../fuse/mount-control';
import { readTokenFile } from '../../proto/tls';

export const CLIENT_USAGE = `  mount <dir> --servers HOST:PORT,... [--foreground] [--policy lww|reject] [--read-only] [--allow-other]
        [--attr-timeout-s 1] [--entry-timeout-s 1] [--deadline-ms 30000] [--cache-size-mib 256] [--read-from leader|first-listed]
        [--metrics-address HOST:PORT] [--log FILE] [--tls-ca F [--tls-cert F --tls-key F]] [--token-file F] [--subdir /PATH]
        mount the cluster (or only its directory --subdir) on <dir> (a background daemon unless --foreground; a stale mount there is cleaned)
  umount <dir>
        flush and release what the mount holds, close its session and unmount (a stale mount is cleaned)
  versions <path> [--servers HOST:PORT,...] [--json]
        every kept version of a file: number, size, commit time, kind, conflict marks
  cat <path> [--version N] [--servers HOST:PORT,...]
        a file's content (a kept version's with --version) on stdout
  restore <path> --version N [--servers HOST:PORT,...]
        make version N the file's newest version (the history keeps every version)
  <path> is a path inside a handlefs mount, or with --servers a path in the cluster ("/a/b");
  versions, cat and restore take --deadline-ms (default 30000) and the TLS and token flags of mount.
`;

/** TLS files and the token file, passed through to the SDK (proto/tls.ts). */
const SECURITY_FLAGS = ['--tls-ca', '--tls-cert', '--tls-key', '--token-file'];
const UMOUNT_WAIT_MS = STOP_LIMIT_MS;
const POLL_MS = 100;

class UsageError extends Error {}

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

const BOOLEAN_FLAGS = new Set(['--foreground', '--read-only', '--allow-other', '--json']);

function parse(argv: readonly string[], allowed: readonly string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    if (!allowed.includes(arg)) throw new UsageError(`unknown option ${arg}`);
    if (BOOLEAN_FLAGS.has(arg)) flags.set(arg, true);
    else {
      const value = argv[++i];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`${arg} needs a value`);
      flags.set(arg, value);
    }
  }
  return { positional, flags };
}

function stringFlag(parsed: Parsed, flag: string): string | undefined {
  const value = parsed.flags.get(flag);
  return typeof value === 'string' ? value : undefined;
}

function versionFlag(parsed: Parsed, required: boolean): number | undefined {
  const value = stringFlag(parsed, '--version');
  if (value === undefined) {
    if (required) throw new UsageError('--version N is required');
    return undefined;
  }
  const version = Number(value);
  if (!Number.isSafeInteger(version) || version < 1) throw new UsageError(`--version must be a version number (1, 2, ...), got ${JSON.stringify(value)}`);
  return version;
}

/** The log a background mount writes to, by default one per mount point. */
function defaultLogFile(dir: string): string {
  const tag = crypto.createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 12);
  return path.join(os.tmpdir(), `handlefs-mount-${tag}.log`);
}

async function mountCommand(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, ['--servers', '--foreground', '--policy', '--read-only', '--allow-other', '--attr-timeout-s', '--entry-timeout-s', '--deadline-ms', '--cache-size-mib', '--metrics-address', '--log', '--subdir', '--read-from', ...SECURITY_FLAGS]);
  const [dir, extra] = parsed.positional;
  if (!dir || extra !== undefined) throw new UsageError('mount takes one directory');
  const servers = stringFlag(parsed, '--servers');
  if (!servers) throw new UsageError('--servers HOST:PORT,... is required');
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`${dir} is not a directory`);
  const args = ['--servers', servers];
  for (const flag of ['--policy', '--attr-timeout-s', '--entry-timeout-s', '--deadline-ms', '--cache-size-mib', '--metrics-address', '--subdir', '--read-from']) {
    const value = stringFlag(parsed, flag);
    if (value !== undefined) args.push(flag, value);
  }
  // Absolute: the daemon does not run in this folder.
  for (const flag of SECURITY_FLAGS) {
    const value = stringFlag(parsed, flag);
    if (value !== undefined) args.push(flag, path.resolve(value));
  }
  for (const flag of ['--read-only', '--allow-other']) if (parsed.flags.has(flag)) args.push(flag);
  if (parsed.flags.has('--foreground')) {
    const mount = await startMount(dir, args);
    process.stdout.write(`handlefs: ${path.resolve(dir)} mounted (mount process ${mount.pid}); Ctrl-C unmounts\n`);
    mount.child.stderr?.pipe(process.stderr);
    const stop = (): void => void mount.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const code = await mount.exited;
    return code ?? 1;
  }
  const logFile = stringFlag(parsed, '--log') ?? defaultLogFile(dir);
  const { pid } = await startDaemonMount(dir, args, logFile);
  process.stdout.write(`handlefs: ${path.resolve(dir)} mounted (mount process ${pid}, log ${logFile})\n`);
  return 0;
}

async function umountCommand(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, []);
  const [dir, extra] = parsed.positional;
  if (!dir || extra !== undefined) throw new UsageError('umount takes one directory');
  const mnt = path.resolve(dir);
  const pids = await mountProcessesOf(mnt);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + UMOUNT_WAIT_MS;
  // Bounded by UMOUNT_WAIT_MS: the mount process commits what it holds, then unmounts and exits.
  while (pids.some((pid) => isAlive(pid)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  const survivors = pids.filter((pid) => isAlive(pid));
  for (const pid of survivors) process.kill(pid, 'SIGKILL');
  if (await isMounted(mnt)) {
    if (pids.length === 0 && !(await isStale(mnt))) throw new Error(`${mnt} is mounted but no handlefs mount process serves it here; not touching it`);
    await forceUnmount(mnt);
  }
  if (pids.length === 0 && !(await isMounted(mnt))) process.stdout.write(`handlefs: ${mnt} was not mounted (anything stale is cleaned)\n`);
  else process.stdout.write(`handlefs: ${mnt} unmounted${survivors.length > 0 ? ' (the mount process did not stop in time and was killed; writes it held may be lost)' : ''}\n`);
  return survivors.length > 0 ? 1 : 0;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The cluster and the cluster path a CLI path names: inside a mount (its --servers), or with --servers given. */
async function target(givenPath: string, servers: string | undefined): Promise<{ servers: string[]; clusterPath: string }> {
  if (servers) return { servers: servers.split(',').map((s) => s.trim()).filter(Boolean), clusterPath: givenPath };
  const absolute = path.resolve(givenPath);
  const mounts = (await findMounts()).filter((m) => m.fstype.startsWith('fuse') && (absolute === m.mountpoint || absolute.startsWith(m.mountpoint + '/')));
  const mount = mounts.sort((a, b) => b.mountpoint.length - a.mountpoint.length)[0];
  if (!mount) throw new UsageError(`${absolute} is not inside a handlefs mount; give --servers HOST:PORT,... and a cluster path`);
  for (const pid of await mountProcessesOf(mount.mountpoint)) {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const at = argv.indexOf('--servers');
    if (at >= 0 && argv[at + 1]) return { servers: argv[at + 1].split(','), clusterPath: '/' + path.relative(mount.mountpoint, absolute) };
  }
  throw new Error(`no mount process serves ${mount.mountpoint}; give --servers`);
}

function deadlineOf(parsed: Parsed): number | undefined {
  const value = stringFlag(parsed, '--deadline-ms');
  if (value === undefined) return undefined;
  const ms = Number(value);
  if (!Number.isSafeInteger(ms) || ms < 100) throw new UsageError(`--deadline-ms must be an integer ≥ 100, got ${JSON.stringify(value)}`);
  return ms;
}

async function withClient<T>(servers: string[], parsed: Parsed, run: (client: MetaClient) => Promise<T>): Promise<T> {
  const caFile = stringFlag(parsed, '--tls-ca');
  const tls = caFile === undefined ? undefined : { caFile, certFile: stringFlag(parsed, '--tls-cert'), keyFile: stringFlag(parsed, '--tls-key') };
  const tokenFile = stringFlag(parsed, '--token-file');
  const client = await MetaClient.connect({
    servers, clientName: `handlefs cli pid ${process.pid}`, deadlineMs: deadlineOf(parsed), tls, token: tokenFile === undefined ? undefined : readTokenFile(tokenFile),
  });
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

async function versionsCommand(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, ['--servers', '--json', '--deadline-ms', ...SECURITY_FLAGS]);
  const [file] = parsed.positional;
  if (!file) throw new UsageError('versions takes a path');
  const { servers, clusterPath } = await target(file, stringFlag(parsed, '--servers'));
  return withClient(servers, parsed, async (client) => {
    const attr = await client.resolve(clusterPath);
    const versions = [];
    for await (const v of client.listVersions(attr.handle)) versions.push(v);
    if (parsed.flags.has('--json')) {
      process.stdout.write(JSON.stringify({ path: clusterPath, handle: attr.handle, head: attr.headVersion ?? 0, versions }, null, 2) + '\n');
      return 0;
    }
    process.stdout.write(`${'version'.padStart(8)} ${'size'.padStart(12)}  ${'committed'.padEnd(24)} kind\n`);
    for (const v of versions) {
      const marks = [v.conflict ? `conflict (lost to ${v.lostToVersion})` : '', v.overwroteVersion ? `overwrote ${v.overwroteVersion}` : '', v.restoredFrom ? `from ${v.restoredFrom}` : ''].filter(Boolean).join(', ');
      process.stdout.write(`${String(v.version).padStart(8)} ${String(v.sizeBytes).padStart(12)}  ${new Date(v.commitTimeMs).toISOString().padEnd(24)} ${v.kind}${marks ? ` (${marks})` : ''}\n`);
    }
    return 0;
  });
}

async function catCommand(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, ['--servers', '--version', '--deadline-ms', ...SECURITY_FLAGS]);
  const [file] = parsed.positional;
  if (!file) throw new UsageError('cat takes a path');
  const version = versionFlag(parsed, false);
  const { servers, clusterPath } = await target(file, stringFlag(parsed, '--servers'));
  const content = await withClient(servers, parsed, (client) => client.readFile(clusterPath, version === undefined ? {} : { version }));
  await new Promise<void>((resolve, reject) => process.stdout.write(content, (error) => (error ? reject(error) : resolve())));
  return 0;
}

async function restoreCommand(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, ['--servers', '--version', '--deadline-ms', ...SECURITY_FLAGS]);
  const [file] = parsed.positional;
  if (!file) throw new UsageError('restore takes a path');
  const version = versionFlag(parsed, true)!;
  const { servers, clusterPath } = await target(file, stringFlag(parsed, '--servers'));
  const restored = await withClient(servers, parsed, async (client) => client.restoreVersion((await client.resolve(clusterPath)).handle, version));
  process.stdout.write(`handlefs: ${clusterPath} is now version ${restored.version} (${restored.sizeBytes} bytes), a copy of version ${version}\n`);
  return 0;
}

/** Runs one client command; exit code 2 for bad usage, 1 for a failure (the message names it). */
export async function runClientCommand(command: string, argv: readonly string[]): Promise<number> {
  try {
    switch (command) {
      case 'mount': return await mountCommand(argv);
      case 'umount': return await umountCommand(argv);
      case 'versions': return await versionsCommand(argv);
      case 'cat': return await catCommand(argv);
      case 'restore': return await restoreCommand(argv);
      default: throw new UsageError(`unknown client command ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`handlefs ${command}: ${error.message}\n`);
      return 2;
    }
    const detail = error instanceof MetaError ? `${error.code}: ${error.message}` : (error as Error).message;
    process.stderr.write(`handlefs ${command}: ${detail}\n`);
    return 1;
  }
}

export const CLIENT_COMMANDS = new Set(['mount', 'umount', 'versions', 'cat', 'restore']);
