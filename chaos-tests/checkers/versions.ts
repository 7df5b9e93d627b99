/**
 * Version numbers and expiry: every file's kept versions are numbered
 * strictly increasing and, when the run keeps every version, gap-free from 1
 * (handlefs numbers versions from 1 and adds exactly 1 per commit); and no
 * session or fh outlives its expiry after healing. Owns only these rules;
 * must never read a clock or do I/O.
 */
import type { History } from '../history';
import type { CheckResult, Checker, FinalState, Violation } from './checker';

export const VERSIONS = 'versions';
/** Overdue sessions reported one by one; beyond, one line counts the rest. */
const OVERDUE_REPORTED_MAX = 20;

export interface VersionsCheckOptions {
  /**
   * True when the run configured retention to keep every version (the chaos
   * runner does): then numbers must be exactly 1, 2, 3, ... False: retention
   * may have dropped old versions, so only a strictly increasing order is
   * required.
   */
  keepAll: boolean;
}

export function versionsChecker(options: VersionsCheckOptions): Checker {
  return {
    name: VERSIONS,
    check(_history: History, final: FinalState): CheckResult {
      const violations: Violation[] = [];
      const stats = { files: 0, versions: 0, abandonedSessions: final.abandonedSessions, overdueSessions: final.overdueSessions.length };
      for (const path of Object.keys(final.versions).sort()) {
        const versions = final.versions[path];
        stats.files++;
        stats.versions += versions.length;
        const numbers = versions.map((v) => v.version);
        const bad = numbers.findIndex((n) => !Number.isSafeInteger(n) || n < 1);
        if (bad >= 0) {
          violations.push({ checker: VERSIONS, message: `${path}: version number ${JSON.stringify(numbers[bad])} at position ${bad} is not a positive integer`, operations: [] });
          continue;
        }
        if (options.keepAll && numbers.length > 0 && numbers[0] !== 1) {
          violations.push({
            checker: VERSIONS,
            message: `${path}: the first kept version is ${numbers[0]}, but with every version kept it must be 1 (versions 1–${numbers[0] - 1} are missing)`,
            operations: [],
          });
        }
        for (let i = 1; i < numbers.length; i++) {
          const [before, after] = [numbers[i - 1], numbers[i]];
          if (after <= before) {
            violations.push({
              checker: VERSIONS,
              message: `${path}: version ${after} follows version ${before} (position ${i}): numbers must strictly increase`,
              operations: [],
            });
          } else if (options.keepAll && after !== before + 1) {
            const missing = after - before - 1 === 1 ? `version ${before + 1} is missing` : `versions ${before + 1}–${after - 1} are missing`;
            violations.push({ checker: VERSIONS, message: `${path}: ${missing} between ${before} and ${after} although every version is kept`, operations: [] });
          }
        }
      }
      for (const overdue of final.overdueSessions.slice(0, OVERDUE_REPORTED_MAX)) {
        violations.push({ checker: VERSIONS, message: `past its expiry after healing: ${overdue}`, operations: [] });
      }
      if (final.overdueSessions.length > OVERDUE_REPORTED_MAX) {
        violations.push({ checker: VERSIONS, message: `${final.overdueSessions.length - OVERDUE_REPORTED_MAX} more sessions or fhs past their expiry`, operations: [] });
      }
      return { checker: VERSIONS, ok: violations.length === 0, violations, stats };
    },
  };
}
