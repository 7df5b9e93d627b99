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
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { EXIT_BAD_CONFIG, EXIT_START_FAILED, Fail, announceReady, failWith, listenMetrics, startMember, stopOnSignals } from '../../raft/node/member-process';
import { ServerConfigError } from '../../raft/node/server-config';
import { MetaStateMachine } from '../state/meta-state-machine';
import { MetaServerConfig, parseMetaServerArgs } from './meta-server-config';
import { metaService } from './meta-proto';
import { MetaService } from './meta-service';

const REQUEST_TIMEOUT_MS = 5_000;
const MAX_SESSIONS = 100_000;
const MAX_EXPIRIES_PER_ROUND = 64;

const fail: Fail = failWith('handlefs metaserver');

async function run(config: MetaServerConfig): Promise<void> {
  const raftConfig = config.raft;
  const { node, machine: state, logger, registry } = await startMember(raftConfig, 'state', (dir) => MetaStateMachine.open(dir), fail);
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
  const metrics = raftConfig.metricsListenAddress ? await listenMetrics(raftConfig.metricsListenAddress, registry, () => node.status()) : undefined;

  stopOnSignals(logger, fail, async () => {
    service.stop();
    // Graceful: the leader hands leadership over first, so clients wait one round trip, not an election.
    await node.stop({ graceful: true });
    server.forceShutdown();
    metrics?.close();
    await state.close();
  });
  announceReady({ id: raftConfig.id, raftAddress: raftConfig.listenAddress, clientPort });
}

/**
 * Parses argv (the flags only, no program name) and starts the server; the
 * process then runs until SIGTERM/SIGINT. `handlefs server` calls this too.
 */
export function runMetaServer(argv: readonly string[]): void {
  let config: MetaServerConfig;
  try {
    config = parseMetaServerArgs(argv);
  } catch (error) {
    if (error instanceof ServerConfigError) fail(EXIT_BAD_CONFIG, error.message);
    throw error;
  }
  run(config).catch((error: Error) => fail(EXIT_START_FAILED, error.stack ?? error.message));
}

// Run as `node dist/metaserver/server/server-main.js ...`; imported (by bin/cli.ts) it waits to be called.
if (require.main === module) runMetaServer(process.argv.slice(2));
