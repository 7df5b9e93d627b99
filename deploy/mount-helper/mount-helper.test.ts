/**
 * mount.handlefs, the mount(8) helper, end to end with real processes: a real
 * three-member cluster (`handlefs cluster up`), the helper called the way
 * mount(8) calls it (SPEC DIR -o OPTIONS), file I/O through the mount from
 * other processes, `handlefs umount`, an unknown option refused with nothing
 * mounted, and mount(8) itself finding the helper — in a private mount
 * namespace whose /usr/sbin is a folder holding only the helper, so no system
 * folder is touched. Run `npx tsc -p .` first (the processes run dist/).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { clusterUpOnFreePorts } from '../cluster-testing';
import { forceUnmount, isMounted, mountProcessesOf } from '../../client/fuse/mount-control';

const REPO = path.resolve(__dirname, '..', '..');
const CLI = path.join(REPO, 'bin', 'handlefs.js');
const HELPER = path.join(__dirname, 'mount.handlefs');
const COMMAND_LIMIT_MS = 60_000;

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-mount-helper-'));
const dataDir = path.join(base, 'data');
const mnt = path.join(base, 'mnt');
const mntReadOnly = path.join(base, 'mnt-ro');
const mntViaMount8 = path.join(base, 'mnt-mount8');
const helperEnv = { ...process.env, HANDLEFS_CLI: CLI, HANDLEFS_NODE: process.execPath };
let servers = '';

interface Ran { code: number; stdout: string; stderr: string }

function run(file: string, args: readonly string[], env: NodeJS.ProcessEnv = helperEnv): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: COMMAND_LIMIT_MS, cwd: base, env }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

const cli = (...args: string[]): Promise<Ran> => run(process.execPath, [CLI, ...args]);

async function whichOk(command: string): Promise<boolean> {
  return (await run('sh', ['-c', `command -v ${command}`])).code === 0;
}

beforeAll(async () => {
  for (const dir of [mnt, mntReadOnly, mntViaMount8]) fs.mkdirSync(dir);
  ({ servers } = await clusterUpOnFreePorts(cli, dataDir));
}, 60_000);

afterAll(async () => {
  for (const dir of [mnt, mntReadOnly, mntViaMount8]) {
    // A mount left in the private namespace dies with its mount process; one here is unmounted.
    for (const pid of await mountProcessesOf(dir)) process.kill(pid, 'SIGKILL');
    await forceUnmount(dir).catch(() => undefined);
  }
  await cli('cluster', 'down', '--data', dataDir);
  for (const dir of [mnt, mntReadOnly, mntViaMount8]) expect(await isMounted(dir)).toBe(false);
  fs.rmSync(base, { recursive: true, force: true });
}, 60_000);

describe('mount.handlefs, called the way mount(8) calls it', () => {
  it('mounts with -o rw,attr_timeout=1,_netdev, serves a write and a read from other processes, and unmounts', async () => {
    const mounted = await run(HELPER, [servers, mnt, '-o', `rw,attr_timeout=1,_netdev,nofail,log=${path.join(base, 'mount.log')}`]);
    expect(mounted).toMatchObject({ code: 0 });
    expect(await isMounted(mnt)).toBe(true);
    expect(await mountProcessesOf(mnt)).toHaveLength(1);

    await fs.promises.writeFile(path.join(mnt, 'hello.txt'), 'written through the helper\n');
    // Read back by a separate process, and by the cluster directly (not through the kernel's cache).
    expect(await run('cat', [path.join(mnt, 'hello.txt')])).toMatchObject({ code: 0, stdout: 'written through the helper\n' });
    expect(await cli('cat', '/hello.txt', '--servers', servers)).toMatchObject({ code: 0, stdout: 'written through the helper\n' });

    expect(await cli('umount', mnt)).toMatchObject({ code: 0 });
    expect(await isMounted(mnt)).toBe(false);
    expect(await mountProcessesOf(mnt)).toHaveLength(0);
  }, 60_000);

  it('turns ro,allow_other,policy=reject,entry_timeout=0,deadline_ms=5000,cache_size_mib=64,read_from=first-listed,metrics_address=… into a read-only mount that still reads', async () => {
    const mounted = await run(HELPER, [servers, mntReadOnly, '-o', `ro,allow_other,policy=reject,entry_timeout=0,deadline_ms=5000,cache_size_mib=64,read_from=first-listed,metrics_address=127.0.0.1:0,subdir=/,log=${path.join(base, 'mount-ro.log')}`]);
    expect(mounted).toMatchObject({ code: 0 });
    const [pid] = await mountProcessesOf(mntReadOnly);
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(argv).toEqual(expect.arrayContaining(['--read-only', '--allow-other', '--policy', 'reject', '--entry-timeout-s', '0', '--deadline-ms', '5000', '--cache-size-mib', '64', '--read-from', 'first-listed', '--metrics-address', '127.0.0.1:0', '--subdir', '/']));
    expect(fs.readFileSync('/proc/self/mounts', 'utf8')).toMatch(new RegExp(`${mntReadOnly} fuse\\S* ro,`));

    expect(await run('cat', [path.join(mntReadOnly, 'hello.txt')])).toMatchObject({ code: 0, stdout: 'written through the helper\n' });
    const refused = await run('sh', ['-c', `echo no > ${path.join(mntReadOnly, 'new.txt')}`]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Read-only file system/);

    expect(await cli('umount', mntReadOnly)).toMatchObject({ code: 0 });
    expect(await isMounted(mntReadOnly)).toBe(false);
  }, 60_000);

  it('refuses an unknown option, a bad value and a bad address with exit code 1 and a message, and mounts nothing', async () => {
    const unknown = await run(HELPER, [servers, mnt, '-o', 'rw,noexec']);
    expect(unknown).toMatchObject({ code: 1, stderr: expect.stringMatching(/unknown option "noexec"; nothing mounted/) });
    const badPolicy = await run(HELPER, [servers, mnt, '-o', 'policy=first-wins']);
    expect(badPolicy).toMatchObject({ code: 1, stderr: expect.stringMatching(/policy must be lww or reject/) });
    const badReadFrom = await run(HELPER, [servers, mnt, '-o', 'read_from=nearest']);
    expect(badReadFrom).toMatchObject({ code: 1, stderr: expect.stringMatching(/read_from must be leader or first-listed/) });
    const badTimeout = await run(HELPER, [servers, mnt, '-o', 'attr_timeout=soon']);
    expect(badTimeout).toMatchObject({ code: 1, stderr: expect.stringMatching(/attr_timeout must be seconds/) });
    const badAddress = await run(HELPER, ['127.0.0.1:port', mnt]);
    expect(badAddress).toMatchObject({ code: 1, stderr: expect.stringMatching(/server address "127.0.0.1:port" is not HOST:PORT/) });
    const relative = await run(HELPER, [servers, mnt, '-o', 'subdir=projects']);
    expect(relative).toMatchObject({ code: 1, stderr: expect.stringMatching(/subdir must be an absolute path/) });
    const dotDot = await run(HELPER, [servers, mnt, '-o', 'subdir=/a/../b']);
    expect(dotDot).toMatchObject({ code: 1, stderr: expect.stringMatching(/subdir may not contain/) });
    const noDir = await run(HELPER, [servers, path.join(base, 'missing')]);
    expect(noDir).toMatchObject({ code: 1, stderr: expect.stringMatching(/is not a directory/) });
    expect(await isMounted(mnt)).toBe(false);
    expect(await mountProcessesOf(mnt)).toHaveLength(0);
  }, 30_000);

  it('answers an unreachable cluster with exit code 32 (mount failed) and leaves nothing mounted', async () => {
    const failed = await run(HELPER, ['127.0.0.1:1', mnt, '-o', 'deadline_ms=1000']);
    expect(failed.code).toBe(32);
    expect(failed.stderr).toMatch(/handlefs mount:/);
    expect(await isMounted(mnt)).toBe(false);
    expect(await mountProcessesOf(mnt)).toHaveLength(0);
  }, 60_000);

  it('is found by mount(8) itself: mount -t handlefs SPEC DIR in a private mount namespace, then umount', async () => {
    if (process.getuid?.() !== 0 || !(await whichOk('unshare'))) {
      console.warn('skipped: needs root and unshare(1) to give mount(8) a private /usr/sbin');
      return;
    }
    // mount(8) looks for /sbin/mount.TYPE only (/sbin -> usr/sbin on Debian 12). In a private mount
    // namespace a folder holding only the helper is bound over /usr/sbin; the real one is never touched.
    const fakeSbin = path.join(base, 'sbin');
    fs.mkdirSync(fakeSbin);
    fs.copyFileSync(HELPER, path.join(fakeSbin, 'mount.handlefs'));
    fs.chmodSync(path.join(fakeSbin, 'mount.handlefs'), 0o755);
    const file = path.join(mntViaMount8, 'via-mount8.txt');
    const script = [
      'set -e',
      `mount --bind ${fakeSbin} /usr/sbin`,
      `mount -t handlefs -o rw,attr_timeout=1,_netdev,log=${path.join(base, 'mount8.log')} ${servers} ${mntViaMount8}`,
      `grep -q " ${mntViaMount8} fuse" /proc/self/mounts`,
      `echo through mount8 > ${file}`,
      `cat ${file}`,
      `${process.execPath} ${CLI} umount ${mntViaMount8}`,
      `if grep -q " ${mntViaMount8} " /proc/self/mounts; then echo still mounted >&2; exit 1; fi`,
    ].join('\n');
    const ran = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script]);
    expect(ran).toMatchObject({ code: 0, stdout: expect.stringContaining('through mount8\n') });
    expect(await cli('cat', '/via-mount8.txt', '--servers', servers)).toMatchObject({ code: 0, stdout: 'through mount8\n' });
    expect(await mountProcessesOf(mntViaMount8)).toHaveLength(0);
  }, 60_000);
});
