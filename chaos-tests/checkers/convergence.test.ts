import { convergenceChecker } from './convergence';
import { emptyFinal } from './test-helpers';

const none = { operations: [], faults: [] };
const digests = (...items: Array<[string, number, string]>) => items.map(([member, appliedIndex, digest]) => ({ member, appliedIndex, digest }));

describe('the convergence checker', () => {
  const checker = convergenceChecker({ expectedMembers: 3 });

  it('passes three members at the same index with the same digest and a clean fsck', () => {
    const result = checker.check(none, emptyFinal({ digests: digests(['m1', 90, 'abc'], ['m2', 90, 'abc'], ['m3', 90, 'abc']) }));
    expect(result).toMatchObject({ ok: true, stats: { members: 3, appliedIndexMax: 90 } });
  });

  it('fails a digest mismatch at the same applied index, naming every member', () => {
    const result = checker.check(none, emptyFinal({ digests: digests(['m2', 90, 'abc'], ['m1', 90, 'abc'], ['m3', 90, 'abd']) }));
    expect(result.violations.map((v) => v.message)).toEqual([
      'members diverged: same applied index 90 but different state digests: m1@90=abc, m2@90=abc, m3@90=abd',
    ]);
  });

  it('fails members stopped at different applied indexes', () => {
    const result = checker.check(none, emptyFinal({ digests: digests(['m1', 90, 'a'], ['m2', 88, 'b'], ['m3', 90, 'a']) }));
    expect(result.violations[0].message).toBe('members stopped at different applied indexes after healing: m1@90=a, m2@88=b, m3@90=a');
  });

  it('fails when members are missing or none reported', () => {
    expect(checker.check(none, emptyFinal({ digests: digests(['m1', 5, 'a'], ['m2', 5, 'a']) })).violations[0].message).toBe(
      '2 of 3 members reported a digest after healing (m1, m2)',
    );
    expect(convergenceChecker().check(none, emptyFinal()).violations[0].message).toBe('no member reported an applied index and digest after healing');
  });

  it('fails an unclean fsck', () => {
    const result = checker.check(none, emptyFinal({ fsckClean: false, digests: digests(['m1', 1, 'a'], ['m2', 1, 'a'], ['m3', 1, 'a']) }));
    expect(result.violations.map((v) => v.message)).toEqual(['handlefs fsck found problems after healing']);
  });
});
