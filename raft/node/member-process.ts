/**
 * The process shell every member binary shares: open the Raft storage and
 * the application's state machine under one data folder, start a RaftNode
 * with a GrpcTransport, stop gracefully on SIGTERM/SIGINT within a deadline,
 * announce readiness on stdout, and exit with the agreed codes
 * (2 = bad configuration, 1 = failed to start, 70 = fatal at run time,
 * 0 = stopped by a signal after handing leadership over).
 * Owns process wiring only; must never hold Raft or application logic.
 */
import * as http from 'node:http';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { LevelRaftStorage } from '../storage/level-storage';
import { GrpcTransport } from '../transport/grpc-transport';
import { StateMachine } from './interfaces';
import { RaftLogger, stderrLogger } from './node-logger';
import { RaftNode } from './raft-node';
import { ServerConfig } from './server-config';

export const EXIT_BAD_CONFIG = 2;
export const EXIT_START_FAILED = 1;
export const EXIT_FATAL = 70;
/** A stop that hangs (e.g. a stuck fsync) must not keep the process forever. */
const STOP_DEADLINE_MS = 10_000;

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
    storage = await LevelRaftStorage.open(path.join(config.dataDir, 'raft'));
    machine = await openMachine(path.join(config.dataDir, machineFolder));
    const transport = new GrpcTransport({
      localId: config.id,
      listenAddress: config.listenAddress,
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

/** Serves the registry's metrics as Prometheus text on http://address/metrics. */
export function listenMetrics(address: string, registry: Registry): Promise<http.Server> {
  const separator = address.lastIndexOf(':');
  const host = address.slice(0, separator).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(separator + 1));
  const server = http.createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: Error) => response.writeHead(500).end(error.message),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
