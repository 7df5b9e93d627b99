import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Entry, EntryType } from '../core/types';
import { KvStateMachine, decodeKvCommand, encodeKvCommand } from './kv-state-machine';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kv-sm-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : Buffer.from(value).toString());
function put(index: number, key: string, value: string, term = 1): Entry {
  return { index, term, type: EntryType.Normal, data: encodeKvCommand({ op: 'put', key, value: Buffer.from(value) }) };
}

describe('the KV state machine', () => {
  it('applies puts and deletes in order and returns each entry its index', async () => {
    const kv = await KvStateMachine.open(tempDir());
    const results = await kv.apply([
      put(1, 'a', 'one'),
      { index: 2, term: 1, type: EntryType.Noop, data: new Uint8Array(0) },
      put(3, 'b', 'two'),
      { index: 4, term: 1, type: EntryType.Normal, data: encodeKvCommand({ op: 'delete', key: 'a' }) },
    ]);
    expect(results).toEqual([{ index: 1 }, undefined, { index: 3 }, { index: 4 }]);
    expect(text(await kv.get('a'))).toBeUndefined();
    expect(text(await kv.get('b'))).toBe('two');
    expect(await kv.appliedIndex()).toBe(4);
    await kv.close();
  });

  it('keeps the applied index with the data across a reopen, and refuses to skip or repeat an index', async () => {
    const dir = tempDir();
    const kv = await KvStateMachine.open(dir);
    await kv.apply([put(1, 'k', 'v1'), put(2, 'k', 'v2')]);
    await kv.close();
    const reopened = await KvStateMachine.open(dir);
    expect(await reopened.appliedIndex()).toBe(2);
    expect(text(await reopened.get('k'))).toBe('v2');
    await expect(reopened.apply([put(2, 'k', 'again')])).rejects.toThrow(/applied index is 2/);
    await expect(reopened.apply([put(4, 'k', 'gap')])).rejects.toThrow(/applied index is 2/);
    expect(text(await reopened.get('k'))).toBe('v2');
    await reopened.close();
  });

  it('records an error result for a malformed entry and still advances, the same way on every member', async () => {
    const kv = await KvStateMachine.open(tempDir());
    const results = await kv.apply([{ index: 1, term: 1, type: EntryType.Normal, data: Uint8Array.from([9, 0, 1, 65]) }, put(2, 'x', 'y')]);
    expect(results[0]).toEqual({ index: 1, error: 'malformed entry: unknown op 9' });
    expect(await kv.appliedIndex()).toBe(2);
    expect(decodeKvCommand(new Uint8Array(2))).toMatch(/too short/);
    expect(() => encodeKvCommand({ op: 'put', key: '', value: new Uint8Array(0) })).toThrow(/key must be/);
    await kv.close();
  });

  it('restores another machine\'s snapshot, replacing every key and taking its applied index', async () => {
    const source = await KvStateMachine.open(tempDir());
    await source.apply([put(1, 'a', '1'), put(2, 'b', '2'), put(3, 'c', '3')]);
    const snapshot = await source.snapshot();
    expect(snapshot.index).toBe(3);

    const target = await KvStateMachine.open(tempDir());
    await target.apply([put(1, 'stale', 'x')]);
    await target.restore({ metadata: { index: snapshot.index, term: 2, membership: { members: [] } }, data: snapshot.data });
    expect(await target.appliedIndex()).toBe(3);
    const dump = await target.dump(100);
    expect(dump.appliedIndex).toBe(3);
    expect(dump.entries.map((e) => `${e.key}=${text(e.value)}`)).toEqual(['a=1', 'b=2', 'c=3']);
    await expect(target.restore({ metadata: { index: 9, term: 2, membership: { members: [] } }, data: Buffer.from('nope') })).rejects.toThrow(/magic/);
    expect(await target.appliedIndex()).toBe(3);
    await source.close();
    await target.close();
  });
});
