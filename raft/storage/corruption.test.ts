/**
 * Corruption scenarios: a store is written through LevelRaftStorage, closed,
 * damaged through a separate LevelDB handle on the same folder, and reopened.
 * load() must refuse it with a StorageCorruptError that names the problem;
 * it must never come back as a shorter or empty log.
 */
import { crc32 } from 'zlib';
import { EntryType } from '../core/types';
import { StorageCorruptError } from '../node/interfaces';
import { encodeEntry, encodeFormatVersion, encodeHardState, encodeLogBounds, RecordTag } from './codec';
import { chunkKey, entryKey, KEY_FORMAT_VERSION, KEY_HARD_STATE, KEY_LOG_BOUNDS, KEY_MEMBERSHIP, KEY_SNAPSHOT_META, prefixRange, PREFIX_ENTRY } from './keys';
import { LevelRaftStorage } from './level-storage';
import { LevelDb, openLevel } from './open-level';
import { entries, patternBytes, TempDirs, THREE_MEMBERS } from './testing';

const temp = new TempDirs();
afterEach(() => temp.cleanup());

/**
 * The healthy store every case starts from: entries 1..12 of term 1 and
 * 13..30 of term 2, commit 20, and a local snapshot at index 10 (term 1, three
 * 1 KiB chunks) that compacted entries up to 5, so the log holds 6..30.
 */
async function healthyStore(label: string): Promise<string> {
  const dir = temp.make(label);
  const store = await LevelRaftStorage.open(dir, { snapshotChunkSizeBytes: 1024 });
  try {
    await store.bootstrap(THREE_MEMBERS);
    await store.persist({ hardState: { term: 1, vote: 'm1', commit: 0 }, entries: entries(1, 12, 1) });
    await store.persist({ hardState: { term: 2, vote: 'm2', commit: 20 }, entries: entries(13, 30, 2) });
    await store.saveLocalSnapshot({ metadata: { index: 10, term: 1, membership: THREE_MEMBERS }, data: patternBytes(2500, 10) }, 5);
  } finally {
    await store.close();
  }
  return dir;
}

async function damage(dir: string, change: (db: LevelDb) => Promise<void>): Promise<void> {
  const db = await openLevel(dir);
  try {
    await change(db);
  } finally {
    await db.close();
  }
}

/** Reopens the folder and expects load() to name the problem. */
async function expectCorrupt(dir: string, problem: RegExp): Promise<void> {
  const store = await LevelRaftStorage.open(dir);
  try {
    const loading = store.load();
    await expect(loading).rejects.toThrow(StorageCorruptError);
    await expect(loading).rejects.toMatchObject({ code: 'STORAGE_CORRUPT', dataDir: dir });
    await expect(loading).rejects.toThrow(problem);
  } finally {
    await store.close();
  }
}

/** A value with a valid CRC around a payload that does not decode. */
function framed(tag: RecordTag, payload: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from([tag]), payload]);
  const value = Buffer.alloc(4 + body.byteLength);
  value.writeUInt32BE(crc32(body), 0);
  body.copy(value, 4);
  return value;
}

describe('the healthy fixture', () => {
  it('loads, so every failure below is caused by its damage', async () => {
    const dir = await healthyStore('healthy');
    const store = await LevelRaftStorage.open(dir);
    const initial = await store.load();
    await store.close();
    expect(initial.snapshot.index).toBe(10);
    expect(initial.entries.map((e) => e.index)).toEqual(Array.from({ length: 20 }, (_, i) => 11 + i));
  });
});

describe('a value that fails its check', () => {
  it('is reported when a log entry fails its CRC', async () => {
    const dir = await healthyStore('crc');
    await damage(dir, async (db) => {
      const value = (await db.get(entryKey(17)))!;
      value[value.byteLength - 1] ^= 0x40;
      await db.put(entryKey(17), value);
    });
    await expectCorrupt(dir, /log entry 17: CRC mismatch/);
  });

  it('is reported when the hard state fails its CRC', async () => {
    const dir = await healthyStore('crc-hardstate');
    await damage(dir, async (db) => {
      const value = (await db.get(KEY_HARD_STATE))!;
      value[6] ^= 0x01;
      await db.put(KEY_HARD_STATE, value);
    });
    await expectCorrupt(dir, /the hard-state record: CRC mismatch/);
  });

  it('is reported when a log entry has a valid CRC but does not decode', async () => {
    const dir = await healthyStore('truncated');
    await damage(dir, (db) => db.put(entryKey(17), framed(RecordTag.Entry, new Uint8Array([0, 0, 0]))));
    await expectCorrupt(dir, /log entry 17: truncated/);
  });

  it('is reported when a log key holds another kind of record', async () => {
    const dir = await healthyStore('wrong-tag');
    await damage(dir, (db) => db.put(entryKey(17), encodeHardState({ term: 2, vote: '', commit: 0 })));
    await expectCorrupt(dir, /log entry 17: holds a hard-state record where a log-entry record belongs/);
  });

  it('is reported when a snapshot chunk fails its CRC', async () => {
    const dir = await healthyStore('chunk-crc');
    await damage(dir, async (db) => {
      const value = (await db.get(chunkKey(1)))!;
      value[100] ^= 0xff;
      await db.put(chunkKey(1), value);
    });
    await expectCorrupt(dir, /snapshot chunk 1: CRC mismatch/);
  });
});

describe('a log that is not contiguous', () => {
  it('is reported when an entry in the middle is missing', async () => {
    const dir = await healthyStore('gap');
    await damage(dir, (db) => db.batch([{ type: 'del', key: entryKey(17) }, { type: 'del', key: entryKey(18) }]));
    await expectCorrupt(dir, /the log has a gap: entries 17\.\.18 are missing/);
  });

  it('is reported when an entry stored under one index says it is another', async () => {
    const dir = await healthyStore('index-mismatch');
    await damage(dir, (db) => db.put(entryKey(17), encodeEntry({ index: 18, term: 2, type: EntryType.Normal, data: new Uint8Array(1) })));
    await expectCorrupt(dir, /the log entry stored under index 17 says its index is 18/);
  });

  it('is reported when the first entry does not follow the snapshot index', async () => {
    const dir = await healthyStore('first-after-snapshot');
    await damage(dir, async (db) => {
      const ops: Array<{ type: 'del'; key: Buffer }> = [];
      for (let index = 6; index <= 12; index++) ops.push({ type: 'del', key: entryKey(index) });
      await db.batch([...ops, { type: 'put', key: KEY_LOG_BOUNDS, value: encodeLogBounds({ firstIndex: 13, lastIndex: 30 }) }]);
    });
    await expectCorrupt(dir, /the first log entry 13 does not follow the snapshot index 10 \(entries 11\.\.12 are missing\)/);
  });

  it('is reported when the entries at the start of the log are missing', async () => {
    const dir = await healthyStore('head-missing');
    await damage(dir, (db) => db.batch([6, 7, 8].map((index) => ({ type: 'del' as const, key: entryKey(index) }))));
    await expectCorrupt(dir, /the log has a gap: entries 6\.\.8 are missing/);
  });

  it('is reported when the entries at the end of the log are missing', async () => {
    const dir = await healthyStore('tail-missing');
    await damage(dir, (db) => db.batch([28, 29, 30].map((index) => ({ type: 'del' as const, key: entryKey(index) }))));
    await expectCorrupt(dir, /log entry 30 is missing although the log bounds say the log runs from 6 to 30/);
  });

  it('is reported when an entry has a term below its predecessor', async () => {
    const dir = await healthyStore('term-order');
    await damage(dir, (db) => db.put(entryKey(25), encodeEntry({ index: 25, term: 1, type: EntryType.Normal, data: new Uint8Array(0) })));
    await expectCorrupt(dir, /log entry 25 has term 1, below its predecessor's term 2/);
  });

  it('is reported when a stray entry lies beyond the last index', async () => {
    const dir = await healthyStore('stray');
    await damage(dir, (db) => db.put(entryKey(40), encodeEntry({ index: 40, term: 2, type: EntryType.Normal, data: new Uint8Array(0) })));
    await expectCorrupt(dir, /stray log entry 40 beyond the log's last index 30/);
  });
});

describe('metadata that contradicts the log', () => {
  it('is reported when the commit index is beyond the last index and the snapshot', async () => {
    const dir = await healthyStore('commit');
    await damage(dir, (db) => db.put(KEY_HARD_STATE, encodeHardState({ term: 2, vote: 'm2', commit: 31 })));
    await expectCorrupt(dir, /hard state commit 31 is beyond the last log index 30 \(and beyond the snapshot index 10\)/);
  });

  it('is reported when the hard state term is below the last entry term', async () => {
    const dir = await healthyStore('hardstate-term');
    await damage(dir, (db) => db.put(KEY_HARD_STATE, encodeHardState({ term: 1, vote: 'm2', commit: 20 })));
    await expectCorrupt(dir, /hard state term 1 is below the last log entry's term 2/);
  });

  it('is reported when the format version is unknown', async () => {
    const dir = await healthyStore('version');
    await damage(dir, (db) => db.put(KEY_FORMAT_VERSION, encodeFormatVersion(99)));
    await expectCorrupt(dir, /unknown format version 99 \(this build reads version 1\)/);
  });

  it('is reported when a snapshot chunk in the middle is missing', async () => {
    const dir = await healthyStore('chunk-missing');
    await damage(dir, (db) => db.del(chunkKey(1)));
    await expectCorrupt(dir, /snapshot chunks 1\.\.1 of the snapshot at index 10 are missing/);
  });

  it('is reported when the last snapshot chunk is missing', async () => {
    const dir = await healthyStore('chunk-tail');
    await damage(dir, (db) => db.del(chunkKey(2)));
    await expectCorrupt(dir, /snapshot chunks 2\.\.2 of the snapshot at index 10 are missing/);
  });

  it('is reported when an unknown key appears', async () => {
    const dir = await healthyStore('foreign');
    await damage(dir, (db) => db.put(Buffer.from([0x07, 0x01]), Buffer.from('x')));
    await expectCorrupt(dir, /unknown key 0x0701 outside this format's key space/);
  });
});

describe('a store that says it is not empty', () => {
  it('never loads as an empty log when every log entry is gone', async () => {
    const dir = await healthyStore('no-entries');
    await damage(dir, (db) => db.clear(prefixRange(PREFIX_ENTRY)));
    await expectCorrupt(dir, /log entry 30 is missing/);
  });

  it('never loads as empty when only the format-version record is gone', async () => {
    const dir = await healthyStore('no-version');
    await damage(dir, (db) => db.del(KEY_FORMAT_VERSION));
    await expectCorrupt(dir, /the store holds data \(key 0x0002\) but no format-version record/);
    const store = await LevelRaftStorage.open(dir);
    await expect(store.isEmpty()).rejects.toThrow(StorageCorruptError);
    await store.close();
  });

  it('names each missing metadata record', async () => {
    for (const [key, name] of [
      [KEY_HARD_STATE, 'hard-state'],
      [KEY_MEMBERSHIP, 'membership'],
      [KEY_LOG_BOUNDS, 'log-bounds'],
      [KEY_SNAPSHOT_META, 'snapshot-metadata'],
    ] as const) {
      const dir = await healthyStore(`no-${name}`);
      await damage(dir, (db) => db.del(key));
      await expectCorrupt(dir, new RegExp(`the ${name} record is missing although the store is initialized`));
    }
  });
});
