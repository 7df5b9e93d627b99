/**
 * Test helpers for the operator commands with real processes: run the
 * `handlefs` command as a user does (node bin/handlefs.js), start a new
 * member with --join beside a MetaTestCluster, and a small write load through
 * the SDK that counts every failed operation. Owns nothing of the commands;
 * must never leave a process behind (stopJoiner / the load's stop()).
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../../raft/node/process-cluster';
import { MetaTestCluster, metaServerMainPath } from '../../metaserver/server/testing';
import { MetaClient } from '../../client/sdk';

const REPO = path.resolve(__dirname, '..', '..');
const BIN = path.join(REPO, 'bin', 'handlefs.js');
const COMMAND_TIMEOUT_MS = 45_000;
const JOIN_READY_TIMEOUT_MS = 15_000;
const STDERR_TAIL_LINES = 40;

export interface Run { code: number; stdout: string; stderr: string }

export function handlefs(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8', env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

export interface Joiner {
  id: string;
  peerAddress: string;
  clientAddress: string;
  dataDir: string;
  child?: ChildProcess;
  stderrTail: string[];
}

/** Addresses and a data folder for a new member (not started). */
export async function newJoiner(id: string): Promise<Joiner> {
  return {
    id,
    peerAddress: `127.0.0.1:${await freePort()}`,
    clientAddress: `127.0.0.1:${await freePort()}`,
    dataDir: fs.mkdtempSync(path.join(os.tmpdir(), `handlefs-join-${id}-`)),
    stderrTail: [],
  };
}

/** Starts the new member empty with --join (as `member add` tells the operator) and waits for its ready line. */
export function startJoiner(cluster: MetaTestCluster, joiner: Joiner): Promise<void> {
  const peers = [...cluster.members.map((m) => `${m.id}=${m.raftAddress}`), `${joiner.id}=${joiner.peerAddress}`].join(',');
  const clients = [...cluster.members.map((m) => `${m.id}=${m.clientAddress}`), `${joiner.id}=${joiner.clientAddress}`].join(',');
  const child = spawn(process.execPath, [
    metaServerMainPath(), '--id', joiner.id, '--listen', joiner.peerAddress, '--client-listen', joiner.clientAddress, '--data', joiner.dataDir,
    '--peers', peers, '--clients', clients, '--tick-ms', '20', '--election-ticks', '10', '--join',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  joiner.child = child;
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    joiner.stderrTail.push(...chunk.split('\n').filter(Boolean));
    joiner.stderrTail.splice(0, Math.max(0, joiner.stderrTail.length - STDERR_TAIL_LINES));
  });
  child.once('exit', () => { if (joiner.child === child) joiner.child = undefined; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${joiner.id} not ready within ${JOIN_READY_TIMEOUT_MS} ms:\n${joiner.stderrTail.join('\n')}`)), JOIN_READY_TIMEOUT_MS);
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('"event":"ready"')) { clearTimeout(timer); resolve(); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${joiner.id} exited (${code}) before ready:\n${joiner.stderrTail.join('\n')}`)); });
  });
}

/** SIGKILL, wait for the exit, remove the data folder. */
export async function stopJoiner(joiner: Joiner): Promise<void> {
  const child = joiner.child;
  if (child) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
  fs.rmSync(joiner.dataDir, { recursive: true, force: true });
}

/** Writes small files one after another until stopped; counts successes and keeps every failure. */
export class WriteLoad {
  written = 0;
  readonly failures: string[] = [];
  private running = true;
  private readonly done: Promise<void>;

  private constructor(private readonly client: MetaClient, prefix: string) {
    this.done = this.loop(prefix);
  }

  static async start(servers: string[], prefix: string): Promise<WriteLoad> {
    const client = await MetaClient.connect({ servers, deadlineMs: 20_000 });
    return new WriteLoad(client, prefix);
  }

  private async loop(prefix: string): Promise<void> {
    for (let i = 0; this.running && i < 100_000; i++) {
      try {
        await this.client.writeFile(`/${prefix}-${i}`, Buffer.from(`file ${i}`));
        this.written++;
      } catch (error) {
        if (this.failures.length < 100) this.failures.push(`${prefix}-${i}: ${(error as Error).message}`);
      }
    }
  }

  /** Waits until `count` more files were written (bounded by timeoutMs). */
  async writeMore(count: number, timeoutMs: number): Promise<void> {
    const target = this.written + count;
    const deadline = Date.now() + timeoutMs;
    while (this.written < target && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    if (this.written < target) throw new Error(`only ${this.written}/${target} writes within ${timeoutMs} ms; failures: ${this.failures.join('; ')}`);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.client.close();
  }
}
