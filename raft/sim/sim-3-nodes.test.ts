/**
 * The bounded simulator run for `npm test` on 3-node clusters: 200 seeds of the
 * real RaftCore under injected faults, each checked for every safety property
 * and for liveness after healing. A failure names the seed, the config, the
 * replay command and the last events of the first failing run.
 */
import { failingSeeds } from './cli';

const TIMEOUT_MS = 240_000;

describe('the real RaftCore in a simulated 3-node cluster', () => {
  it(
    'keeps every safety property under faults and recovers after healing, over 200 seeds',
    () => {
      expect(failingSeeds(3, 1, 200).join('\n\n')).toBe('');
    },
    TIMEOUT_MS,
  );
});
