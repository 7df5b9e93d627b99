/**
 * A child process for the kill -9 test: it persists batches of entries into a
 * LevelRaftStorage folder in a loop (with commits, a new term now and then that
 * overwrites the uncommitted tail, and local snapshots with compaction) and
 * prints one line per acknowledged write, "ack <lastIndex> <term> <commit>",
 * only after persist() resolved. Each run continues from what the folder holds.
 * Entry and snapshot contents are a pure function of (index, term) so the test
 * can check every byte that survived.
 * Owns: nothing durable of its own. Never: runs longer than its time limit.
 *
 * Usage: node dist/raft/storage/crash-writer.js <dataDir> [runSecondsMax]
 */
import * as fs from 'fs';
import { Entry, EntryType } from '../core/types';
import { LevelRaftStorage } from './level-storage';

export const CRASH_WRITER_CHUNK_SIZE_BYTES = 64 * 1024;
const ENTRIES_PER_BATCH_MAX = 48;
const UNCOMMITTED_TAIL_REWRITE_ENTRIES = 3;
const RUN_SECONDS_MAX_DEFAULT = 20;
const BATCHES_MAX = 1_000_000;

/** The payload every entry (index, term) carries: 0..299 bytes, first bytes spell the index. */
export function expectedEntryData(index: number, term: number): Uint8Array {
  const sizeBytes = (index * 37 + term * 11) % 300;
  const data = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) data[i] = (index + term * 3 + i) & 0xff;
  return data;
}

/** The snapshot data at `index`: a few hundred KiB, so it spans several 64 KiB chunks and its chunk count varies. */
export function expectedSnapshotData(index: number): Uint8Array {
  const sizeBytes = 100_000 + (index % 7) * 40_000;
  const data = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) data[i] = (index * 13 + i) & 0xff;
  return data;
}

function makeEntries(fromIndex: number, count: number, term: number): Entry[] {
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const index = fromIndex + i;
    entries.push({ index, term, type: EntryType.Normal, data: expectedEntryData(index, term) });
  }
  return entries;
}

function ack(lastIndex: number, term: number, commit: number): void {
  // Synchronous, so a line that was written is in the pipe before the next write starts.
  fs.writeSync(1, `ack ${lastIndex} ${term} ${commit}\n`);
}

async function main(): Promise<void> {
  const dataDir = process.argv[2];
  if (!dataDir) throw new Error('usage: crash-writer.js <dataDir> [runSecondsMax]');
  const runSecondsMax = Number(process.argv[3] ?? RUN_SECONDS_MAX_DEFAULT);
  const deadlineMs = Date.now() + runSecondsMax * 1000;

  const storage = await LevelRaftStorage.open(dataDir, { snapshotChunkSizeBytes: CRASH_WRITER_CHUNK_SIZE_BYTES });
  if (await storage.isEmpty()) await storage.bootstrap({ members: [{ id: 'm1', address: '127.0.0.1:1', role: 'voter' }] });
  const initial = await storage.load();
  let lastIndex = initial.entries.length > 0 ? initial.entries[initial.entries.length - 1].index : initial.snapshot.index;
  let term = initial.hardState.term + 1;
  let commit = initial.hardState.commit;
  let snapshotIndex = initial.snapshot.index;
  await storage.persist({ hardState: { term, vote: 'm1', commit }, entries: [] });
  ack(lastIndex, term, commit);

  for (let batchNumber = 1; batchNumber <= BATCHES_MAX && Date.now() < deadlineMs; batchNumber++) {
    const count = 1 + ((batchNumber * 7) % ENTRIES_PER_BATCH_MAX);
    if (batchNumber % 25 === 0 && lastIndex - UNCOMMITTED_TAIL_REWRITE_ENTRIES > commit) {
      // A new leader's term replaces the uncommitted tail; the new tail is longer so acknowledged indices stay present.
      term += 1;
      const fromIndex = lastIndex - UNCOMMITTED_TAIL_REWRITE_ENTRIES + 1;
      await storage.persist({ hardState: { term, vote: 'm1', commit }, entries: makeEntries(fromIndex, UNCOMMITTED_TAIL_REWRITE_ENTRIES + count, term) });
      lastIndex = fromIndex + UNCOMMITTED_TAIL_REWRITE_ENTRIES + count - 1;
    } else if (batchNumber % 10 === 0) {
      commit = lastIndex;
      await storage.persist({ hardState: { term, vote: 'm1', commit }, entries: makeEntries(lastIndex + 1, count, term) });
      lastIndex += count;
    } else {
      await storage.persist({ entries: makeEntries(lastIndex + 1, count, term) });
      lastIndex += count;
    }
    ack(lastIndex, term, commit);
    if (batchNumber % 40 === 0 && commit > snapshotIndex) {
      const termAtCommit = await termOf(storage, commit, term);
      await storage.saveLocalSnapshot(
        { metadata: { index: commit, term: termAtCommit, membership: initial.membership }, data: expectedSnapshotData(commit) },
        Math.max(0, commit - 20),
      );
      snapshotIndex = commit;
    }
  }
  await storage.close();
}

/** The term at a committed index: every entry's term is its writer's term, so read it back rather than track a history. */
async function termOf(storage: LevelRaftStorage, index: number, currentTerm: number): Promise<number> {
  const state = await storage.load();
  if (state.snapshot.index === index) return state.snapshot.term;
  const entry = state.entries.find((e) => e.index === index);
  if (entry === undefined) throw new Error(`crash-writer: entry ${index} not found (current term ${currentTerm})`);
  return entry.term;
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`crash-writer failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
