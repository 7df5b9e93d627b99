/**
 * Members agree after healing: every member reports the same applied index
 * and the same state digest, and handlefs fsck is clean. Owns only that rule;
 * must never read a clock or do I/O (the runner collects the digests).
 */
import type { History } from '../history';
import type { CheckResult, Checker, FinalState, Violation } from './checker';

export const CONVERGENCE = 'convergence';

export interface ConvergenceCheckOptions {
  /** How many members must have reported (default: any number ≥ 1). */
  expectedMembers?: number;
}

export function convergenceChecker(options: ConvergenceCheckOptions = {}): Checker {
  return {
    name: CONVERGENCE,
    check(_history: History, final: FinalState): CheckResult {
      const violations: Violation[] = [];
      const digests = [...final.digests].sort((a, b) => (a.member < b.member ? -1 : a.member > b.member ? 1 : 0));
      const stats = { members: digests.length, appliedIndexMax: Math.max(0, ...digests.map((d) => d.appliedIndex)) };
      const say = (message: string): void => {
        violations.push({ checker: CONVERGENCE, message, operations: [] });
      };
      const expected = options.expectedMembers;
      if (digests.length === 0) say('no member reported an applied index and digest after healing');
      else if (expected !== undefined && digests.length !== expected) {
        say(`${digests.length} of ${expected} members reported a digest after healing (${digests.map((d) => d.member).join(', ')})`);
      }
      if (digests.length > 0) {
        const indexes = new Set(digests.map((d) => d.appliedIndex));
        const describe = digests.map((d) => `${d.member}@${d.appliedIndex}=${d.digest.slice(0, 12)}`).join(', ');
        if (indexes.size > 1) {
          say(`members stopped at different applied indexes after healing: ${describe}`);
        } else if (new Set(digests.map((d) => d.digest)).size > 1) {
          say(`members diverged: same applied index ${digests[0].appliedIndex} but different state digests: ${describe}`);
        }
      }
      if (!final.fsckClean) say('handlefs fsck found problems after healing');
      return { checker: CONVERGENCE, ok: violations.length === 0, violations, stats };
    },
  };
}
