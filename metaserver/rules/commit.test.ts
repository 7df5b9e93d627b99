/** The commit rule (commit.ts): fast-forward, rebase, O_APPEND, truncation and the two conflict policies, as scenarios. */
import { CommitDecision, CommitRequest, commitClaims, decideCommit, describeExtents, placementsProblem } from './commit';
import { materializeInline } from './content';
import { Errno, Result } from './errno';
import { Extent, ExtentLimits } from './extents';

const x = (offset: number, length: number): Extent => ({ offset, length });
const small: ExtentLimits = { maxFileSizeBytes: 1000, maxExtentsPerCommit: 4 };

function request(overrides: Partial<CommitRequest>): CommitRequest {
  return {
    head: { version: 5, size: 100 },
    base: { version: 5, size: 100 },
    written: [],
    newSize: 100,
    append: false,
    changedSinceBase: [],
    policy: 'lww',
    ...overrides,
  };
}

function decided(overrides: Partial<CommitRequest>, limits: ExtentLimits = small): CommitDecision {
  const result = decideCommit(request(overrides), limits);
  if (!result.ok) throw new Error(`expected a decision, got errno ${result.errno}: ${result.message}`);
  return result.value;
}

function failed(overrides: Partial<CommitRequest>, limits: ExtentLimits = small): Result<CommitDecision> & { ok: false } {
  const result = decideCommit(request(overrides), limits);
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result.value)}`);
  return result;
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('a commit whose base is the head', () => {
  it('fast-forwards: the fh’s version becomes head + 1 with the new size', () => {
    const d = decided({ written: [x(10, 5)], newSize: 120 });
    expect(d).toEqual({
      kind: 'fast-forward',
      version: 6,
      size: 120,
      placements: [{ offset: 0, length: 120, source: 'fh', sourceOffset: 0 }],
      changedExtents: [x(10, 5)],
    });
  });

  it('creates no version when nothing was written and the size is unchanged', () => {
    expect(decided({})).toEqual({ kind: 'no-change', version: 5, size: 100 });
  });

  it('fast-forwards a plain truncation', () => {
    expect(decided({ newSize: 0 })).toMatchObject({ kind: 'fast-forward', version: 6, size: 0, placements: [] });
  });
});

describe('a commit after another client committed, with disjoint bytes', () => {
  const concurrent = { head: { version: 7, size: 100 }, changedSinceBase: [x(0, 10)] };

  it('rebases: the head’s bytes where this fh did not write, the fh’s where it did', () => {
    const d = decided({ ...concurrent, written: [x(50, 10)] });
    expect(d).toEqual({
      kind: 'rebase',
      version: 8,
      size: 100,
      placements: [
        { offset: 0, length: 50, source: 'head', sourceOffset: 0 },
        { offset: 50, length: 10, source: 'fh', sourceOffset: 50 },
        { offset: 60, length: 40, source: 'head', sourceOffset: 60 },
      ],
      changedExtents: [x(50, 10)],
    });
  });

  it('keeps both clients’ bytes, whichever commits first', () => {
    const base = bytes('aaaaaaaaaa');
    const a = { offset: 0, bytes: bytes('AA') };
    const b = { offset: 6, bytes: bytes('BBB') };
    const headA = 'AAaaaaaaaa';
    const headB = 'aaaaaaBBBa';
    const bOnA = decided({ head: { version: 2, size: 10 }, base: { version: 1, size: 10 }, written: [x(6, 3)], newSize: 10, changedSinceBase: [x(0, 2)] });
    const aOnB = decided({ head: { version: 2, size: 10 }, base: { version: 1, size: 10 }, written: [x(0, 2)], newSize: 10, changedSinceBase: [x(6, 3)] });
    const first = materializeInline({ baseBytes: base, headBytes: bytes(headA), written: [b], newSize: 10 }, bOnA);
    const second = materializeInline({ baseBytes: base, headBytes: bytes(headB), written: [a], newSize: 10 }, aOnB);
    expect(first.ok && text(first.value)).toBe('AAaaaaBBBa');
    expect(second.ok && text(second.value)).toBe('AAaaaaBBBa');
  });

  it('grows the file when this commit grew it, keeping the other client’s bytes', () => {
    const d = decided({ ...concurrent, written: [x(100, 20)], newSize: 130 });
    expect(d).toMatchObject({ kind: 'rebase', size: 130, changedExtents: [x(100, 30)] });
  });

  it('keeps the head’s larger size when the other client grew the file', () => {
    const d = decided({ head: { version: 7, size: 200 }, changedSinceBase: [x(100, 100)], written: [x(0, 10)] });
    expect(d).toMatchObject({ kind: 'rebase', size: 200 });
  });

  it('honours a concurrent truncation below the bytes this commit wrote', () => {
    const d = decided({ head: { version: 7, size: 50 }, changedSinceBase: [x(50, 950)], written: [x(0, 10)] });
    expect(d).toMatchObject({ kind: 'rebase', size: 50 });
  });
});

describe('a truncation committed after another client committed', () => {
  it('rebases when nothing changed at or past its new end: the result has exactly the new size', () => {
    const d = decided({ head: { version: 7, size: 100 }, changedSinceBase: [x(0, 10)], newSize: 40 });
    expect(d).toMatchObject({ kind: 'rebase', version: 8, size: 40 });
    expect(d.kind === 'rebase' && d.placements).toEqual([{ offset: 0, length: 40, source: 'head', sourceOffset: 0 }]);
  });

  it('conflicts with a concurrent write past its new end, even past the old end', () => {
    expect(decided({ head: { version: 7, size: 100 }, changedSinceBase: [x(60, 5)], newSize: 40 })).toMatchObject({ kind: 'conflict-lww' });
    expect(decided({ head: { version: 7, size: 130 }, changedSinceBase: [x(100, 30)], newSize: 40 })).toMatchObject({ kind: 'conflict-lww' });
  });

  it('conflicts the same way in either order with a write that grows the file', () => {
    // base size 100; T truncates to 40, G writes [120, 130) growing the file to 130.
    const tClaims = commitClaims(100, 40, [], small);
    const gClaims = commitClaims(100, 130, [x(120, 10)], small);
    const tAfterG = decided({ head: { version: 2, size: 130 }, base: { version: 1, size: 100 }, changedSinceBase: gClaims, newSize: 40 });
    const gAfterT = decided({ head: { version: 2, size: 40 }, base: { version: 1, size: 100 }, changedSinceBase: tClaims, written: [x(120, 10)], newSize: 130 });
    expect(tAfterG.kind).toBe('conflict-lww');
    expect(gAfterT.kind).toBe('conflict-lww');
  });
});

describe('two commits that grow the file from the same base', () => {
  it('conflict, since both claim the bytes past the old end', () => {
    const d = decided({ head: { version: 7, size: 150 }, changedSinceBase: [x(100, 50)], written: [x(200, 10)], newSize: 210 });
    expect(d).toMatchObject({ kind: 'conflict-lww', overlap: [x(100, 50)] });
  });
});

describe('an O_APPEND commit', () => {
  it('fast-forwards when the head is its base', () => {
    expect(decided({ append: true, written: [x(100, 20)], newSize: 120 })).toMatchObject({ kind: 'fast-forward', version: 6, size: 120 });
  });

  it('moves its bytes to the head’s end: size is head size + appended length', () => {
    const d = decided({ append: true, head: { version: 7, size: 130 }, changedSinceBase: [x(100, 30)], written: [x(100, 20)], newSize: 120 });
    expect(d).toEqual({
      kind: 'rebase',
      version: 8,
      size: 150,
      placements: [
        { offset: 0, length: 130, source: 'head', sourceOffset: 0 },
        { offset: 130, length: 20, source: 'fh', sourceOffset: 100 },
      ],
      changedExtents: [x(130, 20)],
    });
  });

  it('never conflicts, even after a concurrent truncation: it lands at the new end', () => {
    const d = decided({ append: true, policy: 'reject', head: { version: 7, size: 10 }, changedSinceBase: [x(10, 990)], written: [x(100, 20)], newSize: 120 });
    expect(d).toMatchObject({ kind: 'rebase', size: 30 });
  });

  it('two appenders from the same base both land, one after the other', () => {
    const base = bytes('log:');
    const second = { offset: 4, bytes: bytes('two;') };
    const d = decided({ append: true, head: { version: 2, size: 8 }, base: { version: 1, size: 4 }, changedSinceBase: [x(4, 4)], written: [x(4, 4)], newSize: 8 });
    const result = materializeInline({ baseBytes: base, headBytes: bytes('log:one;'), written: [second], newSize: 8 }, d);
    expect(result.ok && text(result.value)).toBe('log:one;two;');
  });

  it('answers EINVAL unless it wrote exactly from its base’s end to its new size', () => {
    for (const bad of [
      { written: [x(90, 30)], newSize: 120 },
      { written: [x(100, 10)], newSize: 120 },
      { written: [], newSize: 90 },
    ]) {
      expect(failed({ append: true, ...bad }).errno).toBe(Errno.EINVAL);
    }
  });

  it('answers EFBIG when the head’s end plus the appended bytes passes the maximum file size', () => {
    const f = failed({ append: true, head: { version: 7, size: 990 }, changedSinceBase: [x(100, 890)], written: [x(100, 20)], newSize: 120 });
    expect(f.errno).toBe(Errno.EFBIG);
  });
});

describe('overlapping concurrent commits under lww (the default)', () => {
  const overlapping = { head: { version: 7, size: 100 }, changedSinceBase: [x(0, 20)], written: [x(10, 20)] };

  it('this commit becomes head + 1, and the old head is named to be marked conflict', () => {
    const d = decided(overlapping);
    expect(d).toMatchObject({ kind: 'conflict-lww', version: 8, size: 100, overlap: [x(10, 10)], conflictVersion: 7, changedExtents: [x(10, 20)] });
  });

  it('this commit’s bytes win where both wrote; the head’s other concurrent bytes survive; the lost ones stay in the old head', () => {
    const base = bytes('..........');
    const head = bytes('HHHH......');
    const d = decided({ head: { version: 2, size: 10 }, base: { version: 1, size: 10 }, changedSinceBase: [x(0, 4)], written: [x(2, 4)], newSize: 10 });
    expect(d.kind).toBe('conflict-lww');
    const result = materializeInline({ baseBytes: base, headBytes: head, written: [{ offset: 2, bytes: bytes('FFFF') }], newSize: 10 }, d);
    expect(result.ok && text(result.value)).toBe('HHFFFF....');
    expect(text(head)).toBe('HHHH......');
  });

  it('a shrinking commit wins with exactly its size', () => {
    const d = decided({ head: { version: 7, size: 300 }, changedSinceBase: [x(100, 200)], newSize: 40 });
    expect(d).toMatchObject({ kind: 'conflict-lww', size: 40 });
  });

  it('a write past a concurrent truncation leaves zeros between the head’s end and the write', () => {
    const d = decided({ head: { version: 7, size: 50 }, changedSinceBase: [x(50, 950)], written: [x(60, 10)] });
    expect(d).toMatchObject({ kind: 'conflict-lww', size: 70 });
    expect(d.kind === 'conflict-lww' && d.placements).toEqual([
      { offset: 0, length: 50, source: 'head', sourceOffset: 0 },
      { offset: 50, length: 10, source: 'zero', sourceOffset: 0 },
      { offset: 60, length: 10, source: 'fh', sourceOffset: 60 },
    ]);
  });
});

describe('a whole-file rewrite (O_TRUNC, then writes) racing another writer', () => {
  // Base "0123456789" (10 bytes). The other client rewrote the whole file longer: head v2 is 20 bytes.
  // This fh truncated to 0 and wrote 12 bytes: newSize 12 >= the base's 10, so only truncatedTo says it cut.
  const race = { head: { version: 2, size: 20 }, base: { version: 1, size: 10 }, changedSinceBase: [x(0, 20)], written: [x(0, 12)], newSize: 12 };

  it('under lww is exactly this fh’s bytes: the head’s longer tail does not survive past the new size', () => {
    const d = decided({ ...race, truncatedTo: 0 });
    expect(d).toMatchObject({ kind: 'conflict-lww', size: 12, conflictVersion: 2 });
    const result = materializeInline({ baseBytes: bytes('0123456789'), headBytes: bytes('HHHHHHHHHHHHHHHHHHHH'), written: [{ offset: 0, bytes: bytes('ffffffffffff') }], newSize: 12 }, d);
    expect(result.ok && text(result.value)).toBe('ffffffffffff');
  });

  it('without truncatedTo it would keep the head’s tail — the bug a chaos run found (kept here as the reason for the field)', () => {
    expect(decided(race)).toMatchObject({ kind: 'conflict-lww', size: 20 });
  });

  it('under reject answers EBUSY: the cut overlaps what the other client wrote', () => {
    expect(decided({ ...race, truncatedTo: 0, policy: 'reject' })).toMatchObject({ kind: 'conflict-reject', errno: Errno.EBUSY });
  });

  it('conflicts with a concurrent write past the old end even when this fh regrew the file past it', () => {
    const d = decided({ head: { version: 2, size: 30 }, base: { version: 1, size: 10 }, changedSinceBase: [x(25, 5)], written: [x(5, 15)], newSize: 20, truncatedTo: 5, policy: 'reject' });
    expect(d.kind).toBe('conflict-reject');
  });

  it('rebases over a concurrent write below the cut, keeping it', () => {
    const d = decided({ head: { version: 2, size: 10 }, base: { version: 1, size: 10 }, changedSinceBase: [x(0, 2)], written: [x(5, 10)], newSize: 15, truncatedTo: 5 });
    expect(d).toMatchObject({ kind: 'rebase', size: 15 });
    const result = materializeInline({ baseBytes: bytes('0123456789'), headBytes: bytes('HH23456789'), written: [{ offset: 5, bytes: bytes('ffffffffff') }], newSize: 15 }, d);
    expect(result.ok && text(result.value)).toBe('HH234ffffffffff');
  });

  it('claims everything from the base’s end for an O_TRUNC of an empty file, so a racing longer write’s tail goes', () => {
    const d = decided({ head: { version: 2, size: 9 }, base: { version: 1, size: 0 }, changedSinceBase: [x(0, 9)], written: [x(0, 8)], newSize: 8, truncatedTo: 0 });
    expect(d).toMatchObject({ kind: 'conflict-lww', size: 8 });
  });

  it('answers EINVAL for a truncatedTo above the base’s size or above the new size', () => {
    expect(failed({ base: { version: 5, size: 100 }, truncatedTo: 101 }).errno).toBe(Errno.EINVAL);
    expect(failed({ base: { version: 5, size: 100 }, newSize: 10, truncatedTo: 20 }).errno).toBe(Errno.EINVAL);
    expect(failed({ truncatedTo: -1 }).errno).toBe(Errno.EINVAL);
  });
});

describe('overlapping concurrent commits under reject', () => {
  it('leaves the head where it was, answers EBUSY and keeps the whole fh version as a conflict copy', () => {
    const d = decided({ policy: 'reject', head: { version: 7, size: 100 }, changedSinceBase: [x(0, 20)], written: [x(10, 20)], newSize: 110 });
    expect(d).toEqual({
      kind: 'conflict-reject',
      errno: Errno.EBUSY,
      message: expect.stringMatching(/version 7 changed \[10, \+10\) since base version 5/),
      headVersion: 7,
      overlap: [x(10, 10)],
      conflictCopy: {
        baseVersion: 5,
        lostToVersion: 7,
        size: 110,
        placements: [{ offset: 0, length: 110, source: 'fh', sourceOffset: 0 }],
        changedExtents: [x(10, 20)],
      },
    });
  });

  it('the conflict copy holds exactly what the writer saw', () => {
    const d = decided({ policy: 'reject', head: { version: 2, size: 4 }, base: { version: 1, size: 4 }, changedSinceBase: [x(0, 4)], written: [x(0, 2)], newSize: 4 });
    const copy = materializeInline({ baseBytes: bytes('abcd'), headBytes: bytes('WXYZ'), written: [{ offset: 0, bytes: bytes('mn') }], newSize: 4 }, d);
    expect(copy.ok && text(copy.value)).toBe('mncd');
  });

  it('still rebases disjoint commits', () => {
    expect(decided({ policy: 'reject', head: { version: 7, size: 100 }, changedSinceBase: [x(0, 10)], written: [x(50, 1)] }).kind).toBe('rebase');
  });
});

describe('bad commit requests', () => {
  it('answer EINVAL for an unknown policy, a base newer than the head, or a base that disagrees with the head it claims to be', () => {
    expect(failed({ policy: 'merge' as never }).errno).toBe(Errno.EINVAL);
    expect(failed({ base: { version: 8, size: 100 } }).errno).toBe(Errno.EINVAL);
    expect(failed({ base: { version: 5, size: 99 } }).errno).toBe(Errno.EINVAL);
    expect(failed({ base: { version: 0, size: 100 }, head: { version: 0, size: 100 } }).errno).toBe(Errno.EINVAL);
    expect(failed({ append: 'yes' as never }).errno).toBe(Errno.EINVAL);
  });

  it('answer EINVAL for written bytes past the new size and for changes since base when the head is the base', () => {
    expect(failed({ written: [x(90, 20)], newSize: 100 }).errno).toBe(Errno.EINVAL);
    expect(failed({ changedSinceBase: [x(0, 1)] }).errno).toBe(Errno.EINVAL);
  });

  it('answer E2BIG for too many extents and EFBIG for a size past the maximum', () => {
    expect(failed({ written: [x(0, 1), x(2, 1), x(4, 1), x(6, 1), x(8, 1)] }).errno).toBe(Errno.E2BIG);
    expect(failed({ newSize: 1001 }).errno).toBe(Errno.EFBIG);
    expect(failed({ written: [x(999, 2)], newSize: 1000 }).errno).toBe(Errno.EFBIG);
  });

  it('answer EOVERFLOW when the version counter would leave the safe integers', () => {
    const last = Number.MAX_SAFE_INTEGER;
    expect(failed({ head: { version: last, size: 100 }, base: { version: last, size: 100 }, written: [x(0, 1)] }).errno).toBe(Errno.EOVERFLOW);
  });

  it('never throw, whatever the shape', () => {
    for (const junk of [null, undefined, 42, 'commit', {}, { head: null }, { head: { version: 1, size: 0 }, base: { version: 1, size: 0 }, policy: 'lww', append: false }]) {
      const result = decideCommit(junk as never, small);
      expect(result.ok).toBe(false);
    }
  });
});

describe('describing extents in messages', () => {
  it('shows at most three and counts the rest', () => {
    expect(describeExtents([x(0, 1), x(2, 1), x(4, 1), x(6, 1), x(8, 1)])).toBe('[0, +1), [2, +1), [4, +1) and 2 more');
    expect(describeExtents([])).toBe('nothing');
  });
});

describe('placementsProblem', () => {
  it('names gaps, overlaps and a wrong end', () => {
    expect(placementsProblem([{ offset: 0, length: 5, source: 'head', sourceOffset: 0 }], 5)).toBeUndefined();
    expect(placementsProblem([{ offset: 1, length: 4, source: 'head', sourceOffset: 1 }], 5)).toMatch(/starts at 1/);
    expect(placementsProblem([{ offset: 0, length: 4, source: 'head', sourceOffset: 0 }], 5)).toMatch(/end at 4/);
    expect(placementsProblem([{ offset: 0, length: 5, source: 'disk' as never, sourceOffset: 0 }], 5)).toMatch(/unknown source/);
  });
});
