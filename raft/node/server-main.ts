/**
 * A process entry that runs one member of a kvtest cluster: RaftNode with
 * LevelRaftStorage + GrpcTransport + the KV state machine, and the kvtest
 * client API, so tests and the bench can drive real processes.
 * Owns: process wiring, exit codes (2 = bad configuration, 1 = failed to
 * start, 70 = fatal error at run time, 0 = stopped by SIGTERM/SIGINT) and the
 * readiness line on stdout. Must never hold Raft or KV logic itself.
 *
 *   node dist/raft/node/server-main.js --id m1 --listen 127.0.0.1:7001 --data /tmp/x/m1 \
 *     --peers m1=127.0.0.1:7001,m2=127.0.0.1:7002,m3=127.0.0.1:7003 [--client-listen 127.0.0.1:8001]
 */
import * as grpc from '@grpc/grpc-js';
import { KvStateMachine } from './kv-state-machine';
import { kvServiceImplementation } from './kv-service';
import { kvTestService } from './kvtest-proto';
import { EXIT_BAD_CONFIG, EXIT_START_FAILED, Fail, announceReady, failWith, listenMetrics, startMember, stopOnSignals } from './member-process';
import { RaftNode } from './raft-node';
import { ServerConfig, ServerConfigError, parseServerArgs } from './server-config';

const fail: Fail = failWith('raft kvtest server');

async function listenClientApi(address: string, node: RaftNode, kv: KvStateMachine): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server({ 'grpc.max_concurrent_streams': 1024 });
  server.addService(kvTestService, kvServiceImplementation(node, kv));
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
  });
  return { server, port };
}

async function run(config: ServerConfig): Promise<void> {
  const { node, machine, registry, logger } = await startMember(config, 'kv', (dir) => KvStateMachine.open(dir), fail);
  const client = config.clientListenAddress ? await listenClientApi(config.clientListenAddress, node, machine) : undefined;
  const metrics = config.metricsListenAddress ? await listenMetrics(config.metricsListenAddress, registry) : undefined;
  stopOnSignals(logger, fail, async () => {
    await node.stop({ graceful: true });
    client?.server.forceShutdown();
    metrics?.close();
    await machine.close();
  });
  announceReady({ id: config.id, raftAddress: config.listenAddress, clientPort: client?.port ?? 0 });
}

function main(): void {
  let config: ServerConfig;
  try {
    config = parseServerArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof ServerConfigError) fail(EXIT_BAD_CONFIG, error.message);
    throw error;
  }
  run(config).catch((error: Error) => fail(EXIT_START_FAILED, error.stack ?? error.message));
}

main();
