/**
 * Seeded property tests of the commit rules on a model file (every version's
 * bytes kept in memory): disjoint concurrent commits give the same bytes in
 * any order and lose nothing; under random interleavings with both policies,
 * O_APPEND, truncations and dropped versions, no write is lost, recorded
 * changes are truthful and block plans rebuild the same bytes.
 * A failure names its seed; replay one with HANDLEFS_RULES_SEED=<seed>.
 */
import { seededRandom } from '../../raft/core/config';
import { CommitDecision, ConflictPolicy, Placement, commitClaims, decideCommit } from './commit';
import { BlockRun, WrittenBytes, extentsOfWrittenBytes, fhBytesOf, materializeInline, planBlocks } from './content';
import { Extent, ExtentLimits, clip, extentsChangedBetween, overlaps } from './extents';

const limits: ExtentLimits = { maxFileSizeBytes: 256, maxExtentsPerCommit: 8 };
const MAX_BYTES = limits.maxFileSizeBytes;
const BLOCK_SIZES = [1, 3, 8, 16, 64];

type Random = () => number;
const int = (random: Random, lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));

interface StoredVersion {
  readonly version: number;
  readonly size: number;
  readonly changedExtents: readonly Extent[];
  readonly bytes: Uint8Array;
  conflict: boolean;
}

interface ClientCommit {
  readonly baseVersion: number;
  readonly written: WrittenBytes[];
  readonly newSize: number;
  readonly append: boolean;
}

/** The byte at p, or -1 past the end: a size change shows up as a difference. */
const at = (bytes: Uint8Array, p: number): number => (p < bytes.length ? bytes[p] : -1);

function covered(extents: readonly Extent[], p: number): boolean {
  return extents.some((e) => p >= e.offset && p < e.offset + e.length);
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(what);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Rebuilds a version from a block plan the way the block layer would, checking every reused block fits. */
function rebuildFromBlocks(runs: readonly BlockRun[], size: number, blockSizeBytes: number, sources: { head: Uint8Array; fh: Uint8Array }): Uint8Array {
  const out = new Uint8Array(size);
  let nextBlock = 0;
  const blockLength = (block: number): number => Math.min(blockSizeBytes, size - block * blockSizeBytes);
  for (const run of runs) {
    check(run.firstBlock === nextBlock, `block run starts at ${run.firstBlock}, expected ${nextBlock}`);
    for (let k = 0; k < run.blockCount; k++) check(blockLength(run.firstBlock + k) > 0, `block ${run.firstBlock + k} is past the end`);
    if (run.kind === 'reuse') {
      const source = sources[run.source];
      for (let k = 0; k < run.blockCount; k++) {
        const from = (run.sourceFirstBlock + k) * blockSizeBytes;
        const sourceBlock = source.subarray(from, Math.min(from + blockSizeBytes, source.length));
        check(sourceBlock.length === blockLength(run.firstBlock + k), `reused ${run.source} block ${run.sourceFirstBlock + k} has a different length`);
        out.set(sourceBlock, (run.firstBlock + k) * blockSizeBytes);
      }
    } else if (run.kind === 'assemble') {
      let offset = run.firstBlock * blockSizeBytes;
      for (const piece of run.pieces) {
        check(piece.offset === offset, `assemble piece at ${piece.offset}, expected ${offset}`);
        if (piece.source !== 'zero') out.set(sources[piece.source].subarray(piece.sourceOffset, piece.sourceOffset + piece.length), piece.offset);
        offset += piece.length;
      }
      const runEnd = Math.min((run.firstBlock + run.blockCount) * blockSizeBytes, size);
      check(offset === runEnd, `assemble pieces end at ${offset}, run ends at ${runEnd}`);
    }
    nextBlock = run.firstBlock + run.blockCount;
  }
  check(nextBlock === Math.ceil(size / blockSizeBytes), `runs cover ${nextBlock} blocks of ${Math.ceil(size / blockSizeBytes)}`);
  return out;
}

/** A file as the state machine would keep it, with every invariant of the rules checked on each commit. */
class ModelFile {
  readonly versions = new Map<number, StoredVersion>();
  readonly conflictCopies: { baseVersion: number; lostToVersion: number; bytes: Uint8Array }[] = [];
  headVersion = 1;

  constructor(
    initial: Uint8Array,
    private readonly random: Random,
  ) {
    this.versions.set(1, { version: 1, size: initial.length, changedExtents: initial.length > 0 ? [{ offset: 0, length: initial.length }] : [], bytes: initial, conflict: false });
  }

  get head(): StoredVersion {
    return this.get(this.headVersion);
  }

  get(version: number): StoredVersion {
    const v = this.versions.get(version);
    if (v === undefined) throw new Error(`model has no version ${version}`);
    return v;
  }

  commit(c: ClientCommit, policy: ConflictPolicy): CommitDecision {
    const base = this.get(c.baseVersion);
    const head = this.head;
    const history = [...this.versions.values()].map(({ version, size, changedExtents }) => ({ version, size, changedExtents }));
    const changed = extentsChangedBetween(history, base.version, head.version, limits);
    if (!changed.ok) throw new Error(`extentsChangedBetween failed: ${changed.message}`);
    const written = extentsOfWrittenBytes(c.written);
    const result = decideCommit(
      { head, base, written, newSize: c.newSize, append: c.append, changedSinceBase: changed.value.extents, policy },
      limits,
    );
    if (!result.ok) throw new Error(`decideCommit failed: ${result.message}`);
    const d = result.value;
    const fh = fhBytesOf(base.bytes, c.written, c.newSize, MAX_BYTES);
    if (!fh.ok) throw new Error(`fhBytesOf failed: ${fh.message}`);
    const made = materializeInline({ baseBytes: base.bytes, headBytes: head.bytes, written: c.written, newSize: c.newSize }, d, MAX_BYTES);
    if (!made.ok) throw new Error(`materializeInline failed: ${made.message}`);
    const bytes = made.value;
    const claims = commitClaims(base.size, c.newSize, written, limits);
    const context = `${d.kind} of ${JSON.stringify({ ...c, written })} onto head ${head.version}`;

    if (d.kind === 'no-change') {
      check(written.length === 0 && (c.newSize === base.size), `${context}: no-change for a commit that changed something`);
      return d;
    }
    if (d.kind === 'conflict-reject') {
      check(policy === 'reject' && !c.append, `${context}: rejected under ${policy}`);
      check(sameBytes(bytes, fh.value), `${context}: the conflict copy is not the fh's version`);
      this.conflictCopies.push({ baseVersion: base.version, lostToVersion: head.version, bytes });
      this.checkBlocks(d.conflictCopy.placements, d.conflictCopy.size, head.bytes, fh.value, bytes, context);
      return d;
    }

    check(d.version === head.version + 1, `${context}: version ${d.version} after head ${head.version}`);
    check(bytes.length === d.size, `${context}: ${bytes.length} bytes for size ${d.size}`);
    if (d.kind === 'fast-forward') check(sameBytes(bytes, fh.value), `${context}: a fast-forward is not the fh's version`);
    if (c.append && d.kind === 'rebase') {
      const appended = c.newSize - base.size;
      check(d.size === head.size + appended, `${context}: append size ${d.size}`);
      check(sameBytes(bytes.subarray(0, head.size), head.bytes), `${context}: an append changed the head's bytes`);
      check(sameBytes(bytes.subarray(head.size), fh.value.subarray(base.size)), `${context}: appended bytes are not at the head's end`);
    }
    if (!c.append && d.kind !== 'fast-forward') {
      // The merge: this commit's claimed bytes, the head's (or zeros past its end) everywhere else.
      for (let p = 0; p < d.size; p++) {
        const expected = covered(claims, p) ? fh.value[p] : p < head.size ? head.bytes[p] : 0;
        check(bytes[p] === expected, `${context}: byte ${p} is ${bytes[p]}, expected ${expected}`);
      }
      if (d.kind === 'rebase') {
        // Soundness: nobody changed, since the base, a byte this commit claims.
        const span = Math.max(head.size, base.size, c.newSize) + 1;
        for (const e of clip(claims, 0, span)) {
          for (let p = e.offset; p < e.offset + e.length; p++) check(at(head.bytes, p) === at(base.bytes, p), `${context}: rebased over a concurrent change at ${p}`);
        }
      } else {
        check(policy === 'lww', `${context}: lww conflict under ${policy}`);
        check(d.conflictVersion === head.version, `${context}: marks ${d.conflictVersion}, not the old head`);
      }
    }

    const stored: StoredVersion = { version: d.version, size: d.size, changedExtents: d.changedExtents, bytes, conflict: false };
    this.versions.set(d.version, stored);
    this.headVersion = d.version;
    if (d.kind === 'conflict-lww') this.get(d.conflictVersion).conflict = true;

    // The recorded changes are truthful: every byte that differs from the old head is in what was recorded.
    const recorded = extentsChangedBetween([head, stored], head.version, d.version, limits);
    check(recorded.ok && recorded.value.exact, `${context}: recorded changes unreadable`);
    const recordedExtents = recorded.ok ? recorded.value.extents : [];
    for (let p = 0; p < Math.max(head.size, d.size); p++) {
      if (at(head.bytes, p) !== at(bytes, p)) check(covered(recordedExtents, p), `${context}: byte ${p} changed but is not in the recorded changes`);
    }
    this.checkBlocks(d.placements, d.size, head.bytes, fh.value, bytes, context);
    return d;
  }

  private checkBlocks(placements: readonly Placement[], size: number, head: Uint8Array, fh: Uint8Array, expected: Uint8Array, context: string): void {
    const blockSizeBytes = BLOCK_SIZES[int(this.random, 0, BLOCK_SIZES.length - 1)];
    const plan = planBlocks(placements, size, blockSizeBytes, { head: head.length, fh: fh.length });
    if (!plan.ok) throw new Error(`${context}: planBlocks failed: ${plan.message}`);
    const rebuilt = rebuildFromBlocks(plan.value, size, blockSizeBytes, { head, fh });
    check(sameBytes(rebuilt, expected), `${context}: blocks of ${blockSizeBytes} bytes rebuild different content`);
  }
}

function randomBytes(random: Random, length: number): Uint8Array {
  return Uint8Array.from({ length }, () => int(random, 0, 255));
}

/** A commit a well-behaved client could send from `base`. */
function randomCommit(random: Random, base: StoredVersion, options: { append: boolean }): ClientCommit {
  if (options.append) {
    const length = int(random, 1, 8);
    return { baseVersion: base.version, written: [{ offset: base.size, bytes: randomBytes(random, length) }], newSize: base.size + length, append: true };
  }
  const roll = random();
  const newSize = roll < 0.6 ? base.size : roll < 0.85 || base.size === 0 ? base.size + int(random, 1, 16) : int(random, 0, base.size - 1);
  const written: WrittenBytes[] = [];
  const count = newSize === 0 ? 0 : int(random, 0, 3);
  for (let i = 0; i < count; i++) {
    const offset = int(random, 0, newSize - 1);
    written.push({ offset, bytes: randomBytes(random, int(random, 1, Math.min(8, newSize - offset))) });
  }
  return { baseVersion: base.version, written, newSize, append: false };
}

function claimsOf(c: ClientCommit, baseSize: number): Extent[] {
  return commitClaims(baseSize, c.newSize, extentsOfWrittenBytes(c.written), limits);
}

function seeds(count: number, first: number): number[] {
  const only = process.env.HANDLEFS_RULES_SEED;
  return only !== undefined ? [Number(only)] : Array.from({ length: count }, (_, i) => first + i);
}

function withSeed(seed: number, body: () => void): void {
  try {
    body();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`seed ${seed} (replay with HANDLEFS_RULES_SEED=${seed}): ${message}`);
  }
}

describe('disjoint concurrent commits (seeded)', () => {
  it('rebasing in either order yields the same bytes and loses no written byte', () => {
    for (const seed of seeds(400, 1)) {
      withSeed(seed, () => {
        const random = seededRandom(seed);
        const initial = randomBytes(random, int(random, 0, 48));
        const base: StoredVersion = { version: 1, size: initial.length, changedExtents: [], bytes: initial, conflict: false };
        const commits: ClientCommit[] = [];
        const claimed: Extent[][] = [];
        const wanted = int(random, 2, 4);
        for (let tries = 0; tries < 60 && commits.length < wanted; tries++) {
          const c = randomCommit(random, base, { append: false });
          const claims = claimsOf(c, base.size);
          if (claimed.some((other) => overlaps(other, claims))) continue;
          commits.push(c);
          claimed.push(claims);
        }
        const order = commits.map((_, i) => i);
        const shuffled = [...order];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = int(random, 0, i);
          [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
        }
        const finals = [order, [...order].reverse(), shuffled].map((permutation) => {
          const file = new ModelFile(initial, random);
          for (const i of permutation) {
            const d = file.commit(commits[i], 'reject');
            check(d.kind !== 'conflict-reject', `commit ${i} conflicted in order ${permutation.join(',')}`);
          }
          return file.head.bytes;
        });
        check(sameBytes(finals[0], finals[1]) && sameBytes(finals[0], finals[2]), `orders disagree: ${[...finals[0]]} vs ${[...finals[1]]} vs ${[...finals[2]]}`);
        for (const c of commits) {
          // Compare with the fh's version: a commit's own later writes win over its earlier ones.
          const fh = fhBytesOf(initial, c.written, c.newSize, MAX_BYTES);
          if (!fh.ok) throw new Error(fh.message);
          for (const e of extentsOfWrittenBytes(c.written)) {
            for (let p = e.offset; p < e.offset + e.length; p++) check(finals[0][p] === fh.value[p], `byte ${p} written by a commit was lost`);
          }
        }
      });
    }
  });
});

describe('random interleavings of clients (seeded)', () => {
  it('never lose a write, record truthful changes, keep versions gap-free and rebuild the same bytes from blocks', () => {
    let decisions = 0;
    const kinds = new Map<string, number>();
    for (const seed of seeds(300, 1000)) {
      withSeed(seed, () => {
        const random = seededRandom(seed);
        const file = new ModelFile(randomBytes(random, int(random, 0, 48)), random);
        const clientBases = [1, 1, 1];
        let expectedHead = 1;
        for (let step = 0; step < 12; step++) {
          const client = int(random, 0, clientBases.length - 1);
          if (random() < 0.15) {
            clientBases[client] = file.headVersion; // reopen at the head
            continue;
          }
          if (random() < 0.1) {
            // Retention drops a version nobody pins (never the head).
            const droppable = [...file.versions.keys()].filter((v) => v !== file.headVersion && !clientBases.includes(v));
            if (droppable.length > 0) file.versions.delete(droppable[int(random, 0, droppable.length - 1)]);
            continue;
          }
          const base = file.get(clientBases[client]);
          const policy: ConflictPolicy = random() < 0.5 ? 'lww' : 'reject';
          const lostHead = file.head;
          const lostHeadBytes = lostHead.bytes.slice();
          const d = file.commit(randomCommit(random, base, { append: random() < 0.2 }), policy);
          decisions++;
          kinds.set(d.kind, (kinds.get(d.kind) ?? 0) + 1);
          if (d.kind === 'fast-forward' || d.kind === 'rebase' || d.kind === 'conflict-lww') {
            expectedHead++;
            clientBases[client] = d.version;
          } else {
            clientBases[client] = file.headVersion;
          }
          check(file.headVersion === expectedHead, `head is ${file.headVersion}, expected ${expectedHead}: versions must rise by exactly 1 per commit`);
          if (d.kind === 'conflict-lww') {
            const kept = file.versions.get(lostHead.version);
            check(kept !== undefined && kept.conflict && sameBytes(kept.bytes, lostHeadBytes), 'the overwritten head is not kept, marked conflict, unchanged');
          }
        }
      });
    }
    // The generator must reach every kind of decision, or the properties above prove little.
    for (const kind of ['fast-forward', 'rebase', 'conflict-lww', 'conflict-reject', 'no-change']) expect({ kind, seen: (kinds.get(kind) ?? 0) > 10 }).toEqual({ kind, seen: true });
    expect(decisions).toBeGreaterThan(2000);
  });
});
