/** Turning decisions into inline bytes and block plans (content.ts), as scenarios. */
import { CommitDecision, Placement } from './commit';
import { extentsOfWrittenBytes, fhBytesOf, materializeInline, planBlocks } from './content';
import { Errno } from './errno';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const B = 16;

function fh(offset: number, length: number, sourceOffset = offset): Placement {
  return { offset, length, source: 'fh', sourceOffset };
}
function head(offset: number, length: number, sourceOffset = offset): Placement {
  return { offset, length, source: 'head', sourceOffset };
}
function zero(offset: number, length: number): Placement {
  return { offset, length, source: 'zero', sourceOffset: 0 };
}

describe('the fh’s version of an inline file', () => {
  it('is the base cut or zero-extended to the new size with the written bytes on top', () => {
    expect(fhBytesOf(bytes('abcdef'), [{ offset: 1, bytes: bytes('XY') }], 4)).toEqual({ ok: true, value: bytes('aXYd') });
    expect(fhBytesOf(bytes('ab'), [{ offset: 3, bytes: bytes('Z') }], 5)).toEqual({ ok: true, value: new Uint8Array([97, 98, 0, 90, 0]) });
  });

  it('answers EINVAL for written bytes outside the new size, or a size past the inline limit', () => {
    expect(fhBytesOf(bytes('ab'), [{ offset: 1, bytes: bytes('XY') }], 2)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(fhBytesOf(bytes('ab'), [{ offset: -1, bytes: bytes('X') }], 2)).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(fhBytesOf(bytes(''), [], 4097)).toMatchObject({ ok: false, errno: Errno.EINVAL });
  });

  it('names the extents its written bytes cover, so a commit cannot disagree with its bytes', () => {
    expect(extentsOfWrittenBytes([{ offset: 3, bytes: bytes('abc') }])).toEqual([{ offset: 3, length: 3 }]);
  });
});

describe('materializing inline content', () => {
  const sources = { baseBytes: bytes('base'), headBytes: bytes('head'), written: [], newSize: 4 };

  it('returns the head’s bytes unchanged for no-change', () => {
    expect(materializeInline(sources, { kind: 'no-change', version: 2, size: 4 })).toEqual({ ok: true, value: bytes('head') });
  });

  it('answers EIO when the stored head is shorter than the decision says, since that is the store’s fault', () => {
    const d: CommitDecision = { kind: 'rebase', version: 3, size: 8, placements: [head(0, 8)], changedExtents: [] };
    expect(materializeInline(sources, d)).toMatchObject({ ok: false, errno: Errno.EIO });
  });

  it('answers EINVAL for a result past the inline limit: such a version is stored as blocks', () => {
    const d: CommitDecision = { kind: 'fast-forward', version: 3, size: 5000, placements: [fh(0, 5000)], changedExtents: [] };
    expect(materializeInline(sources, d)).toMatchObject({ ok: false, errno: Errno.EINVAL });
  });

  it('zero-fills zero placements', () => {
    const d: CommitDecision = { kind: 'conflict-lww', version: 3, size: 6, placements: [head(0, 2), zero(2, 2), fh(4, 2, 0)], changedExtents: [], overlap: [], conflictVersion: 2 };
    const result = materializeInline(sources, d);
    expect(result.ok && [...result.value]).toEqual([...bytes('he'), 0, 0, ...bytes('ba')]);
  });
});

describe('planning the blocks of a new version', () => {
  it('a fast-forward reuses every block of the fh’s version, its short last block included', () => {
    expect(planBlocks([fh(0, 2 * B + 5)], 2 * B + 5, B, { head: 0, fh: 2 * B + 5 })).toEqual({
      ok: true,
      value: [{ kind: 'reuse', firstBlock: 0, blockCount: 3, source: 'fh', sourceFirstBlock: 0 }],
    });
  });

  it('a rebase reuses the head’s untouched blocks and assembles only the block both sides share', () => {
    const placements = [head(0, B + 3), fh(B + 3, 4), head(B + 7, 3 * B - 7)];
    expect(planBlocks(placements, 4 * B, B, { head: 4 * B, fh: 4 * B })).toEqual({
      ok: true,
      value: [
        { kind: 'reuse', firstBlock: 0, blockCount: 1, source: 'head', sourceFirstBlock: 0 },
        { kind: 'assemble', firstBlock: 1, blockCount: 1, pieces: [head(B, 3), fh(B + 3, 4), head(B + 7, B - 7)] },
        { kind: 'reuse', firstBlock: 2, blockCount: 2, source: 'head', sourceFirstBlock: 2 },
      ],
    });
  });

  it('an append that does not move by whole blocks is assembled, in one run', () => {
    const placements = [head(0, B + 5), fh(B + 5, 2 * B, 7)];
    expect(planBlocks(placements, 3 * B + 5, B, { head: B + 5, fh: 2 * B + 7 })).toEqual({
      ok: true,
      value: [
        { kind: 'reuse', firstBlock: 0, blockCount: 1, source: 'head', sourceFirstBlock: 0 },
        { kind: 'assemble', firstBlock: 1, blockCount: 1, pieces: [head(B, 5), fh(B + 5, B - 5, 7)] },
        { kind: 'assemble', firstBlock: 2, blockCount: 2, pieces: [fh(2 * B, B + 5, B + 2)] },
      ],
    });
  });

  it('leaves whole blocks of zeros as holes', () => {
    const placements = [head(0, 5), zero(5, 3 * B), fh(3 * B + 5, 1)];
    expect(planBlocks(placements, 3 * B + 6, B, { head: 5, fh: 3 * B + 6 })).toEqual({
      ok: true,
      value: [
        { kind: 'assemble', firstBlock: 0, blockCount: 1, pieces: [head(0, 5), zero(5, B - 5)] },
        { kind: 'zero', firstBlock: 1, blockCount: 2 },
        { kind: 'assemble', firstBlock: 3, blockCount: 1, pieces: [zero(3 * B, 5), fh(3 * B + 5, 1)] },
      ],
    });
  });

  it('does not reuse a full source block as a short last block (a truncation inside a block)', () => {
    expect(planBlocks([head(0, 2 * B + 4)], 2 * B + 4, B, { head: 3 * B, fh: 0 })).toEqual({
      ok: true,
      value: [
        { kind: 'reuse', firstBlock: 0, blockCount: 2, source: 'head', sourceFirstBlock: 0 },
        { kind: 'assemble', firstBlock: 2, blockCount: 1, pieces: [head(2 * B, 4)] },
      ],
    });
  });

  it('plans an empty version as no blocks', () => {
    expect(planBlocks([], 0, B, { head: 10, fh: 0 })).toEqual({ ok: true, value: [] });
  });

  it('answers EINVAL for a bad block size, placements that do not tile, or one reading past its source', () => {
    expect(planBlocks([fh(0, 4)], 4, 0, { head: 0, fh: 4 })).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(planBlocks([fh(0, 4)], 5, B, { head: 0, fh: 4 })).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(planBlocks([fh(0, 4)], 4, B, { head: 0, fh: 3 })).toMatchObject({ ok: false, errno: Errno.EINVAL });
  });
});
