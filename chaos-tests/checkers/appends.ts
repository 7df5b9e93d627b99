/**
 * Appends exactly once: in an O_APPEND file, every acknowledged record is
 * present exactly once, an unknown one at most once, a failed one never, and
 * no record appears that no client appended. Records are lines. Intermediate
 * 'read-appends' reads are held to the same rules and must be a prefix of the
 * final file (records only ever go to the end) holding every record
 * acknowledged before the read began.
 *
 * Owns the record counting and the choice of the final content (also used by
 * no-lost-writes.ts); must never read a clock or do I/O.
 */
import type { History, Operation } from '../history';
import type { CheckResult, Checker, FinalState, Violation } from './checker';
import { quote } from './describe';

export const APPENDS = 'appends';

/** Violations beyond this per key are folded into one "and N more" (a run that lost everything must still print). */
export const APPEND_VIOLATIONS_PER_KEY_MAX = 20;

/** The records of an append file: its lines, without the empty string after a final '\n'. */
export function appendRecords(content: string): string[] {
  if (content === '') return [];
  const lines = content.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export interface FinalAppendContent {
  content: string;
  /** Where it came from: the last kept version after healing, or the last ok 'read-appends' of the run. */
  source: 'versions' | 'read-appends';
  read?: Operation;
}

/** The append file's final content: FinalState.versions' last version, else the last ok 'read-appends' by completion. */
export function finalAppendContent(history: History, final: FinalState, key: string): FinalAppendContent | undefined {
  const versions = final.versions[key];
  if (versions && versions.length > 0) return { content: versions[versions.length - 1].content, source: 'versions' };
  let last: Operation | undefined;
  for (const op of history.operations) {
    if (op.kind === 'read-appends' && op.key === key && op.outcome === 'ok' && op.result !== undefined) {
      if (!last || op.completeMs > last.completeMs) last = op;
    }
  }
  return last ? { content: last.result!, source: 'read-appends', read: last } : undefined;
}

function countRecords(records: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const record of records) counts.set(record, (counts.get(record) ?? 0) + 1);
  return counts;
}

/** Per record value: its append operations by outcome. */
function appendsByRecord(appends: readonly Operation[]): Map<string, { ok: Operation[]; unknown: Operation[]; fail: Operation[] }> {
  const byRecord = new Map<string, { ok: Operation[]; unknown: Operation[]; fail: Operation[] }>();
  for (const op of appends) {
    if (typeof op.value !== 'string' || op.value.includes('\n')) throw new Error(`append #${op.id}: a record must be a string without '\\n'`);
    const entry = byRecord.get(op.value) ?? { ok: [], unknown: [], fail: [] };
    entry[op.outcome].push(op);
    byRecord.set(op.value, entry);
  }
  return byRecord;
}

/** Counts in `content` against the appends: exactly once if acknowledged, at most once if unknown, never if failed or never appended. */
function checkContent(key: string, where: string, records: readonly string[], appends: readonly Operation[], extra: Operation[]): Violation[] {
  const violations: Violation[] = [];
  const byRecord = appendsByRecord(appends);
  const counts = countRecords(records);
  for (const [record, count] of counts) {
    const ops = byRecord.get(record);
    if (!ops) {
      violations.push({ checker: APPENDS, message: `${key}: ${where} holds record ${quote(record)} ${count}× that no client appended (torn or foreign bytes)`, operations: extra });
      continue;
    }
    const maxCount = ops.ok.length + ops.unknown.length;
    if (count > maxCount) {
      const what = ops.ok.length + ops.unknown.length === 0 ? `failed append #${ops.fail[0].id} (${ops.fail[0].error ?? 'no errno'})` : `append #${[...ops.ok, ...ops.unknown][0].id}`;
      const why = maxCount === 0 ? 'a failed append took effect' : 'duplicated: a retried append was applied twice';
      violations.push({
        checker: APPENDS,
        message: `${key}: ${where} holds the record of ${what} ${count}× (at most ${maxCount} allowed: ${why})`,
        operations: [...ops.ok, ...ops.unknown, ...ops.fail, ...extra],
      });
    }
  }
  for (const [record, ops] of byRecord) {
    const count = counts.get(record) ?? 0;
    if (count < ops.ok.length) {
      violations.push({
        checker: APPENDS,
        message: `${key}: ${where} lacks the record of acknowledged append #${ops.ok[0].id} by ${ops.ok[0].client} ${quote(record)} (found ${count}×, acknowledged ${ops.ok.length}×)`,
        operations: [...ops.ok, ...extra],
      });
    }
  }
  return violations;
}

export interface AppendsCheckOptions {
  /** Also check intermediate ok 'read-appends' (default true). */
  checkReads?: boolean;
}

export function appendsChecker(options: AppendsCheckOptions = {}): Checker {
  return {
    name: APPENDS,
    check(history: History, final: FinalState): CheckResult {
      const byKey = new Map<string, Operation[]>();
      for (const op of history.operations) {
        if (op.kind !== 'append') continue;
        byKey.set(op.key, [...(byKey.get(op.key) ?? []), op]);
      }
      const violations: Violation[] = [];
      const inconclusive: string[] = [];
      const stats = { keys: 0, appendsOk: 0, appendsUnknown: 0, appendsFail: 0, finalRecords: 0, readsChecked: 0 };
      for (const key of [...byKey.keys()].sort()) {
        const appends = byKey.get(key)!;
        stats.keys++;
        for (const op of appends) {
          if (op.outcome === 'ok') stats.appendsOk++;
          else if (op.outcome === 'unknown') stats.appendsUnknown++;
          else stats.appendsFail++;
        }
        const keyViolations: Violation[] = [];
        const finalContent = finalAppendContent(history, final, key);
        let finalRecords: string[] | undefined;
        if (!finalContent) {
          inconclusive.push(`${key}: neither the final versions nor any ok read-appends give the file's content; ${appends.length} appends unchecked`);
        } else {
          finalRecords = appendRecords(finalContent.content);
          stats.finalRecords += finalRecords.length;
          const where = finalContent.source === 'versions' ? 'the final file' : `the last read (#${finalContent.read!.id})`;
          keyViolations.push(...checkContent(key, where, finalRecords, appends, finalContent.read ? [finalContent.read] : []));
        }
        if (options.checkReads !== false) {
          for (const read of history.operations) {
            if (read.kind !== 'read-appends' || read.key !== key || read.outcome !== 'ok' || read === finalContent?.read) continue;
            stats.readsChecked++;
            const records = appendRecords(read.result ?? '');
            const where = `read #${read.id} by ${read.client} (${read.invokeMs}–${read.completeMs} ms)`;
            // Only appends acknowledged before the read began must be in it; later ones may or may not.
            const settled = appends.map((op) => (op.outcome === 'ok' && op.completeMs >= read.invokeMs ? { ...op, outcome: 'unknown' as const } : op));
            const inRead = checkContent(key, where, records, settled, [read]);
            keyViolations.push(...inRead.map((v) => ({ ...v, operations: v.operations.map((op) => appends.find((a) => a.id === op.id) ?? op) })));
            if (finalRecords && !isPrefix(records, finalRecords)) {
              keyViolations.push({
                checker: APPENDS,
                message: `${key}: ${where} is not a prefix of the final file (${records.length} records read, ${finalRecords.length} at the end): records were reordered or removed`,
                operations: [read],
              });
            }
          }
        }
        if (keyViolations.length > APPEND_VIOLATIONS_PER_KEY_MAX) {
          const rest = keyViolations.length - APPEND_VIOLATIONS_PER_KEY_MAX + 1;
          keyViolations.splice(APPEND_VIOLATIONS_PER_KEY_MAX - 1, Infinity, {
            checker: APPENDS,
            message: `${key}: and ${rest} more append violations of the kinds above`,
            operations: [],
          });
        }
        violations.push(...keyViolations);
      }
      return { checker: APPENDS, ok: violations.length === 0 && inconclusive.length === 0, violations, stats, inconclusive };
    },
  };
}

function isPrefix(prefix: readonly string[], whole: readonly string[]): boolean {
  if (prefix.length > whole.length) return false;
  return prefix.every((record, index) => whole[index] === record);
}
