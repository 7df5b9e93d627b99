/**
 * The simulator itself: one seed replays exactly, and deliberately broken
 * cores (a forgotten vote, acknowledgements sent before the write) are caught.
 */
import { RaftCore } from '../core/raft';
import { Ready } from '../core/types';
import { SafetyViolation } from './checker';
import { CoreFactory } from './sim-node';
import { SimResult, runSimulation } from './simulation';

const TIMEOUT_MS = 120_000;

/** Acknowledges appends and votes before they are durable: the bug Figure 2's "respond after persisting" forbids. */
class EagerAckCore extends RaftCore {
  override ready(): Ready {
    const rd = super.ready();
    rd.messages.push(...rd.messagesAfterPersist);
    rd.messagesAfterPersist.length = 0;
    return rd;
  }
}

const forgetsVoteOnRestart: CoreFactory = (config, initial) => new RaftCore(config, { ...initial, hardState: { ...initial.hardState, vote: '' } });
const acksBeforePersist: CoreFactory = (config, initial) => new EagerAckCore(config, initial);

/** Runs seeds until one fails; returns it, or undefined if none of maxSeeds did. */
function firstFailure(coreFactory: CoreFactory, maxSeeds: number): SimResult | undefined {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const result = runSimulation({
      seed,
      nodeCount: 3,
      steps: 3000,
      coreFactory,
      // Crash-heavy weather with slow disks: where a write acknowledged too early gets lost.
      adjustConfig: (c) => ({ ...c, membershipChangeRatePerStep: 0, crashRatePerStep: 0.01, maxDownNodes: 1, restartAfterSteps: [5, 30], persistDelayStepsMax: 6, slowDiskRate: 0.05 }),
    });
    if (!result.ok) return result;
  }
  return undefined;
}

describe('the simulator', () => {
  it(
    'replays a seed exactly: the same trace, event for event, and the same final state',
    () => {
      for (const nodeCount of [3, 5]) {
        const first = runSimulation({ seed: 4242, nodeCount, steps: 2000, trace: true, traceLines: 500 });
        const second = runSimulation({ seed: 4242, nodeCount, steps: 2000, trace: true, traceLines: 500 });
        expect(second.traceFingerprint).toBe(first.traceFingerprint);
        expect(second.traceLines).toEqual(first.traceLines);
        expect(second.fingerprint).toBe(first.fingerprint);
        expect(first.traceLines.length).toBe(500);
      }
    },
    TIMEOUT_MS,
  );

  it('runs differently for different seeds', () => {
    const a = runSimulation({ seed: 1, nodeCount: 3, steps: 500 });
    const b = runSimulation({ seed: 2, nodeCount: 3, steps: 500 });
    expect(a.fingerprint).not.toBe(b.fingerprint);
  });

  it(
    'catches a core that forgets its vote when it restarts',
    () => {
      const failed = firstFailure(forgetsVoteOnRestart, 20);
      expect(failed?.violation?.message).toMatch(/double voting|election-safety/);
    },
    TIMEOUT_MS,
  );

  it(
    'catches a core that acknowledges appends and votes before persisting them',
    () => {
      const failed = firstFailure(acksBeforePersist, 40);
      expect(failed?.violation).toBeInstanceOf(SafetyViolation);
    },
    TIMEOUT_MS,
  );
});
