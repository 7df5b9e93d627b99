/**
 * Shared set-up for the POSIX conformance files: one real 3-member metadata
 * cluster (MetaTestCluster, real processes from dist/) and one or two FUSE
 * mounts of it (mount-control.startMount, --allow-other so another uid can
 * reach the mount), all torn down in afterAll whatever happened: mounts
 * stopped, then force-unmounted (fusectl abort + umount -l), cluster killed,
 * temp folder removed. Also a runner for short python3 children, as root or
 * as another uid (setgroups/setgid/setuid before any file call), whose
 * snippets report errno NAMES so tests assert them exactly.
 * Owns test plumbing only; it must never do synchronous file calls on a mount
 * and never leave a mount, a process or a folder behind.
 */
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MetaTestCluster } from '../../../metaserver/server/testing';
import { forceUnmount, isMounted, RunningMount, startMount } from '../mount-control';

const fsp = fs.promises;
/** A python child that takes longer than this is killed: a hung mount must fail a test, not the run. */
const CHILD_LIMIT_MS = 30_000;
const CHILD_OUTPUT_MAX_BYTES = 4 * 1024 * 1024;
/** The non-root identity the permission scenarios use. */
export const OTHER_UID = 1234;
export const OTHER_GID = 1234;
export const THIRD_UID = 2345;

export interface PosixMounts {
  /** Filled in beforeAll. */
  cluster: MetaTestCluster;
  /** First mount point. */
  a: string;
  /** Second mount point (when asked for two). */
  b: string;
}

/**
 * Registers beforeAll/afterAll for one cluster and `mountCount` mounts; the
 * returned object's fields are set once beforeAll has run.
 */
export function useClusterMounts(label: string, mountCount: 1 | 2 = 1, extraMountArgs: string[] = []): PosixMounts {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `handlefs-posix-${label}-`));
  fs.chmodSync(base, 0o755);
  const running: Array<{ dir: string; m?: RunningMount }> = [];
  const out = { a: '', b: '' } as PosixMounts;

  // A worker that dies before afterAll (an uncaught error) must not leave a mount process serving a
  // dead cluster: kill it and detach its mount point on the way out (sync is all 'exit' allows).
  const onExit = (): void => {
    for (const { dir, m } of running) {
      if (m && m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
      spawnSync('umount', ['-l', dir], { timeout: 5_000, stdio: 'ignore' });
    }
  };
  process.once('exit', onExit);

  beforeAll(async () => {
    out.cluster = await MetaTestCluster.start({ extraArgs: [] });
    const servers = out.cluster.members.map((m) => m.clientAddress).join(',');
    for (const name of ['a', 'b'].slice(0, mountCount) as Array<'a' | 'b'>) {
      const dir = path.join(base, name);
      fs.mkdirSync(dir);
      const entry: { dir: string; m?: RunningMount } = { dir };
      running.push(entry);
      entry.m = await startMount(dir, ['--servers', servers, '--allow-other', ...extraMountArgs]);
      out[name] = dir;
    }
  }, 60_000);

  afterAll(async () => {
    for (const { m } of running) if (m && m.child.exitCode === null && m.child.signalCode === null) await m.stop().catch(() => undefined);
    for (const { dir } of running) await forceUnmount(dir).catch(() => undefined);
    const still = [];
    for (const { dir } of running) if (await isMounted(dir)) still.push(dir);
    process.removeListener('exit', onExit);
    await out.cluster?.destroy();
    if (still.length === 0) await fsp.rm(base, { recursive: true, force: true });
    expect(still).toEqual([]);
  }, 60_000);

  return out;
}

export interface ChildResult { code: number; stdout: string; stderr: string }

/** Runs a command with a time limit; never throws (the result says what happened). */
export function run(cmd: string, args: string[], limitMs = CHILD_LIMIT_MS): Promise<ChildResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: limitMs, maxBuffer: CHILD_OUTPUT_MAX_BYTES }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

/**
 * Prelude every snippet gets: `E(fn, *args)` returns 'OK' or the errno name
 * (e.g. 'EACCES'), `out(x)` prints one JSON line.
 */
const PRELUDE = [
  'import os, sys, errno, stat, json, time',
  'def E(fn, *a, **k):',
  '    try:',
  '        fn(*a, **k)',
  "        return 'OK'",
  '    except OSError as e:',
  "        return errno.errorcode.get(e.errno, str(e.errno))",
  'def out(x):',
  '    print(json.dumps(x)); sys.stdout.flush()',
].join('\n');

/**
 * Runs a python3 snippet, as root or (uid given) as that uid with gid = uid
 * and no supplementary groups; returns the JSON values it printed with out().
 * Throws with the child's stderr if it failed.
 */
export async function py(code: string, as?: { uid: number; gid?: number }): Promise<unknown[]> {
  const identity = as ? `os.setgroups([]); os.setgid(${as.gid ?? as.uid}); os.setuid(${as.uid})\n` : '';
  const r = await run('python3', ['-c', `${PRELUDE}\n${identity}${code}`]);
  if (r.code !== 0) throw new Error(`python3 exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as unknown);
}

/** A python string literal for a path. */
export const q = (s: string): string => JSON.stringify(s);

/** Awaits a promise that must fail with exactly `code`. */
export async function expectErrno(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code });
}
