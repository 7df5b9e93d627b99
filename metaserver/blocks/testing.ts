/**
 * Test harness for the block layer: in-process BlockPeer servers on
 * 127.0.0.1 port 0, each over its own store folder, and BlockPeer child
 * processes (dist/metaserver/blocks/block-peer-main.js) that tests can SIGKILL.
 * Owns the folders and processes it starts and removes/kills them on close;
 * must never listen beyond loopback nor be used outside tests.
 */
import * as grpc from '@grpc/grpc-js';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { blockPeerService } from '../../proto/blocks-proto';
import { BlockPeerService, WaitApplied } from './block-peer-service';
import { BlockStore } from './block-store';

export interface TestPeer {
  readonly dir: string;
  readonly address: string;
  readonly store: BlockStore;
  /** Stops serving (like a crash: no graceful drain) and keeps the folder. */
  stop(): void;
  /** Stops and removes the folder. */
  close(): void;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startPeer(options: { dir?: string; waitApplied?: WaitApplied; maxWaitMs?: number } = {}): Promise<TestPeer> {
  const dir = options.dir ?? tempDir('handlefs-block-peer-');
  const store = await BlockStore.open(dir);
  const server = new grpc.Server();
  server.addService(blockPeerService, new BlockPeerService({ store, waitApplied: options.waitApplied ?? (async () => {}), maxWaitMs: options.maxWaitMs }).implementation());
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
  });
  let stopped = false;
  const stop = (): void => {
    if (!stopped) server.forceShutdown();
    stopped = true;
  };
  return {
    dir, address: `127.0.0.1:${port}`, store, stop,
    close: () => {
      stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PeerProcess {
  readonly dir: string;
  readonly address: string;
  readonly child: ChildProcess;
  /** SIGKILL and wait until the process is gone. */
  kill(): Promise<void>;
  /** Kill (if alive) and remove the folder. */
  close(): Promise<void>;
}

/** dist/metaserver/blocks/block-peer-main.js, found from the sources or from dist/. */
export function peerMainPath(): string {
  let dir = __dirname;
  for (let up = 0; up < 6; up++) {
    const candidate = path.join(dir, 'dist', 'metaserver', 'blocks', 'block-peer-main.js');
    if (fs.existsSync(candidate)) {
      requireFreshBuild(path.join(dir, 'metaserver', 'blocks'), path.dirname(candidate));
      return candidate;
    }
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find dist/metaserver/blocks/block-peer-main.js above ${__dirname}; run npx tsc -p . first`);
}

/** A child process runs compiled code: refuse a dist/ older than the block layer's sources. */
function requireFreshBuild(sourceDir: string, distDir: string): void {
  if (!fs.existsSync(sourceDir)) return; // running from dist/ alone
  const stale = fs.readdirSync(sourceDir).filter((name) => {
    if (!name.endsWith('.ts') || name.endsWith('.test.ts')) return false;
    const compiled = path.join(distDir, name.replace(/\.ts$/, '.js'));
    return !fs.existsSync(compiled) || fs.statSync(compiled).mtimeMs < fs.statSync(path.join(sourceDir, name)).mtimeMs;
  });
  if (stale.length > 0) throw new Error(`dist/ is older than metaserver/blocks/${stale.join(', ')}: run \`npx tsc -p .\` first`);
}

/** A BlockPeer child process; pass dir and listen to restart a killed one on its folder and port. */
export async function startPeerProcess(options: { dir?: string; listen?: string; startTimeoutMs?: number } = {}): Promise<PeerProcess> {
  const dir = options.dir ?? tempDir('handlefs-block-peer-proc-');
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  const child = spawn(process.execPath, [peerMainPath(), '--dir', dir, '--listen', options.listen ?? '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < 10_000) stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`block peer process did not start in ${startTimeoutMs} ms: ${stderr}`)), startTimeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const line = stdout.split('\n')[0];
        if (stdout.includes('\n')) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`block peer process exited with ${String(code)}: ${stderr}`));
      });
    });
    return {
      dir, address: `127.0.0.1:${port}`, child, kill,
      close: async () => {
        await kill();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await kill();
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

export function randomBlock(sizeBytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(sizeBytes);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < sizeBytes; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}
