/**
 * Turns a commit decision (commit.ts) into content: the bytes of an inline
 * version, or for block content the runs of blocks to reuse, leave as holes or
 * assemble. Pure and deterministic; never reads or writes a block itself (the
 * block layer does), and never decides anything a decision did not say.
 *
 * Inline: the state machine holds the base's and the head's bytes and the
 * commit carries the written bytes, so the fh's version is rebuilt here
 * (fhBytesOf) and the placements copy from it, from the head, or zero-fill.
 * This needs every source inline; when the base or head is stored as blocks,
 * build the version with planBlocks even if the result is small.
 *
 * Blocks: a new version's block i covers [i·B, min((i+1)·B, size)). It can
 * reuse a source's block id when one placement covers the whole block from a
 * block-aligned source offset and the source's block has the same length (a
 * short last block is reused only by a version of the same length). Whole
 * blocks of zeros stay holes. Every other block is assembled by the block
 * layer from the listed pieces and stored under the SHA-256 of its bytes. The
 * plan is a list of runs, so its length follows the number of placements, not
 * the file size.
 */
import { Errno, Result, fail, ok } from './errno';
import { CommitDecision, INLINE_LIMIT_BYTES, Placement, placementsProblem } from './commit';
import { Extent } from './extents';

/** Bytes a commit wrote at an offset of the fh's version (inline commits carry them). */
export interface WrittenBytes {
  readonly offset: number;
  readonly bytes: Uint8Array;
}

/** The extents inline written bytes cover: the `written` of their commit, so the two cannot disagree. Validate with validateExtents. */
export function extentsOfWrittenBytes(written: readonly WrittenBytes[]): Extent[] {
  return written.map((w) => ({ offset: w.offset, length: w.bytes instanceof Uint8Array ? w.bytes.length : Number.NaN }));
}

/**
 * The fh's version: the base cut or zero-extended to newSize, the written
 * bytes on top (later ones win if two overlap). EINVAL when newSize exceeds
 * maxBytes or a write falls outside [0, newSize).
 */
export function fhBytesOf(baseBytes: Uint8Array, written: readonly WrittenBytes[], newSize: number, maxBytes = INLINE_LIMIT_BYTES): Result<Uint8Array> {
  if (!(baseBytes instanceof Uint8Array)) return fail(Errno.EINVAL, 'base content is not bytes');
  if (!Number.isSafeInteger(newSize) || newSize < 0) return fail(Errno.EINVAL, `new size ${String(newSize)} is not a non-negative integer`);
  if (newSize > maxBytes) return fail(Errno.EINVAL, `new size ${newSize} exceeds the inline limit ${maxBytes}: store the version as blocks`);
  if (!Array.isArray(written)) return fail(Errno.EINVAL, 'written bytes are not a list');
  const out = new Uint8Array(newSize);
  out.set(baseBytes.subarray(0, Math.min(baseBytes.length, newSize)));
  for (let i = 0; i < written.length; i++) {
    const w = written[i];
    if (typeof w !== 'object' || w === null || !(w.bytes instanceof Uint8Array)) return fail(Errno.EINVAL, `written range ${i} has no bytes`);
    if (!Number.isSafeInteger(w.offset) || w.offset < 0 || w.offset + w.bytes.length > newSize) {
      return fail(Errno.EINVAL, `written range ${i} [${String(w.offset)}, +${w.bytes.length}) lies outside [0, ${newSize})`);
    }
    out.set(w.bytes, w.offset);
  }
  return ok(out);
}

export interface InlineSources {
  /** Content of the commit's base version. */
  readonly baseBytes: Uint8Array;
  /** Content of the head at this log position. */
  readonly headBytes: Uint8Array;
  readonly written: readonly WrittenBytes[];
  /** The commit's newSize (the fh's version's size). */
  readonly newSize: number;
}

/** The bytes placements take from inline head and fh content (all sources in memory). */
export function copyPlacements(placements: readonly Placement[], size: number, head: Uint8Array, fh: Uint8Array): Result<Uint8Array> {
  const problem = placementsProblem(placements, size);
  if (problem !== undefined) return fail(Errno.EINVAL, `placements: ${problem}`);
  const out = new Uint8Array(size);
  for (const p of placements) {
    if (p.source === 'zero') continue; // already zero
    const source = p.source === 'head' ? head : fh;
    if (p.sourceOffset + p.length > source.length) {
      // The stored head disagreeing with its recorded size is the store's fault, a short fh the caller's.
      return fail(p.source === 'head' ? Errno.EIO : Errno.EINVAL, `${p.source} content has ${source.length} bytes, placement needs [${p.sourceOffset}, +${p.length})`);
    }
    out.set(source.subarray(p.sourceOffset, p.sourceOffset + p.length), p.offset);
  }
  return ok(out);
}

/**
 * The bytes of what a decision stores: the new version for fast-forward,
 * rebase and conflict-lww, the conflict copy for conflict-reject, the head's
 * bytes (unchanged) for no-change. EINVAL when the result would exceed
 * maxBytes (check decision size against the inline limit first) or the
 * sources do not fit the decision; EIO when the head's bytes are shorter than
 * the decision says the head is.
 */
export function materializeInline(sources: InlineSources, decision: CommitDecision, maxBytes = INLINE_LIMIT_BYTES): Result<Uint8Array> {
  if (!(sources.headBytes instanceof Uint8Array)) return fail(Errno.EINVAL, 'head content is not bytes');
  if (decision.kind === 'no-change') return ok(sources.headBytes.slice());
  const target = decision.kind === 'conflict-reject' ? decision.conflictCopy : decision;
  if (target.size > maxBytes) return fail(Errno.EINVAL, `${decision.kind} result of ${target.size} bytes exceeds the inline limit ${maxBytes}: store it as blocks`);
  const fh = fhBytesOf(sources.baseBytes, sources.written, sources.newSize, maxBytes);
  if (!fh.ok) return fh;
  return copyPlacements(target.placements, target.size, sources.headBytes, fh.value);
}

/** A run of whole blocks of the new version that are blocks of a source, in order. */
export interface ReuseRun {
  readonly kind: 'reuse';
  readonly firstBlock: number;
  readonly blockCount: number;
  readonly source: 'head' | 'fh';
  readonly sourceFirstBlock: number;
}

/** A run of blocks that are all zeros: stored as holes. */
export interface ZeroRun {
  readonly kind: 'zero';
  readonly firstBlock: number;
  readonly blockCount: number;
}

/** A run of blocks the block layer builds by concatenating `pieces` (which tile the run) and cutting at block boundaries. */
export interface AssembleRun {
  readonly kind: 'assemble';
  readonly firstBlock: number;
  readonly blockCount: number;
  readonly pieces: Placement[];
}

export type BlockRun = ReuseRun | ZeroRun | AssembleRun;

/** Sizes of the sources, to know whether a source's last (short) block can be reused. */
export interface SourceSizes {
  readonly head: number;
  readonly fh: number;
}

function slice(p: Placement, from: number, to: number): Placement {
  return { offset: from, length: to - from, source: p.source, sourceOffset: p.source === 'zero' ? 0 : p.sourceOffset + (from - p.offset) };
}

/** Runs for [from, to) of one placement, where from is a block start and to is a block end (or the file's end). */
function wholeBlockRuns(p: Placement, from: number, to: number, blockSizeBytes: number, sourceSizes: SourceSizes): BlockRun[] {
  const piece = slice(p, from, to);
  const firstBlock = from / blockSizeBytes;
  const blockCount = Math.ceil((to - from) / blockSizeBytes);
  if (piece.source === 'zero') return [{ kind: 'zero', firstBlock, blockCount }];
  if (piece.sourceOffset % blockSizeBytes !== 0) return [{ kind: 'assemble', firstBlock, blockCount, pieces: [piece] }];
  const source = piece.source;
  const sourceFirstBlock = piece.sourceOffset / blockSizeBytes;
  const lastStart = from + (blockCount - 1) * blockSizeBytes;
  const lastIsShort = to - lastStart < blockSizeBytes;
  const sourceEndsHere = sourceSizes[source] === piece.sourceOffset + piece.length;
  if (!lastIsShort || sourceEndsHere) return [{ kind: 'reuse', firstBlock, blockCount, source, sourceFirstBlock }];
  // A short last block cut from a longer source block has other bytes (another id).
  const runs: BlockRun[] = [];
  if (blockCount > 1) runs.push({ kind: 'reuse', firstBlock, blockCount: blockCount - 1, source, sourceFirstBlock });
  runs.push({ kind: 'assemble', firstBlock: firstBlock + blockCount - 1, blockCount: 1, pieces: [slice(piece, lastStart, to)] });
  return runs;
}

/**
 * How the block layer builds a version of `size` bytes from placements with
 * blocks of blockSizeBytes. EINVAL for a bad block size, placements that do
 * not tile [0, size), or a placement reading past its source's size.
 */
export function planBlocks(placements: readonly Placement[], size: number, blockSizeBytes: number, sourceSizes: SourceSizes): Result<BlockRun[]> {
  if (!Number.isSafeInteger(blockSizeBytes) || blockSizeBytes < 1) return fail(Errno.EINVAL, `block size ${String(blockSizeBytes)} is not a positive integer`);
  const problem = placementsProblem(placements, size);
  if (problem !== undefined) return fail(Errno.EINVAL, `placements: ${problem}`);
  for (const p of placements) {
    if (p.source !== 'zero' && p.sourceOffset + p.length > sourceSizes[p.source]) {
      return fail(Errno.EINVAL, `placement [${p.offset}, +${p.length}) reads ${p.source} up to ${p.sourceOffset + p.length}, past its size ${sourceSizes[p.source]}`);
    }
  }
  const runs: BlockRun[] = [];
  let pending: { block: number; pieces: Placement[] } | undefined;
  const flush = (): void => {
    if (pending !== undefined) runs.push({ kind: 'assemble', firstBlock: pending.block, blockCount: 1, pieces: pending.pieces });
    pending = undefined;
  };
  for (const p of placements) {
    const end = p.offset + p.length;
    let at = p.offset;
    // At most three turns per placement: a partial first block, the whole blocks, a partial last block.
    for (let turn = 0; at < end; turn++) {
      if (turn >= 3) throw new Error(`planBlocks made no progress at ${at} in placement [${p.offset}, +${p.length})`);
      const block = Math.floor(at / blockSizeBytes);
      const blockStart = block * blockSizeBytes;
      const blockEnd = Math.min(blockStart + blockSizeBytes, size);
      if (at === blockStart && end >= blockEnd) {
        const runEnd = end === size ? size : blockStart + Math.floor((end - blockStart) / blockSizeBytes) * blockSizeBytes;
        flush();
        runs.push(...wholeBlockRuns(p, at, runEnd, blockSizeBytes, sourceSizes));
        at = runEnd;
      } else {
        const pieceEnd = Math.min(end, blockEnd);
        if (pending !== undefined && pending.block !== block) flush();
        pending ??= { block, pieces: [] };
        pending.pieces.push(slice(p, at, pieceEnd));
        at = pieceEnd;
        if (pieceEnd === blockEnd) flush();
      }
    }
  }
  flush();
  return ok(runs);
}
