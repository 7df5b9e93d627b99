/**
 * Real FUSE mounts of the memory backend, driven from this (test) process with fs.promises and from
 * short-lived children; the mount itself always runs in its own process (dist/client/fuse/mount-process.js,
 * so run `npx tsc -p .` first). afterAll force-unmounts every mount point whatever happened.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { forceUnmount, isMounted, RunningMount, startMount } from './mount-control';

const fsp = fs.promises;
jest.setTimeout(30_000);

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-fuse-'));
fs.chmodSync(base, 0o755); // another uid must be able to reach the mount point
const mountpoints: string[] = [];
const running: RunningMount[] = [];

function newMountpoint(name: string): string {
  const dir = path.join(base, name);
  fs.mkdirSync(dir);
  mountpoints.push(dir);
  return dir;
}

async function mount(name: string, extra: string[] = []): Promise<{ dir: string; m: RunningMount }> {
  const dir = newMountpoint(name);
  const m = await startMount(dir, ['--backend', 'memory', ...extra]);
  running.push(m);
  return { dir, m };
}

afterAll(async () => {
  for (const m of running) {
    if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
  }
  for (const dir of mountpoints) await forceUnmount(dir).catch(() => undefined);
  for (const m of running) await m.exited;
  for (const dir of mountpoints) expect(await isMounted(dir)).toBe(false);
  await fsp.rm(base, { recursive: true, force: true });
});

describe('a FUSE mount of the memory backend', () => {
  let dir: string;
  let m: RunningMount;
  beforeAll(async () => {
    ({ dir, m } = await mount('main', ['--allow-other']));
  });

  it('reports ready with the libfuse shipped in node_modules', () => {
    expect(m.ready.libfuse).toBe(path.resolve('node_modules/fuse-shared-library-linux/libfuse/lib/libfuse.so'));
  });

  it('creates, writes, reads, stats and lists files', async () => {
    await fsp.writeFile(path.join(dir, 'a.txt'), 'hello fuse');
    expect(await fsp.readFile(path.join(dir, 'a.txt'), 'utf8')).toBe('hello fuse');
    const st = await fsp.stat(path.join(dir, 'a.txt'));
    expect(st.isFile()).toBe(true);
    expect(st.size).toBe(10);
    expect(await fsp.readdir(dir)).toContain('a.txt');
    const fh = await fsp.open(path.join(dir, 'a.txt'), 'r+');
    await fh.write(Buffer.from('J'), 0, 1, 6);
    const buf = Buffer.alloc(10);
    await fh.read(buf, 0, 10, 0);
    await fh.close();
    expect(buf.toString()).toBe('hello Juse');
  });

  it('renames, unlinks, makes and removes directories', async () => {
    await fsp.mkdir(path.join(dir, 'd1'));
    await fsp.writeFile(path.join(dir, 'd1', 'f'), 'x');
    await fsp.rename(path.join(dir, 'd1'), path.join(dir, 'd2'));
    expect(await fsp.readFile(path.join(dir, 'd2', 'f'), 'utf8')).toBe('x');
    await expect(fsp.rmdir(path.join(dir, 'd2'))).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await fsp.unlink(path.join(dir, 'd2', 'f'));
    await fsp.rmdir(path.join(dir, 'd2'));
    await expect(fsp.stat(path.join(dir, 'd2'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('creates symlinks and hard links', async () => {
    await fsp.writeFile(path.join(dir, 'target'), 'T');
    await fsp.symlink('target', path.join(dir, 'sym'));
    expect(await fsp.readlink(path.join(dir, 'sym'))).toBe('target');
    expect(await fsp.readFile(path.join(dir, 'sym'), 'utf8')).toBe('T');
    await fsp.link(path.join(dir, 'target'), path.join(dir, 'hard'));
    const [a, b] = await Promise.all([fsp.stat(path.join(dir, 'target')), fsp.stat(path.join(dir, 'hard'))]);
    expect(a.ino).toBe(b.ino); // use_ino: the backend's inode numbers reach stat
    expect(b.nlink).toBe(2);
  });

  it('changes permission bits with chmod', async () => {
    await fsp.writeFile(path.join(dir, 'mode'), '');
    await fsp.chmod(path.join(dir, 'mode'), 0o640);
    expect((await fsp.stat(path.join(dir, 'mode'))).mode & 0o7777).toBe(0o640);
  });

  it('sets atime and mtime independently with utimens (mtime is not lost)', async () => {
    const f = path.join(dir, 'times');
    await fsp.writeFile(f, 't');
    await fsp.utimes(f, new Date(1_000_000_000), new Date(2_000_000_000));
    let st = await fsp.stat(f);
    expect(st.atimeMs).toBe(1_000_000_000);
    expect(st.mtimeMs).toBe(2_000_000_000);
    // touch -m sends UTIME_OMIT for atime: atime must stay, mtime must change.
    expect((await run('touch', ['-m', '-d', '@3000000', f])).code).toBe(0);
    st = await fsp.stat(f);
    expect(st.atimeMs).toBe(1_000_000_000);
    expect(st.mtimeMs).toBe(3_000_000_000);
  });

  it('answers fstat and reads through an open file after it was unlinked', async () => {
    const f = path.join(dir, 'doomed');
    const fh = await fsp.open(f, 'w+');
    await fh.write(Buffer.from('still here'), 0, 10, 0);
    await fsp.unlink(f);
    await expect(fsp.stat(f)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fh.stat()).size).toBe(10);
    const buf = Buffer.alloc(10);
    await fh.read(buf, 0, 10, 0);
    expect(buf.toString()).toBe('still here');
    expect((await fsp.readdir(dir)).filter((n) => n.startsWith('.fuse_hidden'))).toEqual([]);
    expect((await m.stats()).hiddenFiles).toBe(1);
    await fh.close();
    // release and the hidden-name unlink reach the server asynchronously after close(2) returns.
    let hiddenFiles = 1;
    for (let i = 0; i < 40 && hiddenFiles !== 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
      hiddenFiles = (await m.stats()).hiddenFiles;
    }
    expect(hiddenFiles).toBe(0);
  });

  it('delivers 128 KiB writes as single 128 KiB write calls (big_writes, max_write)', async () => {
    const before = (await m.stats()).writeSizes['131072'] ?? 0;
    const fh = await fsp.open(path.join(dir, 'big'), 'w');
    const chunk = Buffer.alloc(131_072, 7);
    for (let i = 0; i < 8; i++) await fh.write(chunk, 0, chunk.length, i * chunk.length);
    await fh.close();
    const stats = await m.stats();
    expect(stats.maxWriteBytes).toBe(131_072);
    expect((stats.writeSizes['131072'] ?? 0) - before).toBe(8);
    expect((await fsp.stat(path.join(dir, 'big'))).size).toBe(8 * 131_072);
  });

  it('passes the calling process uid, gid and pid to the backend', async () => {
    const f = path.join(dir, 'owned-by-1234');
    const child = await run(process.execPath, ['-e',
      `process.setgid(1234); process.setuid(1234); require('fs').writeFileSync(${JSON.stringify(f)}, 'x'); console.log(process.pid)`]);
    expect(child.stderr).toBe('');
    const st = await fsp.stat(f);
    expect([st.uid, st.gid]).toEqual([1234, 1234]);
    const caller = (await m.stats()).lastCallerByOp.create;
    expect(caller).toMatchObject({ uid: 1234, gid: 1234, pid: Number(child.stdout.trim()) });
  });

  it('stores extended attributes', async () => {
    const f = path.join(dir, 'xattr');
    await fsp.writeFile(f, '');
    const py = `import os; f=${JSON.stringify(f)}; os.setxattr(f, 'user.k', b'v1'); print(os.getxattr(f, 'user.k').decode(), os.listxattr(f)); os.removexattr(f, 'user.k'); print(os.listxattr(f))`;
    const r = await run('python3', ['-c', py]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(["v1 ['user.k']", '[]']);
  });

  it('truncates down and up by path and through an open file (the extension reads as zeros)', async () => {
    const f = path.join(dir, 'trunc');
    await fsp.writeFile(f, 'abcdef');
    await fsp.truncate(f, 3);
    expect(await fsp.readFile(f, 'utf8')).toBe('abc');
    const fh = await fsp.open(f, 'r+');
    await fh.truncate(5);
    expect((await fh.stat()).size).toBe(5);
    await fh.close();
    expect(await fsp.readFile(f)).toEqual(Buffer.from([0x61, 0x62, 0x63, 0, 0]));
  });

  it('answers statfs from the backend', async () => {
    const st = await fsp.statfs(dir);
    expect(st.bsize).toBe(4096);
    expect(st.files).toBe(100_000);
  });

  it('never answered a request with an unexpected error', async () => {
    expect((await m.stats()).unexpectedErrors).toBe(0);
  });
});

describe('mount lifecycle', () => {
  it('refuses writes on a read-only mount with EROFS', async () => {
    const { dir, m } = await mount('ro', ['--read-only']);
    await expect(fsp.writeFile(path.join(dir, 'f'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    expect(await m.stop()).toBe(0);
  });

  it('fails startMount with the reason when the mount point does not exist', async () => {
    await expect(startMount(path.join(base, 'missing'), ['--backend', 'memory'])).rejects.toThrow(/Mountpoint does not exist/);
  });

  it('unmounts cleanly and exits 0 on SIGTERM', async () => {
    const { dir, m } = await mount('sigterm');
    await fsp.writeFile(path.join(dir, 'f'), 'x');
    m.child.kill('SIGTERM');
    expect(await m.exited).toBe(0);
    expect(await isMounted(dir)).toBe(false);
  });

  it('leaves a stale mount after kill -9 that forceUnmount removes, and a new mount can start there', async () => {
    const { dir, m } = await mount('kill9');
    m.child.kill('SIGKILL');
    await m.exited;
    expect(await isMounted(dir)).toBe(true);
    await expect(fsp.stat(path.join(dir, 'x'))).rejects.toMatchObject({ code: 'ENOTCONN' });
    expect(await forceUnmount(dir)).toBe(1);
    expect(await isMounted(dir)).toBe(false);
    // startMount also cleans a stale mount by itself.
    const again = await startMount(dir, ['--backend', 'memory']);
    running.push(again);
    again.child.kill('SIGKILL');
    await again.exited;
    const third = await startMount(dir, ['--backend', 'memory']);
    running.push(third);
    expect(await third.stop()).toBe(0);
    expect(await isMounted(dir)).toBe(false);
  });

  it('frees a hung mount (server stopped) with forceUnmount, failing the waiting call', async () => {
    const { dir, m } = await mount('hung');
    m.child.kill('SIGSTOP');
    const waiting = fsp.stat(path.join(dir, 'never-looked-up')).then(() => 'answered', (e: NodeJS.ErrnoException) => e.code);
    await new Promise((r) => setTimeout(r, 200));
    expect(await forceUnmount(dir)).toBe(1);
    expect(['ENOTCONN', 'ECONNABORTED']).toContain(await waiting);
    expect(await isMounted(dir)).toBe(false);
    m.child.kill('SIGKILL');
    await m.exited;
  });
});
