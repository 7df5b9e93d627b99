import { noLostWritesChecker } from './no-lost-writes';
import { HistoryBuilder, emptyFinal, versionsOf } from './test-helpers';

const checker = noLostWritesChecker();

describe('the no-lost-writes checker', () => {
  it('passes when every acknowledged write is a version and an unknown one is absent', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 10);
    h.write('c2', '/r', 'b', 5, 15);
    h.write('c2', '/r', 'never-landed', 20, 25, 'unknown', 'ETIMEDOUT');
    h.write('c1', '/r', 'refused', 20, 25, 'fail', 'EAGAIN');
    const result = checker.check(h.history(), emptyFinal({ versions: { '/r': versionsOf('b', 'a') } }));
    expect(result).toMatchObject({ ok: true, stats: { writesAcknowledged: 2, writesFound: 2 } });
  });

  it('fails an acknowledged write missing from the versions (acknowledged before commit, then lost)', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 10);
    const lost = h.write('c2', '/r', 'b', 20, 30);
    const result = checker.check(h.history(), emptyFinal({ versions: { '/r': versionsOf('a') } }));
    expect(result.ok).toBe(false);
    expect(result.violations).toEqual([
      {
        checker: 'no-lost-writes',
        message: 'acknowledged write #1 by c2 of "b" (ok at 30 ms) is lost: it is in none of the 1 versions of /r',
        operations: [lost],
      },
    ]);
  });

  it('fails acknowledged writes to a file that has no versions at all', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/gone', 'a', 0, 10);
    const result = checker.check(h.history(), emptyFinal());
    expect(result.violations[0].message).toMatch(/\/gone, which has no versions at all after healing/);
  });

  it('fails an acknowledged append whose record is not in the final file', () => {
    const h = new HistoryBuilder();
    h.add({ client: 'c1', kind: 'append', key: '/log', value: 'r1', invokeMs: 0, completeMs: 1, outcome: 'ok' });
    h.add({ client: 'c2', kind: 'append', key: '/log', value: 'r2', invokeMs: 0, completeMs: 2, outcome: 'ok' });
    h.add({ client: 'c3', kind: 'append', key: '/log', value: 'r3', invokeMs: 0, completeMs: 2, outcome: 'unknown', error: 'ETIMEDOUT' });
    const result = checker.check(h.history(), emptyFinal({ versions: { '/log': versionsOf('r1\n', 'r1\nr3\n') } }));
    expect(result.violations.map((v) => v.message)).toEqual([
      'acknowledged append #1 by c2 of "r2" (ok at 2 ms) is lost: its record is not in the final file of /log',
    ]);
  });

  it('falls back to the last ok read-appends when the final versions do not name the file', () => {
    const h = new HistoryBuilder();
    h.add({ client: 'c1', kind: 'append', key: '/log', value: 'r1', invokeMs: 0, completeMs: 1, outcome: 'ok' });
    h.add({ client: 'c2', kind: 'read-appends', key: '/log', invokeMs: 2, completeMs: 3, outcome: 'ok', result: 'r1\n' });
    h.add({ client: 'c1', kind: 'append', key: '/log', value: 'r2', invokeMs: 4, completeMs: 5, outcome: 'ok' });
    h.add({ client: 'c2', kind: 'read-appends', key: '/log', invokeMs: 6, completeMs: 7, outcome: 'ok', result: 'r1\n' });
    const result = checker.check(h.history(), emptyFinal());
    expect(result.violations[0].message).toMatch(/append #2 .* not in the last read-appends \(#3\) of \/log/);
    expect(result.violations[0].operations.map((op) => op.id)).toEqual([2, 3]);
  });

  it('is inconclusive, not passed, when an append file has no final content at all', () => {
    const h = new HistoryBuilder();
    h.add({ client: 'c1', kind: 'append', key: '/log', value: 'r1', invokeMs: 0, completeMs: 1, outcome: 'ok' });
    const result = checker.check(h.history(), emptyFinal());
    expect(result.ok).toBe(false);
    expect(result.inconclusive).toEqual(['/log: no final content to look for 1 acknowledged appends in']);
  });

  it('folds a flood of lost writes into one closing violation', () => {
    const h = new HistoryBuilder();
    for (let i = 0; i < 70; i++) h.write('c1', '/r', `v${i}`, i, i + 0.5);
    const result = checker.check(h.history(), emptyFinal({ versions: { '/r': [] } }));
    expect(result.violations).toHaveLength(51);
    expect(result.violations[50].message).toBe('and 20 more acknowledged writes or appends lost');
  });
});
