import { versionsChecker } from './versions';
import { emptyFinal, versionsOf } from './test-helpers';

const none = { operations: [], faults: [] };
const v = (version: number) => ({ version, content: `c${version}`, conflict: false });

describe('the versions checker', () => {
  const keepAll = versionsChecker({ keepAll: true });

  it('passes gap-free versions from 1 and no overdue sessions', () => {
    const result = keepAll.check(none, emptyFinal({ versions: { '/a': versionsOf('x', 'y', 'z'), '/b': [] } }));
    expect(result).toMatchObject({ ok: true, stats: { files: 2, versions: 3, overdueSessions: 0 } });
  });

  it('fails a missing version number when every version is kept', () => {
    const result = keepAll.check(none, emptyFinal({ versions: { '/a': [v(1), v(2), v(4), v(7)] } }));
    expect(result.violations.map((x) => x.message)).toEqual([
      '/a: version 3 is missing between 2 and 4 although every version is kept',
      '/a: versions 5–6 are missing between 4 and 7 although every version is kept',
    ]);
  });

  it('fails versions that do not strictly increase, kept or not', () => {
    for (const checker of [keepAll, versionsChecker({ keepAll: false })]) {
      const result = checker.check(none, emptyFinal({ versions: { '/a': [v(1), v(2), v(2)] } }));
      expect(result.violations.map((x) => x.message)).toEqual(['/a: version 2 follows version 2 (position 2): numbers must strictly increase']);
    }
  });

  it('fails a history that does not start at 1 when every version is kept, and allows it otherwise', () => {
    const final = emptyFinal({ versions: { '/a': [v(3), v(4)] } });
    expect(keepAll.check(none, final).violations[0].message).toBe(
      '/a: the first kept version is 3, but with every version kept it must be 1 (versions 1–2 are missing)',
    );
    expect(versionsChecker({ keepAll: false }).check(none, emptyFinal({ versions: { '/a': [v(3), v(9)] } })).ok).toBe(true);
  });

  it('fails a version number that is not a positive integer', () => {
    const result = keepAll.check(none, emptyFinal({ versions: { '/a': [v(1), { version: 1.5, content: '', conflict: false }] } }));
    expect(result.violations[0].message).toBe('/a: version number 1.5 at position 1 is not a positive integer');
  });

  it('fails each session or fh that outlives its expiry, naming it', () => {
    const overdue = ['session 7 (sdk-2) with 1 open fh, abandoned 14.2 s ago (TTL 10 s)', 'session 9 (mount) is not tracked by the leader: it would never expire'];
    const result = keepAll.check(none, emptyFinal({ abandonedSessions: 1, overdueSessions: overdue }));
    expect(result.violations.map((v) => v.message)).toEqual(overdue.map((o) => `past its expiry after healing: ${o}`));
    expect(result.stats).toMatchObject({ abandonedSessions: 1, overdueSessions: 2 });
  });

  it('reports the first 20 overdue sessions and counts the rest', () => {
    const overdue = Array.from({ length: 25 }, (_, i) => `session ${i}`);
    const result = keepAll.check(none, emptyFinal({ overdueSessions: overdue }));
    expect(result.violations).toHaveLength(21);
    expect(result.violations[20].message).toBe('5 more sessions or fhs past their expiry');
  });
});
