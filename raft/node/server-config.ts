/**
 * Command-line configuration of the kvtest server (server-main.ts): parsing
 * and validation that names the bad flag, member or folder.
 * Owns: turning argv into a checked ServerConfig. Must never open sockets or
 * databases (it only checks that the data folder can be used).
 */
import * as fs from 'node:fs';
import { Member } from '../core/types';
import { parseHostPort } from '../transport/options';
import type { TlsMaterial } from '../../proto/tls';

export class ServerConfigError extends Error {
  readonly code = 'SERVER_CONFIG';
  constructor(problem: string) {
    super(`bad configuration: ${problem}`);
  }
}

export interface ServerConfig {
  id: string;
  /** Where this member's Raft transport listens. */
  listenAddress: string;
  dataDir: string;
  /** Every voter of a new cluster, this member included (used only when the data folder is empty). */
  members: Member[];
  /** Where the kvtest client API listens; none if absent. */
  clientListenAddress?: string;
  /** Where Prometheus can scrape /metrics; none if absent. */
  metricsListenAddress?: string;
  tickIntervalMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  snapshotThresholdEntries: number;
  snapshotTrailingEntries: number;
  /** A new member of an existing cluster: bootstrap nothing, reach the --peers until the leader adds it. */
  join: boolean;
  verbose: boolean;
  /** Mutual TLS on the Raft transport (set by the metaserver's --tls-* flags; parseServerArgs never sets it). */
  tls?: TlsMaterial;
  /** debug-unsafe (--debug-fsync-delay-ms): every synced Raft storage write waits this long first (a slow disk on purpose). */
  debugFsyncDelayMs?: number;
  /** debug-unsafe (--debug-fsync-delay-file): the delay is the integer in this file, re-read every second (absent or empty: --debug-fsync-delay-ms, else 0). */
  debugFsyncDelayFile?: string;
}

/** The environment variable without which no debug-unsafe flag is accepted. */
export const DEBUG_UNSAFE_ENV = 'HANDLEFS_DEBUG_UNSAFE';
/** The largest injected fsync delay: a slow disk, not a dead one. */
export const MAX_DEBUG_FSYNC_DELAY_MS = 60_000;

/**
 * debug-unsafe: fault switches for the chaos tests' own tests are refused
 * unless HANDLEFS_DEBUG_UNSAFE=1, so no production command line can carry one by accident.
 */
export function requireDebugUnsafeEnv(flag: string, why = 'it makes the cluster lose or corrupt data on purpose'): void {
  if (process.env[DEBUG_UNSAFE_ENV] !== '1') throw new ServerConfigError(`${flag} needs ${DEBUG_UNSAFE_ENV}=1: ${why}`);
}

export const USAGE = `usage: node dist/raft/node/server-main.js --id ID --listen HOST:PORT --data DIR --peers ID=HOST:PORT,...
  [--client-listen HOST:PORT] [--metrics-listen HOST:PORT] [--tick-ms 50] [--election-ticks 10] [--heartbeat-ticks 1]
  [--snapshot-entries 10000] [--snapshot-trailing-entries 1000] [--join] [--verbose]
  [--debug-fsync-delay-ms N] [--debug-fsync-delay-file FILE] (debug-unsafe: only with HANDLEFS_DEBUG_UNSAFE=1)`;

const VALUE_FLAGS = new Set([
  '--id', '--listen', '--data', '--peers', '--client-listen', '--metrics-listen', '--tick-ms', '--election-ticks',
  '--heartbeat-ticks', '--snapshot-entries', '--snapshot-trailing-entries', '--debug-fsync-delay-ms', '--debug-fsync-delay-file',
]);
const BOOLEAN_FLAGS = new Set(['--verbose', '--join']);
const MAX_MEMBERS = 64;

function checkAddress(flag: string, value: string, allowPortZero: boolean): string {
  try {
    parseHostPort(value, allowPortZero);
  } catch (error) {
    throw new ServerConfigError(`${flag}: ${(error as Error).message}`);
  }
  return value;
}

function integerFlag(flag: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min || parsed > max) throw new ServerConfigError(`${flag} must be an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
  return parsed;
}

function parsePeers(value: string): Member[] {
  const members: Member[] = [];
  const seenAddresses = new Map<string, string>();
  for (const item of value.split(',')) {
    const separator = item.indexOf('=');
    if (separator <= 0) throw new ServerConfigError(`--peers: ${JSON.stringify(item)} is not ID=HOST:PORT`);
    const id = item.slice(0, separator).trim();
    const address = checkAddress(`--peers (member ${id})`, item.slice(separator + 1).trim(), false);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) throw new ServerConfigError(`--peers: member id ${JSON.stringify(id)} must be 1..64 letters, digits, '.', '_' or '-'`);
    if (members.some((m) => m.id === id)) throw new ServerConfigError(`--peers: duplicate member id ${id}`);
    const other = seenAddresses.get(address);
    if (other) throw new ServerConfigError(`--peers: members ${other} and ${id} share the address ${address}`);
    seenAddresses.set(address, id);
    members.push({ id, address, role: 'voter' });
  }
  if (members.length > MAX_MEMBERS) throw new ServerConfigError(`--peers: at most ${MAX_MEMBERS} members, got ${members.length}`);
  return members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Creates the data folder if needed and checks it is a folder this process can read and write. */
function checkDataDir(dataDir: string): string {
  if (fs.existsSync(dataDir) && !fs.statSync(dataDir).isDirectory()) throw new ServerConfigError(`--data: ${dataDir} exists but is not a folder`);
  try {
    fs.mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    throw new ServerConfigError(`--data: cannot create the data folder ${dataDir} (${(error as Error).message})`);
  }
  const stat = fs.statSync(dataDir);
  if (!stat.isDirectory()) throw new ServerConfigError(`--data: ${dataDir} exists but is not a folder`);
  try {
    fs.accessSync(dataDir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new ServerConfigError(`--data: the data folder ${dataDir} is not readable and writable by this process`);
  }
  return dataDir;
}

export function parseServerArgs(argv: readonly string[]): ServerConfig {
  const values = new Map<string, string>();
  const booleans = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const equals = arg.indexOf('=');
    const flag = arg.startsWith('--') && equals > 0 ? arg.slice(0, equals) : arg;
    if (BOOLEAN_FLAGS.has(flag)) { booleans.add(flag); continue; }
    if (!VALUE_FLAGS.has(flag)) throw new ServerConfigError(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
    const value = flag !== arg ? arg.slice(equals + 1) : argv[++i];
    if (value === undefined || value.startsWith('--')) throw new ServerConfigError(`${flag} needs a value\n${USAGE}`);
    if (values.has(flag)) throw new ServerConfigError(`${flag} given twice`);
    values.set(flag, value);
  }
  for (const required of ['--id', '--listen', '--data', '--peers']) {
    if (!values.has(required)) throw new ServerConfigError(`${required} is required\n${USAGE}`);
  }
  const id = values.get('--id')!;
  const members = parsePeers(values.get('--peers')!);
  if (!members.some((m) => m.id === id)) throw new ServerConfigError(`--id ${id} is not one of the --peers (${members.map((m) => m.id).join(', ')})`);
  const listenAddress = checkAddress('--listen', values.get('--listen')!, false);
  const clientListen = values.get('--client-listen');
  const metricsListen = values.get('--metrics-listen');
  const electionTicks = integerFlag('--election-ticks', values.get('--election-ticks'), 10, 2, 1000);
  const heartbeatTicks = integerFlag('--heartbeat-ticks', values.get('--heartbeat-ticks'), 1, 1, 999);
  if (heartbeatTicks >= electionTicks) throw new ServerConfigError(`--heartbeat-ticks (${heartbeatTicks}) must be less than --election-ticks (${electionTicks})`);
  // debug-unsafe: the slow-disk hook for the chaos tests.
  for (const flag of ['--debug-fsync-delay-ms', '--debug-fsync-delay-file']) {
    if (values.has(flag)) requireDebugUnsafeEnv(flag, 'it slows every Raft write down on purpose (a chaos-test fault)');
  }
  const debugFsyncDelayFile = values.get('--debug-fsync-delay-file');
  if (debugFsyncDelayFile === '') throw new ServerConfigError('--debug-fsync-delay-file needs a file path');
  return {
    id,
    listenAddress,
    dataDir: checkDataDir(values.get('--data')!),
    members,
    clientListenAddress: clientListen === undefined ? undefined : checkAddress('--client-listen', clientListen, true),
    metricsListenAddress: metricsListen === undefined ? undefined : checkAddress('--metrics-listen', metricsListen, true),
    tickIntervalMs: integerFlag('--tick-ms', values.get('--tick-ms'), 50, 1, 10_000),
    electionTicks,
    heartbeatTicks,
    snapshotThresholdEntries: integerFlag('--snapshot-entries', values.get('--snapshot-entries'), 10_000, 1, 1e9),
    snapshotTrailingEntries: integerFlag('--snapshot-trailing-entries', values.get('--snapshot-trailing-entries'), 1_000, 0, 1e9),
    join: booleans.has('--join'),
    verbose: booleans.has('--verbose'),
    ...(values.has('--debug-fsync-delay-ms') ? { debugFsyncDelayMs: integerFlag('--debug-fsync-delay-ms', values.get('--debug-fsync-delay-ms'), 0, 0, MAX_DEBUG_FSYNC_DELAY_MS) } : {}),
    ...(debugFsyncDelayFile !== undefined ? { debugFsyncDelayFile } : {}),
  };
}
