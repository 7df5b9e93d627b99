/**
 * The SDK against a real 3-member metadata cluster (dist/metaserver/server):
 * every method once, whole-file round trips at the inline/block edges,
 * versions listed and restored, getattr coalescing and leader redirects.
 * Run `npx tsc -p .` first (the members run dist/).
 */
import * as os from 'node:os';
import { MetaTestCluster, eventually, patternBytes } from '../../metaserver/server/testing';
import { Sequencer } from './sequencer';
import { CommitConflictError, MetaClient, MetaError, ROOT_HANDLE } from './index';
import { failureCode as errnoOf } from './testing';

const E = os.constants.errno;
const DEADLINE_MS = 10_000;

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('MetaClient on a real 3-member cluster', () => {
  let cluster: MetaTestCluster;
  let client: MetaClient;
  let dir = 0;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
    client = await MetaClient.connect({ servers: cluster.members.map((m) => m.clientAddress), deadlineMs: DEADLINE_MS, clientName: 'sdk-test' });
    dir = (await client.mkdir(ROOT_HANDLE, 'sdk', 0o755)).handle;
  }, 30_000);

  afterAll(async () => {
    await client?.close();
    await cluster?.destroy();
  });

  describe('finding the leader', () => {
    it('opens its session on the leader through one redirect when it asks a follower first', async () => {
      const [follower] = await cluster.followers();
      const leader = await cluster.leader();
      const other = await MetaClient.connect({ servers: [follower.clientAddress, leader.clientAddress], deadlineMs: DEADLINE_MS });
      try {
        expect(other.stats.calls.redirects).toBe(1);
        expect(other.stats.calls.attempts.OpenSession).toBe(2);
        expect(other.leaderAddress).toBe(leader.clientAddress);
        await other.mkdir(ROOT_HANDLE, 'redirected', 0o755);
        expect(other.stats.calls.attempts.Mkdir).toBe(1);
      } finally {
        await other.close();
      }
    });

    it('learns the leader from a hint even when given only a follower', async () => {
      const [follower] = await cluster.followers();
      const other = await MetaClient.connect({ servers: [follower.clientAddress], deadlineMs: DEADLINE_MS });
      try {
        expect(other.leaderAddress).toBe((await cluster.leader()).clientAddress);
        expect(other.stats.calls.redirects).toBe(1);
      } finally {
        await other.close();
      }
    });
  });

  describe('reading from the first listed member', () => {
    it('reads every acknowledged write back through the first listed follower, mutations following the leader', async () => {
      const [follower] = await cluster.followers();
      const leader = await cluster.leader();
      const nearby = await MetaClient.connect({ servers: [follower.clientAddress, leader.clientAddress], deadlineMs: DEADLINE_MS, readFrom: 'first-listed' });
      try {
        for (let i = 0; i < 20; i++) {
          await nearby.writeFile('/sdk/nearby', Buffer.from(`value ${i}`));
          // ReadIndex on the follower: it answers only once it applied the write just acknowledged.
          expect(Buffer.from(await nearby.readFile('/sdk/nearby', { version: 'head' })).toString()).toBe(`value ${i}`);
        }
        // Reads never redirect (a follower serves them); the leader guess stays the leader for mutations.
        // (That reads do reach the follower: chaos-tests/debug-faults/stale-reads.test.ts, where they go stale.)
        expect(nearby.stats.calls.redirects).toBe(1);
        expect(nearby.leaderAddress).toBe(leader.clientAddress);
      } finally {
        await nearby.close();
      }
    });

    it('refuses an unknown readFrom with EINVAL before connecting', async () => {
      const bad = MetaClient.connect({ servers: cluster.members.map((m) => m.clientAddress), readFrom: 'nearest' as never });
      await expect(bad).rejects.toThrow(/readFrom must be one of leader, first-listed, got "nearest"/);
    });
  });

  describe('namespace', () => {
    it('creates, looks up, lists, renames and removes entries with POSIX answers as MetaError', async () => {
      const sub = await client.mkdir(dir, 'ns', 0o750);
      expect(sub).toMatchObject({ type: 'dir', mode: 0o750 });
      const made = await client.create(sub.handle, 'a', 0o640, { exclusive: true });
      expect(made.created).toBe(true);
      expect(made.opened).toBeUndefined();
      const again = await client.create(sub.handle, 'a', 0o640, { exclusive: false });
      expect(again).toMatchObject({ created: false, attr: { handle: made.attr.handle } });
      expect(await errnoOf(client.create(sub.handle, 'a', 0o640, { exclusive: true }))).toBe('EEXIST');
      expect((await client.lookup(sub.handle, 'a')).handle).toBe(made.attr.handle);
      expect(await errnoOf(client.lookup(sub.handle, 'missing'))).toBe('ENOENT');

      const fifo = await client.mknod(sub.handle, 'fifo', 'fifo', 0o600, 0);
      expect(fifo.type).toBe('fifo');
      const link = await client.symlink(sub.handle, 'ln', '../x/y');
      expect(link.type).toBe('lnk');
      expect(await client.readlink(link.handle)).toBe('../x/y');
      const hard = await client.link(made.attr.handle, sub.handle, 'a2');
      expect(hard.nlink).toBe(2);

      const names = (await collect(client.readdir(sub.handle))).map((e) => e.name).sort();
      expect(names).toEqual(['a', 'a2', 'fifo', 'ln']);

      await client.rename(sub.handle, 'a2', sub.handle, 'b');
      expect(await errnoOf(client.rename(sub.handle, 'fifo', sub.handle, 'a', { noReplace: true }))).toBe('EEXIST');
      await client.unlink(sub.handle, 'b');
      expect((await client.getattr(made.attr.handle)).nlink).toBe(1);
      await client.mkdir(sub.handle, 'empty', 0o755);
      await client.rmdir(sub.handle, 'empty');
      expect(await errnoOf(client.rmdir(dir, 'ns'))).toBe('ENOTEMPTY');
      expect(await errnoOf(client.lookup(sub.handle, '..'))).toBe('EINVAL');
    });

    it('reads a directory of more than one page through its cookies', async () => {
      const big = await client.mkdir(dir, 'big', 0o755);
      const names = Array.from({ length: 1_050 }, (_, i) => `f${String(i).padStart(5, '0')}`);
      await Promise.all(names.map((name) => client.create(big.handle, name, 0o644, { exclusive: true })));
      const listed = (await collect(client.readdir(big.handle))).map((e) => e.name);
      expect(listed).toEqual(names);
    });

    it('sets attributes, times and xattrs, and answers statfs', async () => {
      const file = (await client.create(dir, 'attrs', 0o644, { exclusive: true })).attr;
      const changed = await client.setattr(file.handle, { mode: 0o600, uid: 1000, gid: 1000, mtime: 1_700_000_000_000, atime: 'now' });
      expect(changed).toMatchObject({ mode: 0o600, uid: 1000, gid: 1000, mtimeMs: 1_700_000_000_000 });
      await client.setxattr(file.handle, 'user.color', Buffer.from('blue'), 0);
      expect(Buffer.from(await client.getxattr(file.handle, 'user.color')).toString()).toBe('blue');
      expect(await client.listxattr(file.handle)).toEqual(['user.color']);
      expect(await errnoOf(client.setxattr(file.handle, 'user.color', Buffer.from('red'), 1))).toBe('EEXIST');
      await client.removexattr(file.handle, 'user.color');
      expect(await errnoOf(client.getxattr(file.handle, 'user.color'))).toBe('ENODATA');
      const fs = await client.statfs();
      expect(fs.inodesInUse).toBeGreaterThan(1);
    });

    it('checks permissions with the caller it is given', async () => {
      const locked = await client.mkdir(dir, 'locked', 0o700);
      const stranger = { uid: 4242, gid: 4242, groups: [] };
      expect(await errnoOf(client.create(locked.handle, 'x', 0o644, { exclusive: true }, stranger))).toBe('EACCES');
      expect(await errnoOf(client.lookup(locked.handle, 'x', stranger))).toBe('EACCES');
    });

    it('resolves paths from the root, following a last symlink only when asked', async () => {
      const a = await client.mkdir(dir, 'p', 0o755);
      const b = await client.mkdir(a.handle, 'q', 0o755);
      await client.symlink(a.handle, 'toq', 'q');
      expect((await client.resolve('/sdk/p/q')).handle).toBe(b.handle);
      expect((await client.resolve('/')).handle).toBe(ROOT_HANDLE);
      expect((await client.resolve('/sdk/p/toq')).type).toBe('lnk');
      expect((await client.resolve('/sdk/p/toq', undefined, { followLast: true })).handle).toBe(b.handle);
      expect(await errnoOf(client.resolve('/sdk/p/nope'))).toBe('ENOENT');
      expect(await errnoOf(client.resolve('/sdk//p'))).toBe('EINVAL');
      await client.create(a.handle, 'file', 0o644, { exclusive: true });
      expect(await errnoOf(client.resolve('/sdk/p/file/x'))).toBe('ENOTDIR');
    });
  });

  describe('getattr coalescing', () => {
    it('sends concurrent getattrs of one event-loop turn as one GetAttrs, each answered separately', async () => {
      const handles = await Promise.all(Array.from({ length: 40 }, async (_, i) => (await client.create(dir, `ga${i}`, 0o644, { exclusive: true })).attr.handle));
      const before = { ...client.stats.calls.attempts };
      const batchesBefore = client.stats.getattr.batches;
      const answers = await Promise.all([...handles.map((h) => client.getattr(h)), client.getattr(999_999).catch((e: MetaError) => e)]);
      expect(client.stats.getattr.batches - batchesBefore).toBe(1);
      expect((client.stats.calls.attempts.GetAttrs ?? 0) - (before.GetAttrs ?? 0)).toBe(1);
      expect((client.stats.calls.attempts.GetAttr ?? 0) - (before.GetAttr ?? 0)).toBe(0);
      expect(answers.slice(0, 40).map((a) => (a as { handle: number }).handle)).toEqual(handles);
      // An unknown handle is a stale one (as NFS answers).
      expect((answers[40] as MetaError).code).toBe('ESTALE');
      expect(await errnoOf(client.getattr(handles[0], 987_654))).toBe('ESTALE');
    });
  });

  describe('many calls at once', () => {
    it('splits more than 1,024 concurrent getattrs into batches of at most 1,024', async () => {
      const batchesBefore = client.stats.getattr.batches;
      const answers = await Promise.all(Array.from({ length: 1_500 }, () => client.getattr(ROOT_HANDLE)));
      expect(answers.every((a) => a.handle === ROOT_HANDLE)).toBe(true);
      expect(client.stats.getattr.batches - batchesBefore).toBe(2);
    });

    it('queues mutations beyond the in-flight bound and answers all of them', async () => {
      const parent = (await client.mkdir(dir, 'many', 0o755)).handle;
      const made = await Promise.all(Array.from({ length: 600 }, (_, i) => client.mkdir(parent, `d${i}`, 0o755)));
      expect(new Set(made.map((a) => a.handle)).size).toBe(600);
      expect((await collect(client.readdir(parent))).length).toBe(600);
    });

    it('waits out WINDOW_FULL with the same sequence until the oldest mutation is answered', async () => {
      const other = await MetaClient.connect({ servers: cluster.members.map((m) => m.clientAddress), deadlineMs: DEADLINE_MS });
      try {
        // Hold the session's first sequence as a mutation that never got its answer would: the servers keep every later answer.
        const sequencer = (other as unknown as { session: { current: { sequencer: Sequencer } } }).session.current.sequencer;
        const held = await sequencer.take();
        const parent = (await other.mkdir(dir, 'window', 0o755)).handle;
        for (let i = 0; i < 255; i += 51) await Promise.all(Array.from({ length: 51 }, (_, j) => other.mkdir(parent, `w${i + j}`, 0o755)));
        const blocked = other.mkdir(parent, 'past-the-window', 0o755);
        await eventually('WINDOW_FULL seen', 5_000, async () => other.stats.session.windowFullRetries > 0, 20);
        sequencer.done(held);
        expect((await blocked).type).toBe('dir');
        expect((await collect(other.readdir(parent))).length).toBe(256);
      } finally {
        await other.close();
      }
    });
  });

  describe('files, blocks and versions', () => {
    it.each([0, 10, 4096, 4097, 3 * 1024 * 1024 + 7])('writes and reads back %d bytes byte-exact', async (sizeBytes) => {
      const data = patternBytes(sizeBytes, sizeBytes + 1);
      const path = `/sdk/whole-${sizeBytes}`;
      const outcome = await client.writeFile(path, data);
      expect(outcome.sizeBytes).toBe(sizeBytes);
      const back = await client.readFile(path);
      expect(Buffer.compare(Buffer.from(back), data)).toBe(0);
      expect((await client.resolve(path)).sizeBytes).toBe(sizeBytes);
    });

    it('overwrites a block-stored file with small content and a small file with large content', async () => {
      const big = patternBytes(2 * 1024 * 1024 + 3, 7);
      const small = Buffer.from('short again');
      await client.writeFile('/sdk/flip', small);
      await client.writeFile('/sdk/flip', big);
      expect(Buffer.compare(Buffer.from(await client.readFile('/sdk/flip')), big)).toBe(0);
      await client.writeFile('/sdk/flip', small);
      expect(Buffer.from(await client.readFile('/sdk/flip')).toString()).toBe('short again');
      // History keeps each content: version 2 was `small`, 3 `big`.
      expect(Buffer.compare(Buffer.from(await client.readFile('/sdk/flip', { version: 3 })), big)).toBe(0);
    });

    it.each([10, 3 * 1024 * 1024 + 7])("reads the head of %d bytes with version 'head' without opening an fh (no log entry)", async (sizeBytes) => {
      const data = patternBytes(sizeBytes, sizeBytes + 3);
      const path = `/sdk/head-${sizeBytes}`;
      await client.writeFile(path, patternBytes(5, 1));
      await client.writeFile(path, data);
      const opensBefore = client.stats.calls.attempts.Open ?? 0;
      expect(Buffer.compare(Buffer.from(await client.readFile(path, { version: 'head' })), data)).toBe(0);
      expect(client.stats.calls.attempts.Open ?? 0).toBe(opensBefore);
      expect(await errnoOf(client.readFile('/sdk', { version: 'head' }))).toBe('EISDIR');
      expect(await errnoOf(client.readFile('/sdk/no-such-file', { version: 'head' }))).toBe('ENOENT');
    });

    it('lists versions, reads one, and restores it as a new head', async () => {
      for (const text of ['one', 'two', 'three']) await client.writeFile('/sdk/hist', Buffer.from(text));
      const handle = (await client.resolve('/sdk/hist')).handle;
      const versions = await collect(client.listVersions(handle));
      expect(versions.map((v) => v.version)).toEqual([1, 2, 3, 4]);
      const v2 = await client.getVersion(handle, 2);
      expect(Buffer.from(v2.content).toString()).toBe('one');
      const restored = await client.restoreVersion(handle, 2);
      expect(restored).toEqual({ version: 5, sizeBytes: 3 });
      expect(Buffer.from(await client.readFile('/sdk/hist')).toString()).toBe('one');
      expect(Buffer.from(await client.readFile('/sdk/hist', { version: 3 })).toString()).toBe('two');
      expect(await errnoOf(client.getVersion(handle, 99))).toBe('ENOENT');
    });

    it('opens, reads through an fh, commits inline and as blocks, and releases', async () => {
      const file = (await client.create(dir, 'fh', 0o644, { exclusive: true })).attr;
      const w = await client.open(file.handle, { read: true, write: true, append: false });
      expect(w.attr?.handle).toBe(file.handle);
      const c1 = await client.commit(w.fh, w.version, { kind: 'inline', written: [{ offset: 0, data: Buffer.from('hello') }], newSize: 5 });
      expect(c1).toMatchObject({ kind: 'fast-forward', sizeBytes: 5 });
      const read = await client.readFh(w.fh, 1, 100);
      expect(Buffer.from(read.data).toString()).toBe('ello');
      expect(read).toMatchObject({ version: c1.version, sizeBytes: 5 });

      const block = patternBytes(5_000, 3);
      const id = await client.putBlock(block);
      expect(await client.hasBlocks([id, 'f'.repeat(64)])).toEqual([true, false]);
      expect(await client.pinBlock(id)).toBe(true);
      expect(await client.pinBlock('e'.repeat(64))).toBe(false);
      expect(Buffer.compare(Buffer.from(await client.getBlock(id)), block)).toBe(0);
      const c2 = await client.commit(w.fh, c1.version, { kind: 'blocks', blocks: [id], writtenExtents: [{ offset: 0, length: 5_000 }], newSize: 5_000 }, { release: true });
      expect(c2).toMatchObject({ version: c1.version + 1, sizeBytes: 5_000 });
      expect(await errnoOf(client.readFh(w.fh, 0, 10))).toBe('EBADF');

      const r = await client.open(file.handle, { read: true, write: false, append: false });
      const all = await client.readFh(r.fh, 0, 10_000);
      expect(Buffer.compare(Buffer.from(all.data), block)).toBe(0);
      await client.release(r.fh);
    });

    it('answers a conflicting commit under reject with CommitConflictError (EBUSY, copy and head)', async () => {
      const file = (await client.create(dir, 'conflict', 0o644, { exclusive: true })).attr;
      const a = await client.open(file.handle, { read: false, write: true, append: false });
      const b = await client.open(file.handle, { read: false, write: true, append: false });
      await client.commit(a.fh, a.version, { kind: 'inline', written: [{ offset: 0, data: Buffer.from('AAAA') }], newSize: 4 }, { release: true });
      const failure = await client.commit(b.fh, b.version, { kind: 'inline', written: [{ offset: 0, data: Buffer.from('BBBB') }], newSize: 4 }, { policy: 'reject' }).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(CommitConflictError);
      expect(failure).toMatchObject({ errno: E.EBUSY, code: 'EBUSY', conflictCopy: 1, headVersion: 2 });
      await client.release(b.fh);
      const lww = await client.writeFile('/sdk/conflict', Buffer.from('CC'), { policy: 'lww' });
      expect(lww.sizeBytes).toBe(2);
    });
  });
});
