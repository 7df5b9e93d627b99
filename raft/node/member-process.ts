/**
 * The process shell every member binary shares: open the Raft storage and
 * the application's state machine under one data folder, start a RaftNode
 * with a GrpcTransport, stop gracefully on SIGTERM/SIGINT within a deadline,
 * announce readiness on stdout, and exit with the agreed codes
 * (2 = bad configuration, 1 = failed to start, 70 = fatal at run time,
 * 0 = stopped by a signal after handing leadership over), and the HTTP port
 * (/metrics, /healthz, /readyz, /status) operators and `handlefs cluster` poll.
 * Owns process wiring only; must never hold Raft or application logic.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { LevelRaftStorage } from '../storage/level-storage';
import { GrpcTransport } from '../transport/grpc-transport';
import { StateMachine } from './interfaces';
import { RaftLogger, stderrLogger } from './node-logger';
import { RaftNode, RaftNodeStatus } from './raft-node';
import { MAX_DEBUG_FSYNC_DELAY_MS, ServerConfig } from './server-config';

export const EXIT_BAD_CONFIG = 2;
export const EXIT_START_FAILED = 1;
export const EXIT_FATAL = 70;
/** A stop that hangs (e.g. a stuck fsync) must not keep the process forever. */
const STOP_DEADLINE_MS = 10_000;
/** debug-unsafe: how often --debug-fsync-delay-file is read again. */
const DEBUG_FSYNC_DELAY_FILE_POLL_MS = 1_000;

/**
 * debug-unsafe (the chaos slow-disk nemesis): the delay every synced Raft
 * storage write waits first, from --debug-fsync-delay-ms and, when given,
 * --debug-fsync-delay-file (an integer of ms, read again every second, so a
 * nemesis turns the slow disk on and off without a restart, and a member
 * restarted meanwhile picks up the current value). Undefined without either flag.
 */
function debugFsyncDelay(config: ServerConfig, logger: RaftLogger): (() => number) | undefined {
  const { debugFsyncDelayMs: fixedMs, debugFsyncDelayFile: file } = config;
  if (fixedMs === undefined && file === undefined) return undefined;
  let delayMs = fixedMs ?? 0;
  const announce = () => logger.warn('DEBUG-UNSAFE: every Raft storage write is delayed on purpose (slow disk)', { delayMs, file });
  const readFile = (quiet: boolean) => {
    if (file === undefined) return;
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8').trim();
    } catch {
      // Absent: the flag's value (or none).
    }
    const next = text === '' ? fixedMs ?? 0 : Number(text);
    if (!Number.isInteger(next) || next < 0 || next > MAX_DEBUG_FSYNC_DELAY_MS) {
      logger.warn('DEBUG-UNSAFE: --debug-fsync-delay-file does not hold an integer of ms; the delay is unchanged', { file, text: text.slice(0, 32), delayMs });
      return;
    }
    if (next !== delayMs) {
      delayMs = next;
      if (!quiet) announce();
    }
  };
  readFile(true);
  announce();
  if (file !== undefined) setInterval(() => readFile(false), DEBUG_FSYNC_DELAY_FILE_POLL_MS).unref();
  return () => delayMs;
}

export type Fail = (code: number, message: string) => never;

/** A fail() that names the program on stderr and exits. */
export function failWith(programName: string): Fail {
  return (code, message) => {
    process.stderr.write(`${programName}: ${message}\n`);
    process.exit(code);
  };
}

export interface ClosableStateMachine extends StateMachine {
  close(): Promise<void>;
}

export interface StartedMember<M extends ClosableStateMachine> {
  node: RaftNode;
  machine: M;
  registry: Registry;
  logger: RaftLogger;
}

/**
 * Opens DATA/raft and DATA/<machineFolder>, starts the node; on any failure
 * closes what it opened and exits EXIT_START_FAILED.
 */
export async function startMember<M extends ClosableStateMachine>(
  config: ServerConfig,
  machineFolder: string,
  openMachine: (dir: string) => Promise<M>,
  fail: Fail,
): Promise<StartedMember<M>> {
  const logger = stderrLogger(config.id, config.verbose);
  const registry = new Registry();
  let storage: LevelRaftStorage | undefined;
  let machine: M | undefined;
  try {
    const debugWriteDelayMs = debugFsyncDelay(config, logger); // debug-unsafe: undefined unless a --debug-fsync-delay-* flag was given
    storage = await LevelRaftStorage.open(path.join(config.dataDir, 'raft'), debugWriteDelayMs ? { debugWriteDelayMs } : {});
    machine = await openMachine(path.join(config.dataDir, machineFolder));
    const transport = new GrpcTransport({
      localId: config.id,
      listenAddress: config.listenAddress,
      tls: config.tls,
      registry,
      logger: { info: (line) => logger.info(line), warn: (line) => logger.warn(line) },
    });
    const node = await RaftNode.start({
      config: { id: config.id, electionTicks: config.electionTicks, heartbeatTicks: config.heartbeatTicks },
      tickIntervalMs: config.tickIntervalMs,
      storage,
      transport,
      stateMachine: machine,
      bootstrapMembership: config.join ? undefined : { members: config.members },
      joinPeers: config.members,
      snapshotThresholdEntries: config.snapshotThresholdEntries,
      snapshotTrailingEntries: config.snapshotTrailingEntries,
      registry,
      logger,
      onFatalError: (error) => fail(EXIT_FATAL, `fatal: ${error.stack ?? error.message}`),
    });
    return { node, machine, registry, logger };
  } catch (error) {
    await machine?.close().catch(() => {});
    await storage?.close().catch(() => {});
    return fail(EXIT_START_FAILED, `could not start: ${(error as Error).message}`);
  }
}

/**
 * On SIGTERM or SIGINT: `stop` runs once (it should stop the node gracefully
 * and close what the process opened), then the process exits 0; a stop that
 * fails or outlasts STOP_DEADLINE_MS exits EXIT_FATAL.
 */
export function stopOnSignals(logger: RaftLogger, fail: Fail, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    setTimeout(() => fail(EXIT_FATAL, `stop did not finish within ${STOP_DEADLINE_MS} ms`), STOP_DEADLINE_MS).unref();
    stop().then(
      () => process.exit(0),
      (error: Error) => fail(EXIT_FATAL, `stop failed: ${error.message}`),
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

/** One line on stdout tells a parent process the member is up and where. */
export function announceReady(fields: { id: string; raftAddress: string; clientPort: number }): void {
  process.stdout.write(JSON.stringify({ event: 'ready', ...fields, pid: process.pid }) + '\n');
}

/** What /status reports: enough for an operator or a script to see who leads and how far each member got. */
export interface MemberStatusJson {
  id: string;
  role: string;
  term: number;
  leaderId: string;
  leaderAddress: string;
  members: { id: string; address: string; role: string }[];
  commitIndex: number;
  appliedIndex: number;
  pid: number;
}

export function memberStatusJson(status: RaftNodeStatus): MemberStatusJson {
  return {
    id: status.id,
    role: status.role,
    term: status.term,
    leaderId: status.leaderId,
    leaderAddress: status.leaderAddress,
    members: status.membership.members.map((m) => ({ id: m.id, address: m.address, role: m.role })),
    commitIndex: status.commit,
    appliedIndex: status.appliedIndex,
    pid: process.pid,
  };
}

/**
 * Ready = the member knows a leader and has applied everything it knows to be
 * committed, so a read it serves is not behind its own knowledge.
 */
export function isReady(status: RaftNodeStatus): boolean {
  return status.leaderId !== '' && status.appliedIndex >= status.commit;
}

function sendJson(response: http.ServerResponse, code: number, body: unknown): void {
  response.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
}

/**
 * Serves on http://address: /metrics (the registry as Prometheus text),
 * /healthz (200 while the process runs) and, given the node's status,
 * /readyz (200 when isReady, else 503) and /status (MemberStatusJson).
 */
export function listenMetrics(address: string, registry: Registry, status?: () => RaftNodeStatus): Promise<http.Server> {
  const separator = address.lastIndexOf(':');
  const host = address.slice(0, separator).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(separator + 1));
  const server = http.createServer((request, response) => {
    const route = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (route) {
      case '/metrics':
        registry.metrics().then(
          (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (error: Error) => response.writeHead(500).end(error.message),
        );
        return;
      case '/healthz':
        sendJson(response, 200, { ok: true });
        return;
      case '/readyz':
      case '/status': {
        if (!status) break;
        let current: RaftNodeStatus;
        try {
          current = status();
        } catch (error) {
          // A node that cannot report (e.g. stopped) is not ready; the process stays up to finish its stop.
          sendJson(response, 503, { ready: false, error: (error as Error).message });
          return;
        }
        if (route === '/status') sendJson(response, 200, memberStatusJson(current));
        else {
          const ready = isReady(current);
          sendJson(response, ready ? 200 : 503, { ready, leaderId: current.leaderId, commitIndex: current.commit, appliedIndex: current.appliedIndex });
        }
        return;
      }
    }
    response.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
