/**
 * Scenarios for the run summary's figures (pure): the stall after a leader
 * loss, percentiles, counts, the text, the timeline page and --duration.
 */
import { parseDuration } from '../chaos-command';
import type { FinalState } from '../checkers/checker';
import type { FaultEvent, History, Operation } from '../history';
import { percentile, renderSummary, stallAfter, summarize } from './summary';
import { renderTimeline } from './timeline';

function op(id: number, invokeMs: number, completeMs: number, outcome: Operation['outcome'] = 'ok'): Operation {
  return { id, client: 'c', kind: 'write', key: '/reg/r0', value: `v${id}`, invokeMs, completeMs, outcome };
}

const final: FinalState = { versions: {}, listings: {}, digests: [{ member: 'm1', appliedIndex: 9, digest: 'abcdef0123456789' }], fsckClean: true, abandonedSessions: 0, overdueSessions: [] };

describe('the stall after a leader loss', () => {
  it('is the longest gap between ok completions from before the fault to the first ok after its heal', () => {
    const fault: FaultEvent = { name: 'kill-leader', targets: ['m1'], startMs: 1_000, endMs: 3_000, leaderLoss: true };
    // ok at 900, then nothing until 2,500 (the election), 2,600, and the first after the heal at 3,100.
    expect(stallAfter(fault, [100, 900, 2_500, 2_600, 3_100, 3_200], 4_000)).toEqual({ stallMs: 1_600, recovered: true });
  });

  it('runs to the end of the workload when no operation succeeded after the fault', () => {
    const fault: FaultEvent = { name: 'partition-leader', targets: ['m1'], startMs: 1_000, endMs: 2_000, leaderLoss: true };
    expect(stallAfter(fault, [500, 900], 5_000)).toEqual({ stallMs: 4_100, recovered: false });
  });

  it('takes percentiles by rank', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 99)).toBe(4);
    expect(percentile([], 50)).toBe(0);
  });
});

describe('the summary', () => {
  const history: History = {
    operations: [op(0, 0, 10), op(1, 20, 30, 'unknown'), op(2, 40, 2_000), op(3, 2_010, 2_020, 'fail')],
    faults: [
      { name: 'kill-leader', targets: ['m1'], startMs: 35, endMs: 1_500, leaderLoss: true },
      { name: 'isolate-client', targets: ['hfsc5'], startMs: 2_100, endMs: 2_200, leaderLoss: false },
    ],
  };

  it('counts operations by outcome and kind, measures only leader losses, and fails on a violation', () => {
    const results = [{ checker: 'x', ok: false, stats: {}, violations: [{ checker: 'x', message: 'lost it', operations: [history.operations[2]] }] }];
    const summary = summarize({ history, final, results, violationsText: 'x: lost it\n', seed: 1, durationMs: 2_000, nemeses: ['kill-leader'], clients: ['c'], runDir: '/tmp/r', workloadEndMs: 2_100 });
    expect(summary.operations.byOutcome).toEqual({ ok: 2, fail: 1, unknown: 1 });
    expect(summary.operations.byKind.write).toEqual({ ok: 2, fail: 1, unknown: 1 });
    expect(summary.faultCounts).toEqual({ 'kill-leader': 1, 'isolate-client': 1 });
    expect(summary.stalls).toMatchObject({ count: 1, p50Ms: 1_990, maxMs: 1_990 });
    expect(summary.ok).toBe(false);
    expect(summary.violations).toEqual([{ checker: 'x', message: 'lost it', operationIds: [2] }]);
    const text = renderSummary(summary);
    expect(text).toContain('FAILED');
    expect(text).toContain('p50 1990 ms');
    expect(text).toContain('x: lost it');
  });

  it('draws a self-contained timeline: a dot per operation, a shaded window per fault, no scripts', () => {
    const html = renderTimeline(history, 'test <run>');
    expect(html.match(/<circle cx/g)?.length).toBe(4 + 3); // 4 operations + 3 legend dots
    expect(html).toContain('kill-leader');
    expect(html).toContain('test &lt;run&gt;');
    expect(html).not.toMatch(/<script|src=|href=/);
  });
});

describe('--duration', () => {
  it('takes ms, s, m and h, and refuses nonsense', () => {
    expect(parseDuration('60s')).toBe(60_000);
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('1500ms')).toBe(1_500);
    expect(parseDuration('45')).toBe(45_000);
    expect(() => parseDuration('soon')).toThrow(/--duration/);
    expect(() => parseDuration('0s')).toThrow(/between/);
  });
});
