import type { Operation } from '../history';
import { namespaceChecker } from './namespace';
import { HistoryBuilder, emptyFinal, randomNamespaceHistory } from './test-helpers';

const checker = namespaceChecker();
const DIR = '/ns';

type Kind = 'create' | 'rename' | 'link' | 'unlink';

function op(h: HistoryBuilder, client: string, kind: Kind, value: string, invokeMs: number, completeMs: number, outcome: Operation['outcome'] = 'ok', error?: string): Operation {
  return h.add({ client, kind, key: DIR, value, invokeMs, completeMs, outcome, ...(error ? { error } : outcome === 'ok' ? {} : { error: 'ETIMEDOUT' }) });
}

function list(h: HistoryBuilder, client: string, names: string[], invokeMs: number, completeMs: number): Operation {
  return h.add({ client, kind: 'list', key: DIR, invokeMs, completeMs, outcome: 'ok', result: [...names].sort().join('\n') });
}

function final(names: string[]) {
  return emptyFinal({ listings: { [DIR]: names } });
}

describe('the namespace checker', () => {
  it('passes churn whose final listing and lists follow the operations', () => {
    const h = new HistoryBuilder();
    op(h, 'c1', 'create', 'a', 0, 1);
    op(h, 'c2', 'create', 'b', 0, 1);
    op(h, 'c1', 'rename', 'a\u0000c', 2, 3);
    op(h, 'c2', 'link', 'b\u0000d', 2, 3);
    list(h, 'c3', ['b', 'c', 'd'], 4, 5);
    op(h, 'c1', 'unlink', 'b', 6, 7);
    expect(checker.check(h.history(), final(['c', 'd']))).toMatchObject({ ok: true, stats: { directories: 1, operations: 6 } });
  });

  it('passes an unknown create whether or not it happened, and one a list saw', () => {
    for (const names of [['a'], ['a', 'x']]) {
      const h = new HistoryBuilder();
      op(h, 'c1', 'create', 'a', 0, 1);
      op(h, 'c2', 'create', 'x', 0, 1, 'unknown');
      expect(checker.check(h.history(), final(names)).ok).toBe(true);
    }
    const h = new HistoryBuilder();
    op(h, 'c2', 'create', 'x', 0, 1, 'unknown');
    list(h, 'c1', ['x'], 50, 51);
    expect(checker.check(h.history(), final(['x'])).ok).toBe(true);
  });

  it('treats a create answering EEXIST on a unique name as may-have-happened', () => {
    const h = new HistoryBuilder();
    op(h, 'c1', 'create', 'x', 0, 1, 'fail', 'EEXIST');
    expect(checker.check(h.history(), final(['x'])).ok).toBe(true);
  });

  it('fails an acknowledged create missing from the final listing, naming it', () => {
    const h = new HistoryBuilder();
    op(h, 'c1', 'create', 'a', 0, 1);
    op(h, 'c2', 'create', 'b', 0, 2);
    const result = checker.check(h.history(), final(['b']));
    expect(result.ok).toBe(false);
    expect(result.violations[0].message).toBe(
      '/ns: namespace not explainable: the final listing lacks "a", acknowledged by create #0 (ok at 1 ms), and no operation below may have removed it',
    );
    expect(result.violations[0].operations.map((o) => o.id)).toEqual([0]);
  });

  it('fails a name in the final listing that no client made, and one whose create failed', () => {
    const h = new HistoryBuilder();
    op(h, 'c1', 'create', 'a', 0, 1);
    expect(checker.check(h.history(), final(['a', 'ghost'])).violations[0].message).toBe(
      '/ns: namespace not explainable: the final listing holds "ghost", which no client created, renamed or linked there',
    );
    op(h, 'c1', 'create', 'b', 2, 3, 'fail', 'ENOENT');
    expect(checker.check(h.history(), final(['a', 'b'])).violations[0].message).toBe(
      '/ns: namespace not explainable: the final listing holds "b" although create #1 of it failed (ENOENT)',
    );
  });

  it('fails a stale list that still shows a name renamed away before it began', () => {
    const h = new HistoryBuilder();
    op(h, 'c1', 'create', 'a', 0, 1);
    op(h, 'c1', 'create', 'z', 0, 1);
    op(h, 'c1', 'rename', 'a\u0000b', 2, 3);
    list(h, 'c2', ['a', 'z'], 4, 5);
    const result = checker.check(h.history(), final(['b', 'z']));
    expect(result.violations[0].message).toBe(
      '/ns: namespace not explainable: no order of the operations below explains list #3 by c2 (4–5 ms) showing ["a"] among these names',
    );
    expect(result.violations[0].operations.map((o) => o.id)).toEqual([0, 2, 3]);
  });

  it('fails an acknowledged unlink of a name that never existed', () => {
    const h = new HistoryBuilder();
    op(h, 'c1', 'unlink', 'nope', 0, 1);
    expect(checker.check(h.history(), final([])).ok).toBe(false);
  });

  it('checks without a final listing when the runner has none, and counts it', () => {
    const h = new HistoryBuilder();
    op(h, 'c1', 'create', 'a', 0, 1);
    expect(checker.check(h.history(), emptyFinal())).toMatchObject({ ok: true, stats: { directoriesWithoutFinalListing: 1 } });
  });

  it('reports a directory inconclusive, never passed, when the step budget runs out', () => {
    const { operations, finalNames } = randomNamespaceHistory(3, 3, 60);
    const result = namespaceChecker({ maxStepsPerDirectory: 3 }).check({ operations, faults: [] }, final(finalNames));
    expect(result).toMatchObject({ ok: false, violations: [] });
    expect(result.inconclusive?.[0]).toMatch(/^\/ns: the namespace search gave up after 3 steps/);
  });

  it('checks a 3-client, 1000-operation churn with ~85 unknown operations, and finds one lost name in it', () => {
    const { operations, finalNames } = randomNamespaceHistory(1, 3, 1000);
    const startedMs = performance.now();
    const passing = checker.check({ operations, faults: [] }, final(finalNames));
    const passMs = performance.now() - startedMs;
    expect(passing.ok).toBe(true);
    const startedFailMs = performance.now();
    const failing = checker.check({ operations, faults: [] }, final(finalNames.filter((n) => n !== 'n101')));
    const failMs = performance.now() - startedFailMs;
    console.log(
      `namespace, 1000 ops (${operations.filter((o) => o.outcome === 'unknown').length} unknown): pass in ${passMs.toFixed(0)} ms (${passing.stats.statesExplored} steps); ` +
        `lost name found in ${failMs.toFixed(0)} ms (${failing.stats.statesExplored} steps, ${failing.stats.shrinkChecks} shrink searches)`,
    );
    expect(failing.violations.map((v) => v.message)).toEqual([
      '/ns: namespace not explainable: the final listing lacks "n101", acknowledged by create #101 (ok at 153.5104252086021 ms), and no operation below may have removed it',
    ]);
  });

  describe('on 100 random churn histories with random concurrency', () => {
    const seeds = Array.from({ length: 100 }, (_, i) => 500 + i);

    it('passes every one', () => {
      const failed: number[] = [];
      let steps = 0;
      for (const seed of seeds) {
        const { operations, finalNames } = randomNamespaceHistory(seed, 3, 30 + (seed % 50));
        const result = checker.check({ operations, faults: [] }, final(finalNames));
        steps += result.stats.statesExplored;
        if (!result.ok) failed.push(seed);
      }
      if (failed.length > 0) console.log(`explainable namespace histories reported as violations, seeds: ${failed.join(', ')}`);
      console.log(`namespace: 100 random histories, ${steps} search steps in all`);
      expect(failed).toEqual([]);
    });

    it('fails every one once an acknowledged name is dropped from the final listing', () => {
      const passed: number[] = [];
      let injected = 0;
      for (const seed of seeds) {
        const { operations, finalNames } = randomNamespaceHistory(seed, 3, 30 + (seed % 50));
        // A name added by an ok op that no other non-failed op removes or renames away must be there at the end.
        const removable = new Set(operations.filter((o) => o.outcome !== 'fail' && (o.kind === 'unlink' || o.kind === 'rename')).map((o) => (o.value ?? '').split('\u0000')[0]));
        const victim = finalNames.find((n) => !removable.has(n) && operations.some((o) => o.outcome === 'ok' && (o.value ?? '').split('\u0000').at(-1) === n && o.kind !== 'unlink'));
        if (!victim) continue;
        injected++;
        const result = checker.check({ operations, faults: [] }, final(finalNames.filter((n) => n !== victim)));
        if (result.ok) passed.push(seed);
      }
      if (passed.length > 0) console.log(`lost names not caught, seeds: ${passed.join(', ')}`);
      expect(passed).toEqual([]);
      expect(injected).toBeGreaterThan(50);
    });

    it('fails every one once a list misses a name acknowledged before it began (a stale read)', () => {
      const passed: number[] = [];
      let injected = 0;
      for (const seed of seeds) {
        const { operations, finalNames } = randomNamespaceHistory(seed, 3, 30 + (seed % 50));
        const removable = new Set(operations.filter((o) => o.outcome !== 'fail' && (o.kind === 'unlink' || o.kind === 'rename')).map((o) => (o.value ?? '').split('\u0000')[0]));
        const adds = operations.filter((o) => o.outcome === 'ok' && (o.kind === 'create' || o.kind === 'link') && !removable.has((o.value ?? '').split('\u0000').at(-1)!));
        const stale = operations.find((l) => l.kind === 'list' && l.outcome === 'ok' && adds.some((a) => a.completeMs < l.invokeMs));
        if (!stale) continue;
        const victim = adds.find((a) => a.completeMs < stale.invokeMs)!;
        const name = (victim.value ?? '').split('\u0000').at(-1)!;
        stale.result = (stale.result ?? '').split('\n').filter((n) => n !== name).join('\n');
        injected++;
        const result = checker.check({ operations, faults: [] }, final(finalNames));
        if (result.ok || !result.violations[0].operations.some((o) => o.id === stale.id)) passed.push(seed);
      }
      if (passed.length > 0) console.log(`stale lists not caught, seeds: ${passed.join(', ')}`);
      expect(passed).toEqual([]);
      expect(injected).toBeGreaterThan(50);
    });
  });
});
