/**
 * No acknowledged write lost: every whole-file 'write' that returned ok is
 * among its file's versions after healing (by content), and every append
 * that returned ok has its record in the final append file. Unknown and
 * failed operations may be absent (their presence is judged elsewhere:
 * appends.ts, linearizable-registers.ts).
 *
 * This is the checker that catches "acknowledge before commit": a close that
 * returned 0 for bytes a leader crash then lost. Owns only that rule; must
 * never read a clock or do I/O.
 */
import type { History, Operation } from '../history';
import type { CheckResult, Checker, FinalState, Violation } from './checker';
import { appendRecords, finalAppendContent } from './appends';
import { quote } from './describe';

export const NO_LOST_WRITES = 'no-lost-writes';

/** Lost writes reported one by one up to this; the rest are folded into one violation. */
export const LOST_WRITES_REPORTED_MAX = 50;

export function noLostWritesChecker(): Checker {
  return {
    name: NO_LOST_WRITES,
    check(history: History, final: FinalState): CheckResult {
      const violations: Violation[] = [];
      const inconclusive: string[] = [];
      const stats = { writesAcknowledged: 0, writesFound: 0, appendsAcknowledged: 0, appendsFound: 0 };
      const lost: Violation[] = [];

      const versionContents = new Map<string, Set<string>>();
      for (const [key, versions] of Object.entries(final.versions)) versionContents.set(key, new Set(versions.map((v) => v.content)));
      for (const op of history.operations) {
        if (op.kind !== 'write' || op.outcome !== 'ok') continue;
        stats.writesAcknowledged++;
        const contents = versionContents.get(op.key);
        if (contents?.has(op.value!)) {
          stats.writesFound++;
          continue;
        }
        const where = contents ? `none of the ${contents.size} versions of ${op.key}` : `${op.key}, which has no versions at all after healing`;
        lost.push({
          checker: NO_LOST_WRITES,
          message: `acknowledged write #${op.id} by ${op.client} of ${quote(op.value)} (ok at ${op.completeMs} ms) is lost: it is in ${where}`,
          operations: [op],
        });
      }

      const appendsByKey = new Map<string, Operation[]>();
      for (const op of history.operations) {
        if (op.kind === 'append' && op.outcome === 'ok') appendsByKey.set(op.key, [...(appendsByKey.get(op.key) ?? []), op]);
      }
      for (const [key, appends] of [...appendsByKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        stats.appendsAcknowledged += appends.length;
        const finalContent = finalAppendContent(history, final, key);
        if (!finalContent) {
          inconclusive.push(`${key}: no final content to look for ${appends.length} acknowledged appends in`);
          continue;
        }
        const present = new Set(appendRecords(finalContent.content));
        const where = finalContent.source === 'versions' ? 'the final file' : `the last read-appends (#${finalContent.read!.id})`;
        for (const op of appends) {
          if (present.has(op.value!)) {
            stats.appendsFound++;
            continue;
          }
          lost.push({
            checker: NO_LOST_WRITES,
            message: `acknowledged append #${op.id} by ${op.client} of ${quote(op.value)} (ok at ${op.completeMs} ms) is lost: its record is not in ${where} of ${key}`,
            operations: finalContent.read ? [op, finalContent.read] : [op],
          });
        }
      }

      violations.push(...lost.slice(0, LOST_WRITES_REPORTED_MAX));
      if (lost.length > LOST_WRITES_REPORTED_MAX) {
        violations.push({
          checker: NO_LOST_WRITES,
          message: `and ${lost.length - LOST_WRITES_REPORTED_MAX} more acknowledged writes or appends lost`,
          operations: [],
        });
      }
      return { checker: NO_LOST_WRITES, ok: violations.length === 0 && inconclusive.length === 0, violations, stats, inconclusive };
    },
  };
}
