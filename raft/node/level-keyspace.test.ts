import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Entry, EntryType, Snapshot } from '../core/types';
import { KeyspaceLayout, LevelKeyspace, SnapshotTooLargeError, decodeAppliedIndex, decodeSnapshot, encodeAppliedIndex, encodeSnapshot } from './level-keyspace';

/** One folder per test file; each keyspace gets its own subfolder (classic-level creates it). */
let rootDir = '';
let keyspaceCount = 0;
beforeAll(() => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'level-keyspace-'));
});
afterAll(() => fs.rmSync(rootDir, { recursive: true, force: true }));
const tempDir = (): string => path.join(rootDir, `keyspace-${++keyspaceCount}`);

const LAYOUT: KeyspaceLayout = {
  label: 'testmachine',
  appliedKey: Buffer.from('a'),
  snapshotMagic: Buffer.from('TST1'),
  isStateKey: (key) => key[0] === 0x78, // 'x'
};
const noop = (index: number): Entry => ({ index, term: 1, type: EntryType.Noop, data: new Uint8Array(0) });
const snapshotAt = (index: number, data: Uint8Array): Snapshot => ({ metadata: { index, term: 1, membership: { members: [] } }, data });
/** One framed record: [key length u32][value length u32][key][value]. */
const record = (key: Buffer, value: Buffer) => {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(key.length, 0);
  header.writeUInt32BE(value.length, 4);
  return Buffer.concat([header, key, value]);
};

describe('a LevelDB keyspace shared by the state machines', () => {
  it('writes the applied index with the data, and keeps it across a reopen', async () => {
    const dir = tempDir();
    const keyspace = await LevelKeyspace.open(dir, LAYOUT);
    expect(keyspace.appliedIndex).toBe(0);
    expect(await keyspace.applyEntries([noop(1), noop(2)], (batch) => {
      batch.put(Buffer.from('x1'), Buffer.from('one'));
      return ['r1', 'r2'];
    })).toEqual(['r1', 'r2']);
    await keyspace.close();
    const reopened = await LevelKeyspace.open(dir, LAYOUT);
    expect(reopened.appliedIndex).toBe(2);
    expect(Buffer.from((await reopened.db.get(Buffer.from('x1')))!).toString()).toBe('one');
    await reopened.close();
  });

  it('refuses a gap, a repeat or a second apply in flight, naming the machine', async () => {
    const keyspace = await LevelKeyspace.open(tempDir(), LAYOUT);
    await keyspace.applyEntries([noop(1)], () => []);
    await expect(keyspace.applyEntries([noop(3)], () => [])).rejects.toThrow('testmachine: apply of index 3 but the applied index is 1');
    await expect(keyspace.applyEntries([noop(2), noop(4)], () => [])).rejects.toThrow(/entry 1 of the batch/);
    let release!: () => void;
    const blocked = keyspace.applyEntries([noop(2)], () => new Promise<never[]>((resolve) => { release = () => resolve([]); }));
    await expect(keyspace.applyEntries([noop(3)], () => [])).rejects.toThrow('testmachine: apply called while another apply is in flight');
    await expect(keyspace.restore(snapshotAt(9, Buffer.from('TST1')))).rejects.toThrow('testmachine: restore called while an apply is in flight');
    release();
    await blocked;
    expect(keyspace.appliedIndex).toBe(2);
    await keyspace.close();
  });

  it('leaves nothing written and the applied index unchanged when the machine fails mid-apply', async () => {
    const keyspace = await LevelKeyspace.open(tempDir(), LAYOUT);
    await expect(keyspace.applyEntries([noop(1)], (batch) => {
      batch.put(Buffer.from('x1'), Buffer.from('half'));
      throw new Error('storage broke');
    })).rejects.toThrow('storage broke');
    expect(keyspace.appliedIndex).toBe(0);
    expect(await keyspace.db.get(Buffer.from('x1'))).toBeUndefined();
    await keyspace.applyEntries([noop(1)], () => []);
    expect(keyspace.appliedIndex).toBe(1);
    await keyspace.close();
  });

  it('restores a snapshot over whatever was there, in place of every old key', async () => {
    const source = await LevelKeyspace.open(tempDir(), LAYOUT);
    await source.applyEntries([noop(1), noop(2), noop(3)], (batch) => {
      batch.put(Buffer.from('x1'), Buffer.from('one'));
      batch.put(Buffer.from('x2'), Buffer.from(''));
      return [];
    });
    const snapshot = await source.snapshot();
    expect(snapshot.index).toBe(3);
    const target = await LevelKeyspace.open(tempDir(), LAYOUT);
    await target.applyEntries([noop(1)], (batch) => {
      batch.put(Buffer.from('x9'), Buffer.from('stale'));
      return [];
    });
    await target.restore(snapshotAt(snapshot.index, snapshot.data));
    expect(target.appliedIndex).toBe(3);
    const keys: string[] = [];
    await target.scan((batch) => { for (const [key] of batch) keys.push(key.toString()); });
    expect(keys).toEqual(['a', 'x1', 'x2']);
    expect((await target.snapshot()).data).toEqual(snapshot.data);
    await source.close();
    await target.close();
  });

  it('refuses to build a snapshot past the size limit before reading the whole state', async () => {
    const keyspace = await LevelKeyspace.open(tempDir(), LAYOUT);
    await keyspace.applyEntries([noop(1)], (batch) => {
      batch.put(Buffer.from('x1'), Buffer.alloc(200));
      return [];
    });
    await expect(keyspace.snapshot(100)).rejects.toThrow(SnapshotTooLargeError);
    await expect(keyspace.snapshot(100)).rejects.toThrow(/testmachine: the state is more than 100 bytes/);
    await keyspace.close();
  });
});

describe('the snapshot format', () => {
  it('refuses another machine\'s magic, a truncated or empty record, the applied key and a foreign key', () => {
    expect(() => decodeSnapshot(LAYOUT, Buffer.from('KVS1'))).toThrow('testmachine: snapshot data does not start with the TST1 magic');
    const good = Buffer.concat([LAYOUT.snapshotMagic, record(Buffer.from('x1'), Buffer.from('v'))]);
    expect(decodeSnapshot(LAYOUT, good).map((r) => r.key.toString())).toEqual(['x1']);
    expect(() => decodeSnapshot(LAYOUT, good.subarray(0, good.length - 1))).toThrow(/truncated/);
    expect(() => decodeSnapshot(LAYOUT, good.subarray(0, 7))).toThrow(/header truncated/);
    expect(() => decodeSnapshot(LAYOUT, Buffer.concat([LAYOUT.snapshotMagic, record(Buffer.alloc(0), Buffer.from('v'))]))).toThrow(/empty/);
    expect(() => decodeSnapshot(LAYOUT, Buffer.concat([LAYOUT.snapshotMagic, record(Buffer.from('a'), encodeAppliedIndex(5, 'x'))]))).toThrow(/unexpected key 61/);
    expect(() => decodeSnapshot(LAYOUT, Buffer.concat([LAYOUT.snapshotMagic, record(Buffer.from('q'), Buffer.from('v'))]))).toThrow(/unexpected key 71/);
    expect(() => decodeSnapshot(LAYOUT, good, 10)).toThrow(/more than 10 bytes/);
  });

  it('leaves the applied index out of the snapshot and round-trips every other record', () => {
    const batches: Array<Array<[Buffer, Uint8Array]>> = [[[Buffer.from('a'), encodeAppliedIndex(7, 'x')], [Buffer.from('x1'), Buffer.from('one')]], [[Buffer.from('x2'), Buffer.from('two')]]];
    const data = encodeSnapshot(LAYOUT, batches);
    expect(decodeSnapshot(LAYOUT, data).map((r) => [r.key.toString(), r.value.toString()])).toEqual([['x1', 'one'], ['x2', 'two']]);
    expect(() => encodeSnapshot(LAYOUT, batches, data.length - 1)).toThrow(SnapshotTooLargeError);
  });

  it('stores the applied index as exactly 8 big-endian bytes and refuses anything else', () => {
    expect(encodeAppliedIndex(258, 'm')).toEqual(Buffer.from([0, 0, 0, 0, 0, 0, 1, 2]));
    expect(decodeAppliedIndex(Buffer.from([0, 0, 0, 0, 0, 0, 1, 2]), 'm')).toBe(258);
    expect(() => decodeAppliedIndex(Buffer.alloc(7), 'm')).toThrow('m: applied index record has 7 bytes, expected 8');
    expect(() => decodeAppliedIndex(Buffer.alloc(8, 0xff), 'm')).toThrow(/out of range/);
    expect(() => encodeAppliedIndex(-1, 'm')).toThrow(/not a u64/);
  });
});
