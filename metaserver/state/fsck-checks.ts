/**
 * The consistency rules `handlefs fsck` checks on one member's state, as a
 * pure accumulator: fed every (key, value) of the keyspace in key order (one
 * LevelDB snapshot, state-scan.ts), it cross-references inodes, directory
 * entries, fhs, versions, conflict copies and block records and answers the
 * findings — counted per kind, the first few of each kind kept. Owns what
 * "consistent" means; must never do I/O, read a clock, or change anything.
 *
 * The rules (state/README.md):
 * - nlink: a non-directory's = the entries naming it; a directory's = 2 + its
 *   subdirectories, and it is named exactly once (the root never).
 * - orphan: a record no entry reaches from the root and no open fh pins (an
 *   unlinked file an fh still holds is legal: nlink 0, kept until release).
 * - dangling entry: an entry naming a handle with no inode record (or of
 *   another type than the inode's).
 * - block references: a block record's refs = the listings by kept versions
 *   and conflict copies (a block listed twice counts twice); refs 0 ⇔ a
 *   collection candidate key.
 * Memory grows with the handles, entries and block ids seen (bounded by
 * `trackedMax`: beyond it the answer says `incomplete`).
 */
import { FileType } from '../rules/modes';
import {
  APPLIED_KEY, BlockRecord, COUNTERS_KEY, ConflictCopyRecord, Counters, FhRecord, Inode, ROOT_HANDLE, VersionRecord,
  blockIdOfKey, decodeDirent, decodeRecord, direntName, readU64,
} from './records';

export type FindingKind = 'nlink' | 'orphan' | 'dangling-entry' | 'dangling-fh' | 'stray-record' | 'dir-entries' | 'block-refs' | 'counters' | 'corrupt-record';
export const FINDING_KINDS: readonly FindingKind[] = ['nlink', 'orphan', 'dangling-entry', 'dangling-fh', 'stray-record', 'dir-entries', 'block-refs', 'counters', 'corrupt-record'];

export interface Finding {
  kind: FindingKind;
  /** What is wrong, by name: "handle 12", "entry 1/'a'", "block ab12…". */
  subject: string;
  detail: string;
  /** The handle concerned, when there is one (repairs need it). */
  handle?: number;
  /** nlink findings: the value the rule expects. */
  expected?: number;
  /** nlink and orphan findings: what the inode says, its generation, its type and the entries naming it (repairs compare-and-set on these). */
  stored?: number;
  generation?: number;
  type?: FileType;
  names?: number;
}

export interface FsckStats {
  inodes: number;
  entries: number;
  fhs: number;
  versions: number;
  conflictCopies: number;
  blockRecords: number;
  /** Block records with at least one reference: the blocks that must be on a majority. */
  referencedBlocks: number;
}

export interface FsckFindings {
  stats: FsckStats;
  counts: Record<FindingKind, number>;
  /** The first `samplesPerKind` findings of each kind, in key order. */
  samples: Finding[];
  /** True when more records were seen than trackedMax: some rules could not be checked. */
  incomplete: boolean;
}

/** Handles + entries + block ids tracked before the check gives up on cross-references (memory ~100 B each). */
export const DEFAULT_TRACKED_MAX = 5_000_000;
export const DEFAULT_SAMPLES_PER_KIND = 20;
export const SAMPLES_PER_KIND_MAX = 1_000;

const PREFIX_META = 0x00;
const PREFIX_INODE = 0x10;
const PREFIX_DIRENT = 0x20;
const PREFIX_XATTR = 0x30;
const PREFIX_VERSION = 0x50;
const PREFIX_CONFLICT_COPY = 0x51;
const PREFIX_FH = 0x60;
const PREFIX_BLOCK = 0x70;
const PREFIX_UNREFERENCED_BLOCK = 0x72;

interface InodeFacts {
  generation: number;
  type: FileType;
  nlink: number;
  entries: number;
}

const shortId = (id: string): string => `${id.slice(0, 12)}…`;

export class FsckAccumulator {
  private readonly inodes = new Map<number, InodeFacts>();
  /** handle → entries naming it. */
  private readonly names = new Map<number, number>();
  /** directory → subdirectory entries / all entries in it. */
  private readonly subdirs = new Map<number, number>();
  private readonly entriesIn = new Map<number, number>();
  /** directory → child handles, for the walk from the root. */
  private readonly children = new Map<number, number[]>();
  private readonly fhHandles = new Set<number>();
  /** block id → listings by kept versions and copies. */
  private readonly listings = new Map<string, number>();
  private readonly recordedBlocks = new Set<string>();
  /** Block records with refs 0 not (yet) matched by a candidate key. */
  private readonly unmatchedZeroRef = new Set<string>();
  private counters: Counters | undefined;
  private tracked = 0;
  private incomplete = false;
  private finished = false;
  private readonly counts = Object.fromEntries(FINDING_KINDS.map((kind) => [kind, 0])) as Record<FindingKind, number>;
  private readonly samples: Finding[] = [];
  private readonly stats: FsckStats = { inodes: 0, entries: 0, fhs: 0, versions: 0, conflictCopies: 0, blockRecords: 0, referencedBlocks: 0 };
  private lastKey: Buffer | undefined;

  constructor(private readonly options: { samplesPerKind?: number; trackedMax?: number } = {}) {
    const samples = options.samplesPerKind ?? DEFAULT_SAMPLES_PER_KIND;
    if (!Number.isSafeInteger(samples) || samples < 0 || samples > SAMPLES_PER_KIND_MAX) throw new Error(`fsck: samplesPerKind ${samples} is not in 0..${SAMPLES_PER_KIND_MAX}`);
  }

  /** One record; keys must come in ascending order (as a LevelDB iterator hands them). */
  add(key: Buffer, value: Uint8Array): void {
    if (this.finished) throw new Error('fsck: add after finish');
    if (this.lastKey && Buffer.compare(this.lastKey, key) >= 0) throw new Error(`fsck: keys out of order at ${key.subarray(0, 17).toString('hex')}`);
    this.lastKey = key;
    try {
      this.dispatch(key, value);
    } catch (error) {
      this.report({ kind: 'corrupt-record', subject: `key ${key.subarray(0, 24).toString('hex')}`, detail: (error as Error).message });
    }
  }

  private dispatch(key: Buffer, value: Uint8Array): void {
    switch (key[0]) {
      case PREFIX_META:
        if (key.equals(COUNTERS_KEY)) this.counters = decodeRecord<Counters>(value, 'counters');
        else if (!key.equals(APPLIED_KEY)) this.report({ kind: 'corrupt-record', subject: `key ${key.toString('hex')}`, detail: 'an unknown key in the meta range' });
        return;
      case PREFIX_INODE: return this.addInode(key, decodeRecord<Inode>(value, 'inode'));
      case PREFIX_DIRENT: return this.addDirent(key, value);
      case PREFIX_XATTR: return this.ownedBy(readU64(key, 1), 'an extended attribute');
      case PREFIX_VERSION: {
        const handle = readU64(key, 1);
        this.stats.versions++;
        this.ownedBy(handle, `version ${readU64(key, 9)}`);
        return this.list(decodeRecord<VersionRecord>(value, 'version').blocks);
      }
      case PREFIX_CONFLICT_COPY: {
        const handle = readU64(key, 1);
        this.stats.conflictCopies++;
        this.ownedBy(handle, `conflict copy ${readU64(key, 9)}`);
        return this.list(decodeRecord<ConflictCopyRecord>(value, 'conflict copy').blocks);
      }
      case PREFIX_FH: return this.addFh(key, decodeRecord<FhRecord>(value, 'fh'));
      case PREFIX_BLOCK: return this.addBlock(blockIdOfKey(key), decodeRecord<BlockRecord>(value, 'block'));
      case PREFIX_UNREFERENCED_BLOCK: {
        const id = blockIdOfKey(key);
        if (this.unmatchedZeroRef.delete(id)) return;
        const why = this.recordedBlocks.has(id) ? 'its block record still counts references' : 'it has no block record';
        return this.report({ kind: 'block-refs', subject: `block ${shortId(id)}`, detail: `a collection candidate although ${why}` });
      }
      default:
        return; // sessions and stored results: nothing to cross-reference
    }
  }

  private track(): boolean {
    if (this.tracked >= (this.options.trackedMax ?? DEFAULT_TRACKED_MAX)) {
      this.incomplete = true;
      return false;
    }
    this.tracked++;
    return true;
  }

  private addInode(key: Buffer, inode: Inode): void {
    const handle = readU64(key, 1);
    if (inode.handle !== handle) throw new Error(`inode record under handle ${handle} names handle ${inode.handle}`);
    this.stats.inodes++;
    if (this.track()) this.inodes.set(handle, { generation: inode.generation, type: inode.type, nlink: inode.nlink, entries: inode.entries ?? 0 });
  }

  private addDirent(key: Buffer, value: Uint8Array): void {
    const parent = readU64(key, 1);
    const name = direntName(key);
    const { handle, type } = decodeDirent(value);
    this.stats.entries++;
    const subject = `entry ${parent}/${JSON.stringify(name)}`;
    const child = this.inodes.get(handle);
    const parentInode = this.inodes.get(parent);
    if (!child && !this.incomplete) this.report({ kind: 'dangling-entry', subject, detail: `names handle ${handle}, which has no inode record`, handle });
    if (child && child.type !== type) this.report({ kind: 'dangling-entry', subject, detail: `says handle ${handle} is a ${type} but it is a ${child.type}`, handle });
    if (parentInode && parentInode.type !== 'dir') this.report({ kind: 'dangling-entry', subject, detail: `lives in handle ${parent}, a ${parentInode.type}, not a directory`, handle });
    if (!this.track()) return;
    // A dangling entry still counts in its directory (its entry count and nlink include it).
    this.entriesIn.set(parent, (this.entriesIn.get(parent) ?? 0) + 1);
    if (type === 'dir') this.subdirs.set(parent, (this.subdirs.get(parent) ?? 0) + 1);
    if (!child) return;
    this.names.set(handle, (this.names.get(handle) ?? 0) + 1);
    const list = this.children.get(parent);
    if (list) list.push(handle);
    else this.children.set(parent, [handle]);
  }

  private addFh(key: Buffer, fh: FhRecord): void {
    const id = readU64(key, 1);
    this.stats.fhs++;
    if (!this.inodes.has(fh.handle) && !this.incomplete) {
      this.report({ kind: 'dangling-fh', subject: `fh ${id}`, detail: `holds handle ${fh.handle}, which has no inode record`, handle: fh.handle });
      return;
    }
    this.fhHandles.add(fh.handle);
  }

  /** A record that belongs to a handle (versions, copies, xattrs) must have its inode. */
  private ownedBy(handle: number, what: string): void {
    if (this.incomplete || this.inodes.has(handle)) return;
    this.report({ kind: 'stray-record', subject: `handle ${handle}`, detail: `${what} of a handle with no inode record`, handle });
  }

  private list(blocks: string[] | undefined): void {
    for (const id of blocks ?? []) {
      if (id === '') continue; // a hole is never stored
      const seen = this.listings.get(id);
      if (seen !== undefined) this.listings.set(id, seen + 1);
      else if (this.track()) this.listings.set(id, 1);
    }
  }

  private addBlock(id: string, record: BlockRecord): void {
    this.stats.blockRecords++;
    if (record.refs > 0) this.stats.referencedBlocks++;
    this.recordedBlocks.add(id);
    const listed = this.listings.get(id) ?? 0;
    if (!this.incomplete && listed !== record.refs) {
      this.report({ kind: 'block-refs', subject: `block ${shortId(id)}`, detail: `its record counts ${record.refs} references, kept versions and copies list it ${listed} times` });
    }
    if (record.refs === 0) this.unmatchedZeroRef.add(id);
  }

  private report(finding: Finding): void {
    this.counts[finding.kind]++;
    if (this.counts[finding.kind] <= (this.options.samplesPerKind ?? DEFAULT_SAMPLES_PER_KIND)) this.samples.push(finding);
  }

  /** Runs the rules that need every record, and answers. */
  finish(): FsckFindings {
    if (this.finished) throw new Error('fsck: finish called twice');
    this.finished = true;
    if (!this.incomplete) this.crossCheck();
    return { stats: { ...this.stats }, counts: { ...this.counts }, samples: [...this.samples], incomplete: this.incomplete };
  }

  private crossCheck(): void {
    for (const id of this.unmatchedZeroRef) {
      this.report({ kind: 'block-refs', subject: `block ${shortId(id)}`, detail: 'no references but not a collection candidate: it would never be collected' });
    }
    for (const [id, listed] of this.listings) {
      if (!this.recordedBlocks.has(id)) this.report({ kind: 'block-refs', subject: `block ${shortId(id)}`, detail: `listed ${listed} times by kept versions and copies but has no block record` });
    }
    const reachable = this.reachableFromRoot();
    for (const [handle, inode] of this.inodes) {
      const named = this.names.get(handle) ?? 0;
      const subject = `handle ${handle}`;
      const facts = { handle, stored: inode.nlink, generation: inode.generation, type: inode.type, names: named };
      if (inode.type === 'dir') {
        const expected = 2 + (this.subdirs.get(handle) ?? 0);
        if (inode.nlink !== expected) this.report({ kind: 'nlink', subject, detail: `directory nlink is ${inode.nlink}, expected ${expected} (2 + subdirectories)`, ...facts, expected });
        const wantNames = handle === ROOT_HANDLE ? 0 : 1;
        if (named !== wantNames && reachable.has(handle)) this.report({ kind: 'nlink', subject, detail: `directory named by ${named} entries, expected ${wantNames}`, ...facts });
        const entries = this.entriesIn.get(handle) ?? 0;
        if (inode.entries !== entries) this.report({ kind: 'dir-entries', subject, detail: `directory counts ${inode.entries} entries, holds ${entries}`, handle, expected: entries });
      } else if (inode.nlink !== named) {
        this.report({ kind: 'nlink', subject, detail: `${inode.type} nlink is ${inode.nlink}, named by ${named} entries`, ...facts, expected: named });
      }
      if (!reachable.has(handle) && !this.fhHandles.has(handle)) {
        this.report({ kind: 'orphan', subject, detail: `a ${inode.type} no entry reaches from the root and no open fh holds`, ...facts });
      }
    }
    if (this.counters) this.checkCounters(this.counters);
  }

  private reachableFromRoot(): Set<number> {
    const reachable = new Set<number>();
    if (!this.inodes.has(ROOT_HANDLE)) {
      if (this.inodes.size > 0) this.report({ kind: 'dangling-entry', subject: `handle ${ROOT_HANDLE}`, detail: 'the root directory has no inode record' });
      return reachable;
    }
    const queue = [ROOT_HANDLE];
    reachable.add(ROOT_HANDLE);
    // Each handle enters the queue once: the walk is bounded by the handles seen, even with a cycle.
    while (queue.length > 0) {
      const parent = queue.pop()!;
      for (const child of this.children.get(parent) ?? []) {
        if (reachable.has(child) || !this.inodes.has(child)) continue;
        reachable.add(child);
        if (this.inodes.get(child)!.type === 'dir') queue.push(child);
      }
    }
    return reachable;
  }

  private checkCounters(counters: Counters): void {
    const compare = (name: string, stored: number | undefined, actual: number): void => {
      if (stored !== undefined && stored !== actual) this.report({ kind: 'counters', subject: `counter ${name}`, detail: `says ${stored}, the state holds ${actual}` });
    };
    compare('inodesInUse', counters.inodesInUse, this.stats.inodes);
    compare('fhsOpen', counters.fhsOpen, this.stats.fhs);
    compare('blockRecords', counters.blockRecords, this.stats.blockRecords);
  }
}
