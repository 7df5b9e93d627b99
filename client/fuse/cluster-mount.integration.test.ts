/**
 * Two real FUSE mounts of a 3-member metadata cluster of real processes,
 * driven from this test process with fs.promises (the mounts run in their
 * own processes: run `npx tsc -p .` first): file contents small and large
 * round-trip byte-exact, close-to-open across mounts, renames and removals,
 * versions through xattrs, permission checks for another uid, and a clean
 * unmount that commits. afterAll force-unmounts whatever happened.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MetaTestCluster, patternBytes } from '../../metaserver/server/testing';
import { forceUnmount, isMounted, RunningMount, startMount } from './mount-control';

const fsp = fs.promises;
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-cluster-mount-'));
fs.chmodSync(base, 0o755);
const mounts: Array<{ dir: string; m?: RunningMount }> = [];
let cluster: MetaTestCluster;

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

async function mount(name: string, extra: string[] = []): Promise<string> {
  const dir = path.join(base, name);
  fs.mkdirSync(dir);
  const entry: { dir: string; m?: RunningMount } = { dir };
  mounts.push(entry);
  entry.m = await startMount(dir, ['--servers', cluster.members.map((m) => m.clientAddress).join(','), '--allow-other', ...extra]);
  return dir;
}

beforeAll(async () => {
  cluster = await MetaTestCluster.start({ extraArgs: [] });
}, 60_000);

afterAll(async () => {
  for (const { m } of mounts) if (m && m.child.exitCode === null && m.child.signalCode === null) await m.stop().catch(() => undefined);
  for (const { dir } of mounts) await forceUnmount(dir).catch(() => undefined);
  for (const { dir } of mounts) expect(await isMounted(dir)).toBe(false);
  await cluster?.destroy();
  await fsp.rm(base, { recursive: true, force: true });
}, 60_000);

describe('two FUSE mounts of a 3-member cluster', () => {
  let a: string;
  let b: string;
  beforeAll(async () => {
    a = await mount('a');
    b = await mount('b');
  }, 60_000);

  it('writes and reads back small and large files byte-exact, seen from the other mount after close', async () => {
    for (const [name, size] of [['empty', 0], ['small', 10], ['inline-edge', 4096], ['just-over', 4097], ['big', 3 * 1024 * 1024 + 7]] as const) {
      const content = patternBytes(size, size + 1);
      await fsp.writeFile(path.join(a, name), content);
      const seen = await fsp.readFile(path.join(b, name));
      expect({ name, size: seen.length, sha: sha(seen) }).toEqual({ name, size, sha: sha(content) });
      expect((await fsp.stat(path.join(b, name))).size).toBe(size);
    }
  }, 60_000);

  it('gives close-to-open: a rewrite closed on one mount is what the next open on the other reads', async () => {
    const file = path.join(a, 'c2o.txt');
    for (let round = 0; round < 5; round++) {
      const text = `round ${round} ${'x'.repeat(round * 1000)}`;
      await fsp.writeFile(file, text);
      expect(await fsp.readFile(path.join(b, 'c2o.txt'), 'utf8')).toBe(text);
    }
  }, 30_000);

  it('reads its own unflushed writes, and commits partial overwrites of a large file without losing the rest', async () => {
    const file = path.join(a, 'partial.bin');
    const content = Buffer.from(patternBytes(2 * 1024 * 1024 + 100, 5));
    await fsp.writeFile(file, content);
    const handle = await fsp.open(file, 'r+');
    await handle.write(Buffer.from('HELLO'), 0, 5, 1024 * 1024 - 2);
    const check = Buffer.alloc(9);
    await handle.read(check, 0, 9, 1024 * 1024 - 4);
    expect(check.subarray(2, 7).toString()).toBe('HELLO');
    await handle.close();
    content.write('HELLO', 1024 * 1024 - 2);
    expect(sha(await fsp.readFile(path.join(b, 'partial.bin')))).toBe(sha(content));
  }, 30_000);

  it('renames, links, removes and lists through either mount', async () => {
    await fsp.mkdir(path.join(a, 'dir'));
    await fsp.writeFile(path.join(a, 'dir', 'one'), 'one');
    await fsp.rename(path.join(a, 'dir', 'one'), path.join(a, 'dir', 'two'));
    await fsp.link(path.join(a, 'dir', 'two'), path.join(a, 'dir', 'three'));
    await fsp.symlink('two', path.join(a, 'dir', 'four'));
    expect((await fsp.readdir(path.join(b, 'dir'))).sort()).toEqual(['four', 'three', 'two']);
    expect((await fsp.stat(path.join(b, 'dir', 'two'))).nlink).toBe(2);
    expect(await fsp.readFile(path.join(b, 'dir', 'four'), 'utf8')).toBe('one');
    await expect(fsp.rmdir(path.join(b, 'dir'))).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    for (const name of ['two', 'three', 'four']) await fsp.unlink(path.join(b, 'dir', name));
    await fsp.rmdir(path.join(b, 'dir'));
    await expect(fsp.stat(path.join(a, 'dir'))).rejects.toMatchObject({ code: 'ENOENT' });
  }, 30_000);

  it('names every file\'s handle and head version in xattrs, a new version per close, and keeps each under /.versions', async () => {
    const file = path.join(a, 'versions.txt');
    await fsp.writeFile(file, 'v2');
    await fsp.writeFile(file, 'v3');
    const version = await run('python3', ['-c', `import os; print(os.getxattr(${JSON.stringify(file)}, 'user.handlefs.version').decode())`]);
    expect(version.stdout.trim()).toBe('3');
    // Every kept version is a read-only file under /.versions/<path>/, its mtime the commit time.
    expect((await fsp.readdir(path.join(b, '.versions', 'versions.txt'))).sort()).toEqual(['1', '2', '3']);
    expect(await fsp.readFile(path.join(b, '.versions', 'versions.txt', '2'), 'utf8')).toBe('v2');
    expect((await fsp.stat(path.join(b, '.versions', 'versions.txt', '3'))).size).toBe(2);
    await expect(fsp.writeFile(path.join(b, '.versions', 'versions.txt', '2'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(fsp.unlink(path.join(b, '.versions', 'versions.txt', '2'))).rejects.toMatchObject({ code: 'EROFS' });
    expect(await fsp.readdir(b)).not.toContain('.versions');
  }, 30_000);

  it('checks permissions with the caller\'s uid: another user cannot write a 0644 file of root', async () => {
    const file = path.join(a, 'root-only.txt');
    await fsp.writeFile(file, 'secret', { mode: 0o644 });
    const denied = await run('python3', ['-c', `import os\nos.setgid(1234); os.setuid(1234)\nopen(${JSON.stringify(file)}, 'w')`]);
    expect(denied.stderr).toMatch(/PermissionError/);
    const readable = await run('python3', ['-c', `import os\nos.setgid(1234); os.setuid(1234)\nprint(open(${JSON.stringify(file)}).read())`]);
    expect(readable.stdout.trim()).toBe('secret');
  }, 30_000);

  it('commits what an application still holds open when the mount is stopped with SIGTERM', async () => {
    const dir = await mount('c');
    const file = path.join(dir, 'held-open.txt');
    const handle = await fsp.open(file, 'w');
    await handle.write('written, never closed');
    const entry = mounts.find((m) => m.dir === dir)!;
    const stopping = entry.m!.stop();
    await handle.close().catch(() => undefined); // the mount is going: this close may fail, the data must not
    expect(await stopping).toBe(0);
    expect(await fsp.readFile(path.join(b, 'held-open.txt'), 'utf8')).toBe('written, never closed');
  }, 60_000);
});

describe('a mount\'s metrics (--metrics-address)', () => {
  it('counts requests by op and answer, and a refused commit by its errno, on GET /metrics', async () => {
    const dir = await mount('metered', ['--policy', 'reject', '--metrics-address', '127.0.0.1:0']);
    const running = mounts.find((m) => m.dir === dir)!.m!;
    const address = String(running.ready.metrics);
    expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
    await fsp.writeFile(path.join(dir, 'counted'), 'one');
    await expect(fsp.stat(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    // Two descriptors based on the same version: under reject the second close is refused (EBUSY).
    const first = await fsp.open(path.join(dir, 'counted'), 'r+');
    const second = await fsp.open(path.join(dir, 'counted'), 'r+');
    await first.write('AAA', 0);
    await second.write('BBB', 0);
    await first.close();
    await expect(second.close()).rejects.toMatchObject({ code: 'EBUSY' });
    const text = await (await fetch(`http://${address}/metrics`)).text();
    const value = (pattern: RegExp): number => Number(text.match(pattern)?.[1] ?? NaN);
    expect(value(/^handlefs_mount_requests_total\{op="create",result="ok"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^handlefs_mount_requests_total\{op="getattr",result="ENOENT"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^handlefs_mount_requests_total\{op="flush",result="EBUSY"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^handlefs_mount_commit_failures_total\{errno="EBUSY"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^handlefs_mount_request_duration_seconds_count\{op="create"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^handlefs_mount_dirty_bytes (\d+)/m)).toBe(0);
    expect(text).toMatch(/^handlefs_mount_block_cache_bytes \d+/m);
    expect(text).toMatch(/^handlefs_mount_open_files \d+/m);
  }, 60_000);

  it('refuses a malformed --metrics-address before mounting anything', async () => {
    const dir = path.join(base, 'bad-metrics');
    fs.mkdirSync(dir);
    await expect(startMount(dir, ['--servers', cluster.members.map((m) => m.clientAddress).join(','), '--metrics-address', 'nowhere'])).rejects.toThrow(/--metrics-address must be HOST:PORT/);
    expect(await isMounted(dir)).toBe(false);
  }, 30_000);
});
