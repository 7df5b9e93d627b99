/**
 * The run's figures and verdict for people: operations by outcome and kind,
 * faults injected, the client-visible stall after each leader loss
 * (p50/p99/max), the checkers' results and violations — as summary.json and
 * as summary.txt. Pure: no I/O; must never judge the history (checkers do).
 *
 * Stall (our definition): for a fault that cost the leader, the longest gap
 * between consecutive 'ok' completions (any client) inside the window that
 * starts at the last ok completion before the fault and ends at the first ok
 * completion after it was healed. With no ok completion after it, the gap
 * runs to the end of the workload and the fault is marked unrecovered.
 */
import type { CheckResult, FinalState } from '../checkers/checker';
import type { FaultEvent, History, Outcome } from '../history';

export interface FaultSummary extends FaultEvent {
  stallMs?: number;
  recovered?: boolean;
}

export interface Percentiles {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface RunSummary {
  ok: boolean;
  seed: number;
  durationMs: number;
  nemeses: string[];
  clients: string[];
  runDir: string;
  operations: { total: number; byOutcome: Record<Outcome, number>; byKind: Record<string, Record<Outcome, number>> };
  faults: FaultSummary[];
  faultCounts: Record<string, number>;
  stalls: Percentiles & { byNemesis: Record<string, Percentiles> };
  checks: Array<{ checker: string; ok: boolean; violations: number; stats: Record<string, number> }>;
  violations: Array<{ checker: string; message: string; operationIds: number[] }>;
  violationsText: string;
  final: { digests: FinalState['digests']; fsckClean: boolean; files: number; versions: number; abandonedSessions: number; overdueSessions: number };
  /** Present only when the members ran with debug-unsafe fault switches: the cluster was wrong on purpose. */
  debugUnsafe?: DebugUnsafeSummary;
}

export interface DebugUnsafeSummary {
  switches: string[];
  followerApplyDelayMs?: number;
  /** The members' flags, as given. */
  args: string[];
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50Ms: Math.round(percentile(sorted, 50)), p99Ms: Math.round(percentile(sorted, 99)), maxMs: Math.round(sorted[sorted.length - 1] ?? 0) };
}

/** The stall after one fault (see the module comment); `okTimes` sorted ascending. */
export function stallAfter(fault: FaultEvent, okTimes: number[], workloadEndMs: number): { stallMs: number; recovered: boolean } {
  const healedMs = fault.endMs ?? fault.startMs;
  let from = -1;
  for (let i = 0; i < okTimes.length && okTimes[i] <= fault.startMs; i++) from = i;
  const to = okTimes.findIndex((t) => t >= healedMs && t > fault.startMs);
  const recovered = to >= 0;
  const times = [from >= 0 ? okTimes[from] : fault.startMs, ...okTimes.slice(from + 1, recovered ? to + 1 : okTimes.length)];
  if (!recovered) times.push(workloadEndMs);
  let stallMs = 0;
  for (let i = 1; i < times.length; i++) stallMs = Math.max(stallMs, times[i] - times[i - 1]);
  return { stallMs: Math.round(stallMs), recovered };
}

export function summarize(input: {
  history: History; final: FinalState; results: CheckResult[]; violationsText: string;
  seed: number; durationMs: number; nemeses: string[]; clients: string[]; runDir: string; workloadEndMs: number;
  debugUnsafe?: DebugUnsafeSummary;
}): RunSummary {
  const { history, final, results } = input;
  const byOutcome: Record<Outcome, number> = { ok: 0, fail: 0, unknown: 0 };
  const byKind: Record<string, Record<Outcome, number>> = {};
  for (const op of history.operations) {
    byOutcome[op.outcome]++;
    byKind[op.kind] ??= { ok: 0, fail: 0, unknown: 0 };
    byKind[op.kind][op.outcome]++;
  }
  const okTimes = history.operations.filter((op) => op.outcome === 'ok').map((op) => op.completeMs).sort((a, b) => a - b);
  const faults: FaultSummary[] = history.faults.map((fault) => (fault.leaderLoss ? { ...fault, ...stallAfter(fault, okTimes, input.workloadEndMs) } : { ...fault }));
  const faultCounts: Record<string, number> = {};
  for (const fault of faults) faultCounts[fault.name] = (faultCounts[fault.name] ?? 0) + 1;
  const stalled = faults.filter((f) => f.stallMs !== undefined);
  const byNemesis: Record<string, Percentiles> = {};
  for (const name of new Set(stalled.map((f) => f.name))) byNemesis[name] = percentiles(stalled.filter((f) => f.name === name).map((f) => f.stallMs!));
  const violations = results.flatMap((r) => r.violations.map((v) => ({ checker: v.checker, message: v.message, operationIds: v.operations.map((op) => op.id) })));
  return {
    ok: violations.length === 0 && results.every((r) => r.ok),
    seed: input.seed, durationMs: input.durationMs, nemeses: input.nemeses, clients: input.clients, runDir: input.runDir,
    operations: { total: history.operations.length, byOutcome, byKind },
    faults, faultCounts,
    stalls: { ...percentiles(stalled.map((f) => f.stallMs!)), byNemesis },
    checks: results.map((r) => ({ checker: r.checker, ok: r.ok, violations: r.violations.length, stats: r.stats })),
    violations, violationsText: input.violationsText,
    final: { digests: final.digests, fsckClean: final.fsckClean, files: Object.keys(final.versions).length, versions: Object.values(final.versions).reduce((n, v) => n + v.length, 0), abandonedSessions: final.abandonedSessions, overdueSessions: final.overdueSessions.length },
    ...(input.debugUnsafe ? { debugUnsafe: input.debugUnsafe } : {}),
  };
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`;
}

export function renderSummary(s: RunSummary): string {
  const lines: string[] = [];
  if (s.debugUnsafe) {
    lines.push(`!!!!!!!! DEBUG-UNSAFE: the cluster ran WRONG ON PURPOSE (${s.debugUnsafe.args.join(' ')}); a FAILED verdict is the expected one !!!!!!!!`);
  }
  lines.push(`chaos run ${s.ok ? 'PASSED' : 'FAILED'}: seed ${s.seed}, ${seconds(s.durationMs)} of faults (${s.nemeses.join(', ')}), clients ${s.clients.join(', ')}`);
  lines.push(`run folder: ${s.runDir}`);
  lines.push('');
  const o = s.operations.byOutcome;
  lines.push(`operations: ${s.operations.total} (ok ${o.ok}, fail ${o.fail}, unknown ${o.unknown})`);
  for (const [kind, c] of Object.entries(s.operations.byKind).sort()) lines.push(`  ${kind.padEnd(13)} ok ${String(c.ok).padStart(6)}  fail ${String(c.fail).padStart(5)}  unknown ${String(c.unknown).padStart(5)}`);
  lines.push('');
  lines.push(`faults: ${s.faults.length} (${Object.entries(s.faultCounts).map(([n, c]) => `${n} ×${c}`).join(', ') || 'none'})`);
  for (const f of s.faults) {
    const stall = f.stallMs === undefined ? '' : `  stall ${f.stallMs} ms${f.recovered === false ? ' (no ok operation after it!)' : ''}`;
    lines.push(`  ${seconds(f.startMs).padStart(8)} – ${seconds(f.endMs).padEnd(8)} ${f.name.padEnd(17)} ${f.targets.join(',').padEnd(10)}${stall}`);
  }
  lines.push('');
  lines.push(`client-visible stall after a leader loss: ${s.stalls.count === 0 ? 'no leader was lost' : `p50 ${s.stalls.p50Ms} ms, p99 ${s.stalls.p99Ms} ms, max ${s.stalls.maxMs} ms over ${s.stalls.count} faults`}`);
  for (const [name, p] of Object.entries(s.stalls.byNemesis)) lines.push(`  ${name.padEnd(17)} p50 ${p.p50Ms} ms, p99 ${p.p99Ms} ms, max ${p.maxMs} ms (${p.count})`);
  lines.push('');
  lines.push(`after healing: fsck ${s.final.fsckClean ? 'clean' : 'NOT clean'}; digests ${s.final.digests.map((d) => `${d.member}@${d.appliedIndex}:${d.digest.slice(0, 12)}`).join(' ')}`);
  lines.push(`final state: ${s.final.files} files, ${s.final.versions} versions read back`);
  lines.push(`sessions: ${s.final.abandonedSessions} abandoned by clients killed holding an fh; ${s.final.overdueSessions === 0 ? 'none' : s.final.overdueSessions} past expiry`);
  lines.push('');
  lines.push(`checkers: ${s.checks.map((c) => `${c.checker} ${c.ok ? 'ok' : `${c.violations} violation(s)`}`).join('; ') || 'none ran'}`);
  if (!s.ok) {
    lines.push('');
    lines.push(s.violationsText.trim() || s.violations.map((v) => `${v.checker}: ${v.message} (operations ${v.operationIds.join(', ')})`).join('\n'));
  }
  return lines.join('\n') + '\n';
}
