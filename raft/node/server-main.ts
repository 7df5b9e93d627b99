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
import * as http from 'node:http';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { LevelRaftStorage } from '../storage/level-storage';
import { GrpcTransport } from '../transport/grpc-transport';
import { KvStateMachine } from './kv-state-machine';
import { kvServiceImplementation } from './kv-service';
import { kvTestService } from './kvtest-proto';
import { stderrLogger } from './node-logger';
import { RaftNode } from './raft-node';
import { ServerConfig, ServerConfigError, parseServerArgs } from './server-config';

const EXIT_BAD_CONFIG = 2;
const EXIT_START_FAILED = 1;
const EXIT_FATAL = 70;
/** A stop that hangs (e.g. a stuck fsync) must not keep the process forever. */
const STOP_DEADLINE_MS = 10_000;

function fail(code: number, message: string): never {
  process.stderr.write(`raft kvtest server: ${message}\n`);
  process.exit(code);
}

async function listenClientApi(address: string, node: RaftNode, kv: KvStateMachine): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server({ 'grpc.max_concurrent_streams': 1024 });
  server.addService(kvTestService, kvServiceImplementation(node, kv));
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
  });
  return { server, port };
}

function listenMetrics(address: string, registry: Registry): Promise<http.Server> {
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

async function run(config: ServerConfig): Promise<void> {
  const logger = stderrLogger(config.id, config.verbose);
  const registry = new Registry();
  let storage: LevelRaftStorage | undefined;
  let kv: KvStateMachine | undefined;
  let node: RaftNode;
  try {
    storage = await LevelRaftStorage.open(path.join(config.dataDir, 'raft'));
    kv = await KvStateMachine.open(path.join(config.dataDir, 'kv'));
    const transport = new GrpcTransport({
      localId: config.id,
      listenAddress: config.listenAddress,
      registry,
      logger: { info: (line) => logger.info(line), warn: (line) => logger.warn(line) },
    });
    node = await RaftNode.start({
      config: { id: config.id, electionTicks: config.electionTicks, heartbeatTicks: config.heartbeatTicks },
      tickIntervalMs: config.tickIntervalMs,
      storage,
      transport,
      stateMachine: kv,
      bootstrapMembership: config.join ? undefined : { members: config.members },
      joinPeers: config.members,
      snapshotThresholdEntries: config.snapshotThresholdEntries,
      snapshotTrailingEntries: config.snapshotTrailingEntries,
      registry,
      logger,
      onFatalError: (error) => fail(EXIT_FATAL, `fatal: ${error.stack ?? error.message}`),
    });
  } catch (error) {
    await kv?.close().catch(() => {});
    await storage?.close().catch(() => {});
    fail(EXIT_START_FAILED, `could not start: ${(error as Error).message}`);
  }
  const machine = kv;
  const client = config.clientListenAddress ? await listenClientApi(config.clientListenAddress, node, machine) : undefined;
  const metrics = config.metricsListenAddress ? await listenMetrics(config.metricsListenAddress, registry) : undefined;

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    setTimeout(() => fail(EXIT_FATAL, `stop did not finish within ${STOP_DEADLINE_MS} ms`), STOP_DEADLINE_MS).unref();
    void (async () => {
      await node.stop({ graceful: true });
      client?.server.forceShutdown();
      metrics?.close();
      await machine.close();
      process.exit(0);
    })().catch((error: Error) => fail(EXIT_FATAL, `stop failed: ${error.message}`));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // One line on stdout tells a parent process the member is up and where.
  process.stdout.write(JSON.stringify({ event: 'ready', id: config.id, raftAddress: config.listenAddress, clientPort: client?.port ?? 0, pid: process.pid }) + '\n');
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
