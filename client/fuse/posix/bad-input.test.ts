/**
 * Bad input through a real mount of a 3-member cluster (issue 4 "Bad input"):
 * names the kernel passes through (odd bytes, bytes that are not UTF-8, `..`),
 * offsets and sizes past what a file can hold, members that stop answering and
 * a member that answers garbage. Each gets a correct errno and the mount keeps
 * working afterwards. Driven from child processes (python3) and fs.promises;
 * the mount runs in its own process, from dist/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { metaService } from '../../../proto/meta-proto';
import { MAX_FILE_SIZE_BYTES } from '../../sdk';
import { forceUnmount, isMounted, startMount } from '../mount-control';
import { py, q, useClusterMounts } from './harness';

const fsp = fs.promises;
const m = useClusterMounts('bad-input', 1, ['--deadline-ms', '3000']);

describe('names the kernel passes through', () => {
  it('keeps names with newlines, tabs, spaces and multi-byte characters byte-exact', async () => {
    const res = await py([
      `d = ${q(path.join(m.a, 'odd'))}.encode()`,
      `os.mkdir(d)`,
      `names = [b'a\\nb', b'tab\\there', b' lead and trail ', b'\\xc3\\xa9t\\xc3\\xa9', b'-dash', b'*?[glob]']`,
      `for n in names: os.close(os.open(d + b'/' + n, os.O_CREAT | os.O_WRONLY, 0o644))`,
      `out(sorted(os.listdir(d)) == sorted(names))`,
      `out([E(os.stat, d + b'/' + n) for n in names])`,
    ].join('\n'));
    expect(res).toEqual([true, ['OK', 'OK', 'OK', 'OK', 'OK', 'OK']]);
  });

  it('refuses a name that is not valid UTF-8 with EILSEQ instead of storing another name, and creates nothing', async () => {
    const res = await py([
      `d = ${q(path.join(m.a, 'bytes'))}.encode()`,
      `os.mkdir(d)`,
      `out([E(os.open, d + b'/\\xff\\xfe', os.O_CREAT | os.O_WRONLY, 0o644), E(os.mkdir, d + b'/\\xc3'), E(os.stat, d + b'/\\xff\\xfe')])`,
      `out(os.listdir(d))`,
    ].join('\n'));
    expect(res).toEqual([['EILSEQ', 'EILSEQ', 'ENOENT'], []]);
  });

  it('resolves `..` inside the mount and never leaves it through the root', async () => {
    await fsp.mkdir(path.join(m.a, 'up', 'down'), { recursive: true });
    await fsp.writeFile(path.join(m.a, 'up', 'here.txt'), 'here');
    expect(await fsp.readFile(path.join(m.a, 'up', 'down', '..', 'here.txt'), 'utf8')).toBe('here');
    // The kernel resolves `..` of the mount's root to its parent folder, as for any mount point.
    expect(path.resolve(m.a, '..')).toBe(path.dirname(m.a));
    expect((await fsp.readdir(path.join(m.a, 'up', 'down', '..', '..'))).includes('up')).toBe(true);
  });
});

describe('offsets and sizes past what a file holds', () => {
  it('answers EFBIG to writes and truncations past the limit (up to 2^62), keeps the file, and works on', async () => {
    const res = await py([
      `p = ${q(path.join(m.a, 'huge'))}`,
      `fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)`,
      `os.write(fd, b'start')`,
      `out([E(os.pwrite, fd, b'x', ${MAX_FILE_SIZE_BYTES}), E(os.pwrite, fd, b'x', 2**53 + 1), E(os.pwrite, fd, b'x', 2**62), E(os.ftruncate, fd, 2**60), E(os.truncate, p, ${MAX_FILE_SIZE_BYTES + 1})])`,
      `out(os.pread(fd, 10, 2**62).hex())`,
      `os.close(fd)`,
      `out(open(p, 'rb').read().decode())`,
    ].join('\n'));
    expect(res).toEqual([['EFBIG', 'EFBIG', 'EFBIG', 'EFBIG', 'EFBIG'], '', 'start']);
  });

  it('commits a sparse file with one byte at 10 GiB as holes, without buffering the gap', async () => {
    const res = await py([
      `p = ${q(path.join(m.a, 'sparse'))}`,
      `fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)`,
      `os.pwrite(fd, b'z', 10 * 2**30)`,
      `os.close(fd)`,
      `fd = os.open(p, os.O_RDONLY)`,
      `out([os.fstat(fd).st_size, os.pread(fd, 2, 10 * 2**30 - 1).hex(), os.pread(fd, 4, 5 * 2**30).hex()])`,
      `os.close(fd)`,
    ].join('\n'));
    expect(res).toEqual([[10 * 2 ** 30 + 1, '007a', '00000000']]);
  }, 60_000);
});

describe('members that do not answer or answer garbage', () => {
  it('answers ETIMEDOUT while every member is stopped (SIGSTOP) and serves again after SIGCONT', async () => {
    await fsp.writeFile(path.join(m.a, 'before-stop.txt'), 'kept');
    const pids = m.cluster.members.map((member) => member.child!.pid!);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    let stopped: unknown[];
    try {
      // A fresh name: nothing cached can answer it.
      stopped = await py(`out([E(os.stat, ${q(path.join(m.a, 'never-cached.txt'))}), E(os.mkdir, ${q(path.join(m.a, 'while-stopped'))})])`);
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    expect(stopped).toEqual([['ETIMEDOUT', 'ETIMEDOUT']]);
    await m.cluster.leader();
    expect(await fsp.readFile(path.join(m.a, 'before-stop.txt'), 'utf8')).toBe('kept');
    await fsp.writeFile(path.join(m.a, 'after-cont.txt'), 'works');
    expect(await fsp.readFile(path.join(m.a, 'after-cont.txt'), 'utf8')).toBe('works');
  }, 60_000);

  it('mounts and works with a member in --servers that answers every call with bytes that do not decode', async () => {
    // A gRPC server with the Meta method paths whose answers are not the reply messages.
    const liar = new grpc.Server();
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]);
    const handlers: grpc.UntypedServiceImplementation = {};
    const service: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    for (const [name, method] of Object.entries(metaService)) {
      service[name] = { ...method, responseSerialize: (value: Buffer) => value } as grpc.MethodDefinition<unknown, unknown>;
      handlers[name] = (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, garbage);
    }
    liar.addService(service, handlers);
    const port = await new Promise<number>((resolve, reject) => liar.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const dir = path.join(path.dirname(m.a), 'with-liar');
    await fsp.mkdir(dir);
    try {
      const servers = [`127.0.0.1:${port}`, ...m.cluster.members.map((member) => member.clientAddress)].join(',');
      const mount = await startMount(dir, ['--servers', servers, '--deadline-ms', '10000']);
      try {
        await fsp.writeFile(path.join(dir, 'through-liar.txt'), 'fine');
        expect(await fsp.readFile(path.join(m.a, 'through-liar.txt'), 'utf8')).toBe('fine');
      } finally {
        await mount.stop();
      }
    } finally {
      await forceUnmount(dir).catch(() => undefined);
      liar.forceShutdown();
    }
    expect(await isMounted(dir)).toBe(false);
  }, 60_000);
});
