/**
 * The checkers of a chaos run, as one list the runner applies to the
 * recorded history and the healed cluster's final state, and the text that
 * tells a person what they found. Pure: no I/O, no clocks; the runner writes
 * the files.
 */
import { assertOperation, type History } from '../history';
import type { CheckResult, Checker, FinalState } from './checker';
import { appendsChecker, type AppendsCheckOptions } from './appends';
import { convergenceChecker, type ConvergenceCheckOptions } from './convergence';
import { describeOperations } from './describe';
import { errorsChecker, type ErrorsCheckOptions } from './errors';
import { linearizableRegistersChecker, type RegisterCheckOptions } from './linearizable-registers';
import { namespaceChecker, type NamespaceCheckOptions } from './namespace';
import { noLostWritesChecker } from './no-lost-writes';
import { versionsChecker, type VersionsCheckOptions } from './versions';

export type { CheckResult, Checker, FinalState, Violation } from './checker';

export interface CheckerOptions {
  registers?: RegisterCheckOptions;
  appends?: AppendsCheckOptions;
  /** keepAll defaults to true: the chaos runner configures retention to keep every version. */
  versions?: Partial<VersionsCheckOptions>;
  convergence?: ConvergenceCheckOptions;
  errors?: ErrorsCheckOptions;
  namespace?: NamespaceCheckOptions;
}

/** Every checker, in the order the summary lists them. */
export function allCheckers(options: CheckerOptions = {}): Checker[] {
  return [
    linearizableRegistersChecker(options.registers),
    noLostWritesChecker(),
    appendsChecker(options.appends),
    versionsChecker({ keepAll: options.versions?.keepAll ?? true }),
    convergenceChecker(options.convergence),
    errorsChecker(options.errors),
    namespaceChecker(options.namespace),
  ];
}

/**
 * Runs every checker on a validated history. A malformed operation stops
 * everything (no checker may judge it); a checker that throws is reported as
 * inconclusive, never as a pass.
 */
export function runCheckers(history: History, final: FinalState, checkers: readonly Checker[]): CheckResult[] {
  const ids = new Set<number>();
  for (const op of history.operations) {
    assertOperation(op);
    if (ids.has(op.id)) throw new Error(`operation ${op.id}: id used twice in the history`);
    ids.add(op.id);
  }
  return checkers.map((checker) => {
    try {
      const result = checker.check(history, final);
      if (result.ok && (result.violations.length > 0 || (result.inconclusive?.length ?? 0) > 0)) {
        throw new Error(`checker ${checker.name} returned ok with violations or inconclusive items (bug)`);
      }
      return result;
    } catch (error) {
      return { checker: checker.name, ok: false, violations: [], stats: {}, inconclusive: [`the checker threw: ${(error as Error).message}`] };
    }
  });
}

export interface SummaryOptions {
  /** Violations printed per checker; the rest are counted. */
  violationsPerCheckerMax?: number;
  /** Operations printed per violation; the rest are counted. */
  operationsPerViolationMax?: number;
}

/** The human summary of the checkers' results: one block per checker, violations with their operations in invoke order. */
export function summarizeViolations(results: readonly CheckResult[], options: SummaryOptions = {}): string {
  const violationsMax = options.violationsPerCheckerMax ?? 20;
  const operationsMax = options.operationsPerViolationMax ?? 30;
  const lines: string[] = [];
  const failing = results.filter((r) => !r.ok).length;
  lines.push(failing === 0 ? `checkers: all ${results.length} passed` : `checkers: ${failing} of ${results.length} did not pass`);
  for (const result of results) {
    const inconclusive = result.inconclusive ?? [];
    const verdict = result.ok ? 'ok' : result.violations.length > 0 ? `FAIL (${result.violations.length} violations)` : 'INCONCLUSIVE';
    const figures = Object.entries(result.stats).map(([name, value]) => `${name} ${value}`).join(', ');
    lines.push(`${result.checker}: ${verdict}${figures ? ` — ${figures}` : ''}`);
    for (const [index, violation] of result.violations.slice(0, violationsMax).entries()) {
      lines.push(`  ${index + 1}. ${violation.message}`);
      if (violation.operations.length > 0) {
        lines.push(describeOperations(violation.operations.slice(0, operationsMax), '       '));
        if (violation.operations.length > operationsMax) lines.push(`       … and ${violation.operations.length - operationsMax} more operations`);
      }
    }
    if (result.violations.length > violationsMax) lines.push(`  … and ${result.violations.length - violationsMax} more violations`);
    for (const reason of inconclusive) lines.push(`  undecided: ${reason}`);
  }
  return lines.join('\n') + '\n';
}
