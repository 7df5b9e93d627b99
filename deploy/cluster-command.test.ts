/**
 * `handlefs cluster up|down|status` with real processes: the command as a
 * user runs it (node bin/handlefs.js), detached members, pid files, /readyz,
 * and a restart that keeps the data; `handlefs server` in the foreground.
 * Run `npx tsc -p .` first.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { assertDistIsFresh } from '../raft/node/process-cluster';
import * as p from '../proto/meta-proto';
import { MetaClient, ROOT_HANDLE } from '../client/sdk';

const REPO = path.resolve(__dirname, '..');
const BIN = path.join(REPO, 'bin', 'handlefs.js');
const MEMBERS = ['m1', 'm2', 'm3'];
const PORT_ATTEMPTS = 20;

interface Run { code: number; stdout: string; stderr: string }
interface StatusJson {
  healthy: boolean;
  leaderId: string;
  members: { id: string; pid: number | null; httpAddress: string; status: { role: string; term: number; commitIndex: number; appliedIndex: number; leaderId: string; members: { id: string; address: string }[] } | null }[];
}

function handlefs(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 30_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A base port whose raft (+1..3), client (+101..103) and HTTP (+201..203) ports are all free now. */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const base = 40_000 + Math.floor(Math.random() * 200) * 100;
    const ports = [1, 2, 3].flatMap((i) => [base + i, base + 100 + i, base + 200 + i]);
    if ((await Promise.all(ports.map(portIsFree))).every(Boolean)) return base;
  }
  throw new Error(`no free port range found in ${PORT_ATTEMPTS} attempts`);
}

function httpCode(address: string, route: string): Promise<number> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    http.get({ host, port: Number(port), path: route, agent: false, timeout: 2_000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on('error', reject);
  });
}

function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

async function statusJson(dir: string): Promise<StatusJson> {
  const run = await handlefs(['cluster', 'status', '--data', dir, '--json']);
  return JSON.parse(run.stdout) as StatusJson;
}

describe('handlefs cluster up, status and down on real processes', () => {
  let dir: string;
  let basePort: number;
  const seenPids = new Set<number>();

  beforeAll(async () => {
    assertDistIsFresh();
    for (const file of ['bin/cli.ts', 'deploy/cluster-command.ts', 'metaserver/server/server-main.ts', 'raft/node/member-process.ts']) {
      const compiled = path.join(REPO, 'dist', file.replace(/\.ts$/, '.js'));
      if (!fs.existsSync(compiled) || fs.statSync(compiled).mtimeMs < fs.statSync(path.join(REPO, file)).mtimeMs) throw new Error(`dist/ is older than ${file}: run \`npx tsc -p .\` first`);
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-cluster-'));
    basePort = await freeBasePort();
  });

  afterAll(() => {
    // Whatever happened above, no member may outlive the test.
    for (const id of MEMBERS) {
      const pid = Number(fs.existsSync(path.join(dir, `${id}.pid`)) ? fs.readFileSync(path.join(dir, `${id}.pid`), 'utf8') : 0);
      if (pid > 0) seenPids.add(pid);
    }
    for (const pid of seenPids) {
      if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  let firstRun: StatusJson;

  it('starts three detached members that agree on one leader and are ready', async () => {
    const run = await handlefs(['cluster', 'up', '--data', dir, '--base-port', String(basePort)]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`127.0.0.1:${basePort + 101},127.0.0.1:${basePort + 102},127.0.0.1:${basePort + 103}`);

    firstRun = await statusJson(dir);
    for (const member of firstRun.members) if (member.pid) seenPids.add(member.pid);
    expect(firstRun.healthy).toBe(true);
    expect(firstRun.members.map((m) => m.id)).toEqual(MEMBERS);
    expect(firstRun.members.filter((m) => m.status?.role === 'leader')).toHaveLength(1);
    expect(firstRun.members.every((m) => m.pid !== null && isRunning(m.pid) && m.status?.leaderId === firstRun.leaderId)).toBe(true);
    expect(firstRun.members[0].status!.members.map((m) => m.address)).toEqual([1, 2, 3].map((i) => `127.0.0.1:${basePort + i}`));
    for (const member of firstRun.members) {
      expect(await httpCode(member.httpAddress, '/readyz')).toBe(200);
      expect(await httpCode(member.httpAddress, '/healthz')).toBe(200);
    }
  });

  it('refuses a second up while the cluster runs', async () => {
    const run = await handlefs(['cluster', 'up', '--data', dir]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('already up');
  });

  it('stops every member on down and leaves no pid file behind', async () => {
    const run = await handlefs(['cluster', 'down', '--data', dir]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    for (const member of firstRun.members) expect(isRunning(member.pid!)).toBe(false);
    expect(MEMBERS.filter((id) => fs.existsSync(path.join(dir, `${id}.pid`)))).toEqual([]);
    const down = await handlefs(['cluster', 'status', '--data', dir]);
    expect(down.code).toBe(1);
    expect(down.stdout).toContain('down: no member answers');
  });

  it('brings the same cluster back with its data on the next up', async () => {
    const run = await handlefs(['cluster', 'up', '--data', dir]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const again = await statusJson(dir);
    for (const member of again.members) if (member.pid) seenPids.add(member.pid);
    expect(again.healthy).toBe(true);
    const before = Math.max(...firstRun.members.map((m) => m.status!.commitIndex));
    for (const member of again.members) {
      expect(firstRun.members.map((m) => m.pid)).not.toContain(member.pid);
      // The old log is still there: a new term, and the new leader's entry lands after everything committed before.
      expect(member.status!.term).toBeGreaterThan(firstRun.members[0].status!.term);
      expect(member.status!.commitIndex).toBeGreaterThan(before);
    }
    expect((await handlefs(['cluster', 'down', '--data', dir])).code).toBe(0);
    for (const member of again.members) expect(isRunning(member.pid!)).toBe(false);
  });
});

describe('handlefs server', () => {
  it('runs one metadata server in the foreground that becomes ready and stops with code 0 on SIGTERM', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-server-'));
    const base = await freeBasePort();
    const httpAddress = `127.0.0.1:${base + 201}`;
    const child = spawn(process.execPath, [BIN, 'server', '--id', 'm1', '--listen', `127.0.0.1:${base + 1}`, '--client-listen', `127.0.0.1:${base + 101}`,
      '--metrics-listen', httpAddress, '--data', path.join(dir, 'm1'), '--peers', `m1=127.0.0.1:${base + 1}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const firstLine = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no ready line within 10 s')), 10_000);
        readline.createInterface({ input: child.stdout! }).once('line', (line) => { clearTimeout(timer); resolve(line); });
        child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited with ${code}`)); });
      });
      expect(JSON.parse(firstLine)).toMatchObject({ event: 'ready', id: 'm1', clientPort: base + 101 });
      let ready = 0;
      for (let attempt = 0; attempt < 100 && ready !== 200; attempt++) {
        ready = await httpCode(httpAddress, '/readyz');
        if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(ready).toBe(200);
      expect(await httpCode(httpAddress, '/nothing-here')).toBe(404);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('handlefs cluster up --tls', () => {
  let dir: string;
  let basePort: number;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-cluster-tls-'));
    basePort = await freeBasePort();
  });

  afterAll(async () => {
    for (const id of MEMBERS) {
      const file = path.join(dir, `${id}.pid`);
      const pid = fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : 0;
      if (pid > 0 && isRunning(pid)) process.kill(pid, 'SIGKILL');
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('makes a CA and member certificates in the folder and starts the members with TLS; status and down work with it', async () => {
    const run = await handlefs(['cluster', 'up', '--tls', '--data', dir, '--base-port', String(basePort)]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const ca = path.join(dir, 'pki', 'ca.crt');
    expect(run.stdout).toContain(`--tls-ca ${ca}`);
    for (const file of ['ca.crt', 'ca.key', 'm1.crt', 'm1.key', 'm2.crt', 'm3.key']) expect(fs.existsSync(path.join(dir, 'pki', file))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'cluster.json'), 'utf8'))).toMatchObject({ tls: true });

    const status = await statusJson(dir);
    expect(status).toMatchObject({ healthy: true, tls: true });
    expect(status.members.filter((m) => m.status?.role === 'leader')).toHaveLength(1);

    const servers = [1, 2, 3].map((i) => `127.0.0.1:${basePort + 100 + i}`);
    // A client holding the CA works; a plaintext one never gets a call through.
    const client = await MetaClient.connect({ servers, deadlineMs: 10_000, tls: { caFile: ca } });
    try {
      await client.mkdir(ROOT_HANDLE, 'over-tls', 0o755);
      expect((await client.lookup(ROOT_HANDLE, 'over-tls')).type).toBe('dir');
    } finally {
      await client.close();
    }
    const plain = new p.MetaGrpcClient(servers[0], grpc.credentials.createInsecure());
    const code = await new Promise<number>((resolve) => (plain as unknown as { StatFs: (r: unknown, o: unknown, cb: (e: grpc.ServiceError | null) => void) => void })
      .StatFs({}, { deadline: Date.now() + 2_000 }, (error) => resolve(error?.code ?? 0)));
    plain.close();
    expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(code);

    // A second up keeps the certificates (never overwritten) and is refused while running.
    const caBefore = fs.readFileSync(ca, 'utf8');
    expect((await handlefs(['cluster', 'up', '--data', dir])).code).toBe(1);
    expect(fs.readFileSync(ca, 'utf8')).toBe(caBefore);
    expect((await handlefs(['cluster', 'down', '--tls', '--data', dir])).code).toBe(2);

    const down = await handlefs(['cluster', 'down', '--data', dir]);
    expect(down.code).toBe(0);
    for (const id of MEMBERS) expect(fs.existsSync(path.join(dir, `${id}.pid`))).toBe(false);
    expect((await statusJson(dir)).healthy).toBe(false);
  }, 60_000);
});
