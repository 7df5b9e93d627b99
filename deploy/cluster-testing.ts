/**
 * Test helper: `handlefs cluster up` on ports that are free now. A base port
 * picked free can be taken by another test's process before the members bind
 * it (EADDRINUSE on a loaded machine); such a start is retried on a fresh
 * base, a bounded number of times, with the data folder emptied in between
 * (a failed up has stopped its members). Owns nothing but the retry.
 */
import * as fs from 'node:fs';
import { freePort } from '../raft/node/process-cluster';

export type CliRun = (...args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

const UP_ATTEMPTS_MAX = 4;

/** Runs `cluster up --data dataDir --base-port P [extra]` until it starts; returns the client addresses and the base port. */
export async function clusterUpOnFreePorts(cli: CliRun, dataDir: string, extra: string[] = []): Promise<{ servers: string; basePort: number; stdout: string }> {
  for (let attempt = 1; ; attempt++) {
    // The cluster takes base+1.. (Raft), base+101.. (client API), base+201.. (/metrics).
    const basePort = 20000 + ((await freePort()) % 20000);
    const up = await cli('cluster', 'up', '--data', dataDir, '--base-port', String(basePort), ...extra);
    if (up.code === 0) return { servers: /client API[^:]*: (\S+)/.exec(up.stdout)![1], basePort, stdout: up.stdout };
    if (attempt >= UP_ATTEMPTS_MAX || !/EADDRINUSE/.test(up.stderr)) throw new Error(`cluster up failed: ${up.stderr}`);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
