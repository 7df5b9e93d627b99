/**
 * The bounded simulator run for `npm test` on 5-node clusters: 100 seeds of the
 * real RaftCore under injected faults, each checked for every safety property
 * and for liveness after healing. A failure names the seed, the config, the
 * replay command and the last events of the first failing run.
 */
import { failingSeeds } from './cli';

const TIMEOUT_MS = 240_000;

describe('the real RaftCore in a simulated 5-node cluster', () => {
  it(
    'keeps every safety property under faults and recovers after healing, over 100 seeds',
    () => {
      expect(failingSeeds(5, 1, 100).join('\n\n')).toBe('');
    },
    TIMEOUT_MS,
  );
});
