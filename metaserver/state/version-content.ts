/**
 * The content of a new version or conflict copy, from a commit decision's
 * placements (rules/commit.ts) over two sources: the head at this log
 * position and the fh's version. Inline when every source is inline and the
 * result fits INLINE_LIMIT_BYTES; otherwise a block list (rules/content.ts
 * planBlocks): whole blocks reused by id, holes for zeros, and the blocks
 * whose bytes mix sources or sit off a block boundary "assembled" (unless the
 * Agreement below shows one side's block already holds them). Apply never
 * reads block bytes, so assembled blocks come from the leader: the first
 * proposal answers NEEDS_ASSEMBLY with the pieces, the leader builds and
 * stores those blocks, and proposes again naming them for that head version.
 * Pure: no I/O, no clock.
 */
import { DEFAULT_BLOCK_SIZE_BYTES, INLINE_LIMIT_BYTES, Placement } from '../rules/commit';
import { BlockRun, copyPlacements, planBlocks } from '../rules/content';
import { Errno, Failure, Result, fail, ok } from '../rules/errno';
import { Extent, overlaps } from '../rules/extents';
import { StoredContent } from './records';

/** The one block size of this state: a version lists blocks of exactly this size (the last may be short). */
export const BLOCK_SIZE_BYTES = DEFAULT_BLOCK_SIZE_BYTES;

/** Content as a source: inline bytes, or blocks. */
export type ContentSource = { kind: 'inline'; bytes: Uint8Array } | { kind: 'blocks'; blocks: string[]; sizeBytes: number };

/** One block the leader must build: the concatenation of `pieces` (offsets relative to the new version). */
export interface BlockToAssemble {
  index: number;
  pieces: Placement[];
}

/** What the leader needs to build the missing blocks, for this head version. */
export interface AssemblyNeeded {
  headVersion: number;
  sizeBytes: number;
  head: ContentSource;
  fh: ContentSource;
  blocks: BlockToAssemble[];
}

/** Blocks the leader built for one head version: block index → id. */
export interface Assembled {
  forHead: number;
  ids: Map<number, string>;
}

/**
 * Where the head and the fh's version are known to hold the same bytes as the
 * result: outside `headChanged` (what changed since the fh's base) the head is
 * the base, so the fh's bytes are the result; outside `fhClaims` (what the fh
 * wrote or resized) the fh is the base, so the head's bytes are. So a block only
 * one side touched is reused whole instead of assembled. Positional commits only
 * (an append moves bytes, and its placements say so).
 */
export interface Agreement {
  headChanged: readonly Extent[];
  fhClaims: readonly Extent[];
}

export type BuiltContent = { kind: 'built'; content: StoredContent; assembledIds: string[] } | { kind: 'needs-assembly'; needed: AssemblyNeeded };

export function sourceOf(content: StoredContent): ContentSource {
  // An empty block list (a block file truncated to 0) is the same empty content as inline ''.
  if (content.blocks && content.blocks.length > 0) return { kind: 'blocks', blocks: content.blocks, sizeBytes: content.sizeBytes };
  const bytes = Buffer.from(content.inlineBase64, 'base64');
  if (bytes.length !== content.sizeBytes) throw new Error(`metastate: stored content holds ${bytes.length} bytes, its record says ${content.sizeBytes}`);
  return { kind: 'inline', bytes };
}

function sizeOf(source: ContentSource): number {
  return source.kind === 'inline' ? source.bytes.length : source.sizeBytes;
}

/** The pieces of placements that fall in [from, to), as placements of the new version. */
function piecesIn(placements: readonly Placement[], from: number, to: number): Placement[] {
  const pieces: Placement[] = [];
  for (const p of placements) {
    const start = Math.max(p.offset, from);
    const end = Math.min(p.offset + p.length, to);
    if (start >= end) continue;
    pieces.push({ offset: start, length: end - start, source: p.source, sourceOffset: p.source === 'zero' ? 0 : p.sourceOffset + (start - p.offset) });
  }
  return pieces;
}

/**
 * The stored content for `placements` tiling [0, size). EINVAL when the
 * placements do not fit the sources; EIO when a stored block list disagrees
 * with its size.
 */
export function buildContent(
  placements: readonly Placement[], size: number, headVersion: number, head: ContentSource, fh: ContentSource, assembled?: Assembled, agreement?: Agreement,
): Result<BuiltContent> {
  if (head.kind === 'inline' && fh.kind === 'inline' && size <= INLINE_LIMIT_BYTES) {
    const bytes = copyPlacements(placements, size, head.bytes, fh.bytes);
    if (!bytes.ok) return bytes;
    return ok({ kind: 'built', content: { sizeBytes: size, inlineBase64: Buffer.from(bytes.value).toString('base64') }, assembledIds: [] });
  }
  for (const [name, source] of [['head', head], ['fh', fh]] as const) {
    if (source.kind === 'blocks' && source.blocks.length !== Math.ceil(source.sizeBytes / BLOCK_SIZE_BYTES)) {
      return fail(name === 'head' ? Errno.EIO : Errno.EINVAL, `${name} lists ${source.blocks.length} blocks for ${source.sizeBytes} bytes of ${BLOCK_SIZE_BYTES}-byte blocks`);
    }
  }
  const plan = planBlocks(placements, size, BLOCK_SIZE_BYTES, { head: sizeOf(head), fh: sizeOf(fh) });
  if (!plan.ok) return plan;
  const blocks: string[] = new Array<string>(Math.ceil(size / BLOCK_SIZE_BYTES)).fill('');
  const toAssemble: BlockToAssemble[] = [];
  const positional = placements.every((p) => p.source === 'zero' || p.sourceOffset === p.offset);
  /** The id of block `index` of a source that holds exactly the result's bytes there, if its block has the same extent. */
  const sameBlockOf = (source: ContentSource, index: number, from: number, to: number): string | undefined => {
    if (source.kind !== 'blocks' || index >= source.blocks.length) return undefined;
    return Math.min(from + BLOCK_SIZE_BYTES, source.sizeBytes) === to ? source.blocks[index] : undefined;
  };
  const assembleRun = (run: BlockRun): void => {
    for (let k = 0; k < run.blockCount; k++) {
      const index = run.firstBlock + k;
      const from = index * BLOCK_SIZE_BYTES;
      const to = Math.min(from + BLOCK_SIZE_BYTES, size);
      const pieces = piecesIn(placements, from, to);
      if (agreement && positional && pieces.every((p) => p.source !== 'zero')) {
        const range = [{ offset: from, length: to - from }];
        const reused = !overlaps(agreement.headChanged, range) ? sameBlockOf(fh, index, from, to) : !overlaps(agreement.fhClaims, range) ? sameBlockOf(head, index, from, to) : undefined;
        if (reused !== undefined) {
          blocks[index] = reused;
          continue;
        }
      }
      toAssemble.push({ index, pieces });
    }
  };
  for (const run of plan.value) {
    if (run.kind === 'zero') continue; // holes stay ''
    if (run.kind === 'assemble') {
      assembleRun(run);
      continue;
    }
    const source = run.source === 'head' ? head : fh;
    if (source.kind === 'inline') {
      assembleRun(run);
      continue;
    }
    for (let k = 0; k < run.blockCount; k++) blocks[run.firstBlock + k] = source.blocks[run.sourceFirstBlock + k];
  }
  if (toAssemble.length > 0) {
    if (!assembled || assembled.forHead !== headVersion || assembled.ids.size !== toAssemble.length || toAssemble.some((b) => !assembled.ids.has(b.index))) {
      return ok({ kind: 'needs-assembly', needed: { headVersion, sizeBytes: size, head, fh, blocks: toAssemble } });
    }
    for (const b of toAssemble) blocks[b.index] = assembled.ids.get(b.index) as string;
  }
  const assembledIds = toAssemble.map((b) => blocks[b.index]).filter((id) => id !== '');
  return ok({ kind: 'built', content: { sizeBytes: size, inlineBase64: '', blocks, blockSizeBytes: BLOCK_SIZE_BYTES }, assembledIds });
}

/**
 * The answer to a commit or truncation whose content needs blocks only the
 * leader can build: EAGAIN, not applied and not remembered by the session, so
 * the same sequence proposed again with `assembled` is judged afresh.
 */
export interface AssemblyRequired extends Failure {
  readonly session: 'NEEDS_ASSEMBLY';
  readonly assembly: AssemblyNeeded;
}

export function assemblyRequired(needed: AssemblyNeeded): AssemblyRequired {
  return { ...fail(Errno.EAGAIN, `${needed.blocks.length} blocks of the new version must be built by the leader for head ${needed.headVersion}`), session: 'NEEDS_ASSEMBLY', assembly: needed };
}

export function isAssemblyRequired(result: unknown): result is AssemblyRequired {
  return typeof result === 'object' && result !== null && (result as { session?: unknown }).session === 'NEEDS_ASSEMBLY';
}

/** The command's `assembled` field as buildContent takes it. */
export function assembledOf(field: { forHead: number; ids: Array<[number, string]> } | undefined): Assembled | undefined {
  return field ? { forHead: field.forHead, ids: new Map(field.ids) } : undefined;
}
