import { errnoName, errorsChecker } from './errors';
import { HistoryBuilder, emptyFinal } from './test-helpers';

describe('the errors checker', () => {
  const checker = errorsChecker();

  it('reads the errno at the start of an error text', () => {
    expect(errnoName('ETIMEDOUT: no answer from 3 members')).toBe('ETIMEDOUT');
    expect(errnoName('timed out')).toBeUndefined();
    expect(errnoName(undefined)).toBeUndefined();
  });

  it('passes documented errors recorded with a sound outcome', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 1, 'unknown', 'ETIMEDOUT');
    h.write('c1', '/r', 'b', 0, 1, 'unknown', 'ENOTCONN: session expired');
    h.write('c1', '/r', 'c', 0, 1, 'fail', 'EAGAIN');
    h.write('c1', '/r', 'd', 0, 1, 'unknown', 'EAGAIN'); // conservative: allowed
    h.add({ client: 'c2', kind: 'read', key: '/r', invokeMs: 0, completeMs: 1, outcome: 'fail', error: 'EIO' });
    h.add({ client: 'c2', kind: 'create', key: '/d', value: 'n1', invokeMs: 0, completeMs: 1, outcome: 'fail', error: 'EEXIST' });
    h.add({ client: 'c2', kind: 'unlink', key: '/d', value: 'n1', invokeMs: 0, completeMs: 1, outcome: 'unknown', error: 'ECONNABORTED' });
    expect(checker.check(h.history(), emptyFinal())).toMatchObject({ ok: true, stats: { failed: 3, unknown: 4, undocumented: 0 } });
  });

  it('fails an unexpected errno, grouped with a count and the first occurrence', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 1, 'unknown', 'EPERM');
    h.write('c2', '/r', 'b', 5, 6, 'unknown', 'EPERM');
    const result = checker.check(h.history(), emptyFinal());
    expect(result.violations).toHaveLength(1);
    expect(result.violations[0].message).toBe(
      '2 write operations ended unknown with EPERM, which is not a documented error for write (documented: EAGAIN, ETIMEDOUT, EIO, ENOTCONN, ECONNABORTED, ECANCELED); first: #0 by c1 at 0 ms',
    );
    expect(result.violations[0].operations.map((op) => op.id)).toEqual([0, 1]);
  });

  it('fails a may-have-happened errno recorded as fail (the other checkers would wrongly drop the write)', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 1, 'fail', 'ETIMEDOUT');
    expect(checker.check(h.history(), emptyFinal()).violations[0].message).toMatch(
      /^1 write operations are recorded as fail with ETIMEDOUT, which does not guarantee nothing happened .*record them as unknown/,
    );
  });

  it('allows EBUSY on a write only under the reject policy, and never on an append', () => {
    const h = new HistoryBuilder();
    h.write('c1', '/r', 'a', 0, 1, 'fail', 'EBUSY');
    expect(checker.check(h.history(), emptyFinal()).ok).toBe(false);
    const reject = errorsChecker({ conflictPolicy: 'reject' });
    expect(reject.check(h.history(), emptyFinal()).ok).toBe(true);
    h.add({ client: 'c1', kind: 'append', key: '/log', value: 'x', invokeMs: 2, completeMs: 3, outcome: 'fail', error: 'EBUSY' });
    expect(reject.check(h.history(), emptyFinal()).violations[0].message).toMatch(/^1 append operations ended fail with EBUSY/);
  });

  it('fails a failure recorded without an errno', () => {
    const h = new HistoryBuilder();
    h.add({ client: 'c1', kind: 'list', key: '/d', invokeMs: 0, completeMs: 1, outcome: 'unknown', error: 'it broke' });
    expect(checker.check(h.history(), emptyFinal()).violations[0].message).toBe(
      '1 list operations ended unknown without an errno (error "it broke"); first: #0 by c1 at 0 ms',
    );
  });
});
