/**
 * Network faults between simulated hosts (see hosts.ts): cut a host off the
 * bridge, or drop one direction of one pair with a blackhole route inside a
 * namespace (asymmetric partitions). Owns only these changes and their undo.
 * Must never touch a link or route outside the hosts' plan: every name is
 * checked against /run/netns and every address against 127.77.0.0/24.
 */
import * as fs from 'node:fs';
import { isPlanAddress, NETNS_DIR, rootLinkName } from './hosts';
import { runTool } from './tool';

const HOST_NAME_PATTERN = /^[a-z]([a-z0-9]{0,6}[a-z])?[1-9][0-9]?$/;

/** Throws unless `host` names an existing simulated host; returns its namespace file. */
export function assertHost(host: string): string {
  if (!HOST_NAME_PATTERN.test(host)) throw new Error(`not a simulated host name: ${JSON.stringify(host)}`);
  const netnsPath = `${NETNS_DIR}/${host}`;
  if (!fs.existsSync(netnsPath)) throw new Error(`host ${host} does not exist (no ${netnsPath}); bring the hosts up first`);
  return netnsPath;
}

function assertPlanAddress(address: string): void {
  if (!isPlanAddress(address)) throw new Error(`address ${JSON.stringify(address)} is outside the simulated hosts' range 127.77.0.0/24`);
}

/** Sets the host's root-side veth down: the host can reach nobody and nobody can reach it. */
export async function cutHost(host: string): Promise<void> {
  assertHost(host);
  await runTool('ip', ['link', 'set', rootLinkName(host), 'down']);
}

export async function healHost(host: string): Promise<void> {
  assertHost(host);
  await runTool('ip', ['link', 'set', rootLinkName(host), 'up']);
}

/**
 * Packets from `fromHost` to `toAddress` are dropped (connects fail with
 * EINVAL at once); replies to `toAddress` are dropped too, so the other
 * direction's TCP connections stall as well, but `toAddress`'s host still
 * reaches everyone else. Throws if the same blackhole is already there.
 */
export async function blackhole(fromHost: string, toAddress: string): Promise<void> {
  assertHost(fromHost);
  assertPlanAddress(toAddress);
  await runTool('ip', ['-n', fromHost, 'route', 'add', 'blackhole', `${toAddress}/32`]);
}

/** Removes a blackhole made by `blackhole`; a missing one is not an error (idempotent undo). */
export async function unblackhole(fromHost: string, toAddress: string): Promise<void> {
  assertHost(fromHost);
  assertPlanAddress(toAddress);
  const { stdout } = await runTool('ip', ['-n', fromHost, 'route', 'show', 'type', 'blackhole', `${toAddress}/32`]);
  if (stdout.trim() === '') return;
  await runTool('ip', ['-n', fromHost, 'route', 'del', 'blackhole', `${toAddress}/32`]);
}
