/** Extent arithmetic and change tracking (extents.ts), as scenarios, plus a seeded check against a byte-map model. */
import { seededRandom } from '../../raft/core/config';
import { Errno } from './errno';
import {
  DEFAULT_EXTENT_LIMITS,
  Extent,
  MAX_EXTENTS_PER_COMMIT_CEILING,
  ExtentLimits,
  VersionChanges,
  clip,
  extentLimitsProblem,
  extentsChangedBetween,
  intersect,
  isNormalized,
  normalize,
  overlaps,
  shift,
  sizeChangeExtents,
  subtract,
  totalBytes,
  union,
  validateExtents,
  validateSize,
} from './extents';

const x = (offset: number, length: number): Extent => ({ offset, length });
const small: ExtentLimits = { maxFileSizeBytes: 1000, maxExtentsPerCommit: 4 };

describe('normalizing extents', () => {
  it('sorts them and merges overlapping and adjacent ones, keeping gaps', () => {
    expect(normalize([x(20, 5), x(0, 10), x(5, 10), x(15, 5), x(40, 1)])).toEqual([x(0, 25), x(40, 1)]);
  });

  it('leaves an empty list empty and does not alter its input', () => {
    const input = [x(10, 1), x(0, 1)];
    expect(normalize([])).toEqual([]);
    normalize(input);
    expect(input).toEqual([x(10, 1), x(0, 1)]);
  });

  it('refuses a malformed extent loudly, because validation must come first', () => {
    expect(() => normalize([x(0, 0)])).toThrow(/unvalidated/);
    expect(() => normalize([x(-1, 3)])).toThrow(/unvalidated/);
  });
});

describe('set operations on extents', () => {
  it('unions, intersects and subtracts', () => {
    const a = [x(0, 10), x(20, 10)];
    const b = [x(5, 20)];
    expect(union(a, b)).toEqual([x(0, 30)]);
    expect(intersect(a, b)).toEqual([x(5, 5), x(20, 5)]);
    expect(subtract(a, b)).toEqual([x(0, 5), x(25, 5)]);
    expect(subtract(b, a)).toEqual([x(10, 10)]);
  });

  it('does not count adjacent extents as overlapping', () => {
    expect(overlaps([x(0, 10)], [x(10, 5)])).toBe(false);
    expect(overlaps([x(0, 10)], [x(9, 5)])).toBe(true);
  });

  it('clips to a range and counts bytes once where extents overlap', () => {
    expect(clip([x(0, 10), x(20, 10)], 5, 25)).toEqual([x(5, 5), x(20, 5)]);
    expect(clip([x(0, 10)], 5, 5)).toEqual([]);
    expect(totalBytes([x(0, 10), x(5, 10)])).toBe(15);
  });

  it('agrees with a byte-map model on random extents (seeded)', () => {
    const seed = 20241125;
    const random = seededRandom(seed);
    const spanBytes = 64;
    const randomExtents = (): Extent[] => {
      const n = Math.floor(random() * 5);
      return Array.from({ length: n }, () => {
        const offset = Math.floor(random() * (spanBytes - 1));
        return x(offset, 1 + Math.floor(random() * (spanBytes - offset - 1)));
      });
    };
    const bits = (es: readonly Extent[]): boolean[] => {
      const out = new Array<boolean>(spanBytes).fill(false);
      for (const e of es) for (let i = e.offset; i < e.offset + e.length; i++) out[i] = true;
      return out;
    };
    for (let round = 0; round < 500; round++) {
      const a = randomExtents();
      const b = randomExtents();
      const [ba, bb] = [bits(a), bits(b)];
      const context = `seed ${seed} round ${round}: a=${JSON.stringify(a)} b=${JSON.stringify(b)}`;
      for (const [name, result, expected] of [
        ['union', union(a, b), ba.map((v, i) => v || bb[i])],
        ['intersect', intersect(a, b), ba.map((v, i) => v && bb[i])],
        ['subtract', subtract(a, b), ba.map((v, i) => v && !bb[i])],
      ] as const) {
        if (!isNormalized(result)) throw new Error(`${context}: ${name} is not normalized: ${JSON.stringify(result)}`);
        expect({ context, name, bytes: bits(result) }).toEqual({ context, name, bytes: expected });
      }
      expect({ context, overlaps: overlaps(a, b) }).toEqual({ context, overlaps: ba.some((v, i) => v && bb[i]) });
    }
  });
});

describe('validating what a commit says it wrote', () => {
  it('accepts unsorted, overlapping extents and returns them normalized', () => {
    expect(validateExtents([x(10, 5), x(0, 12)], small)).toEqual({ ok: true, value: [x(0, 15)] });
  });

  it('answers E2BIG for more extents than allowed, before looking at any of them', () => {
    const result = validateExtents([null, null, null, null, null], small);
    expect(result).toMatchObject({ ok: false, errno: Errno.E2BIG });
    expect(validateExtents(new Array(4097).fill(x(0, 1)))).toMatchObject({ ok: false, errno: Errno.E2BIG });
  });

  it('answers EINVAL for a negative offset, an empty or fractional length, or something that is not an extent', () => {
    for (const bad of [[x(-1, 5)], [x(0, 0)], [x(0, 1.5)], [{ offset: '0', length: 1 }], [null], [x(Number.NaN, 1)], 'not a list']) {
      expect(validateExtents(bad, small)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    }
  });

  it('answers EFBIG for an extent ending past the maximum file size, and accepts one ending exactly there', () => {
    expect(validateExtents([x(990, 11)], small)).toMatchObject({ ok: false, errno: Errno.EFBIG });
    expect(validateExtents([x(Number.MAX_SAFE_INTEGER - 1, 1)])).toMatchObject({ ok: false, errno: Errno.EFBIG });
    expect(validateExtents([x(990, 10)], small)).toEqual({ ok: true, value: [x(990, 10)] });
  });

  it('checks sizes: EINVAL for negative, fractional or non-numbers, EFBIG past the maximum', () => {
    expect(validateSize(1000, small)).toEqual({ ok: true, value: 1000 });
    expect(validateSize(1001, small)).toMatchObject({ ok: false, errno: Errno.EFBIG });
    for (const bad of [-1, 1.5, '3', Number.POSITIVE_INFINITY]) expect(validateSize(bad, small)).toMatchObject({ ok: false, errno: Errno.EINVAL });
  });

  it('names the bad field of a limits configuration', () => {
    expect(extentLimitsProblem(DEFAULT_EXTENT_LIMITS)).toBeUndefined();
    expect(extentLimitsProblem({ maxFileSizeBytes: 0, maxExtentsPerCommit: 1 })).toMatch(/maxFileSizeBytes/);
    expect(extentLimitsProblem({ maxFileSizeBytes: 10, maxExtentsPerCommit: 0 })).toMatch(/maxExtentsPerCommit/);
  });
});

describe('shifting extents for O_APPEND', () => {
  it('moves every extent by the same amount', () => {
    expect(shift([x(100, 10), x(120, 5)], 50, small)).toEqual({ ok: true, value: [x(150, 10), x(170, 5)] });
    expect(shift([x(100, 10)], -100, small)).toEqual({ ok: true, value: [x(0, 10)] });
  });

  it('answers EINVAL for a move before byte 0 and EFBIG for one past the maximum file size', () => {
    expect(shift([x(10, 10)], -11, small)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(shift([x(10, 10)], 981, small)).toMatchObject({ ok: false, errno: Errno.EFBIG });
  });
});

describe('what a size change changes', () => {
  it('growing changes the new bytes, holes included', () => {
    expect(sizeChangeExtents(100, 150, small)).toEqual([x(100, 50)]);
  });

  it('shrinking changes everything from the new end on, to the maximum file size', () => {
    expect(sizeChangeExtents(100, 40, small)).toEqual([x(40, 960)]);
  });

  it('an unchanged size changes nothing', () => {
    expect(sizeChangeExtents(100, 100, small)).toEqual([]);
  });
});

describe('extentsChangedBetween', () => {
  const history: VersionChanges[] = [
    { version: 1, size: 100, changedExtents: [x(0, 100)] },
    { version: 2, size: 100, changedExtents: [x(10, 5)] },
    { version: 3, size: 150, changedExtents: [x(120, 30)] },
    { version: 4, size: 150, changedExtents: [x(60, 5)] },
    { version: 5, size: 90, changedExtents: [] },
  ];

  it('unions the changes after fromVersion up to toVersion, not fromVersion’s own', () => {
    expect(extentsChangedBetween(history, 1, 2, small)).toEqual({ ok: true, value: { extents: [x(10, 5)], exact: true } });
    expect(extentsChangedBetween(history, 2, 4, small)).toEqual({ ok: true, value: { extents: [x(60, 5), x(100, 50)], exact: true } });
  });

  it('counts growth as changing the new bytes and a truncation as changing everything from the new end', () => {
    expect(extentsChangedBetween(history, 4, 5, small)).toEqual({ ok: true, value: { extents: [x(90, 910)], exact: true } });
  });

  it('answers nothing changed between a version and itself', () => {
    expect(extentsChangedBetween(history, 3, 3, small)).toEqual({ ok: true, value: { extents: [], exact: true } });
  });

  it('treats a version retention dropped as having changed the whole file', () => {
    const withGap = history.filter((v) => v.version !== 3);
    expect(extentsChangedBetween(withGap, 2, 4, small)).toEqual({ ok: true, value: { extents: [x(0, 1000)], exact: false } });
    expect(extentsChangedBetween(withGap, 3, 4, small)).toEqual({ ok: true, value: { extents: [x(0, 1000)], exact: false } });
  });

  it('answers changes too scattered to carry as the one extent spanning them', () => {
    const scattered: VersionChanges[] = [{ version: 1, size: 0, changedExtents: [] }];
    const perVersion = 4096;
    const versions = Math.ceil(MAX_EXTENTS_PER_COMMIT_CEILING / perVersion) + 1;
    for (let v = 2; v <= versions + 1; v++) {
      const changedExtents = Array.from({ length: perVersion }, (_, i) => x(((v - 2) * perVersion + i) * 2, 1));
      scattered.push({ version: v, size: 0, changedExtents });
    }
    const result = extentsChangedBetween(scattered, 1, versions + 1);
    expect(result).toEqual({ ok: true, value: { extents: [x(0, versions * perVersion * 2 - 1)], exact: false } });
  });

  it('answers at once for a range far larger than the history', () => {
    expect(extentsChangedBetween(history, 1, Number.MAX_SAFE_INTEGER, small)).toEqual({ ok: true, value: { extents: [x(0, 1000)], exact: false } });
  });

  it('answers EINVAL for a backwards range, a repeated version or a malformed record', () => {
    expect(extentsChangedBetween(history, 3, 2, small)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(extentsChangedBetween(history, 0, 2, small)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(extentsChangedBetween([...history, history[1]], 1, 3, small)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    const badSize = [...history.slice(0, 2), { version: 3, size: -1, changedExtents: [] }];
    expect(extentsChangedBetween(badSize, 1, 3, small)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(extentsChangedBetween([{ version: 1n, size: 0, changedExtents: [] } as never], 1, 1, small)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    const badExtent = [...history.slice(0, 2), { version: 3, size: 100, changedExtents: [x(0, 0)] }];
    expect(extentsChangedBetween(badExtent, 1, 3, small)).toMatchObject({ ok: false, errno: Errno.EINVAL });
  });
});
