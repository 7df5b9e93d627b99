/**
 * TLS refusals on a real 3-member cluster (dist/metaserver/server) whose
 * certificates come from `handlefs certs`: TLS on every port, mutual TLS
 * between members, client certificates required (--client-auth cert) and
 * bearer tokens (--auth-token-file) with a read-only one. And a server with
 * bad TLS or token files exits 2 naming the file, starting nothing.
 * Run `npx tsc -p .` first (the members run dist/).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as a from '../../proto/admin-proto';
import * as p from '../../proto/meta-proto';
import { clientSecurity, loadTlsMaterial } from '../../proto/tls';
import { MetaTestCluster, eventually, metaServerMainPath } from '../../metaserver/server/testing';
import { MetaClient, ROOT_HANDLE } from '../../client/sdk';
import { TestPki, makeTestPki } from './testing';
import { parseMountArgs } from '../../client/fuse/mount-process';
import { failureCode as codeOf } from '../../client/sdk/testing';

const RW_TOKEN = 'rw-token-0123456789abcdef';
const RO_TOKEN = 'ro-token-0123456789abcdef';
const DEADLINE_MS = 10_000;
const CALLER: p.Caller = { uid: 0, gid: 0, groups: [] };

type Unary = (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: unknown) => void) => void;

/** One raw unary call; answers the error or the reply. */
function call(client: grpc.Client, method: string, request: unknown, deadlineMs = 3_000): Promise<{ error?: grpc.ServiceError; reply?: Record<string, unknown> }> {
  const fn = (client as unknown as Record<string, Unary>)[method];
  return new Promise((resolve) => fn.call(client, request, { deadline: Date.now() + deadlineMs }, (error, reply) => resolve(error ? { error } : { reply: reply as Record<string, unknown> })));
}

describe('a TLS cluster with client certificates and tokens', () => {
  let pki: TestPki;
  let tokens: string;
  let cluster: MetaTestCluster;
  let rw: MetaClient;
  const raw: grpc.Client[] = [];
  const servers = () => cluster.members.map((m) => m.clientAddress);
  const meta = (security: ReturnType<typeof clientSecurity>, member = 0) => {
    const client = new p.MetaGrpcClient(cluster.members[member].clientAddress, security.credentials, security.clientOptions);
    raw.push(client);
    return client;
  };

  beforeAll(async () => {
    pki = makeTestPki(['member'], ['alice']);
    tokens = path.join(pki.root, 'tokens');
    fs.writeFileSync(tokens, `# cluster tokens\n${RW_TOKEN} rw name=ops\n${RO_TOKEN} ro name=reader\n`, { mode: 0o600 });
    const member = pki.files('cluster', 'member');
    cluster = await MetaTestCluster.start({
      extraArgs: ['--tls-ca', pki.ca, '--tls-cert', member.certFile!, '--tls-key', member.keyFile!, '--client-auth', 'cert', '--auth-token-file', tokens, '--block-repair-interval-ms', '300'],
    });
    rw = await MetaClient.connect({ servers: servers(), deadlineMs: DEADLINE_MS, clientName: 'tls-rw', tls: pki.files('cluster', 'alice'), token: RW_TOKEN });
  }, 40_000);

  afterAll(async () => {
    for (const client of raw) client.close();
    await rw?.close().catch(() => {});
    await cluster?.destroy();
    pki?.destroy();
  }, 30_000);

  it('serves an SDK client holding the CA, a client certificate and a token: metadata and blocks', async () => {
    const dir = await rw.mkdir(ROOT_HANDLE, 'tls', 0o755);
    const big = Buffer.alloc(300 * 1024, 7);
    await rw.writeFile('/tls/big', big);
    expect(Buffer.from(await rw.readFile('/tls/big')).equals(big)).toBe(true);
    expect((await rw.lookup(dir.handle, 'big')).sizeBytes).toBe(big.length);
  });

  it('replicates between members over mutual TLS: a member that was down catches up on the log and fetches the blocks it missed', async () => {
    const follower = (await cluster.followers())[0];
    await cluster.kill9(follower);
    const content = Buffer.alloc(200 * 1024, 9);
    await rw.writeFile('/tls/while-down', content);
    const ids = [...cluster.blockIdsOnDisk((await cluster.leader()))].filter((id) => !cluster.blockIdsOnDisk(follower).has(id));
    expect(ids.length).toBeGreaterThan(0);
    await cluster.restart(follower);
    await cluster.caughtUp(follower);
    await eventually('the restarted member fetching the blocks from its peers', 20_000, async () => ids.every((id) => cluster.blockIdsOnDisk(follower).has(id)));
  }, 45_000);

  it('fails an SDK connect with a wrong token at once with EACCES (not retried until the deadline)', async () => {
    const startedAt = Date.now();
    const outcome = await codeOf(MetaClient.connect({ servers: servers(), deadlineMs: DEADLINE_MS, tls: pki.files('cluster', 'alice'), token: 'wrong-token' }));
    expect(outcome).toBe('EACCES');
    expect(Date.now() - startedAt).toBeLessThan(DEADLINE_MS / 2);
  });

  it('runs the operator commands with the TLS and token flags, and refuses them without', async () => {
    const alice = pki.files('cluster', 'alice');
    const tokenFile = path.join(pki.root, 'rw-token');
    fs.writeFileSync(tokenFile, `${RW_TOKEN}\n`, { mode: 0o600 });
    const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(__dirname, '..', '..', 'dist', 'bin', 'cli.js'), ...args], { encoding: 'utf8', timeout: 20_000 });
    const secured = cli('status', '--servers', servers().join(','), '--json', '--tls-ca', pki.ca, '--tls-cert', alice.certFile!, '--tls-key', alice.keyFile!, '--token-file', tokenFile);
    expect(secured.status).toBe(0);
    expect(JSON.stringify(JSON.parse(secured.stdout))).toContain(cluster.members[0].id);
    const plain = cli('status', '--servers', servers().join(','), '--json');
    expect(plain.status).not.toBe(0);
    const badCa = cli('status', '--servers', servers()[0], '--tls-ca', path.join(pki.root, 'missing-ca.crt'));
    expect(badCa.status).toBe(2);
    expect(badCa.stderr).toContain('missing-ca.crt');
  }, 30_000);

  it('refuses a plaintext client', async () => {
    const plain = new p.MetaGrpcClient(servers()[0], grpc.credentials.createInsecure());
    raw.push(plain);
    const { error } = await call(plain, 'Lookup', { caller: CALLER, parent: ROOT_HANDLE, name: 'tls' });
    expect(error?.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses a client whose certificate another CA signed, even with a good token', async () => {
    const foreign = { ...loadTlsMaterial(pki.files('foreign', 'alice')), ca: loadTlsMaterial({ caFile: pki.ca }).ca };
    const { error } = await call(meta(clientSecurity(foreign, RW_TOKEN)), 'Lookup', { caller: CALLER, parent: ROOT_HANDLE, name: 'tls' });
    expect(error?.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses a client without a certificate (TLS but no client authentication)', async () => {
    const { error } = await call(meta(clientSecurity(loadTlsMaterial({ caFile: pki.ca }), RW_TOKEN)), 'Lookup', { caller: CALLER, parent: ROOT_HANDLE, name: 'tls' });
    expect(error?.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('answers UNAUTHENTICATED to a call without a token or with a wrong one, and nothing changes', async () => {
    const alice = loadTlsMaterial(pki.files('cluster', 'alice'));
    for (const token of [undefined, 'not-a-token']) {
      const client = meta(clientSecurity(alice, token));
      const lookup = await call(client, 'Lookup', { caller: CALLER, parent: ROOT_HANDLE, name: 'tls' });
      expect(lookup.error?.code).toBe(grpc.status.UNAUTHENTICATED);
      const mkdir = await call(client, 'Mkdir', { header: { sessionId: 1, sequence: 1, caller: CALLER }, parent: ROOT_HANDLE, name: 'intruder', mode: 0o755 });
      expect(mkdir.error?.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(mkdir.error?.details).toMatch(token === undefined ? /no bearer token/ : /not valid/);
      const admin = new a.AdminGrpcClient(servers()[0], clientSecurity(alice, token).credentials, clientSecurity(alice, token).clientOptions);
      raw.push(admin);
      expect((await call(admin, 'MemberRemove', { id: cluster.members[2].id })).error?.code).toBe(grpc.status.UNAUTHENTICATED);
    }
    expect(await codeOf(rw.lookup(ROOT_HANDLE, 'intruder'))).toBe('ENOENT');
    const members = (await call(new a.AdminGrpcClient(servers()[0], clientSecurity(alice, RW_TOKEN).credentials, clientSecurity(alice, RW_TOKEN).clientOptions), 'Status', {})).reply;
    expect(members).toBeDefined();
  });

  it('lets a read-only token read but not change anything (EROFS for the file system, PERMISSION_DENIED for blocks and membership)', async () => {
    const ro = await MetaClient.connect({ servers: servers(), deadlineMs: DEADLINE_MS, clientName: 'tls-ro', tls: pki.files('cluster', 'alice'), token: RO_TOKEN });
    try {
      expect(Buffer.from(await ro.readFile('/tls/big')).length).toBe(300 * 1024);
      expect(await codeOf(ro.mkdir(ROOT_HANDLE, 'ro-dir', 0o755))).toBe('EROFS');
      expect(await codeOf(ro.writeFile('/tls/ro-file', Buffer.from('x')))).toBe('EROFS');
      const big = await ro.resolve('/tls/big');
      expect(await codeOf(ro.open(big.handle, { read: false, write: true, append: false }))).toBe('EROFS');
      const opened = await ro.open(big.handle, { read: true, write: false, append: false });
      await ro.release(opened.fh);
    } finally {
      await ro.close();
    }
    expect(await codeOf(rw.lookup(ROOT_HANDLE, 'ro-dir'))).toBe('ENOENT');
    const alice = loadTlsMaterial(pki.files('cluster', 'alice'));
    const blockPeer = new grpc.Client(servers()[0], clientSecurity(alice, RO_TOKEN).credentials, clientSecurity(alice, RO_TOKEN).clientOptions);
    raw.push(blockPeer);
    const storeReplica = await new Promise<grpc.ServiceError | null>((resolve) => {
      blockPeer.makeUnaryRequest('/handlefs.blocks.BlockPeer/StoreReplica', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), { deadline: Date.now() + 3_000 }, (error) => resolve(error));
    });
    expect(storeReplica?.code).toBe(grpc.status.PERMISSION_DENIED);
    const admin = new a.AdminGrpcClient(servers()[0], clientSecurity(alice, RO_TOKEN).credentials, clientSecurity(alice, RO_TOKEN).clientOptions);
    raw.push(admin);
    expect((await call(admin, 'MemberRemove', { id: cluster.members[2].id })).error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await call(admin, 'Status', {})).reply).toBeDefined();
  });
});

describe('a server with bad TLS or token configuration', () => {
  let pki: TestPki;
  let dataRoot: string;
  beforeAll(() => {
    pki = makeTestPki(['m1', 'm2'], []);
    dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-tlsconf-'));
  });
  afterAll(() => {
    pki.destroy();
    fs.rmSync(dataRoot, { recursive: true, force: true });
  });

  /** Runs the server with these extra flags; it must exit on its own. */
  function runServer(extra: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
    const data = fs.mkdtempSync(path.join(dataRoot, 'd-'));
    const args = [metaServerMainPath(), '--id', 'm1', '--listen', '127.0.0.1:1', '--client-listen', '127.0.0.1:0', '--data', data, '--peers', 'm1=127.0.0.1:1', ...extra];
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let stdout = '';
      child.stderr.on('data', (chunk) => { stderr += chunk; });
      child.stdout.on('data', (chunk) => { stdout += chunk; });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the server did not exit: ${stderr}`));
      }, 15_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr, stdout });
      });
    });
  }

  it('exits 2 naming a missing certificate file, and starts nothing', async () => {
    const missing = path.join(pki.root, 'nowhere', 'm1.crt');
    const result = await runServer(['--tls-ca', pki.ca, '--tls-cert', missing, '--tls-key', pki.files('cluster', 'm1').keyFile!]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`cannot read the certificate ${missing}: ENOENT`);
    expect(result.stdout).not.toContain('ready');
  });

  it('exits 2 naming a key that does not match the certificate', async () => {
    const m1 = pki.files('cluster', 'm1');
    const m2 = pki.files('cluster', 'm2');
    const result = await runServer(['--tls-ca', pki.ca, '--tls-cert', m1.certFile!, '--tls-key', m2.keyFile!]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`the private key ${m2.keyFile} does not match the certificate ${m1.certFile}`);
  });

  it('exits 2 naming the files when a config file gives a key that does not match the certificate', async () => {
    const m1 = pki.files('cluster', 'm1');
    const m2 = pki.files('cluster', 'm2');
    const config = path.join(pki.root, 'server.json');
    fs.writeFileSync(config, JSON.stringify({ tlsCa: 'cluster/ca.crt', tlsCert: 'cluster/m1.crt', tlsKey: 'cluster/m2.key', clientAuth: 'cert' }));
    const result = await runServer(['--config', config]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`the private key ${m2.keyFile} does not match the certificate ${m1.certFile}`);
  });

  it('exits 2 on half the TLS flags, client certificates without TLS, and an unreadable or bad token file', async () => {
    const m1 = pki.files('cluster', 'm1');
    const half = await runServer(['--tls-ca', pki.ca, '--tls-cert', m1.certFile!]);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain('--tls-key missing');
    const noTls = await runServer(['--client-auth', 'cert']);
    expect(noTls.code).toBe(2);
    expect(noTls.stderr).toContain('--client-auth cert needs TLS');
    const noFile = await runServer(['--auth-token-file', path.join(pki.root, 'no-tokens')]);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain(`cannot read ${path.join(pki.root, 'no-tokens')}: ENOENT`);
    const onlyRo = path.join(pki.root, 'only-ro');
    fs.writeFileSync(onlyRo, 'abc ro\nabc rw\n');
    const duplicate = await runServer(['--auth-token-file', onlyRo]);
    expect(duplicate.code).toBe(2);
    expect(duplicate.stderr).toContain(`${onlyRo}:2: this token is already granted by line 1`);
    fs.writeFileSync(onlyRo, 'abc rw subtree=home\n');
    const subtree = await runServer(['--auth-token-file', onlyRo]);
    expect(subtree.code).toBe(2);
    expect(subtree.stderr).toContain(`${onlyRo}:1: subtree "home" must be an absolute path`);
  });
});

describe('the TLS and token flags of a mount', () => {
  it('parses --tls-ca, --tls-cert, --tls-key and --token-file, and wants a certificate with its key and the CA', () => {
    const args = parseMountArgs(['/mnt/h', '--servers', '127.0.0.1:1', '--tls-ca', 'ca.crt', '--tls-cert', 'a.crt', '--tls-key', 'a.key', '--token-file', 'tok']);
    expect(args.tls).toEqual({ caFile: 'ca.crt', certFile: 'a.crt', keyFile: 'a.key' });
    expect(args.tokenFile).toBe('tok');
    expect(parseMountArgs(['/mnt/h', '--servers', '127.0.0.1:1']).tls).toBeUndefined();
    expect(() => parseMountArgs(['/mnt/h', '--servers', '127.0.0.1:1', '--tls-ca', 'ca.crt', '--tls-cert', 'a.crt'])).toThrow('--tls-cert and --tls-key go together');
    expect(() => parseMountArgs(['/mnt/h', '--servers', '127.0.0.1:1', '--tls-cert', 'a.crt', '--tls-key', 'a.key'])).toThrow('--tls-cert needs --tls-ca');
    expect(() => parseMountArgs(['/mnt/h', '--servers', '127.0.0.1:1', '--token-file'])).toThrow('--token-file needs a file');
  });
});
