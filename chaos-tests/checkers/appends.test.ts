import type { Operation } from '../history';
import { appendRecords, appendsChecker } from './appends';
import { HistoryBuilder, emptyFinal, versionsOf } from './test-helpers';

const checker = appendsChecker();

function append(h: HistoryBuilder, client: string, value: string, invokeMs: number, completeMs: number, outcome: Operation['outcome'] = 'ok', error?: string): Operation {
  return h.add({ client, kind: 'append', key: '/log', value, invokeMs, completeMs, outcome, ...(error ? { error } : {}) });
}

function readAppends(h: HistoryBuilder, client: string, result: string, invokeMs: number, completeMs: number): Operation {
  return h.add({ client, kind: 'read-appends', key: '/log', invokeMs, completeMs, outcome: 'ok', result });
}

function finalLog(content: string) {
  return emptyFinal({ versions: { '/log': versionsOf(content) } });
}

describe('the appends checker', () => {
  it('splits records on lines', () => {
    expect(appendRecords('')).toEqual([]);
    expect(appendRecords('a\nb\n')).toEqual(['a', 'b']);
    expect(appendRecords('a\nb')).toEqual(['a', 'b']);
  });

  it('passes acknowledged records once, unknown ones at most once, failed ones never', () => {
    const h = new HistoryBuilder();
    append(h, 'c1', 'r1', 0, 1);
    append(h, 'c2', 'r2', 0, 2, 'unknown', 'ETIMEDOUT');
    append(h, 'c3', 'r3', 0, 2, 'unknown', 'ENOTCONN');
    append(h, 'c1', 'r4', 3, 4, 'fail', 'EAGAIN');
    readAppends(h, 'c2', 'r1\n', 1.5, 1.8);
    readAppends(h, 'c2', 'r1\nr3\n', 5, 6);
    const result = checker.check(h.history(), finalLog('r1\nr3\n'));
    expect(result).toMatchObject({ ok: true, stats: { appendsOk: 1, appendsUnknown: 2, appendsFail: 1, finalRecords: 2, readsChecked: 2 } });
  });

  it('fails a record applied twice (session dedup skipped on a retry)', () => {
    const h = new HistoryBuilder();
    append(h, 'c1', 'r1', 0, 1);
    append(h, 'c2', 'r2', 0, 3);
    const result = checker.check(h.history(), finalLog('r1\nr2\nr2\n'));
    expect(result.ok).toBe(false);
    expect(result.violations.map((v) => v.message)).toEqual([
      '/log: the final file holds the record of append #1 2× (at most 1 allowed: duplicated: a retried append was applied twice)',
    ]);
  });

  it('fails an unknown append present twice', () => {
    const h = new HistoryBuilder();
    append(h, 'c1', 'r1', 0, 1, 'unknown', 'ETIMEDOUT');
    expect(checker.check(h.history(), finalLog('r1\nr1\n')).violations[0].message).toMatch(/append #0 2×/);
  });

  it('fails a failed append whose record is present', () => {
    const h = new HistoryBuilder();
    append(h, 'c1', 'r1', 0, 1, 'fail', 'EAGAIN');
    expect(checker.check(h.history(), finalLog('r1\n')).violations[0].message).toBe(
      '/log: the final file holds the record of failed append #0 (EAGAIN) 1× (at most 0 allowed: a failed append took effect)',
    );
  });

  it('fails a record no client appended (torn bytes)', () => {
    const h = new HistoryBuilder();
    append(h, 'c1', 'record-1', 0, 1);
    expect(checker.check(h.history(), finalLog('record-1\nrec\n')).violations[0].message).toBe(
      '/log: the final file holds record "rec" 1× that no client appended (torn or foreign bytes)',
    );
  });

  it('fails an acknowledged record missing from the final file', () => {
    const h = new HistoryBuilder();
    append(h, 'c1', 'r1', 0, 1);
    append(h, 'c2', 'r2', 0, 1);
    const result = checker.check(h.history(), finalLog('r2\n'));
    expect(result.violations[0].message).toBe('/log: the final file lacks the record of acknowledged append #0 by c1 "r1" (found 0×, acknowledged 1×)');
  });

  it('fails an intermediate read that lacks a record acknowledged before it began, but not one acknowledged later', () => {
    const h = new HistoryBuilder();
    append(h, 'c1', 'r1', 0, 1);
    append(h, 'c2', 'r2', 0, 10);
    readAppends(h, 'c3', '', 5, 6); // r1 was acknowledged at 1: it must be there; r2 may not be yet
    const result = checker.check(h.history(), finalLog('r1\nr2\n'));
    expect(result.violations.map((v) => v.message)).toEqual([
      '/log: read #2 by c3 (5–6 ms) lacks the record of acknowledged append #0 by c1 "r1" (found 0×, acknowledged 1×)',
    ]);
  });

  it('fails an intermediate read that is not a prefix of the final file', () => {
    const h = new HistoryBuilder();
    append(h, 'c1', 'r1', 0, 1);
    append(h, 'c2', 'r2', 0, 1);
    readAppends(h, 'c3', 'r2\nr1\n', 5, 6);
    const result = checker.check(h.history(), finalLog('r1\nr2\n'));
    expect(result.violations.map((v) => v.message)).toEqual([
      '/log: read #2 by c3 (5–6 ms) is not a prefix of the final file (2 records read, 2 at the end): records were reordered or removed',
    ]);
  });

  it('uses the last ok read-appends when the final state lacks the file, and is inconclusive without either', () => {
    const h = new HistoryBuilder();
    append(h, 'c1', 'r1', 0, 1);
    readAppends(h, 'c2', 'r1\nr1\n', 2, 3);
    const result = checker.check(h.history(), emptyFinal());
    expect(result.violations[0].message).toMatch(/^\/log: the last read \(#1\) holds the record of append #0 2×/);
    const bare = new HistoryBuilder();
    append(bare, 'c1', 'r1', 0, 1);
    expect(checker.check(bare.history(), emptyFinal())).toMatchObject({ ok: false, violations: [], inconclusive: [expect.stringMatching(/^\/log: neither/)] });
  });

  it('folds more than 20 violations on one file into an "and N more"', () => {
    const h = new HistoryBuilder();
    for (let i = 0; i < 30; i++) append(h, 'c1', `r${i}`, i, i + 0.5);
    const result = checker.check(h.history(), finalLog(''));
    expect(result.violations).toHaveLength(20);
    expect(result.violations[19].message).toBe('/log: and 11 more append violations of the kinds above');
  });
});
