/**
 * The client CLI end to end with real processes: `handlefs cluster up`, a
 * background `handlefs mount`, writes through the mount, `handlefs versions`,
 * `cat --version`, `restore`, `umount` (nothing left mounted), and the
 * errors a user sees for bad usage. Run `npx tsc -p .` first.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { clusterUpOnFreePorts } from '../../deploy/cluster-testing';
import { forceUnmount, isMounted } from '../fuse/mount-control';

const CLI = path.resolve(__dirname, '..', '..', 'bin', 'handlefs.js');
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-cli-'));
const dataDir = path.join(base, 'data');
const mnt = path.join(base, 'mnt');
let servers = '';

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000, cwd: base }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

beforeAll(async () => {
  fs.mkdirSync(mnt);
  ({ servers } = await clusterUpOnFreePorts(cli, dataDir));
}, 90_000);

afterAll(async () => {
  await cli('umount', mnt);
  await forceUnmount(mnt).catch(() => undefined);
  await cli('cluster', 'down', '--data', dataDir);
  expect(await isMounted(mnt)).toBe(false);
  fs.rmSync(base, { recursive: true, force: true });
}, 90_000);

describe('the handlefs client commands', () => {
  it('mounts in the background, lists, reads and restores versions of a file in the mount, and unmounts', async () => {
    const mounted = await cli('mount', mnt, '--servers', servers, '--log', path.join(base, 'mount.log'));
    expect(mounted).toMatchObject({ code: 0 });
    expect(mounted.stdout).toMatch(/mounted \(mount process \d+/);
    const file = path.join(mnt, 'notes.txt');
    await fs.promises.writeFile(file, 'first');
    await fs.promises.writeFile(file, 'second');
    const listed = await cli('versions', file, '--json');
    expect(listed.code).toBe(0);
    const versions = JSON.parse(listed.stdout) as { versions: Array<{ version: number; sizeBytes: number }> };
    const first = versions.versions.find((v) => v.sizeBytes === 5)!;
    expect(first).toBeDefined();
    expect((await cli('cat', file, '--version', String(first.version))).stdout).toBe('first');
    expect((await cli('cat', '/notes.txt', '--servers', servers)).stdout).toBe('second');
    const restored = await cli('restore', file, '--version', String(first.version));
    expect(restored).toMatchObject({ code: 0 });
    expect(await fs.promises.readFile(file, 'utf8')).toBe('first');
    const down = await cli('umount', mnt);
    expect(down).toMatchObject({ code: 0 });
    expect(await isMounted(mnt)).toBe(false);
  }, 60_000);

  it('answers bad usage with exit code 2 and a message naming the problem, and an unreachable cluster with 1', async () => {
    expect(await cli('mount', mnt)).toMatchObject({ code: 2, stderr: expect.stringMatching(/--servers HOST:PORT,... is required/) });
    expect(await cli('mount', path.join(base, 'missing'), '--servers', servers)).toMatchObject({ code: 2, stderr: expect.stringMatching(/is not a directory/) });
    expect(await cli('cat', path.join(base, 'not-a-mount.txt'))).toMatchObject({ code: 2, stderr: expect.stringMatching(/not inside a handlefs mount/) });
    expect(await cli('restore', '/x', '--servers', servers, '--version', 'zero')).toMatchObject({ code: 2, stderr: expect.stringMatching(/--version must be/) });
    const unreachable = await cli('cat', '/x', '--servers', '127.0.0.1:1', '--deadline-ms', '1000');
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/ETIMEDOUT|UNAVAILABLE/);
  }, 30_000);
});
