/**
 * Simulated hosts for tests and demos: N Linux network namespaces
 * (`${prefix}1..N`, files in /run/netns), each joined by a veth pair to one
 * bridge in the root namespace, each with its own address in 127.77.0.0/24.
 * Owns the naming and addressing plan, `hostsUp`, `hostsDown` (which also
 * cleans what a crashed run left) and `hostsStatus`.
 * Must never use an address outside 127.77.0.0/24, never change a global
 * setting of the root namespace, and never delete a namespace, link or bridge
 * whose name does not follow this plan.
 */
import * as fs from 'node:fs';
import { parseIpJson, runTool } from './tool';

export const NETNS_DIR = '/run/netns';
export const DEFAULT_PREFIX = 'hfs';
export const DEFAULT_BRIDGE = 'hfsbr0';
export const HOSTS_MAX = 32;
/** Inside every namespace the veth end has this name (namespaces keep link names apart). */
export const INNER_LINK = 'veth0';
const BRIDGE_ADDRESS = '127.77.0.1';
const SUBNET_PREFIX = '127.77.0.';
const SUBNET_BITS = 24;
/** Host i gets .(10 + i): .11, .12, ... .42; .1 is the bridge, the rest stay unused. */
const HOST_ADDRESS_OFFSET = 10;
/**
 * Linux link names are at most 15 bytes: prefix (≤ 8) + index (≤ 2) + "-v" fits. The prefix ends in a
 * letter so `hfs1` + 1 can never be mistaken for `hfs` + 11.
 */
const PREFIX_PATTERN = /^[a-z]([a-z0-9]{0,6}[a-z])?$/;
const BRIDGE_PATTERN = /^[a-z][a-z0-9]{0,14}$/;
/** Namespace deletion finishes asynchronously in the kernel; wait this long for its links to go. */
const SETTLE_TIMEOUT_MS = 5_000;
const SETTLE_POLL_MS = 50;

export interface HostsOptions {
  prefix?: string;
  bridge?: string;
}

export interface HostsUpOptions extends HostsOptions {
  count: number;
}

export interface HostInfo {
  /** The namespace name, also the argument of runIn/cutHost/blackhole. */
  name: string;
  index: number;
  address: string;
  /** The veth end in the root namespace, attached to the bridge; cutHost sets it down. */
  rootLink: string;
  netnsPath: string;
}

export interface HostsDownReport {
  removedNamespaces: string[];
  removedLinks: string[];
  removedBridge: boolean;
  /** Processes still inside a removed namespace keep it alive (nameless and cut off) until they exit. */
  busy: { name: string; pids: number[] }[];
}

export interface HostStatus {
  name: string;
  address: string | null;
  /** The root-side veth: 'up', 'down' (cut) or 'missing' (namespace without its link, e.g. a crashed run). */
  link: 'up' | 'down' | 'missing';
  pids: number[];
}

export interface HostsStatus {
  bridge: { name: string; present: boolean; up: boolean };
  hosts: HostStatus[];
}

interface IpLink {
  ifname: string;
  flags?: string[];
  master?: string;
  linkinfo?: { info_kind?: string };
}

interface IpAddress {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export function validatePrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix)) throw new Error(`host prefix must be 1-8 lowercase letters/digits, starting and ending with a letter, got ${JSON.stringify(prefix)}`);
}

export function validateBridge(bridge: string, prefix: string): void {
  if (!BRIDGE_PATTERN.test(bridge)) throw new Error(`bridge name must be 1-15 lowercase letters/digits starting with a letter, got ${JSON.stringify(bridge)}`);
  if (hostIndexOf(bridge, prefix) !== null || rootLinkIndexOf(bridge, prefix) !== null) throw new Error(`bridge name ${bridge} collides with the host names of prefix ${prefix}`);
}

export function hostName(prefix: string, index: number): string {
  return `${prefix}${index}`;
}

export function rootLinkName(host: string): string {
  return `${host}-v`;
}

export function hostAddressFor(index: number): string {
  if (!Number.isInteger(index) || index < 1 || index > HOSTS_MAX) throw new Error(`host index must be an integer in 1..${HOSTS_MAX}, got ${index}`);
  return `${SUBNET_PREFIX}${HOST_ADDRESS_OFFSET + index}`;
}

/** True for 127.77.0.1..254: the only addresses this module and faults.ts ever touch. */
export function isPlanAddress(address: string): boolean {
  if (!address.startsWith(SUBNET_PREFIX)) return false;
  const last = address.slice(SUBNET_PREFIX.length);
  if (!/^[0-9]{1,3}$/.test(last)) return false;
  const octet = Number(last);
  return octet >= 1 && octet <= 254 && String(octet) === last;
}

function hostIndexOf(name: string, prefix: string): number | null {
  const match = new RegExp(`^${prefix}([1-9][0-9]?)$`).exec(name);
  return match ? Number(match[1]) : null;
}

function rootLinkIndexOf(name: string, prefix: string): number | null {
  const match = new RegExp(`^${prefix}([1-9][0-9]?)-v$`).exec(name);
  return match ? Number(match[1]) : null;
}

function resolveOptions(options: HostsOptions): { prefix: string; bridge: string } {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const bridge = options.bridge ?? DEFAULT_BRIDGE;
  validatePrefix(prefix);
  validateBridge(bridge, prefix);
  return { prefix, bridge };
}

function hostInfo(prefix: string, index: number): HostInfo {
  const name = hostName(prefix, index);
  return { name, index, address: hostAddressFor(index), rootLink: rootLinkName(name), netnsPath: `${NETNS_DIR}/${name}` };
}

/** Namespaces of this prefix, read from /run/netns (also finds unmounted leftovers `ip netns list` may skip). */
function listNamespaces(prefix: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(NETNS_DIR);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read ${NETNS_DIR}: ${(error as Error).message}`);
  }
  return entries.filter((name) => hostIndexOf(name, prefix) !== null).sort((a, b) => hostIndexOf(a, prefix)! - hostIndexOf(b, prefix)!);
}

async function listLinks(type: 'veth' | 'bridge'): Promise<IpLink[]> {
  const args = ['-j', '-d', 'link', 'show', 'type', type];
  const { stdout } = await runTool('ip', args);
  return parseIpJson<IpLink>(stdout, `ip ${args.join(' ')}`);
}

async function listRootLinks(prefix: string): Promise<IpLink[]> {
  return (await listLinks('veth')).filter((link) => rootLinkIndexOf(link.ifname, prefix) !== null);
}

async function findBridge(bridge: string): Promise<IpLink | null> {
  return (await listLinks('bridge')).find((link) => link.ifname === bridge) ?? null;
}

async function namespacePids(name: string): Promise<number[]> {
  try {
    const { stdout } = await runTool('ip', ['netns', 'pids', name]);
    return stdout.split('\n').filter((line) => line.trim() !== '').map(Number).filter((pid) => Number.isInteger(pid) && pid > 0);
  } catch {
    // An unmounted leftover file has no namespace and so no processes.
    return [];
  }
}

async function setSysctl(host: string | null, key: string): Promise<void> {
  const args = ['-w', `${key}=1`];
  if (host === null) await runTool('sysctl', args);
  else await runTool('nsenter', [`--net=${NETNS_DIR}/${host}`, '--', 'sysctl', ...args]);
}

async function createHost(host: HostInfo, bridge: string): Promise<void> {
  const ns = ['-n', host.name];
  await runTool('ip', ['netns', 'add', host.name]);
  // The inner end is created directly inside the namespace, so a crash never leaves it in the root namespace.
  await runTool('ip', ['link', 'add', host.rootLink, 'type', 'veth', 'peer', 'name', INNER_LINK, 'netns', host.name]);
  await runTool('ip', ['link', 'set', host.rootLink, 'master', bridge]);
  await runTool('ip', ['link', 'set', host.rootLink, 'up']);
  // Bringing lo up adds 127.0.0.1/8, which would claim all of 127/8 as local; only 127.0.0.1 itself stays local
  // so 127.77.0.x routes out through the veth.
  await runTool('ip', [...ns, 'link', 'set', 'lo', 'up']);
  await runTool('ip', [...ns, 'addr', 'del', '127.0.0.1/8', 'dev', 'lo']);
  await runTool('ip', [...ns, 'addr', 'add', '127.0.0.1/32', 'dev', 'lo']);
  // Without route_localnet the kernel drops 127/8 sources and destinations on a non-loopback link as martians.
  await setSysctl(host.name, 'net.ipv4.conf.all.route_localnet');
  await setSysctl(host.name, `net.ipv4.conf.${INNER_LINK}.route_localnet`);
  await runTool('ip', [...ns, 'addr', 'add', `${host.address}/${SUBNET_BITS}`, 'dev', INNER_LINK]);
  await runTool('ip', [...ns, 'link', 'set', INNER_LINK, 'up']);
}

/**
 * Creates `count` hosts and the bridge. Not idempotent by design: if any host
 * of this prefix or the bridge already exists it throws without changing
 * anything (a silent "already up" could hide a different count or a crashed
 * half-built run; `hostsDown` first). A failure half way removes what it made.
 */
export async function hostsUp(options: HostsUpOptions): Promise<HostInfo[]> {
  const { prefix, bridge } = resolveOptions(options);
  const { count } = options;
  if (!Number.isInteger(count) || count < 1 || count > HOSTS_MAX) throw new Error(`host count must be an integer in 1..${HOSTS_MAX}, got ${count}`);
  const existing = [...listNamespaces(prefix), ...(await listRootLinks(prefix)).map((link) => link.ifname)];
  if ((await listAllLinks()).some((link) => link.ifname === bridge)) existing.push(`link ${bridge}`);
  if (existing.length > 0) {
    throw new Error(`hosts with prefix ${prefix} are already (partly) up: ${existing.join(', ')}; run \`hostsDown\` (\`handlefs hosts down\`) first`);
  }
  const hosts = Array.from({ length: count }, (_, i) => hostInfo(prefix, i + 1));
  try {
    await runTool('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await runTool('ip', ['addr', 'add', `${BRIDGE_ADDRESS}/${SUBNET_BITS}`, 'dev', bridge]);
    // Per device only: the root namespace's `all` setting stays as it was.
    await setSysctl(null, `net.ipv4.conf.${bridge}.route_localnet`);
    await runTool('ip', ['link', 'set', bridge, 'up']);
    for (const host of hosts) await createHost(host, bridge);
  } catch (error) {
    try {
      await hostsDown({ prefix, bridge });
    } catch (cleanupError) {
      throw new Error(`${(error as Error).message}; cleaning up after it also failed: ${(cleanupError as Error).message}`);
    }
    throw error;
  }
  return hosts;
}

/**
 * Removes every host of this prefix, its root-side links and the bridge:
 * what hostsUp made and whatever a crashed run left. Idempotent; throws if
 * something of the plan is still there afterwards or if the bridge holds a
 * port that is not one of this prefix's links (it is then not ours to delete).
 */
export async function hostsDown(options: HostsOptions = {}): Promise<HostsDownReport> {
  const { prefix, bridge } = resolveOptions(options);
  const report: HostsDownReport = { removedNamespaces: [], removedLinks: [], removedBridge: false, busy: [] };
  // Links first: deleting one end removes both at once, while a namespace's links go away
  // asynchronously after `ip netns del`, and never while a process still holds the namespace.
  for (const link of await listRootLinks(prefix)) {
    await runTool('ip', ['link', 'del', link.ifname]);
    report.removedLinks.push(link.ifname);
  }
  for (const name of listNamespaces(prefix)) {
    const pids = await namespacePids(name);
    if (pids.length > 0) report.busy.push({ name, pids });
    await runTool('ip', ['netns', 'del', name]);
    report.removedNamespaces.push(name);
  }
  const found = await findBridge(bridge);
  if (found !== null) {
    const foreign = (await listAllLinks()).filter((link) => link.master === bridge && rootLinkIndexOf(link.ifname, prefix) === null);
    if (foreign.length > 0) throw new Error(`bridge ${bridge} still has ports that are not hosts of prefix ${prefix} (${foreign.map((l) => l.ifname).join(', ')}); not deleting it`);
    await runTool('ip', ['link', 'del', bridge]);
    report.removedBridge = true;
  }
  await waitUntilGone(prefix, bridge);
  return report;
}

async function listAllLinks(): Promise<IpLink[]> {
  const args = ['-j', 'link', 'show'];
  const { stdout } = await runTool('ip', args);
  return parseIpJson<IpLink>(stdout, `ip ${args.join(' ')}`);
}

async function waitUntilGone(prefix: string, bridge: string): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const left = [...listNamespaces(prefix), ...(await listRootLinks(prefix)).map((link) => link.ifname)];
    if ((await findBridge(bridge)) !== null) left.push(`bridge ${bridge}`);
    if (left.length === 0) return;
    if (Date.now() >= deadline) throw new Error(`after hosts down, still present after ${SETTLE_TIMEOUT_MS} ms: ${left.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
  }
}

/** The address the namespace's veth really has (null when it has none, e.g. a half-built leftover). */
export async function readHostAddress(host: string): Promise<string | null> {
  const args = ['-n', host, '-j', '-4', 'addr', 'show', 'dev', INNER_LINK];
  let stdout: string;
  try {
    ({ stdout } = await runTool('ip', args));
  } catch {
    return null;
  }
  const entries = parseIpJson<IpAddress>(stdout, `ip ${args.join(' ')}`);
  const local = entries[0]?.addr_info?.find((info) => info.family === 'inet')?.local;
  return local ?? null;
}

export async function hostsStatus(options: HostsOptions = {}): Promise<HostsStatus> {
  const { prefix, bridge } = resolveOptions(options);
  const found = await findBridge(bridge);
  const links = new Map((await listRootLinks(prefix)).map((link) => [link.ifname, link]));
  const hosts: HostStatus[] = [];
  for (const name of listNamespaces(prefix)) {
    const link = links.get(rootLinkName(name));
    hosts.push({
      name,
      address: await readHostAddress(name),
      link: link === undefined ? 'missing' : link.flags?.includes('UP') ? 'up' : 'down',
      pids: await namespacePids(name),
    });
  }
  return { bridge: { name: bridge, present: found !== null, up: found?.flags?.includes('UP') ?? false }, hosts };
}
