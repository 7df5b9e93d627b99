import { linearizableRegistersChecker, checkRegisterKey } from './linearizable-registers';
import { searchLinearization, shrinkFailing } from './wing-gong';
import { HistoryBuilder, emptyFinal, injectStaleRead, randomRegisterHistory, versionsOf } from './test-helpers';

const checker = linearizableRegistersChecker();

function check(builder: HistoryBuilder, versions: Record<string, ReturnType<typeof versionsOf>> = {}) {
  return checker.check(builder.history(), emptyFinal({ versions }));
}

describe('the linearizable-registers checker', () => {
  it('passes two concurrent writes read in either order by later readers', () => {
    for (const [first, second] of [['a', 'b'], ['b', 'a']]) {
      const h = new HistoryBuilder();
      h.write('c1', '/r', 'a', 0, 10);
      h.write('c2', '/r', 'b', 1, 11);
      h.read('c3', '/r', first, 2, 5);
      h.read('c3', '/r', second, 12, 14);
      expect(check(h).ok).toBe(true);
    }
  });

  it('passes a read of a missing file before any write lands', () => {
    const h = new HistoryBuilder();
    h.read('c1', '/r', undefined, 0, 1);
    h.write('c2', '/r', 'a', 2, 3);
    h.read('c1', '/r', 'a', 4, 5);
    expect(check(h).ok).toBe(true);
  });

  it('fails a read of a value nobody wrote, naming it', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 10);
    h.read('c2', '/r', 'zzz', 11, 12);
    const result = check(h);
    expect(result.ok).toBe(false);
    expect(result.violations[0].message).toMatch(/read #1 by c2 .* returned "zzz", a value no client wrote/);
    expect(result.violations[0].operations.map((op) => op.id)).toEqual([1]);
  });

  it('fails a read from the future', () => {
    const h = new HistoryBuilder();
    h.read('c2', '/r', 'a', 0, 5);
    h.write('c1', '/r', 'a', 6, 10);
    expect(check(h).violations[0].message).toBe(
      '/r is not linearizable: read #0 by c2 (0–5 ms) returned "a", a value from the future: write #1 only began at 6 ms, after the read ended',
    );
  });

  it('fails a read of the value of a failed write', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 10, 'fail', 'EBUSY');
    h.read('c2', '/r', 'a', 11, 12);
    const result = check(h);
    expect(result.violations[0].message).toMatch(/the value of a write that failed \(#0, EBUSY\)/);
  });

  it('fails a stale read after an acknowledged write, and shrinks to the three operations that show it', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 10);
    h.read('c3', '/r', 'a', 11, 12);
    h.write('c2', '/r', 'b', 20, 30);
    h.read('c3', '/r', 'b', 31, 32);
    h.read('c1', '/r', 'a', 40, 41); // stale
    h.write('c2', '/r', 'c', 50, 60);
    h.read('c3', '/r', 'c', 61, 62);
    const result = check(h);
    expect(result.ok).toBe(false);
    expect(result.violations).toHaveLength(1);
    const violation = result.violations[0];
    expect(violation.message).toMatch(/read #4 by c1 \(40–41 ms\) returned "a", a stale value: write #2 of "b" was acknowledged at 30 ms/);
    expect(violation.operations.map((op) => op.id).sort()).toEqual([0, 2, 4]);
  });

  it('fails a read going back in time after another client read the newer value', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 100);
    h.write('c2', '/r', 'b', 0, 100);
    h.read('c3', '/r', 'b', 10, 20);
    h.read('c4', '/r', 'a', 30, 40);
    h.read('c3', '/r', 'b', 50, 60);
    const result = check(h);
    expect(result.ok).toBe(false);
    expect(result.violations[0].message).toMatch(/going back in time|no order/);
    expect(result.violations[0].operations.length).toBeLessThanOrEqual(5);
  });

  it('passes an unknown write that appears late, long after its client gave up', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 10);
    h.write('c2', '/r', 'late', 11, 12, 'unknown', 'ETIMEDOUT');
    h.read('c3', '/r', 'a', 20, 21);
    h.read('c3', '/r', 'late', 500, 501);
    expect(check(h).ok).toBe(true);
  });

  it('passes an unknown write that explains a read, and one that never took effect', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'x', 0, 5, 'unknown', 'ENOTCONN');
    h.write('c1', '/r', 'y', 6, 7, 'unknown', 'ETIMEDOUT');
    h.read('c2', '/r', 'x', 8, 9);
    h.read('c2', '/r', 'x', 10, 11);
    expect(check(h).ok).toBe(true);
  });

  it('takes the initial value as a parameter', () => {
    const h = new HistoryBuilder();
    h.read('c1', '/r', '', 0, 1);
    expect(check(h).ok).toBe(false);
    expect(linearizableRegistersChecker({ initialValue: '' }).check(h.history(), emptyFinal()).ok).toBe(true);
  });

  it('checks each file alone: a violation on one key names only that key', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r0', 'a', 0, 1);
    h.write('c1', '/r1', 'b', 2, 3);
    h.read('c2', '/r0', 'a', 4, 5);
    h.read('c2', '/r1', 'a', 6, 7);
    const result = check(h);
    expect(result.violations).toHaveLength(1);
    expect(result.violations[0].message).toMatch(/^\/r1 is not linearizable/);
    expect(result.stats.keys).toBe(2);
  });

  describe('with the file versions', () => {
    it('passes concurrent writes whose reads follow the version order', () => {
      const h = new HistoryBuilder();
      h.write('c1', '/r', 'a', 0, 10);
      h.write('c2', '/r', 'b', 1, 11);
      h.read('c3', '/r', 'a', 12, 13);
      expect(check(h, { '/r': versionsOf('b', 'a') }).ok).toBe(true);
    });

    it('fails reads that saw the writes in the opposite order of the versions', () => {
      const h = new HistoryBuilder();
      h.write('c1', '/r', 'a', 0, 10);
      h.write('c2', '/r', 'b', 1, 11);
      h.read('c3', '/r', 'a', 12, 13);
      const result = check(h, { '/r': versionsOf('a', 'b') });
      expect(result.ok).toBe(false);
      expect(result.violations[0].operations.map((op) => op.id).sort()).toEqual([0, 1, 2]);
      expect(result.violations[0].message).toBe(
        '/r is not linearizable: no order of the 3 operations below explains read #2 by c3 (12–13 ms) returned "a"' +
          ' — only because the versions fix the writes\' order ("a" is version 1, "b" is version 2)',
      );
    });

    it('fails versions that contradict real time (a write acknowledged before another began is versioned after it)', () => {
      const h = new HistoryBuilder();
      h.write('c1', '/r', 'a', 0, 10);
      h.write('c2', '/r', 'b', 20, 30);
      expect(check(h, { '/r': versionsOf('b', 'a') }).ok).toBe(false);
    });

    it('places an unknown write that is among the versions where the versions say', () => {
      const h = new HistoryBuilder();
      h.write('c1', '/r', 'a', 0, 10);
      h.write('c2', '/r', 'u', 11, 12, 'unknown', 'ETIMEDOUT');
      h.write('c1', '/r', 'b', 20, 30);
      h.read('c3', '/r', 'u', 40, 41);
      expect(check(h, { '/r': versionsOf('a', 'b', 'u') }).ok).toBe(true);
      // u read after b was acknowledged, yet versioned before b: no order explains both.
      expect(check(h, { '/r': versionsOf('a', 'u', 'b') }).ok).toBe(false);
    });
  });

  it('reports a key inconclusive, never passed, when the step budget runs out', () => {
    const { operations } = randomRegisterHistory(7, 3, 60);
    const tight = linearizableRegistersChecker({ maxStepsPerKey: 5 });
    const result = tight.check({ operations, faults: [] }, emptyFinal());
    expect(result.ok).toBe(false);
    expect(result.violations).toHaveLength(0);
    expect(result.inconclusive?.[0]).toMatch(/^\/r: the linearizability search gave up after 5 steps/);
  });

  describe('on 250 random histories of a sequential register, 2 to 9 clients with random concurrency', () => {
    const seeds = Array.from({ length: 250 }, (_, i) => 1000 + i);

    it('passes every one', () => {
      const failedSeeds: number[] = [];
      for (const seed of seeds) {
        const { operations, effectOrder } = randomRegisterHistory(seed, 2 + (seed % 8), 40 + (seed % 60));
        const plain = checker.check({ operations, faults: [] }, emptyFinal());
        const withVersions = checker.check({ operations, faults: [] }, emptyFinal({ versions: { '/r': versionsOf(...effectOrder) } }));
        if (!plain.ok || !withVersions.ok) failedSeeds.push(seed);
      }
      if (failedSeeds.length > 0) console.log(`linearizable histories reported as violations, seeds: ${failedSeeds.join(', ')}`);
      expect(failedSeeds).toEqual([]);
    });

    it('fails every one once a stale read is injected, by the screen and by the search alone', () => {
      const searchOnly = linearizableRegistersChecker({ screen: false });
      const passedSeeds: number[] = [];
      let injected = 0;
      for (const seed of seeds) {
        const { operations } = randomRegisterHistory(seed, 2 + (seed % 8), 40 + (seed % 60));
        const stale = injectStaleRead(operations, seed);
        if (!stale) continue;
        injected++;
        for (const c of [checker, searchOnly]) {
          const result = c.check({ operations, faults: [] }, emptyFinal());
          if (result.ok || !result.violations[0]?.operations.some((op) => op.id === stale.id)) passedSeeds.push(seed);
        }
      }
      if (passedSeeds.length > 0) console.log(`stale reads not caught, seeds: ${passedSeeds.join(', ')}`);
      expect(passedSeeds).toEqual([]);
      expect(injected).toBeGreaterThan(200);
    });
  });

  it('checks a 3-client, 500-operation history within its budget and reports the states explored', () => {
    const { operations, effectOrder } = randomRegisterHistory(42, 3, 500);
    const startedMs = performance.now();
    const verdict = checkRegisterKey('/r', operations, undefined);
    const plainMs = performance.now() - startedMs;
    const startedVersionsMs = performance.now();
    const withVersions = checkRegisterKey('/r', operations, effectOrder);
    const versionsMs = performance.now() - startedVersionsMs;
    console.log(
      `500 ops, 3 clients: ${verdict.steps} steps, ${verdict.cacheEntries} states cached, ${plainMs.toFixed(1)} ms; ` +
        `with version order: ${withVersions.steps} steps, ${withVersions.cacheEntries} states, ${versionsMs.toFixed(1)} ms`,
    );
    expect(verdict.verdict).toBe('linearizable');
    expect(withVersions.verdict).toBe('linearizable');
    const stale = injectStaleRead(operations, 42)!;
    const startedFailMs = performance.now();
    const result = checker.check({ operations, faults: [] }, emptyFinal());
    const screenMs = performance.now() - startedFailMs;
    const startedSearchMs = performance.now();
    const searched = linearizableRegistersChecker({ screen: false }).check({ operations, faults: [] }, emptyFinal());
    console.log(
      `500 ops with one stale read: screened in ${screenMs.toFixed(1)} ms; by search alone in ${(performance.now() - startedSearchMs).toFixed(1)} ms ` +
        `(${searched.stats.statesExplored} steps) plus shrinking to ${searched.violations[0]?.operations.length} ops (${searched.stats.shrinkChecks} searches)`,
    );
    expect(result.violations[0].operations.map((op) => op.id)).toContain(stale.id);
    expect(searched.violations[0].operations.map((op) => op.id)).toContain(stale.id);
  });
});

describe('the register search at high concurrency', () => {
  it('checks 2,000 operations of 20 concurrent clients on one file, with and without the version order', () => {
    const { operations, effectOrder } = randomRegisterHistory(7, 20, 2000);
    const startedMs = performance.now();
    const plain = checkRegisterKey('/r', operations, undefined);
    const withVersions = checkRegisterKey('/r', operations, effectOrder);
    console.log(`2000 ops, 20 clients: ${plain.steps} steps, with version order ${withVersions.steps} steps, ${(performance.now() - startedMs).toFixed(0)} ms for both`);
    expect([plain.verdict, withVersions.verdict]).toEqual(['linearizable', 'linearizable']);
  });
});

describe('the Wing & Gong search', () => {
  it('backtracks through nondeterministic steps', () => {
    // One op that may add 1 or 2, then a read that needs 2.
    const ops = [
      { invokeMs: 0, completeMs: 1 },
      { invokeMs: 2, completeMs: 3 },
    ];
    const model = { init: 0, key: String, step: (s: number, i: number) => (i === 0 ? [s + 1, s + 2] : s === 2 ? [s] : []) };
    expect(searchLinearization(ops, model, 100).verdict).toBe('linearizable');
    const never = { ...model, step: (s: number, i: number) => (i === 0 ? [s + 1, s + 2] : s === 3 ? [s] : []) };
    expect(searchLinearization(ops, never, 100).verdict).toBe('not-linearizable');
  });

  it('shrinks to a minimal failing set', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const shrunk = shrinkFailing(items, (c) => c.includes(7) && c.includes(31), 1000);
    expect(shrunk.items).toEqual([7, 31]);
    expect(shrunk.minimal).toBe(true);
  });
});
