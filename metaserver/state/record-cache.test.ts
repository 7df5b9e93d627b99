/**
 * The record cache in front of the state's LevelDB: it serves what LevelDB
 * holds, stays within its bounds, and never keeps a value a concurrent batch
 * write made stale.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { RecordCache } from './record-cache';

type Db = ClassicLevel<Buffer, Uint8Array>;

describe('the record cache', () => {
  let dir: string;
  let db: Db;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-cache-'));
    db = new ClassicLevel<Buffer, Uint8Array>(dir, { keyEncoding: 'buffer', valueEncoding: 'view' });
    await db.open();
  });
  afterEach(async () => {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const key = (n: number) => Buffer.from([0x10, n]);

  it('answers present and absent keys as LevelDB does, and the second read from memory', async () => {
    await db.put(key(1), Buffer.from('one'));
    const cache = new RecordCache(db);
    expect(Buffer.from((await cache.get(key(1)))!).toString()).toBe('one');
    expect(await cache.get(key(2))).toBeUndefined();
    expect(Buffer.from((await cache.get(key(1)))!).toString()).toBe('one');
    expect(await cache.get(key(2))).toBeUndefined();
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 2, misses: 2 });
  });

  it('serves a committed batch written through it, deletions included', async () => {
    await db.put(key(1), Buffer.from('old'));
    const cache = new RecordCache(db);
    await cache.get(key(1));
    await db.batch([{ type: 'del', key: key(1) }, { type: 'put', key: key(2), value: Buffer.from('new') }]);
    cache.committed([[key(1).toString('hex'), null], [key(2).toString('hex'), Buffer.from('new')]]);
    expect(await cache.get(key(1))).toBeUndefined();
    expect(Buffer.from((await cache.get(key(2)))!).toString()).toBe('new');
  });

  it('does not keep a value read while a batch was being committed', async () => {
    await db.put(key(1), Buffer.from('old'));
    const cache = new RecordCache(db);
    const racingRead = cache.get(key(1)); // LevelDB answers from its state when the get started
    await db.put(key(1), Buffer.from('new'));
    cache.committed([[key(1).toString('hex'), Buffer.from('new')]]);
    await racingRead;
    expect(Buffer.from((await cache.get(key(1)))!).toString()).toBe('new');
  });

  it('stays within its entry and byte bounds, dropping the least recently used', async () => {
    const cache = new RecordCache(db, { maxEntries: 3, maxBytes: 1_000_000 });
    for (let n = 0; n < 10; n++) cache.committed([[key(n).toString('hex'), Buffer.from([n])]]);
    expect(cache.size).toBe(3);
    const small = new RecordCache(db, { maxEntries: 100, maxBytes: 16 * 300 });
    for (let n = 0; n < 50; n++) small.committed([[key(n).toString('hex'), Buffer.alloc(200)]]);
    expect(small.size).toBeLessThan(50);
    expect(small.size).toBeGreaterThan(0);
  });

  it('forgets everything on clear (a restored snapshot replaced the keyspace)', async () => {
    const cache = new RecordCache(db);
    cache.committed([[key(1).toString('hex'), Buffer.from('x')]]);
    cache.clear();
    expect(await cache.get(key(1))).toBeUndefined();
  });
});
