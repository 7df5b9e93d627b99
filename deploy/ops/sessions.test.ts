/**
 * `handlefs sessions` and the Admin Sessions call against a live
 * three-member cluster of real processes, with a 2 s session TTL: a client's
 * session and fh are listed while it keeps alive, and once the client is
 * SIGKILLed (no close, no keepalive) the leader expires the session within
 * TTL + its expiry interval; a follower refuses and names the leader; bad
 * flags are refused before any call. Run `npx tsc -p .` first (the members
 * and the abandoned client run compiled code from dist/).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { MetaTestCluster } from '../../metaserver/server/testing';
import { MetaClient } from '../../client/sdk';
import { AdminClient, SessionList, listSessions } from './admin-client';
import { handlefs } from './testing';

const TTL_MS = 2_000;
/** Beyond TTL + expiry interval: a commit, a busy two-core machine. */
const EXPIRY_SLACK_MS = 2_500;
const WORKER_READY_MS = 15_000;
const SDK_INDEX = path.resolve(__dirname, '..', '..', 'dist', 'client', 'sdk', 'index.js');

/** A client in its own process: opens a session and one fh, says so on stdout, then keeps the session alive until killed. */
const WORKER_SCRIPT = `
const { MetaClient, ROOT_HANDLE } = require(process.env.SDK_INDEX);
(async () => {
  const client = await MetaClient.connect({ servers: process.env.SERVERS.split(','), sessionTtlMs: ${TTL_MS}, clientName: 'abandoned-worker', deadlineMs: 10000 });
  const made = await client.create(ROOT_HANDLE, 'held-' + process.pid, 0o644, { exclusive: true, open: { read: false, write: true, append: false } });
  process.stdout.write(JSON.stringify({ sessionId: client.sessionId, fh: made.opened.fh }) + '\\n');
  setInterval(() => {}, 1000);
})().catch((error) => { process.stderr.write(String(error && error.stack || error)); process.exit(1); });
`;

interface Worker { child: ChildProcess; sessionId: number }

function startWorker(servers: string): Promise<Worker> {
  const child = spawn(process.execPath, ['-e', WORKER_SCRIPT], { env: { ...process.env, SDK_INDEX, SERVERS: servers }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4_000); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`worker not ready within ${WORKER_READY_MS} ms: ${stderr}`)); }, WORKER_READY_MS);
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line) { clearTimeout(timer); resolve({ child, sessionId: (JSON.parse(line) as { sessionId: number }).sessionId }); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`worker exited (${code}) before ready: ${stderr}`)); });
  });
}

async function killWorker(worker: Worker | undefined): Promise<void> {
  const child = worker?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('the leader\'s session listing on a live three-member cluster (TTL 2 s)', () => {
  let cluster: MetaTestCluster;
  let servers: string;
  let worker: Worker | undefined;
  let sdk: MetaClient | undefined;

  const sessionsJson = async (args: string[] = []): Promise<{ code: number; list: SessionList; stderr: string }> => {
    const run = await handlefs(['sessions', '--servers', servers, '--json', ...args]);
    return { code: run.code, list: JSON.parse(run.stdout) as SessionList, stderr: run.stderr };
  };

  beforeAll(async () => {
    cluster = await MetaTestCluster.start({ extraArgs: ['--session-ttl-ms', String(TTL_MS)] });
    servers = cluster.members.map((m) => m.clientAddress).join(',');
    [worker, sdk] = await Promise.all([
      startWorker(servers),
      MetaClient.connect({ servers: servers.split(','), sessionTtlMs: TTL_MS, clientName: 'in-test-sdk', deadlineMs: 10_000 }),
    ]);
  }, 30_000);

  afterAll(async () => {
    await killWorker(worker);
    await sdk?.close().catch(() => {});
    await cluster?.destroy();
  });

  it('lists a live client with its open fh and a keepalive well within its TTL', async () => {
    const leader = await cluster.leader();
    const { code, list, stderr } = await sessionsJson();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(list).toMatchObject({ leaderId: leader.id, truncated: false, total: 2, untracked: 0, overdue: 0 });
    expect(list.expiryIntervalMs).toBe(TTL_MS / 4);
    expect(list.maxExpiriesPerRound).toBeGreaterThan(0);
    expect(Math.abs(list.wallClockMs - Date.now())).toBeLessThan(10_000);
    const held = list.sessions.find((s) => s.id === worker!.sessionId)!;
    expect(held).toMatchObject({ clientName: 'abandoned-worker', ttlMs: TTL_MS, fhs: 1, tracked: true });
    // Keepalives go every TTL/3: the last one is recent, and the session is far from expiry.
    expect(held.sinceKeepAliveMs).toBeGreaterThanOrEqual(0);
    expect(held.sinceKeepAliveMs).toBeLessThan(TTL_MS / 2);
    expect(held.expiresInMs).toBe(TTL_MS - held.sinceKeepAliveMs);
    expect(Date.now() - held.createdAtMs).toBeLessThan(60_000);
    const other = list.sessions.find((s) => s.id === sdk!.sessionId)!;
    expect(other).toMatchObject({ clientName: 'in-test-sdk', fhs: 0, tracked: true });
  });

  it('prints a table with one row per session and a summary line', async () => {
    const run = await handlefs(['sessions', '--servers', servers]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^id\s+client\s+ttl\s+since keepalive\s+expires in\s+fhs\s+state$/);
    expect(lines).toHaveLength(4);
    expect(lines.find((l) => l.startsWith(`${worker!.sessionId} `))).toMatch(/^\d+\s+abandoned-worker\s+2000 ms\s+\d+ ms\s+\d+ ms\s+1\s+live$/);
    expect(lines[3]).toMatch(/^2 sessions on leader m\d \(term \d+\); 0 overdue, 0 untracked; overdue sessions are expired every 500 ms$/);
  });

  it('bounds the answer: --limit 1 lists one session and says how many there are', async () => {
    const { code, list } = await sessionsJson(['--limit', '1']);
    expect(code).toBe(0);
    expect(list.sessions).toHaveLength(1);
    expect(list).toMatchObject({ truncated: true, total: 2 });
    expect((await handlefs(['sessions', '--servers', servers, '--limit', '1'])).stdout).toMatch(/^1 of 2 sessions listed on leader/m);
  });

  it('is answered by the leader only: a follower refuses and names the leader, the command follows it', async () => {
    const leader = await cluster.leader();
    const follower = (await cluster.followers())[0];
    const admin = new AdminClient([follower.clientAddress]);
    try {
      const refused = await admin.call(follower.clientAddress, 'Sessions', { limit: 0 }, 5_000);
      expect(refused.error?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(refused.error?.message).toMatch(new RegExp(`sessions are listed by the leader; the leader is ${leader.id} at ${leader.clientAddress.replace(/\./g, '\\.')}`));
      expect(refused.error?.leaderId).toBe(leader.id);
      expect(refused.error?.leaderAddress).toBe(leader.clientAddress);
    } finally {
      admin.close();
    }
    const list = await listSessions(follower.clientAddress);
    expect(list.leaderId).toBe(leader.id);
    expect(list.total).toBe(2);
  });

  it('drops a SIGKILLed client\'s session (and its fh) within TTL + expiry interval', async () => {
    const { sessionId } = worker!;
    await killWorker(worker);
    const killedAtMs = Date.now();
    const deadlineMs = killedAtMs + TTL_MS + TTL_MS / 4 + EXPIRY_SLACK_MS;
    let list: SessionList;
    let sawOverdueOrShrinking = false;
    for (;;) {
      list = await listSessions(servers);
      const held = list.sessions.find((s) => s.id === sessionId);
      if (!held) break;
      // Never kept alive since the kill: time since the keepalive only grows toward the TTL.
      expect(held.tracked).toBe(true);
      if (Date.now() - killedAtMs > TTL_MS / 2) expect(held.sinceKeepAliveMs).toBeGreaterThan(0);
      sawOverdueOrShrinking = true;
      expect(Date.now()).toBeLessThan(deadlineMs);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const goneAfterMs = Date.now() - killedAtMs;
    expect(sawOverdueOrShrinking).toBe(true);
    expect(goneAfterMs).toBeGreaterThanOrEqual(TTL_MS - TTL_MS / 3 - 200);
    expect(goneAfterMs).toBeLessThan(TTL_MS + TTL_MS / 4 + EXPIRY_SLACK_MS);
    // The live client is still there and still tracked.
    expect(list.sessions.map((s) => s.id)).toEqual([sdk!.sessionId]);
    expect(list).toMatchObject({ total: 1, untracked: 0 });
  }, 20_000);

  it('keeps listing after a leader change: the new leader tracks every session afresh', async () => {
    const leader = await cluster.leader();
    const moved = await handlefs(['leader', 'transfer', '--servers', servers]);
    expect(moved.code).toBe(0);
    let list: SessionList | undefined;
    for (let attempt = 0; attempt < 50 && list === undefined; attempt++) {
      try {
        list = await listSessions(servers);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    expect(list!.leaderId).not.toBe(leader.id);
    expect(list!).toMatchObject({ total: 1, untracked: 0 });
    expect(list!.sessions[0]).toMatchObject({ id: sdk!.sessionId, tracked: true });
  }, 20_000);

  describe('bad input: a message naming the problem, exit 2, nothing asked', () => {
    it.each([
      [['sessions'], /--servers HOST:PORT,\.\.\. is required/],
      [['sessions', '--servers', '127.0.0.1'], /--servers: address "127.0.0.1" is not "host:port"/],
      [['sessions', '--servers', '127.0.0.1:1', '--limit', '0'], /--limit must be an integer in 1\.\.10000, got "0"/],
      [['sessions', '--servers', '127.0.0.1:1', '--limit', 'many'], /--limit must be an integer in 1\.\.10000, got "many"/],
      [['sessions', '--servers', '127.0.0.1:1', '--limit', '10001'], /--limit must be an integer in 1\.\.10000/],
      [['sessions', '--servers', '127.0.0.1:1', '--since', '5'], /unknown option --since/],
      [['sessions', 'ls', '--servers', '127.0.0.1:1'], /unexpected argument "ls"/],
    ])('handlefs %j', async (args, message) => {
      const run = await handlefs(args as string[]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).toMatch(/^handlefs sessions: /);
      expect(run.stdout).toBe('');
    });

    it('names the addresses of an unreachable cluster, exit 1', async () => {
      const run = await handlefs(['sessions', '--servers', '127.0.0.1:1']);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^handlefs sessions: the cluster is unreachable: no server answered \(127\.0\.0\.1:1 is unreachable/);
    });
  });
});
