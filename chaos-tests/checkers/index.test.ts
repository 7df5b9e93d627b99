import type { History, Operation } from '../history';
import type { Checker, FinalState } from './checker';
import { allCheckers, runCheckers, summarizeViolations } from './index';
import { HistoryBuilder, versionsOf } from './test-helpers';

/** A small run of every workload: registers, appends, namespace churn, with faults healed and members agreeing. */
function cleanRun(): { builder: HistoryBuilder; final: FinalState } {
  const h = new HistoryBuilder();
  h.write('sdk-0', '/r/0', 'v1', 0, 10);
  h.write('mount-h4-0', '/r/0', 'v2', 5, 15);
  h.read('sdk-1', '/r/0', 'v2', 16, 18);
  h.write('sdk-1', '/r/0', 'v3', 20, 40, 'unknown', 'ETIMEDOUT'); // the leader was killed mid-commit
  h.read('sdk-0', '/r/0', 'v3', 60, 62); // it landed after all
  h.add({ client: 'sdk-0', kind: 'append', key: '/a/0', value: 'sdk-0 1', invokeMs: 0, completeMs: 5, outcome: 'ok' });
  h.add({ client: 'sdk-1', kind: 'append', key: '/a/0', value: 'sdk-1 1', invokeMs: 1, completeMs: 30, outcome: 'unknown', error: 'ENOTCONN' });
  h.add({ client: 'sdk-0', kind: 'append', key: '/a/0', value: 'sdk-0 2', invokeMs: 6, completeMs: 9, outcome: 'ok' });
  h.add({ client: 'sdk-2', kind: 'create', key: '/ns', value: 'f1', invokeMs: 0, completeMs: 3, outcome: 'ok' });
  h.add({ client: 'sdk-2', kind: 'rename', key: '/ns', value: 'f1\u0000f2', invokeMs: 4, completeMs: 8, outcome: 'ok' });
  h.add({ client: 'sdk-2', kind: 'list', key: '/ns', invokeMs: 9, completeMs: 10, outcome: 'ok', result: 'f2' });
  const final: FinalState = {
    versions: { '/r/0': versionsOf('v1', 'v2', 'v3'), '/a/0': versionsOf('sdk-0 1\n', 'sdk-0 1\nsdk-0 2\n') },
    listings: { '/ns': ['f2'] },
    digests: ['m1', 'm2', 'm3'].map((member) => ({ member, appliedIndex: 120, digest: 'd41d8cd9' })),
    fsckClean: true,
    abandonedSessions: 0,
    overdueSessions: [],
  };
  return { builder: h, final };
}

function failingCheckers(history: History, final: FinalState): string[] {
  return runCheckers(history, final, allCheckers())
    .filter((r) => !r.ok)
    .map((r) => r.checker);
}

describe('the checkers together', () => {
  it('lists every checker in summary order', () => {
    expect(allCheckers().map((c) => c.name)).toEqual([
      'linearizable-registers',
      'no-lost-writes',
      'appends',
      'versions',
      'convergence',
      'errors',
      'namespace',
    ]);
  });

  it('pass a clean run with leader-loss uncertainty, and say so in one line', () => {
    const { builder, final } = cleanRun();
    const results = runCheckers(builder.history(), final, allCheckers({ convergence: { expectedMembers: 3 } }));
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const summary = summarizeViolations(results);
    expect(summary.split('\n')[0]).toBe('checkers: all 7 passed');
    expect(summary).toMatch(/^linearizable-registers: ok — keys 1, operations 5, statesExplored \d+/m);
  });

  describe('catch a cluster made wrong on purpose (issue 6 §5)', () => {
    it('acknowledge before commit: the acknowledged write is lost and a later read goes back in time', () => {
      const { builder: h, final } = cleanRun();
      h.write('sdk-2', '/r/0', 'v4', 70, 75); // acknowledged, then the leader died before the entry committed
      h.read('sdk-0', '/r/0', 'v3', 80, 82);
      const results = runCheckers(h.history(), final, allCheckers());
      expect(results.filter((r) => !r.ok).map((r) => r.checker)).toEqual(['linearizable-registers', 'no-lost-writes']);
      const summary = summarizeViolations(results);
      expect(summary).toContain('acknowledged write #11 by sdk-2 of "v4" (ok at 75 ms) is lost: it is in none of the 3 versions of /r/0');
      expect(summary).toContain(
        '/r/0 is not linearizable: read #12 by sdk-0 (80–82 ms) returned "v3", a stale value: write #11 of "v4" was acknowledged at 75 ms, before the read began',
      );
    });

    it('read from a follower without ReadIndex: a stale read', () => {
      const { builder: h, final } = cleanRun();
      h.read('mount-h5-0', '/r/0', 'v1', 19, 19.5); // v2 was acknowledged at 15 and already read at 18
      expect(failingCheckers(h.history(), final)).toEqual(['linearizable-registers']);
    });

    it('skip session dedup: a retried append lands twice and a retried rename answers ENOENT although it happened', () => {
      const { builder: h, final } = cleanRun();
      h.add({ client: 'sdk-0', kind: 'append', key: '/a/0', value: 'sdk-0 3', invokeMs: 90, completeMs: 99, outcome: 'ok' });
      h.add({ client: 'sdk-2', kind: 'rename', key: '/ns', value: 'f2\u0000f3', invokeMs: 90, completeMs: 99, outcome: 'fail', error: 'ENOENT' });
      final.versions['/a/0'].push({ version: 3, content: 'sdk-0 1\nsdk-0 2\nsdk-0 3\nsdk-0 3\n', conflict: false });
      final.listings['/ns'] = ['f3'];
      const results = runCheckers(h.history(), final, allCheckers());
      expect(results.filter((r) => !r.ok).map((r) => r.checker)).toEqual(['appends', 'namespace']);
      const summary = summarizeViolations(results);
      expect(summary).toContain('/a/0: the final file holds the record of append #11 2× (at most 1 allowed: duplicated: a retried append was applied twice)');
      expect(summary).toContain('/ns: namespace not explainable: the final listing holds "f3" although rename #12 of it failed (ENOENT)');
    });

    it('members that diverged and a version gap', () => {
      const { builder, final } = cleanRun();
      final.digests[2] = { member: 'm3', appliedIndex: 120, digest: 'ffffffff' };
      final.versions['/r/0'][2].version = 4;
      expect(failingCheckers(builder.history(), final)).toEqual(['versions', 'convergence']);
    });
  });

  it('refuse a malformed history outright', () => {
    const { builder, final } = cleanRun();
    const history = builder.history();
    const bad: Operation = { ...history.operations[0], completeMs: -1 };
    expect(() => runCheckers({ ...history, operations: [bad] }, final, allCheckers())).toThrow(/needs invokeMs <= completeMs/);
    expect(() => runCheckers({ ...history, operations: [history.operations[0], history.operations[0]] }, final, allCheckers())).toThrow(
      /operation 0: id used twice/,
    );
  });

  it('report a checker that throws as undecided, never as passed', () => {
    const { builder, final } = cleanRun();
    const broken: Checker = {
      name: 'broken',
      check() {
        throw new Error('boom');
      },
    };
    const [result] = runCheckers(builder.history(), final, [broken]);
    expect(result).toEqual({ checker: 'broken', ok: false, violations: [], stats: {}, inconclusive: ['the checker threw: boom'] });
    expect(summarizeViolations([result])).toBe('checkers: 1 of 1 did not pass\nbroken: INCONCLUSIVE\n  undecided: the checker threw: boom\n');
  });

  it('print each violation with its operations in invoke order, with times', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 10);
    h.write('c2', '/r', 'b', 20, 30);
    h.read('c1', '/r', 'a', 40, 41);
    const results = runCheckers(h.history(), { versions: {}, listings: {}, digests: [{ member: 'm1', appliedIndex: 1, digest: 'x' }], fsckClean: true, abandonedSessions: 0, overdueSessions: [] }, allCheckers());
    const text = summarizeViolations(results.filter((r) => r.checker === 'linearizable-registers'));
    expect(text).toBe(
      [
        'checkers: 1 of 1 did not pass',
        'linearizable-registers: FAIL (1 violations) — keys 1, operations 3, statesExplored 0, maxStatesPerKey 0, cacheEntries 0, shrinkChecks 0, screenedViolations 1',
        '  1. /r is not linearizable: read #2 by c1 (40–41 ms) returned "a", a stale value: write #1 of "b" was acknowledged at 30 ms, before the read began',
        '       #0 c1 write /r "a" ok [0–10 ms]',
        '       #1 c2 write /r "b" ok [20–30 ms]',
        '       #2 c1 read /r → "a" ok [40–41 ms]',
        '',
      ].join('\n'),
    );
  });
});
