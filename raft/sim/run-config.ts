/**
 * What one simulated run looks like, all drawn from its seed: cluster size,
 * the Raft config under test, the fault rates and the workload. Printed with
 * every failure so a reader knows the weather the seed ran in. Pure data.
 */
import { RaftConfig } from '../core/config';
import { NetworkFaults } from './network';
import { SimRandom } from './random';

export interface SimRunConfig {
  seed: number;
  nodeCount: number;
  /**
   * Steps of the faulty phase; then faults heal and the run must settle. It fails if nothing moves
   * (no index applied anywhere) for settleStallStepsMax steps, or after settleStepsMax steps in all
   * (a slow catch-up under tiny append limits is not a failure; a stall is).
   */
  steps: number;
  settleStepsMax: number;
  settleStallStepsMax: number;
  /** A node's core ticks once every tickEverySteps steps (messages take ~1–3 steps). */
  tickEverySteps: number;
  /** Probability a due tick is skipped (a slow clock), and again that it comes twice (a fast one). */
  clockSkipRate: number;
  network: NetworkFaults;
  crashRatePerStep: number;
  restartAfterSteps: [number, number];
  maxDownNodes: number;
  partitionRatePerStep: number;
  partitionSteps: [number, number];
  /** Share of partitions that cut one direction only. */
  asymmetricShare: number;
  /** Probability a message cut by a partition is reported unreachable to its sender. */
  reportUnreachableRate: number;
  /** Probability a delivered message is preceded by a malformed copy of itself. */
  garbageRate: number;
  persistDelayStepsMax: number;
  slowDiskRate: number;
  slowDiskStepsMax: number;
  /** Probability a Ready's entries are applied 1..10 steps after its write (a crash in between loses the applying). */
  slowApplyRate: number;
  snapshotRatePerStep: number;
  trailingEntriesMax: number;
  membershipChangeRatePerStep: number;
  transferRatePerStep: number;
  clientCount: number;
  proposeRatePerStep: number;
  readRatePerStep: number;
  paddingBytesMax: number;
  raft: Partial<RaftConfig>;
}

export const SPARE_NODE_COUNT = 3;
/** Every delay in the simulation stays below this many steps (the network's ring size). */
export const MAX_DELAY_STEPS = 64;

export function drawRunConfig(seed: number, nodeCount: number, steps: number): SimRunConfig {
  if (nodeCount !== 3 && nodeCount !== 5) throw new Error(`--nodes must be 3 or 5, got ${nodeCount}`);
  if (!Number.isInteger(steps) || steps < 100 || steps > 10_000_000) throw new Error(`--steps must be an integer in [100, 10000000], got ${steps}`);
  // The config gets its own stream so that adding a knob here does not shift every run's events.
  const r = new SimRandom((seed ^ 0x9e3779b9) >>> 0);
  const calm = r.chance(0.15);
  const electionTicks = r.pick([5, 10, 10, 20]);
  return {
    seed,
    nodeCount,
    steps,
    settleStepsMax: 20_000,
    settleStallStepsMax: 2000,
    tickEverySteps: 2,
    clockSkipRate: r.pick([0, 0.01, 0.1]),
    network: {
      lossRate: calm ? 0 : r.pick([0, 0.01, 0.05, 0.15]),
      duplicateRate: calm ? 0 : r.pick([0, 0.02, 0.1]),
      minDelaySteps: 1,
      maxDelaySteps: r.pick([1, 2, 4]),
      longDelayRate: calm ? 0 : r.pick([0, 0.01, 0.05]),
      longDelayStepsMax: r.pick([10, 30, 60]),
      reorderWithinStep: true,
    },
    crashRatePerStep: calm ? 0 : r.pick([0, 0.001, 0.003, 0.01]),
    restartAfterSteps: [5, r.pick([30, 100, 300])],
    maxDownNodes: r.chance(0.8) ? Math.floor((nodeCount - 1) / 2) : nodeCount,
    partitionRatePerStep: calm ? 0 : r.pick([0, 0.002, 0.005, 0.02]),
    partitionSteps: [10, r.pick([50, 150, 400])],
    asymmetricShare: r.pick([0, 0.3, 0.6]),
    reportUnreachableRate: r.pick([0, 0.2, 1]),
    garbageRate: r.pick([0, 0, 0.001, 0.01]),
    persistDelayStepsMax: r.pick([0, 1, 3, 6]),
    slowDiskRate: r.pick([0, 0.01, 0.05]),
    slowDiskStepsMax: r.pick([10, 40]),
    slowApplyRate: r.pick([0, 0.05, 0.3]),
    snapshotRatePerStep: r.pick([0, 0.002, 0.01, 0.05]),
    trailingEntriesMax: r.pick([0, 5, 50]),
    membershipChangeRatePerStep: r.pick([0, 0.002, 0.01]),
    transferRatePerStep: r.pick([0, 0.001, 0.005]),
    clientCount: r.int(1, 4),
    proposeRatePerStep: r.pick([0.1, 0.3, 1]),
    readRatePerStep: r.pick([0, 0.02, 0.1]),
    paddingBytesMax: r.pick([0, 16, 3000]),
    raft: {
      electionTicks,
      heartbeatTicks: r.pick([1, 1, Math.max(1, Math.floor(electionTicks / 4))]),
      preVote: r.chance(0.8),
      checkQuorum: r.chance(0.8),
      maxEntriesPerAppend: r.pick([1, 3, 64, 512]),
      maxBytesPerAppend: r.pick([256, 4096, 1024 * 1024]),
      maxInflightAppends: r.pick([1, 2, 8, 64]),
      maxInflightBytes: r.pick([2048, 16 * 1024 * 1024]),
      maxUncommittedEntries: r.pick([20, 10_000]),
      learnerCatchUpLagEntries: r.pick([1, 5, 100]),
    },
  };
}

/** One line per knob, for failure reports. */
export function describeRunConfig(c: SimRunConfig): string {
  const n = c.network;
  return [
    `nodes=${c.nodeCount} steps=${c.steps} settle<=${c.settleStepsMax}(stall<=${c.settleStallStepsMax}) tickEvery=${c.tickEverySteps} clockSkip=${c.clockSkipRate}`,
    `network: loss=${n.lossRate} dup=${n.duplicateRate} delay=${n.minDelaySteps}..${n.maxDelaySteps} long=${n.longDelayRate}(<=${n.longDelayStepsMax})`,
    `crashes: rate=${c.crashRatePerStep} restartAfter=${c.restartAfterSteps.join('..')} maxDown=${c.maxDownNodes}`,
    `partitions: rate=${c.partitionRatePerStep} for ${c.partitionSteps.join('..')} asymmetric=${c.asymmetricShare} reportUnreachable=${c.reportUnreachableRate} malformed=${c.garbageRate}`,
    `disk: persistDelay<=${c.persistDelayStepsMax} slow=${c.slowDiskRate}(<=${c.slowDiskStepsMax}) slowApply=${c.slowApplyRate} snapshots=${c.snapshotRatePerStep} trailing<=${c.trailingEntriesMax}`,
    `ops: membership=${c.membershipChangeRatePerStep} transfer=${c.transferRatePerStep} clients=${c.clientCount} propose=${c.proposeRatePerStep} read=${c.readRatePerStep} padding<=${c.paddingBytesMax}`,
    `raft: ${JSON.stringify(c.raft)}`,
  ].join('\n');
}
