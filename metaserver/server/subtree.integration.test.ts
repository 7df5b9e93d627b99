/**
 * Tokens restricted to a subtree (`TOKEN rw subtree=/projects/a`, subtree-guard.ts) on a real
 * 3-member cluster (dist/), through the SDK and through real FUSE mounts: inside works, the
 * outside cannot be looked up, listed, created in or renamed into, `..` does not escape, and a
 * mount with such a token (or with --subdir) shows only the subtree.
 * Run `npx tsc -p .` first (the members and mounts run dist/).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as a from '../../proto/admin-proto';
import { clientSecurity } from '../../proto/tls';
import { MetaClient, ROOT_HANDLE } from '../../client/sdk';
import { RunningMount, forceUnmount, isMounted, startMount } from '../../client/fuse/mount-control';
import { MetaTestCluster } from './testing';
import { failureCode as codeOf } from '../../client/sdk/testing';

const RW_TOKEN = 'subtree-test-rw-token-0123456789';
const SUB_TOKEN = 'subtree-test-sub-token-0123456789';
const SUB_RO_TOKEN = 'subtree-test-subro-token-0123456789';
const MISSING_TOKEN = 'subtree-test-missing-token-0123456789';
const DEADLINE_MS = 10_000;

async function names(client: MetaClient, dir: number): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of client.readdir(dir)) out.push(entry.name);
  return out.sort();
}

describe('a token restricted to a subtree', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-subtree-'));
  let cluster: MetaTestCluster;
  let rw: MetaClient;
  let sub: MetaClient;
  let handles: { projects: number; a: number; b: number; secret: number; aInner: number };
  const mounts: Array<{ dir: string; m?: RunningMount }> = [];
  const servers = () => cluster.members.map((m) => m.clientAddress);
  const tokenFile = (name: string, token: string) => {
    const file = path.join(base, name);
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
    return file;
  };

  beforeAll(async () => {
    fs.chmodSync(base, 0o755);
    const tokens = path.join(base, 'tokens');
    fs.writeFileSync(tokens, [
      `${RW_TOKEN} rw name=ops`,
      `${SUB_TOKEN} rw name=team-a subtree=/projects/a`,
      `${SUB_RO_TOKEN} ro name=team-a-reader subtree=/projects/a/`,
      `${MISSING_TOKEN} rw name=nowhere subtree=/does/not/exist`,
    ].join('\n') + '\n', { mode: 0o600 });
    cluster = await MetaTestCluster.start({ extraArgs: ['--auth-token-file', tokens] });
    rw = await MetaClient.connect({ servers: servers(), deadlineMs: DEADLINE_MS, clientName: 'subtree-rw', token: RW_TOKEN });
    const projects = await rw.mkdir(ROOT_HANDLE, 'projects', 0o755);
    const dirA = await rw.mkdir(projects.handle, 'a', 0o755);
    const dirB = await rw.mkdir(projects.handle, 'b', 0o755);
    await rw.writeFile('/projects/b/secret', Buffer.from('team b only'));
    await rw.writeFile('/projects/a/readme', Buffer.from('hello team a'));
    const inner = await rw.mkdir(dirA.handle, 'inner', 0o777);
    handles = { projects: projects.handle, a: dirA.handle, b: dirB.handle, secret: (await rw.lookup(dirB.handle, 'secret')).handle, aInner: inner.handle };
    sub = await MetaClient.connect({ servers: servers(), deadlineMs: DEADLINE_MS, clientName: 'subtree-a', token: SUB_TOKEN });
  }, 60_000);

  afterAll(async () => {
    for (const { m } of mounts) if (m && m.child.exitCode === null && m.child.signalCode === null) await m.stop().catch(() => undefined);
    for (const { dir } of mounts) await forceUnmount(dir).catch(() => undefined);
    const still: string[] = [];
    for (const { dir } of mounts) if (await isMounted(dir)) still.push(dir);
    await sub?.close().catch(() => {});
    await rw?.close().catch(() => {});
    await cluster?.destroy();
    if (still.length === 0) fs.rmSync(base, { recursive: true, force: true });
    expect(still).toEqual([]);
  }, 60_000);

  it('opens a session whose root is the subtree, and reads and writes inside it by path', async () => {
    expect(rw.rootHandle).toBe(ROOT_HANDLE);
    expect(sub.rootHandle).toBe(handles.a);
    expect(Buffer.from(await sub.readFile('/readme')).toString()).toBe('hello team a');
    await sub.writeFile('/inner/new', Buffer.from('written by team a'));
    expect(Buffer.from(await rw.readFile('/projects/a/inner/new')).toString()).toBe('written by team a');
    const made = await sub.mkdir(handles.aInner, 'deeper', 0o755);
    expect(await names(sub, made.handle)).toEqual([]);
    expect(await names(sub, sub.rootHandle)).toEqual(['inner', 'readme']);
    await sub.rename(handles.aInner, 'new', sub.rootHandle, 'moved');
    expect((await rw.lookup(handles.a, 'moved')).sizeBytes).toBe('written by team a'.length);
  });

  it('cannot look up, list, create in or stat directories outside, and answers ENOENT (the outside cannot be probed)', async () => {
    expect(await codeOf(sub.lookup(ROOT_HANDLE, 'projects'))).toBe('ENOENT');
    expect(await codeOf(sub.lookup(handles.b, 'secret'))).toBe('ENOENT');
    expect(await codeOf(names(sub, ROOT_HANDLE))).toBe('ENOENT');
    expect(await codeOf(names(sub, handles.projects))).toBe('ENOENT');
    expect(await codeOf(sub.getattr(handles.b))).toBe('ENOENT');
    expect(await codeOf(sub.mkdir(handles.b, 'intruder', 0o755))).toBe('ENOENT');
    expect(await codeOf(sub.create(ROOT_HANDLE, 'intruder', 0o644, { exclusive: true }))).toBe('ENOENT');
    expect(await codeOf(sub.unlink(handles.b, 'secret'))).toBe('ENOENT');
    expect(await codeOf(sub.setattr(handles.b, { mode: 0o777 }))).toBe('ENOENT');
    // Moving something out of the subtree, or in from outside: one parent is outside.
    expect(await codeOf(sub.rename(handles.a, 'readme', handles.b, 'stolen'))).toBe('ENOENT');
    expect(await codeOf(sub.rename(handles.b, 'secret', handles.a, 'stolen'))).toBe('ENOENT');
    expect(await codeOf(sub.readFile('/../b/secret'))).toBe('EINVAL');
    expect(await names(rw, handles.b)).toEqual(['secret']);
    expect(await names(rw, ROOT_HANDLE)).toEqual(['projects']);
  });

  it('does not let ".." of the subtree root escape', async () => {
    expect(await codeOf(sub.lookup(sub.rootHandle, '..'))).toBe('EINVAL');
    expect(await names(sub, sub.rootHandle)).not.toContain('..');
  });

  it('loses a directory the moment it is moved out of the subtree, and regains one moved in', async () => {
    await rw.rename(handles.a, 'inner', handles.b, 'inner-moved-out');
    expect(await codeOf(names(sub, handles.aInner))).toBe('ENOENT');
    expect(await codeOf(sub.mkdir(handles.aInner, 'x', 0o755))).toBe('ENOENT');
    await rw.rename(handles.b, 'inner-moved-out', handles.a, 'inner');
    expect(await names(sub, handles.aInner)).toContain('deeper');
  });

  it('still reaches a file outside by a guessed handle number (the documented limit of the rule)', async () => {
    // Files keep no parent link, so a handle-only call on a non-directory is not checked (docs/security.md).
    expect((await sub.getattr(handles.secret)).type).toBe('reg');
  });

  it('refuses Admin calls, and a session on a subtree that does not exist', async () => {
    const security = clientSecurity(undefined, SUB_TOKEN);
    const admin = new a.AdminGrpcClient(servers()[0], security.credentials, security.clientOptions);
    const code = await new Promise<number>((resolve) => (admin as unknown as { Status: (r: unknown, o: unknown, cb: (e: grpc.ServiceError | null) => void) => void })
      .Status({}, { deadline: Date.now() + 3_000 }, (error) => resolve(error?.code ?? 0)));
    admin.close();
    expect(code).toBe(grpc.status.PERMISSION_DENIED);
    expect(await codeOf(MetaClient.connect({ servers: servers(), deadlineMs: 3_000, token: MISSING_TOKEN }))).toBe('ENOENT');
  });

  it('combines with ro: a read-only subtree token reads inside and changes nothing', async () => {
    const reader = await MetaClient.connect({ servers: servers(), deadlineMs: DEADLINE_MS, token: SUB_RO_TOKEN });
    try {
      expect(reader.rootHandle).toBe(handles.a);
      expect(Buffer.from(await reader.readFile('/readme')).toString()).toBe('hello team a');
      expect(await codeOf(reader.mkdir(reader.rootHandle, 'nope', 0o755))).toBe('EROFS');
      expect(await codeOf(reader.lookup(ROOT_HANDLE, 'projects'))).toBe('ENOENT');
    } finally {
      await reader.close();
    }
  });

  it('mounts only the subtree: with the subtree token, and with --subdir and a whole-tree token', async () => {
    const viaToken = path.join(base, 'mnt-token');
    const viaSubdir = path.join(base, 'mnt-subdir');
    for (const [dir, args] of [
      [viaToken, ['--token-file', tokenFile('sub-token', SUB_TOKEN)]],
      [viaSubdir, ['--token-file', tokenFile('rw-token', RW_TOKEN), '--subdir', '/projects/a']],
    ] as Array<[string, string[]]>) {
      fs.mkdirSync(dir);
      const entry: { dir: string; m?: RunningMount } = { dir };
      mounts.push(entry);
      entry.m = await startMount(dir, ['--servers', servers().join(','), ...args]);
    }
    for (const dir of [viaToken, viaSubdir]) {
      expect(fs.readdirSync(dir).sort()).toEqual(['inner', 'moved', 'readme']);
      expect(fs.readFileSync(path.join(dir, 'readme'), 'utf8')).toBe('hello team a');
      // '..' of the mount root is the kernel's: it leaves the mount, never to /projects.
      expect(fs.readdirSync(path.join(dir, '..')).sort()).toEqual(fs.readdirSync(base).sort());
      expect(fs.existsSync(path.join(dir, 'b'))).toBe(false);
    }
    fs.writeFileSync(path.join(viaToken, 'inner', 'from-mount'), 'via the token mount');
    expect(fs.readFileSync(path.join(viaSubdir, 'inner', 'from-mount'), 'utf8')).toBe('via the token mount');
    expect(Buffer.from(await rw.readFile('/projects/a/inner/from-mount')).toString()).toBe('via the token mount');
    // The versions view works relative to the mount's root.
    expect(fs.readdirSync(path.join(viaSubdir, '.versions', 'inner', 'from-mount')).length).toBeGreaterThan(0);
    // A subtree token with --subdir goes further down, relative to its own root.
    const deeper = path.join(base, 'mnt-deeper');
    fs.mkdirSync(deeper);
    const entry: { dir: string; m?: RunningMount } = { dir: deeper };
    mounts.push(entry);
    entry.m = await startMount(deeper, ['--servers', servers().join(','), '--token-file', tokenFile('sub-token-2', SUB_TOKEN), '--subdir', '/inner']);
    expect(fs.readdirSync(deeper)).toContain('from-mount');
  }, 60_000);

  it('refuses to mount a --subdir that is missing or not a directory, naming it', async () => {
    const dir = path.join(base, 'mnt-bad');
    fs.mkdirSync(dir);
    for (const subdir of ['/projects/nope', '/projects/a/readme']) {
      await expect(startMount(dir, ['--servers', servers().join(','), '--token-file', tokenFile('rw-token-3', RW_TOKEN), '--subdir', subdir])).rejects.toThrow(/--subdir/);
    }
    expect(await isMounted(dir)).toBe(false);
  }, 30_000);
});
