/**
 * Scenarios for LevelRaftStorage on real LevelDB folders: what a member writes
 * is what it reads back after close and reopen, and writes that would break
 * the log's invariants are refused without damaging the store.
 */
import * as fs from 'fs';
import * as path from 'path';
import { EntryType } from '../core/types';
import { prefixRange, PREFIX_ENTRY, PREFIX_SNAPSHOT_CHUNK, parseEntryKey } from './keys';
import { LevelRaftStorage } from './level-storage';
import { openLevel, StorageOpenError } from './open-level';
import { entries, patternBytes, TempDirs, THREE_MEMBERS } from './testing';

const temp = new TempDirs();
const openStores: LevelRaftStorage[] = [];

async function openStore(dir: string, chunkSizeBytes?: number): Promise<LevelRaftStorage> {
  const store = await LevelRaftStorage.open(dir, chunkSizeBytes === undefined ? {} : { snapshotChunkSizeBytes: chunkSizeBytes });
  openStores.push(store);
  return store;
}

async function bootstrapped(label: string, chunkSizeBytes?: number): Promise<{ dir: string; store: LevelRaftStorage }> {
  const dir = temp.make(label);
  const store = await openStore(dir, chunkSizeBytes);
  await store.bootstrap(THREE_MEMBERS);
  return { dir, store };
}

/** Reads raw keys of one prefix through a separate handle; the store must be closed. */
async function rawKeys(dir: string, prefix: number): Promise<Buffer[]> {
  const db = await openLevel(dir);
  try {
    return await db.keys(prefixRange(prefix)).all();
  } finally {
    await db.close();
  }
}

afterEach(async () => {
  for (const store of openStores.splice(0)) await store.close();
  temp.cleanup();
});

describe('a brand-new member', () => {
  it('finds its folder empty and loads an empty state', async () => {
    const store = await openStore(temp.make('new'));
    expect(await store.isEmpty()).toBe(true);
    const initial = await store.load();
    expect(initial).toEqual({
      hardState: { term: 0, vote: '', commit: 0 },
      membership: { members: [] },
      snapshot: { index: 0, term: 0, membership: { members: [] } },
      entries: [],
      applied: 0,
    });
    expect(await store.loadSnapshot()).toBeUndefined();
  });

  it('loads the bootstrap membership, a zero hard state and no entries after bootstrap', async () => {
    const { store } = await bootstrapped('bootstrap');
    expect(await store.isEmpty()).toBe(false);
    const initial = await store.load();
    expect(initial.membership).toEqual(THREE_MEMBERS);
    expect(initial.snapshot).toEqual({ index: 0, term: 0, membership: THREE_MEMBERS });
    expect(initial.hardState).toEqual({ term: 0, vote: '', commit: 0 });
    expect(initial.entries).toEqual([]);
    expect(await store.loadSnapshot()).toBeUndefined();
  });

  it('refuses a second bootstrap with an error saying the store is not empty', async () => {
    const { store } = await bootstrapped('rebootstrap');
    await expect(store.bootstrap(THREE_MEMBERS)).rejects.toThrow(/refusing to bootstrap .* it is not empty/);
  });

  it('becomes initialized by its first persist when it waits to be added without bootstrap', async () => {
    const dir = temp.make('joiner');
    const store = await openStore(dir);
    await store.persist({ hardState: { term: 3, vote: '', commit: 2 }, entries: entries(1, 2, 3), membership: THREE_MEMBERS });
    await store.close();
    const reopened = await openStore(dir);
    expect(await reopened.isEmpty()).toBe(false);
    const initial = await reopened.load();
    expect(initial.entries.map((e) => e.index)).toEqual([1, 2]);
    expect(initial.membership).toEqual(THREE_MEMBERS);
    expect(initial.hardState).toEqual({ term: 3, vote: '', commit: 2 });
  });
});

describe('a member waiting to be added', () => {
  it('can receive a snapshot as its very first write', async () => {
    const dir = temp.make('joiner-snapshot');
    const store = await openStore(dir);
    const data = patternBytes(2000, 12);
    await store.persist({ snapshot: { metadata: { index: 40, term: 5, membership: THREE_MEMBERS }, data }, hardState: { term: 5, vote: '', commit: 40 }, entries: entries(41, 42, 5) });
    await store.close();
    const reopened = await openStore(dir);
    const initial = await reopened.load();
    expect(initial.snapshot).toEqual({ index: 40, term: 5, membership: THREE_MEMBERS });
    expect(initial.membership).toEqual(THREE_MEMBERS);
    expect(initial.entries).toEqual(entries(41, 42, 5));
    expect((await reopened.loadSnapshot())?.data).toEqual(data);
  });
});

describe('appending to the log', () => {
  it('returns appended entries in order, with their type and data', async () => {
    const { store } = await bootstrapped('append');
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 0 }, entries: entries(1, 3, 1) });
    await store.persist({ entries: entries(4, 7, 1) });
    const initial = await store.load();
    expect(initial.entries).toEqual(entries(1, 7, 1));
    expect(initial.entries[4].type).toBe(EntryType.Noop);
  });

  it('replaces the suffix from an index at or below the last index and deletes the rest', async () => {
    const { dir, store } = await bootstrapped('overwrite');
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 3 }, entries: entries(1, 10, 1) });
    await store.persist({ hardState: { term: 2, vote: 'm2', commit: 3 }, entries: entries(6, 7, 2) });
    const initial = await store.load();
    expect(initial.entries).toEqual([...entries(1, 5, 1), ...entries(6, 7, 2)]);
    await store.close();
    expect((await rawKeys(dir, PREFIX_ENTRY)).map((k) => parseEntryKey(k))).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('applies concurrent persist calls in call order', async () => {
    const { store } = await bootstrapped('concurrent');
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 0 }, entries: [] });
    const writes = [];
    for (let index = 1; index <= 50; index++) writes.push(store.persist({ entries: entries(index, index, 1) }));
    await Promise.all(writes);
    expect((await store.load()).entries.map((e) => e.index)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });
});

describe('the hard state', () => {
  it('is persisted with the entries and read back', async () => {
    const { store } = await bootstrapped('hardstate');
    await store.persist({ hardState: { term: 4, vote: 'm3', commit: 0 }, entries: [] });
    await store.persist({ hardState: { term: 4, vote: 'm3', commit: 2 }, entries: entries(1, 2, 4) });
    expect((await store.load()).hardState).toEqual({ term: 4, vote: 'm3', commit: 2 });
  });
});

describe('a snapshot received from the leader', () => {
  it('keeps the entries after it when the log holds its last entry with the same term', async () => {
    const { store } = await bootstrapped('snap-match');
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 4 }, entries: entries(1, 10, 1) });
    const data = patternBytes(3000, 1);
    await store.persist({ snapshot: { metadata: { index: 6, term: 1, membership: THREE_MEMBERS }, data }, hardState: { term: 1, vote: 'm1', commit: 6 }, entries: [] });
    const initial = await store.load();
    expect(initial.snapshot).toEqual({ index: 6, term: 1, membership: THREE_MEMBERS });
    expect(initial.entries).toEqual(entries(7, 10, 1));
    expect(initial.hardState.commit).toBe(6);
    expect(await store.loadSnapshot()).toEqual({ metadata: { index: 6, term: 1, membership: THREE_MEMBERS }, data });
  });

  it('drops the whole log when the log holds a different term at its index', async () => {
    const { dir, store } = await bootstrapped('snap-conflict');
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 2 }, entries: entries(1, 10, 1) });
    const twoMembers = { members: THREE_MEMBERS.members.slice(0, 2) };
    await store.persist({ snapshot: { metadata: { index: 8, term: 2, membership: twoMembers }, data: patternBytes(100, 2) }, hardState: { term: 2, vote: '', commit: 8 }, entries: [] });
    const initial = await store.load();
    expect(initial.entries).toEqual([]);
    expect(initial.snapshot.index).toBe(8);
    expect(initial.membership).toEqual(twoMembers);
    await store.persist({ entries: entries(9, 9, 2) });
    expect((await store.load()).entries).toEqual(entries(9, 9, 2));
    await store.close();
    expect((await rawKeys(dir, PREFIX_ENTRY)).map((k) => parseEntryKey(k))).toEqual([9]);
  });

  it('drops the whole log when the snapshot is beyond it, and keeps entries sent with it in the same batch', async () => {
    const { store } = await bootstrapped('snap-beyond');
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 3 }, entries: entries(1, 5, 1) });
    await store.persist({
      snapshot: { metadata: { index: 20, term: 3, membership: THREE_MEMBERS }, data: patternBytes(10, 3) },
      hardState: { term: 3, vote: '', commit: 20 },
      entries: entries(21, 23, 3),
    });
    const initial = await store.load();
    expect(initial.snapshot.index).toBe(20);
    expect(initial.entries).toEqual(entries(21, 23, 3));
  });
});

describe('a local snapshot', () => {
  it('stores the data and deletes log entries up to compactIndex, keeping the ones it covers after that', async () => {
    const { dir, store } = await bootstrapped('local-snap');
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 15 }, entries: entries(1, 20, 1) });
    const data = patternBytes(5000, 4);
    await store.saveLocalSnapshot({ metadata: { index: 15, term: 1, membership: THREE_MEMBERS }, data }, 10);
    const initial = await store.load();
    expect(initial.snapshot).toEqual({ index: 15, term: 1, membership: THREE_MEMBERS });
    expect(initial.entries).toEqual(entries(16, 20, 1));
    expect((await store.loadSnapshot())?.data).toEqual(data);
    await store.close();
    expect((await rawKeys(dir, PREFIX_ENTRY)).map((k) => parseEntryKey(k))).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  });

  it('removes the old chunks when a smaller snapshot replaces a larger one', async () => {
    const { dir, store } = await bootstrapped('rechunk', 1024);
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 8 }, entries: entries(1, 10, 1) });
    await store.saveLocalSnapshot({ metadata: { index: 5, term: 1, membership: THREE_MEMBERS }, data: patternBytes(4500, 5) }, 5);
    await store.saveLocalSnapshot({ metadata: { index: 8, term: 1, membership: THREE_MEMBERS }, data: patternBytes(1500, 8) }, 8);
    expect((await store.loadSnapshot())?.data).toEqual(patternBytes(1500, 8));
    await store.close();
    expect(await rawKeys(dir, PREFIX_SNAPSHOT_CHUNK)).toHaveLength(2);
  });

  it('round-trips a 5 MiB snapshot through 1 MiB chunks', async () => {
    const { dir, store } = await bootstrapped('large-snap');
    await store.persist({ hardState: { term: 2, vote: 'm1', commit: 3 }, entries: entries(1, 3, 2) });
    const data = patternBytes(5 * 1024 * 1024 + 123, 9);
    await store.saveLocalSnapshot({ metadata: { index: 3, term: 2, membership: THREE_MEMBERS }, data }, 3);
    await store.close();
    expect(await rawKeys(dir, PREFIX_SNAPSHOT_CHUNK)).toHaveLength(6);
    const reopened = await openStore(dir);
    expect((await reopened.load()).snapshot.index).toBe(3);
    const loaded = await reopened.loadSnapshot();
    expect(loaded?.data.byteLength).toBe(data.byteLength);
    expect(Buffer.compare(Buffer.from(loaded!.data), Buffer.from(data))).toBe(0);
  });
});

describe('reopening', () => {
  it('returns the identical state after close, for a history mixing every kind of write', async () => {
    const { dir, store } = await bootstrapped('reopen', 2048);
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 0 }, entries: entries(1, 12, 1) });
    await store.persist({ hardState: { term: 2, vote: 'm2', commit: 9 }, entries: entries(10, 14, 2) });
    await store.saveLocalSnapshot({ metadata: { index: 9, term: 1, membership: THREE_MEMBERS }, data: patternBytes(7000, 7) }, 6);
    await store.persist({ hardState: { term: 2, vote: 'm2', commit: 12 }, entries: entries(15, 16, 2), membership: { members: THREE_MEMBERS.members.slice(1) } });
    const before = await store.load();
    const snapshotBefore = await store.loadSnapshot();
    await store.close();
    const reopened = await openStore(dir, 2048);
    expect(await reopened.load()).toEqual(before);
    expect(await reopened.loadSnapshot()).toEqual(snapshotBefore);
    expect(before.entries.map((e) => e.index)).toEqual([10, 11, 12, 13, 14, 15, 16]);
    // Writes continue where the reopened store left off.
    await reopened.persist({ entries: entries(17, 17, 2) });
    expect((await reopened.load()).entries.at(-1)?.index).toBe(17);
  });
});

describe('writes that would break the invariants', () => {
  it('are refused with an error naming the problem, and the store stays usable', async () => {
    const { store } = await bootstrapped('refuse');
    await store.persist({ hardState: { term: 2, vote: 'm1', commit: 3 }, entries: entries(1, 5, 2) });
    const nonConsecutive = [...entries(6, 6, 2), ...entries(8, 8, 2)];
    await expect(store.persist({ entries: nonConsecutive })).rejects.toThrow(/must be consecutive: entry 1 has index 8, expected 7/);
    await expect(store.persist({ entries: entries(8, 9, 2) })).rejects.toThrow(/log ends at 5, which would leave a gap/);
    await expect(store.persist({ entries: entries(6, 6, 1) })).rejects.toThrow(/term 1 after an entry of term 2/);
    await expect(store.persist({ hardState: { term: 1, vote: '', commit: 3 }, entries: [] })).rejects.toThrow(/term would go back from 2 to 1/);
    await expect(store.persist({ hardState: { term: 2, vote: 'm2', commit: 3 }, entries: [] })).rejects.toThrow(/vote in term 2 would change from m1 to m2/);
    await expect(store.persist({ hardState: { term: 2, vote: 'm1', commit: 6 }, entries: [] })).rejects.toThrow(/commit 6 is beyond the last log index 5/);
    await expect(store.saveLocalSnapshot({ metadata: { index: 4, term: 2, membership: THREE_MEMBERS }, data: patternBytes(1, 1) }, 4)).rejects.toThrow(
      /beyond the commit index 3/,
    );
    await store.saveLocalSnapshot({ metadata: { index: 3, term: 2, membership: THREE_MEMBERS }, data: patternBytes(1, 1) }, 2);
    await expect(store.persist({ entries: entries(3, 3, 2) })).rejects.toThrow(/snapshot at index 3 already covers it/);
    await store.persist({ entries: entries(6, 6, 2) });
    const initial = await store.load();
    expect(initial.entries.map((e) => e.index)).toEqual([4, 5, 6]);
    expect(initial.hardState).toEqual({ term: 2, vote: 'm1', commit: 3 });
  });
});

describe('opening and closing', () => {
  it('rejects every method after close with an error saying the storage is closed', async () => {
    const { store } = await bootstrapped('closed');
    await store.close();
    const calls: Array<() => Promise<unknown>> = [
      () => store.load(),
      () => store.isEmpty(),
      () => store.bootstrap(THREE_MEMBERS),
      () => store.persist({ entries: entries(1, 1, 1) }),
      () => store.saveLocalSnapshot({ metadata: { index: 1, term: 1, membership: THREE_MEMBERS }, data: new Uint8Array(0) }, 1),
      () => store.loadSnapshot(),
    ];
    for (const call of calls) await expect(call()).rejects.toThrow(/raft storage at .* is closed; cannot/);
    await store.close();
  });

  it('names the folder when the path is not a usable folder', async () => {
    const file = path.join(temp.make('not-a-folder'), 'a-file');
    fs.writeFileSync(file, 'not a database');
    const opening = LevelRaftStorage.open(file);
    await expect(opening).rejects.toThrow(StorageOpenError);
    await expect(LevelRaftStorage.open(file)).rejects.toThrow(`cannot open LevelDB folder ${file}: the folder is not a readable and writable folder`);
    await expect(LevelRaftStorage.open(path.join(file, 'below'))).rejects.toThrow(`cannot open LevelDB folder ${path.join(file, 'below')}`);
  });

  it('says the folder is locked when another handle has it open', async () => {
    const { dir } = await bootstrapped('locked');
    await expect(LevelRaftStorage.open(dir)).rejects.toThrow(`cannot open LevelDB folder ${dir}: it is locked`);
  });
});
