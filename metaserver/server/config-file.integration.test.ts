/**
 * A real metadata server process started from a config file: the flags
 * argsFromConfigFile computes are what server-main runs with (server-main
 * calls argsFromConfigFile itself once wired; here the test computes them).
 * Needs `npx tsc -p .` first (the child runs dist/).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../../raft/node/process-cluster';
import { argsFromConfigFile } from './config-file';
import { MetaGrpcClient, OpenSessionReply } from '../../proto/meta-proto';

const SERVER_MAIN = path.resolve(__dirname, '..', '..', 'dist', 'metaserver', 'server', 'server-main.js');
const READY_TIMEOUT_MS = 20_000;
const MAX_OUTPUT_CHARS = 64 * 1024;

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function start(args: string[]): Running {
  const child = spawn(process.execPath, [SERVER_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => { stdout = (stdout + chunk.toString()).slice(-MAX_OUTPUT_CHARS); });
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-MAX_OUTPUT_CHARS); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

async function readyLine(running: Running): Promise<{ event: string; id: string; clientPort: number; pid: number }> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const line = running.stdout().split('\n').find((l) => l.includes('"event":"ready"'));
    if (line) return JSON.parse(line) as { event: string; id: string; clientPort: number; pid: number };
    if (running.child.exitCode !== null) throw new Error(`the server exited ${running.child.exitCode} before it was ready:\n${running.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no readiness line within ${READY_TIMEOUT_MS} ms:\n${running.stderr()}`);
}

/** OpenSession until the single member has elected itself (UNAVAILABLE / FAILED_PRECONDITION until then). */
async function openSession(clientPort: number): Promise<OpenSessionReply> {
  const client = new MetaGrpcClient(`127.0.0.1:${clientPort}`, grpc.credentials.createInsecure());
  const call = client as unknown as { OpenSession: (r: object, cb: (e: grpc.ServiceError | null, v: OpenSessionReply) => void) => void };
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (let attempt = 1; ; attempt++) {
      const answer = await new Promise<{ error: grpc.ServiceError | null; reply: OpenSessionReply }>((resolve) => {
        call.OpenSession({ ttlMs: 0, clientName: 'config-file test' }, (error, reply) => resolve({ error, reply }));
      });
      if (!answer.error) return answer.reply;
      if (Date.now() > deadline) throw new Error(`OpenSession kept failing (attempt ${attempt}): ${answer.error.message}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    client.close();
  }
}

describe('a metadata server started from a config file', () => {
  let dir: string;
  let running: Running | undefined;

  beforeAll(() => {
    if (!fs.existsSync(SERVER_MAIN)) throw new Error(`${SERVER_MAIN} is missing: run npx tsc -p . first`);
  });
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meta-config-process-')); });
  afterEach(async () => {
    if (running && running.child.exitCode === null && running.child.signalCode === null) {
      running.child.kill('SIGKILL');
      await running.exited;
    }
    running = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('becomes ready as a one-member cluster with the file\'s settings, and stops on SIGTERM with exit code 0', async () => {
    const raftPort = await freePort();
    const file = path.join(dir, 'm1.json');
    fs.writeFileSync(file, JSON.stringify({
      id: 'm1',
      listen: `127.0.0.1:${raftPort}`,
      clientListen: '127.0.0.1:0',
      data: 'm1-data',
      peers: { m1: `127.0.0.1:${raftPort}` },
      tickMs: 10,
      electionTicks: 10,
      sessionTtlMs: 2345,
      retention: { keepLast: 3 },
      blocks: { gcGraceMs: 1000 },
    }, null, 2));

    running = start(argsFromConfigFile(['--config', file]));
    const ready = await readyLine(running);
    expect(ready).toMatchObject({ event: 'ready', id: 'm1', pid: running.child.pid });
    expect(ready.clientPort).toBeGreaterThan(0);
    // The relative data folder is the file's folder's, not the test's current folder.
    expect(fs.existsSync(path.join(dir, 'm1-data', 'raft'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'm1-data', 'state'))).toBe(true);
    // The file's session TTL is the server's default TTL.
    const session = await openSession(ready.clientPort);
    expect(session).toMatchObject({ errno: 0, ttlMs: 2345 });
    expect(session.sessionId).toBeGreaterThan(0);

    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
  }, 40_000);

  it('exits 2 naming the flag when a value the file check lets through is out of the flag parser\'s range', async () => {
    const file = path.join(dir, 'm1.json');
    fs.writeFileSync(file, JSON.stringify({ id: 'm1', listen: '127.0.0.1:7001', clientListen: '127.0.0.1:0', data: 'd', peers: { m1: '127.0.0.1:7001' }, tickMs: 0 }));
    running = start(argsFromConfigFile(['--config', file]));
    expect(await running.exited).toBe(2);
    expect(running.stderr()).toMatch(/--tick-ms must be an integer in 1\.\.10000, got "0"/);
  }, 20_000);
});
