/**
 * The metadata server process: RaftNode (LevelRaftStorage in DATA/raft,
 * GrpcTransport) replicating the MetaStateMachine (DATA/state), the block
 * store (DATA/blocks), and on --client-listen the metadata gRPC API
 * (proto/metaserver.proto) beside the members' BlockPeer service
 * (proto/blocks.proto); metrics on --metrics-listen.
 * Owns process wiring, exit codes (2 = bad configuration, 1 = failed to start,
 * 70 = fatal error at run time, 0 = stopped by SIGTERM/SIGINT, after handing
 * leadership over) and the readiness line on stdout. Must never hold Raft or
 * metadata logic itself.
 *
 *   node dist/metaserver/server/server-main.js --id m1 --listen 127.0.0.1:7001 --client-listen 127.0.0.1:8001 \
 *     --data /tmp/x/m1 --peers m1=127.0.0.1:7001,m2=... --clients m1=127.0.0.1:8001,m2=...
 */
import { performance } from 'node:perf_hooks';
import { widenServerFlowWindows } from '../../proto/flow-control';
import { EXIT_BAD_CONFIG, EXIT_START_FAILED, Fail, announceReady, failWith, listenMetrics, startMember, stopOnSignals } from '../../raft/node/member-process';
import { ServerConfigError } from '../../raft/node/server-config';
import { RaftLogger } from '../../raft/node/node-logger';
import { RaftNode } from '../../raft/node/raft-node';
import * as path from 'node:path';
import { BlockStore } from '../blocks/block-store';
import { MetaStateMachine } from '../state/meta-state-machine';
import { BlockAccess } from './block-access';
import { argsFromConfigFile } from './config-file';
import { LeaderDuties } from './leader-duties';
import { MetaMetrics, instrumentHandlers } from './meta-metrics';
import { MetaServerConfig, parseMetaServerArgs } from './meta-server-config';
import { metaService } from '../../proto/meta-proto';
import { MetaService } from './meta-service';
import { adminService } from '../../proto/admin-proto';
import { AdminService } from './admin-service';
import { FsckAdmin } from './fsck-admin';
import { SessionsAdmin } from './sessions-admin';
import { clientSecurity, serverCredentials } from '../../proto/tls';
import { AuthenticatingServer } from './client-auth';
import { SubtreeGuard } from './subtree-guard';

/** A call without a deadline waits this long for the cluster; a client's deadline is honoured up to MAX_REQUEST_TIMEOUT_MS. */
const REQUEST_TIMEOUT_MS = 5_000;
const MAX_REQUEST_TIMEOUT_MS = 120_000;
const MAX_SESSIONS = 100_000;
const MAX_EXPIRIES_PER_ROUND = 64;

const fail: Fail = failWith('handlefs metaserver');

async function run(config: MetaServerConfig): Promise<void> {
  const raftConfig = config.raft;
  let blockStore: BlockStore | undefined;
  const { node, machine: state, logger, registry } = await startMember(raftConfig, 'state', async (dir) => {
    const machine = await MetaStateMachine.open(dir, { debugNoDedup: config.debugUnsafe.has('no-dedup') }); // debug-unsafe: false in any normal run
    blockStore = await BlockAccess.openStoreFor(machine, path.join(raftConfig.dataDir, 'blocks'));
    return machine;
  }, fail);
  if (!blockStore) throw new Error('the block store was not opened with the state machine');
  debugUnsafeStart(config, node, state, logger);
  const peers = new Map([...config.clientAddresses].filter(([id]) => id !== raftConfig.id));
  const blocks = BlockAccess.create({
    store: blockStore, selfId: raftConfig.id, peers, machine: state, logger, registry, repairIntervalMs: config.blockRepairIntervalMs,
    security: clientSecurity(config.tls, config.tokenPolicy?.memberToken),
  });
  let blocksCollected = 0;
  const deleteCollected = state.onBlocksCollected;
  state.onBlocksCollected = async (ids) => {
    await deleteCollected(ids);
    blocksCollected += ids.length;
  };
  const metrics = new MetaMetrics({
    registry,
    memberId: raftConfig.id,
    dataDir: raftConfig.dataDir,
    state: async () => {
      const counters = await state.query.counters();
      const stored = blocks.store.stats();
      return {
        handles: counters.inodesInUse, sessions: counters.sessionsOpen, openFhs: counters.fhsOpen ?? 0, versions: counters.versionsKept ?? 0,
        conflictVersions: counters.conflictVersions ?? 0, conflictCopies: counters.conflictCopiesKept ?? 0, blocksStored: stored.blocks, blockBytesStored: stored.bytes,
        blocksCollected,
      };
    },
  });
  const duties = new LeaderDuties(node, state, {
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    // Often enough that a session is expired within a quarter TTL of its deadline; never busier than 10 rounds/s.
    expiryIntervalMs: Math.max(100, Math.min(1_000, Math.floor(config.defaultSessionTtlMs / 4))),
    maxExpiriesPerRound: MAX_EXPIRIES_PER_ROUND,
    maxSessions: MAX_SESSIONS,
    retention: config.retention,
    blockGcGraceMs: config.blockGcGraceMs,
    dutyIntervalMs: config.dutyIntervalMs,
    wallClockMs: () => Date.now(),
    monotonicMs: () => performance.now(),
    logger,
    metrics,
    debugNoSessionExpiry: config.debugUnsafe.has('no-session-expiry'), // debug-unsafe: false in any normal run
  });
  const service = new MetaService(node, state, blocks, duties, {
    clientAddresses: config.clientAddresses,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    maxRequestTimeoutMs: MAX_REQUEST_TIMEOUT_MS,
    defaultSessionTtlMs: config.defaultSessionTtlMs,
    maxSessionTtlMs: config.maxSessionTtlMs,
    maxSessions: MAX_SESSIONS,
    wallClockMs: () => Date.now(),
    logger,
    metrics,
    limits: config.limits,
    blockPinTtlMs: config.blockPinTtlMs,
    dataDir: raftConfig.dataDir,
    debugUnsafe: config.debugUnsafe,
  });
  // Every service added goes through the token check (client-auth.ts) when --auth-token-file is given.
  // Tokens with subtree= are also checked against this member's state (subtree-guard.ts).
  const subtrees = new SubtreeGuard({ query: state.query, linearizable: async (timeoutMs) => { await node.readIndex({ timeoutMs: Math.min(timeoutMs, REQUEST_TIMEOUT_MS) }); } });
  const server = new AuthenticatingServer(config.tokenPolicy, { 'grpc.max_concurrent_streams': 1024 }, subtrees);
  widenServerFlowWindows(server);
  server.addService(metaService, instrumentHandlers(service.implementation(), metrics));
  blocks.addTo(server);
  const sessionsAdmin = new SessionsAdmin({ node, sessions: () => state.query.sessions(), trackedView: () => duties.trackedView(), readIndexTimeoutMs: REQUEST_TIMEOUT_MS });
  server.addService(adminService, new AdminService(node, {
    clientAddresses: config.clientAddresses, requestTimeoutMs: REQUEST_TIMEOUT_MS, logger, fsck: new FsckAdmin(state.scans, raftConfig.id, node), sessions: sessionsAdmin,
  }).implementation());
  let clientPort: number;
  try {
    clientPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(config.clientListenAddress, serverCredentials(config.tls, config.requireClientCertificate), (error, port) => (error ? reject(error) : resolve(port)));
    });
  } catch (error) {
    await node.stop({ graceful: false }).catch(() => {});
    await state.close().catch(() => {});
    fail(EXIT_START_FAILED, `could not listen on --client-listen ${config.clientListenAddress}: ${(error as Error).message}`);
  }
  duties.start();
  blocks.start();
  const metricsServer = raftConfig.metricsListenAddress ? await listenMetrics(raftConfig.metricsListenAddress, registry, () => node.status()) : undefined;

  stopOnSignals(logger, fail, async () => {
    duties.stop();
    await blocks.stop();
    // Graceful: the leader hands leadership over first, so clients wait one round trip, not an election.
    await node.stop({ graceful: true });
    server.forceShutdown();
    metricsServer?.close();
    await state.close();
  });
  announceReady({ id: raftConfig.id, raftAddress: raftConfig.listenAddress, clientPort });
}

/**
 * debug-unsafe: says loudly which fault switches are on, and makes a member
 * that is not the leader wait --debug-follower-apply-delay-ms before each
 * apply (with stale-reads its reads then lag the leader visibly). The delay
 * wraps this instance's apply: the state machine stays unaware of it.
 */
function debugUnsafeStart(config: MetaServerConfig, node: RaftNode, state: MetaStateMachine, logger: RaftLogger): void {
  if (config.debugUnsafe.size === 0 && config.debugFollowerApplyDelayMs === 0) return;
  const banner = `DEBUG-UNSAFE fault switches ON (${[...config.debugUnsafe].join(', ') || 'none'}; follower apply delay ${config.debugFollowerApplyDelayMs} ms): this member loses or corrupts data on purpose; never use it for real data`;
  process.stderr.write(`!!!!!!!! ${banner} !!!!!!!!\n`);
  logger.warn(banner, { switches: [...config.debugUnsafe], followerApplyDelayMs: config.debugFollowerApplyDelayMs });
  const delayMs = config.debugFollowerApplyDelayMs;
  if (delayMs === 0) return;
  const apply = state.apply.bind(state);
  state.apply = async (entries) => {
    if (node.status().role !== 'leader') await new Promise((resolve) => setTimeout(resolve, delayMs));
    return apply(entries);
  };
}

/**
 * Parses argv (the flags only, no program name) and starts the server; the
 * process then runs until SIGTERM/SIGINT. `handlefs server` calls this too.
 */
export function runMetaServer(argv: readonly string[]): void {
  let config: MetaServerConfig;
  try {
    config = parseMetaServerArgs(argsFromConfigFile(argv));
  } catch (error) {
    if (error instanceof ServerConfigError) fail(EXIT_BAD_CONFIG, error.message);
    throw error;
  }
  run(config).catch((error: Error) => fail(EXIT_START_FAILED, error.stack ?? error.message));
}

// Run as `node dist/metaserver/server/server-main.js ...`; imported (by bin/cli.ts) it waits to be called.
if (require.main === module) runMetaServer(process.argv.slice(2));
