/**
 * Starts processes inside a simulated host's network namespace (see
 * hosts.ts) with `nsenter --net=/run/netns/<host>`. Only the network is
 * switched: unlike `ip netns exec`, which also makes a private mount
 * namespace (and remounts /sys), the process keeps the shared mount
 * namespace, so a FUSE mount it makes is visible to everyone else.
 * Must never stop or wait for the processes it starts: the caller owns them.
 */
import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';
import { assertHost } from './faults';
import { readHostAddress } from './hosts';

export function runIn(host: string, command: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
  const netnsPath = assertHost(host);
  if (command === '') throw new Error('runIn needs a command');
  // nsenter execs the command (no fork without --pid), so the child's pid is the command's own.
  return spawn('nsenter', [`--net=${netnsPath}`, '--', command, ...args], options);
}

/** The host's 127.77.0.x address as its namespace has it; throws if the host or its address is missing. */
export async function hostAddress(host: string): Promise<string> {
  assertHost(host);
  const address = await readHostAddress(host);
  if (address === null) throw new Error(`host ${host} has no address on its veth (a half-built or crashed run? \`handlefs hosts down\`)`);
  return address;
}
