/**
 * Starting, stopping and cleaning FUSE mounts from OUTSIDE the mount process (CLI, tests, daemons).
 * Owns: spawning mount-process with the libfuse env, the readiness handshake, mount detection from
 * /proc/self/mountinfo, and the abort recipe for hung or stale mounts (fusectl abort + umount -l).
 * It must never be used inside the mount process (it spawns children) and never touch a mount's files
 * synchronously (a hung mount would block this process).
 */
import { ChildProcess, execFile, spawn } from 'child_process';
import * as fs from 'fs';
const fsp = fs.promises;
import * as path from 'path';
import * as readline from 'readline';
import { fuseNativePaths, mountProcessEnv } from './fuse-loader';
import type { HostStats } from './fuse-host';

const READY_LIMIT_MS = 15_000;
/** The mount process's own limit for committing what applications still hold open and closing its session. */
export const MOUNT_SHUTDOWN_LIMIT_MS = 30_000;
/** A stopping mount gets its whole shutdown before SIGKILL: killing it earlier loses the writes it was committing. */
export const STOP_LIMIT_MS = MOUNT_SHUTDOWN_LIMIT_MS + 5_000;
const STATS_LIMIT_MS = 5_000;
const COMMAND_LIMIT_MS = 5_000;
const DAEMON_POLL_MS = 100;
const STALE_PROBE_LIMIT_MS = 2_000;
const STDERR_TAIL_BYTES = 64 * 1024;
const MAX_STACKED_UNMOUNTS = 8;
const FUSECTL_DIR = '/sys/fs/fuse/connections';

export interface MountEntry {
  mountId: number;
  /** Device minor of the mount = the fusectl connection directory name for FUSE mounts. */
  minor: number;
  mountpoint: string;
  fstype: string;
  source: string;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Every mount whose mount point is exactly `dir` (stacked mounts: last = topmost). */
/** The mounts at `dir` (every mount of the system with `dir` undefined), from /proc/self/mountinfo. */
export async function findMounts(dir?: string): Promise<MountEntry[]> {
  const want = dir === undefined ? undefined : path.resolve(dir);
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 6) continue;
    const mountpoint = unescapeMountinfo(f[4]);
    if (want !== undefined && mountpoint !== want) continue;
    const minor = Number(f[2].split(':')[1]);
    out.push({ mountId: Number(f[0]), minor, mountpoint, fstype: f[sep + 1], source: unescapeMountinfo(f[sep + 2] ?? '') });
  }
  return out;
}

export async function isMounted(dir: string): Promise<boolean> {
  return (await findMounts(dir)).some((m) => m.fstype === 'fuse' || m.fstype.startsWith('fuse.'));
}

function run(cmd: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: COMMAND_LIMIT_MS }, (err, stdout, stderr) => resolve({ ok: !err, output: `${stdout}${stderr}`.trim() }));
  });
}

async function ensureFusectl(): Promise<void> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  if (text.split('\n').some((l) => / - fusectl /.test(l))) return;
  const r = await run('mount', ['-t', 'fusectl', 'none', FUSECTL_DIR]);
  if (!r.ok) throw new Error(`forceUnmount: cannot mount fusectl on ${FUSECTL_DIR}: ${r.output}`);
}

/**
 * Frees a FUSE mount whatever state its server is in: aborts the kernel connection (every waiting call
 * fails with ENOTCONN, nothing can hang any more), then detaches the mount point. Root for the abort;
 * without root only `fusermount -uz` is tried. Returns how many mounts were removed.
 */
export async function forceUnmount(dir: string): Promise<number> {
  const mnt = path.resolve(dir);
  let removed = 0;
  for (let i = 0; i < MAX_STACKED_UNMOUNTS; i++) {
    const fuse = (await findMounts(mnt)).filter((m) => m.fstype === 'fuse' || m.fstype.startsWith('fuse.')).pop();
    if (!fuse) return removed;
    const isRoot = process.getuid?.() === 0;
    if (isRoot) {
      await ensureFusectl();
      await fsp.writeFile(path.join(FUSECTL_DIR, String(fuse.minor), 'abort'), '1').catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw new Error(`forceUnmount: abort of connection ${fuse.minor} failed: ${e.message}`);
      });
      const r = await run('umount', ['-l', mnt]);
      if (!r.ok) throw new Error(`forceUnmount: umount -l ${mnt} failed: ${r.output}`);
    } else {
      const r = await run(fuseNativePaths().fusermountPath, ['-uz', mnt]);
      if (!r.ok) throw new Error(`forceUnmount: fusermount -uz ${mnt} failed: ${r.output}`);
    }
    removed++;
  }
  throw new Error(`forceUnmount: ${mnt} still mounted after ${MAX_STACKED_UNMOUNTS} unmounts`);
}

/** The compiled mount-process.js (tests run this file from TypeScript source, the child runs dist/). */
export function mountProcessScript(): string {
  if (__filename.endsWith('.ts')) return path.resolve(__dirname, '..', '..', 'dist', 'client', 'fuse', 'mount-process.js');
  return path.join(__dirname, 'mount-process.js');
}

export interface ReadyEvent { event: 'ready'; pid: number; mountpoint: string; libfuse: string; [k: string]: unknown }

export interface RunningMount {
  pid: number;
  ready: ReadyEvent;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGTERM, wait, and if it does not exit in time: SIGKILL + forceUnmount. Always leaves no mount. */
  stop(): Promise<number | null>;
  stats(): Promise<HostStats>;
  stderrTail(): string;
  child: ChildProcess;
}

/** A mount point still mounted but whose server is gone answers ENOTCONN: safe to clean. */
export async function isStale(dir: string): Promise<boolean> {
  const probe = fsp.stat(dir).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ENOTCONN' || e.code === 'ECONNABORTED');
  const limit = new Promise<boolean>((r) => setTimeout(() => r(false), STALE_PROBE_LIMIT_MS).unref());
  return Promise.race([probe, limit]);
}

export async function startMount(dir: string, args: readonly string[]): Promise<RunningMount> {
  const mnt = path.resolve(dir);
  if (await isMounted(mnt)) {
    if (!(await isStale(mnt))) throw new Error(`startMount: ${mnt} is already mounted and answering; unmount it first`);
    await forceUnmount(mnt);
  }
  const child = spawn(process.execPath, [mountProcessScript(), mnt, ...args], { env: mountProcessEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_TAIL_BYTES); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listeners = new Set<(ev: Record<string, unknown>) => void>();
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    let ev: Record<string, unknown>;
    try { ev = JSON.parse(line) as Record<string, unknown>; } catch { return; }
    for (const l of [...listeners]) l(ev);
  });
  const next = (event: string, limitMs: number): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const done = (fn: () => void): void => { clearTimeout(timer); listeners.delete(onEvent); fn(); };
    const timer = setTimeout(() => done(() => reject(new Error(`mount ${mnt}: no "${event}" within ${limitMs} ms; stderr: ${stderr}`))), limitMs);
    const onEvent = (ev: Record<string, unknown>): void => {
      if (ev.event === event) done(() => resolve(ev));
      else if (ev.event === 'failed') done(() => reject(new Error(`mount ${mnt} failed: ${String(ev.error)}`)));
    };
    listeners.add(onEvent);
    void exited.then((code) => done(() => reject(new Error(`mount ${mnt}: process exited (${code}) before "${event}"; stderr: ${stderr}`))));
  });

  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), STOP_LIMIT_MS); })]);
      clearTimeout(timer);
      if (!inTime) child.kill('SIGKILL');
    }
    const code = await exited;
    if (await isMounted(mnt)) await forceUnmount(mnt);
    return code;
  };

  let ready: ReadyEvent;
  try {
    ready = (await next('ready', READY_LIMIT_MS)) as ReadyEvent;
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    await forceUnmount(mnt).catch(() => undefined);
    throw e;
  }
  return {
    pid: child.pid!, ready, exited, stop, child, stderrTail: () => stderr,
    stats: async () => {
      const p = next('stats', STATS_LIMIT_MS);
      child.kill('SIGUSR2');
      return (await p) as unknown as HostStats;
    },
  };
}

/** Pids of mount processes serving `dir` (found by their command line in /proc). */
export async function mountProcessesOf(dir: string): Promise<number[]> {
  const mnt = path.resolve(dir);
  const pids: number[] = [];
  for (const name of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const argv = await fsp.readFile(`/proc/${name}/cmdline`, 'utf8').then((s) => s.split('\0'), () => [] as string[]);
    const script = argv.findIndex((a) => a.endsWith(path.join('client', 'fuse', 'mount-process.js')));
    if (script >= 0 && argv[script + 1] === mnt) pids.push(Number(name));
  }
  return pids;
}

/**
 * A mount in the background: the mount process detached from this one (its
 * own session), stdout and stderr to `logFile`; resolves with its pid once it
 * wrote its ready line, rejects naming the failure (and leaves nothing
 * mounted) otherwise. A stale mount of `dir` is cleaned first.
 */
export async function startDaemonMount(dir: string, args: readonly string[], logFile: string): Promise<{ pid: number; ready: ReadyEvent }> {
  const mnt = path.resolve(dir);
  if (await isMounted(mnt)) {
    if (!(await isStale(mnt))) throw new Error(`${mnt} is already mounted and answering; unmount it first`);
    await forceUnmount(mnt);
  }
  const log = fs.openSync(logFile, 'a');
  const start = fs.fstatSync(log).size;
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [mountProcessScript(), mnt, ...args], { env: mountProcessEnv(), stdio: ['ignore', log, log], detached: true });
  } finally {
    fs.closeSync(log);
  }
  const deadline = Date.now() + READY_LIMIT_MS;
  // Bounded by READY_LIMIT_MS: the log is read again every DAEMON_POLL_MS.
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, DAEMON_POLL_MS));
    const lines = (await fsp.readFile(logFile, 'utf8')).slice(start).split('\n');
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      let ev: Record<string, unknown>;
      try { ev = JSON.parse(line) as Record<string, unknown>; } catch { continue; }
      if (ev.event === 'ready') {
        child.unref();
        return { pid: child.pid!, ready: ev as ReadyEvent };
      }
      if (ev.event === 'failed') throw new Error(`mount ${mnt} failed: ${String(ev.error)} (log: ${logFile})`);
    }
    if (child.exitCode !== null) throw new Error(`mount ${mnt}: the mount process exited (${child.exitCode}) before it was ready (log: ${logFile})`);
  }
  child.kill('SIGKILL');
  await forceUnmount(mnt).catch(() => undefined);
  throw new Error(`mount ${mnt}: not ready within ${READY_LIMIT_MS} ms (log: ${logFile})`);
}
