/** Version retention and block collection (retention.ts), as scenarios. */
import { Errno } from './errno';
import { BLOCK_ID_PATTERN, DEFAULT_RETENTION, RetainedVersion, blocksToCollect, conflictCopiesToDrop, retentionPolicyProblem, versionsToDrop } from './retention';

const MINUTE_MS = 60_000;
const NOW_MS = 1_000 * 24 * 60 * MINUTE_MS;

/** Versions 1..count, one a minute, the newest committed `newestAgeMs` ago; the newest is the head. */
function history(count: number, newestAgeMs = 2 * 60 * MINUTE_MS, flags: Partial<Record<number, Partial<RetainedVersion>>> = {}): RetainedVersion[] {
  return Array.from({ length: count }, (_, i) => {
    const version = i + 1;
    return {
      version,
      commitTimeMs: NOW_MS - newestAgeMs - (count - version) * MINUTE_MS,
      pinned: false,
      isHead: version === count,
      ...flags[version],
    };
  });
}

const drop = (input: Parameters<typeof versionsToDrop>[0]): number[] => {
  const result = versionsToDrop(input);
  if (!result.ok) throw new Error(`expected versions to drop, got ${result.message}`);
  return result.value;
};

describe('keeping the last N versions', () => {
  it('drops everything older than the last 10 by default, oldest first, once past the age window', () => {
    expect(drop({ versions: history(15), nowMs: NOW_MS })).toEqual([1, 2, 3, 4, 5]);
  });

  it('keeps exactly N when N is configured', () => {
    expect(drop({ versions: history(5), keepLast: 2, nowMs: NOW_MS })).toEqual([1, 2, 3]);
  });

  it('keeps the head even when N is 1', () => {
    expect(drop({ versions: history(3), keepLast: 1, nowMs: NOW_MS })).toEqual([1, 2]);
  });

  it('counts the last N among versions that still exist', () => {
    const gappy = history(20).filter((v) => v.version % 2 === 0);
    expect(drop({ versions: gappy, keepLast: 3, nowMs: NOW_MS })).toEqual([2, 4, 6, 8, 10, 12, 14]);
  });
});

describe('keeping young versions', () => {
  it('keeps every version younger than the configured age, however many', () => {
    expect(drop({ versions: history(30, 0), keepLast: 2, keepYoungerThanMs: 10 * MINUTE_MS, nowMs: NOW_MS })).toEqual(
      Array.from({ length: 30 - 10 }, (_, i) => i + 1),
    );
  });

  it('counts a version committed "after now" (a leader whose clock is behind) as young', () => {
    const future = history(5, -5 * 60 * MINUTE_MS);
    expect(drop({ versions: future, keepLast: 1, nowMs: NOW_MS })).toEqual([]);
  });
});

describe('never dropping a pinned version', () => {
  it('keeps a version an open fh holds, however old', () => {
    expect(drop({ versions: history(15, 2 * 60 * MINUTE_MS, { 2: { pinned: true } }), nowMs: NOW_MS })).toEqual([1, 3, 4, 5]);
  });
});

describe('keeping versions that hold the losing side of a conflict', () => {
  it('keeps one marked conflict for longer than an ordinary version', () => {
    const flagged = history(15, 2 * 60 * MINUTE_MS, { 3: { conflict: true } });
    expect(drop({ versions: flagged, nowMs: NOW_MS })).toEqual([1, 2, 4, 5]);
    const later = NOW_MS + DEFAULT_RETENTION.keepConflictsYoungerThanMs;
    expect(drop({ versions: flagged, nowMs: later })).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('keeping conflict copies of rejected commits', () => {
  const keepMs = DEFAULT_RETENTION.keepConflictsYoungerThanMs;
  const copies = [
    { number: 3, createdTimeMs: NOW_MS - keepMs - 1, pinned: false },
    { number: 1, createdTimeMs: NOW_MS - keepMs, pinned: false },
    { number: 2, createdTimeMs: NOW_MS - keepMs - 5, pinned: true },
    { number: 4, createdTimeMs: NOW_MS - keepMs + 1, pinned: false },
  ];

  it('drops those old enough and not held open, lowest number first', () => {
    expect(conflictCopiesToDrop(copies, NOW_MS)).toEqual({ ok: true, value: [1, 3] });
  });

  it('answers EINVAL for a repeated or malformed copy, or a bad policy', () => {
    expect(conflictCopiesToDrop([...copies, copies[0]], NOW_MS)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(conflictCopiesToDrop([{ number: 0, createdTimeMs: 0, pinned: false }], NOW_MS)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(conflictCopiesToDrop(copies, NOW_MS, { keepConflictsYoungerThanMs: -1, maxDropsPerDecision: 1 })).toMatchObject({ ok: false, errno: Errno.EINVAL });
  });
});

describe('bounding one retention decision', () => {
  it('drops at most maxDropsPerDecision, oldest first', () => {
    expect(drop({ versions: history(100), maxDropsPerDecision: 3, nowMs: NOW_MS })).toEqual([1, 2, 3]);
  });
});

describe('bad retention input', () => {
  it('answers EINVAL for a missing, repeated or misplaced head and for repeated versions', () => {
    const noHead = history(3).map((v) => ({ ...v, isHead: false }));
    const twoHeads = history(3).map((v) => ({ ...v, isHead: v.version >= 2 }));
    const oldHead = history(3).map((v) => ({ ...v, isHead: v.version === 1 }));
    const repeated = [...history(3), history(3)[0]];
    for (const versions of [noHead, twoHeads, oldHead, repeated]) {
      expect(versionsToDrop({ versions, nowMs: NOW_MS })).toMatchObject({ ok: false, errno: Errno.EINVAL });
    }
  });

  it('answers EINVAL for a bad policy, naming the field', () => {
    expect(versionsToDrop({ versions: history(3), keepLast: 0, nowMs: NOW_MS })).toMatchObject({ ok: false, errno: Errno.EINVAL, message: expect.stringMatching(/keepLast/) });
    expect(versionsToDrop({ versions: history(3), keepYoungerThanMs: -1, nowMs: NOW_MS })).toMatchObject({ ok: false, message: expect.stringMatching(/keepYoungerThanMs/) });
    expect(retentionPolicyProblem(DEFAULT_RETENTION)).toBeUndefined();
  });

  it('answers EINVAL rather than throwing for malformed records', () => {
    for (const versions of [[null], [{ version: 1, commitTimeMs: 'x', pinned: false, isHead: true }], [{ version: 1n, commitTimeMs: 0, pinned: false, isHead: true }], 'none']) {
      expect(versionsToDrop({ versions: versions as never, nowMs: NOW_MS })).toMatchObject({ ok: false, errno: Errno.EINVAL });
    }
    expect(versionsToDrop({ versions: [], nowMs: NOW_MS })).toEqual({ ok: true, value: [] });
  });
});

const id = (n: number): string => n.toString(16).padStart(64, '0');

describe('collecting unreferenced blocks', () => {
  const graceMs = 10 * MINUTE_MS;

  it('collects blocks unreferenced for at least the grace period, oldest first', () => {
    const candidates = [
      { blockId: id(1), unreferencedSinceMs: NOW_MS - 20 * MINUTE_MS },
      { blockId: id(2), unreferencedSinceMs: NOW_MS - 30 * MINUTE_MS },
      { blockId: id(3), unreferencedSinceMs: NOW_MS - graceMs },
      { blockId: id(4), unreferencedSinceMs: NOW_MS - graceMs + 1 },
    ];
    expect(blocksToCollect(new Set(), candidates, NOW_MS, graceMs)).toEqual({ ok: true, value: [id(2), id(1), id(3)] });
  });

  it('never collects a referenced block, a pending reference of an upload included', () => {
    const candidates = [{ blockId: id(1), unreferencedSinceMs: 0 }];
    expect(blocksToCollect(new Set([id(1)]), candidates, NOW_MS, graceMs)).toEqual({ ok: true, value: [] });
  });

  it('counts a block listed twice by its latest unreference', () => {
    const candidates = [
      { blockId: id(1), unreferencedSinceMs: 0 },
      { blockId: id(1), unreferencedSinceMs: NOW_MS - MINUTE_MS },
    ];
    expect(blocksToCollect(new Set(), candidates, NOW_MS, graceMs)).toEqual({ ok: true, value: [] });
  });

  it('collects at most maxBlocks per decision', () => {
    const candidates = Array.from({ length: 10 }, (_, i) => ({ blockId: id(i), unreferencedSinceMs: i }));
    expect(blocksToCollect(new Set(), candidates, NOW_MS, graceMs, 3)).toEqual({ ok: true, value: [id(0), id(1), id(2)] });
  });

  it('answers EINVAL for an id that is not a SHA-256, a bad time, grace or limit', () => {
    expect(BLOCK_ID_PATTERN.test(id(7))).toBe(true);
    expect(blocksToCollect(new Set(), [{ blockId: 'ABC', unreferencedSinceMs: 0 }], NOW_MS, graceMs)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(blocksToCollect(new Set(), [{ blockId: id(1), unreferencedSinceMs: 0.5 }], NOW_MS, graceMs)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(blocksToCollect(new Set(), [], NOW_MS, -1)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(blocksToCollect(new Set(), [], NOW_MS, graceMs, 0)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(blocksToCollect([] as never, [], NOW_MS, graceMs)).toMatchObject({ ok: false, errno: Errno.EINVAL });
  });
});
