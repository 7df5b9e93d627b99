/**
 * The metadata server process: RaftNode (LevelRaftStorage in DATA/raft,
 * GrpcTransport) replicating the MetaStateMachine (DATA/state), and the
 * metadata gRPC API (proto/metaserver.proto) on --client-listen.
 * Owns process wiring, exit codes (2 = bad configuration, 1 = failed to start,
 * 70 = fatal error at run time, 0 = stopped by SIGTERM/SIGINT, after handing
 * leadership over) and the readiness line on stdout. Must never hold Raft or
 * metadata logic itself.
 *
 *   node dist/metaserver/server/server-main.js --id m1 --listen 127.0.0.1:7001 --client-listen 127.0.0.1:8001 \
 *     --data /tmp/x/m1 --peers m1=127.0.0.1:7001,m2=... --clients m1=127.0.0.1:8001,m2=...
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { stderrLogger } from '../../raft/node/node-logger';
import { RaftNode } from '../../raft/node/raft-node';
import { ServerConfigError } from '../../raft/node/server-config';
import { LevelRaftStorage } from '../../raft/storage/level-storage';
import { GrpcTransport } from '../../raft/transport/grpc-transport';
import { MetaStateMachine } from '../state/meta-state-machine';
import { MetaServerConfig, parseMetaServerArgs } from './meta-server-config';
import { metaService } from './meta-proto';
import { MetaService } from './meta-service';

const EXIT_BAD_CONFIG = 2;
const EXIT_START_FAILED = 1;
const EXIT_FATAL = 70;
/** A stop that hangs (e.g. a stuck fsync) must not keep the process forever. */
const STOP_DEADLINE_MS = 10_000;
const REQUEST_TIMEOUT_MS = 5_000;
const MAX_SESSIONS = 100_000;
const MAX_EXPIRIES_PER_ROUND = 64;

function fail(code: number, message: string): never {
  process.stderr.write(`handlefs metaserver: ${message}\n`);
  process.exit(code);
}

async function run(config: MetaServerConfig): Promise<void> {
  const raftConfig = config.raft;
  const logger = stderrLogger(raftConfig.id, raftConfig.verbose);
  const registry = new Registry();
  let storage: LevelRaftStorage | undefined;
  let machine: MetaStateMachine | undefined;
  let node: RaftNode;
  try {
    storage = await LevelRaftStorage.open(path.join(raftConfig.dataDir, 'raft'));
    machine = await MetaStateMachine.open(path.join(raftConfig.dataDir, 'state'));
    const transport = new GrpcTransport({
      localId: raftConfig.id,
      listenAddress: raftConfig.listenAddress,
      registry,
      logger: { info: (line) => logger.info(line), warn: (line) => logger.warn(line) },
    });
    node = await RaftNode.start({
      config: { id: raftConfig.id, electionTicks: raftConfig.electionTicks, heartbeatTicks: raftConfig.heartbeatTicks },
      tickIntervalMs: raftConfig.tickIntervalMs,
      storage,
      transport,
      stateMachine: machine,
      bootstrapMembership: raftConfig.join ? undefined : { members: raftConfig.members },
      joinPeers: raftConfig.members,
      snapshotThresholdEntries: raftConfig.snapshotThresholdEntries,
      snapshotTrailingEntries: raftConfig.snapshotTrailingEntries,
      registry,
      logger,
      onFatalError: (error) => fail(EXIT_FATAL, `fatal: ${error.stack ?? error.message}`),
    });
  } catch (error) {
    await machine?.close().catch(() => {});
    await storage?.close().catch(() => {});
    fail(EXIT_START_FAILED, `could not start: ${(error as Error).message}`);
  }
  const state = machine;
  const service = new MetaService(node, state, {
    clientAddresses: config.clientAddresses,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    defaultSessionTtlMs: config.defaultSessionTtlMs,
    maxSessionTtlMs: config.maxSessionTtlMs,
    // Often enough that a session is expired within a quarter TTL of its deadline; never busier than 10 rounds/s.
    expiryIntervalMs: Math.max(100, Math.min(1_000, Math.floor(config.defaultSessionTtlMs / 4))),
    maxExpiriesPerRound: MAX_EXPIRIES_PER_ROUND,
    maxSessions: MAX_SESSIONS,
    wallClockMs: () => Date.now(),
    monotonicMs: () => performance.now(),
    logger,
  });
  const server = new grpc.Server({ 'grpc.max_concurrent_streams': 1024 });
  server.addService(metaService, service.implementation());
  let clientPort: number;
  try {
    clientPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(config.clientListenAddress, grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)));
    });
  } catch (error) {
    await node.stop({ graceful: false }).catch(() => {});
    await state.close().catch(() => {});
    fail(EXIT_START_FAILED, `could not listen on --client-listen ${config.clientListenAddress}: ${(error as Error).message}`);
  }
  service.start();

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    setTimeout(() => fail(EXIT_FATAL, `stop did not finish within ${STOP_DEADLINE_MS} ms`), STOP_DEADLINE_MS).unref();
    void (async () => {
      service.stop();
      // Graceful: the leader hands leadership over first, so clients wait one round trip, not an election.
      await node.stop({ graceful: true });
      server.forceShutdown();
      await state.close();
      process.exit(0);
    })().catch((error: Error) => fail(EXIT_FATAL, `stop failed: ${error.message}`));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // One line on stdout tells a parent process the member is up and where.
  process.stdout.write(JSON.stringify({ event: 'ready', id: raftConfig.id, raftAddress: raftConfig.listenAddress, clientPort, pid: process.pid }) + '\n');
}

function main(): void {
  let config: MetaServerConfig;
  try {
    config = parseMetaServerArgs(process.argv.slice(2));
    if (config.raft.metricsListenAddress) throw new ServerConfigError('--metrics-listen is not supported by the metadata server yet');
  } catch (error) {
    if (error instanceof ServerConfigError) fail(EXIT_BAD_CONFIG, error.message);
    throw error;
  }
  run(config).catch((error: Error) => fail(EXIT_START_FAILED, error.stack ?? error.message));
}

main();
