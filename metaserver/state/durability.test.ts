/**
 * readdir paging over a large directory, snapshot → restore into a fresh
 * machine, and close + reopen, all on real LevelDB folders.
 */
import { EntryType } from '../../raft/core/types';
import { Errno } from '../rules/errno';
import { MutationBody } from './commands';
import { SnapshotTooLargeError, decodeSnapshot, encodeSnapshot } from '../../raft/node/level-keyspace';
import { META_KEYSPACE, MetaStateMachine } from './meta-state-machine';
import { DirEntry } from './queries';
import { ROOT_HANDLE } from './records';
import { ALICE, Harness, ROOT, TestSession } from './testing';

const ENTRY_COUNT = 5_000;
const APPLY_BATCH_ENTRIES = 500;

let h: Harness;
let s: TestSession;
const others: Harness[] = [];
beforeEach(async () => {
  h = await Harness.open();
  s = await h.openSession(ROOT);
});
afterEach(async () => {
  await h.destroy();
  for (const other of others.splice(0)) await other.destroy();
});

async function createMany(parent: number, names: string[]): Promise<void> {
  for (let i = 0; i < names.length; i += APPLY_BATCH_ENTRIES) {
    const bodies: MutationBody[] = names.slice(i, i + APPLY_BATCH_ENTRIES).map((name) => ({ op: 'create', parent, name, mode: 0o644, exclusive: true }));
    const results = await h.applyBatch(bodies.map((body) => s.command(body)));
    for (const r of results) if (!r.ok) throw new Error(r.message);
  }
}

async function readAll(machine: MetaStateMachine, parent: number, pageEntries: number): Promise<{ entries: DirEntry[]; pages: number }> {
  const entries: DirEntry[] = [];
  let cookie: string | undefined;
  for (let pages = 1; pages <= 100_000; pages++) {
    const page = await machine.query.readdir(ROOT, parent, cookie, pageEntries);
    if (!page.ok) throw new Error(page.message);
    expect(page.value.entries.length).toBeLessThanOrEqual(pageEntries);
    entries.push(...page.value.entries);
    if (page.value.cookie === undefined) return { entries, pages };
    cookie = page.value.cookie;
  }
  throw new Error('readdir never finished');
}

/** Everything a client could ask about a small tree, to compare two machines. */
async function describeTree(machine: MetaStateMachine): Promise<unknown> {
  const listing = await readAll(machine, ROOT_HANDLE, 10);
  const attrs = await Promise.all(listing.entries.map((e) => machine.query.getattr(e.handle)));
  const xattrs = await Promise.all(listing.entries.map((e) => machine.query.listxattr(ROOT, e.handle)));
  const link = listing.entries.find((e) => e.type === 'lnk');
  return {
    root: await machine.query.getattr(ROOT_HANDLE),
    listing: listing.entries,
    attrs,
    xattrs,
    readlink: link ? await machine.query.readlink(link.handle) : undefined,
    statfs: await machine.query.statfs(),
    sessions: await machine.query.sessionIds(),
    applied: await machine.appliedIndex(),
  };
}

async function buildSmallTree(): Promise<void> {
  const d = await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'dir', mode: 0o755 });
  await s.must({ op: 'create', parent: d.attrs.handle, name: 'inner', mode: 0o600, exclusive: true });
  const f = await s.must({ op: 'create', parent: ROOT_HANDLE, name: 'file', mode: 0o644, exclusive: true });
  await s.must({ op: 'setxattr', handle: f.attrs.handle, name: 'user.tag', valueBase64: Buffer.from('blue').toString('base64'), flags: 0 });
  await s.must({ op: 'symlink', parent: ROOT_HANDLE, name: 'link', target: 'file' });
  await s.must({ op: 'link', handle: f.attrs.handle, newParent: ROOT_HANDLE, newName: 'hard' });
}

describe('readdir', () => {
  it(`pages through ${ENTRY_COUNT} entries with a small page size, returning every name once, in order`, async () => {
    const d = await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'big', mode: 0o755 });
    const names = Array.from({ length: ENTRY_COUNT }, (_, i) => `file-${(i * 7919) % ENTRY_COUNT}-${i % 3 === 0 ? 'é' : 'x'}`);
    await createMany(d.attrs.handle, names);
    const { entries, pages } = await readAll(h.machine, d.attrs.handle, 97);
    expect(pages).toBe(Math.ceil(ENTRY_COUNT / 97));
    const sorted = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(entries.map((e) => e.name)).toEqual(sorted);
    expect(new Set(entries.map((e) => e.handle)).size).toBe(ENTRY_COUNT);
  });

  it('resumes from a cookie whose entry was removed meanwhile, and caps a page at 1,000 entries', async () => {
    const d = await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 });
    await createMany(d.attrs.handle, Array.from({ length: 1_200 }, (_, i) => `n${String(i).padStart(4, '0')}`));
    const first = await h.machine.query.readdir(ROOT, d.attrs.handle, undefined, 5_000);
    if (!first.ok) throw new Error(first.message);
    expect(first.value.entries).toHaveLength(1_000);
    expect(first.value.cookie).toBe('n0999');
    await s.must({ op: 'unlink', parent: d.attrs.handle, name: 'n0999' });
    const rest = await h.machine.query.readdir(ROOT, d.attrs.handle, first.value.cookie, 5_000);
    expect(rest.ok && rest.value.entries.map((e) => e.name)[0]).toBe('n1000');
    expect(rest.ok && rest.value.cookie).toBeUndefined();
  });

  it('answers ENOTDIR on a file, EACCES without read permission, ESTALE on a gone handle', async () => {
    const f = await s.must({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o644, exclusive: true });
    const secret = await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'secret', mode: 0o700 });
    const errno = (r: { ok: boolean; errno?: number }) => (r.ok ? 0 : r.errno);
    expect(errno(await h.machine.query.readdir(ROOT, f.attrs.handle, undefined, 10))).toBe(Errno.ENOTDIR);
    expect(errno(await h.machine.query.readdir(ALICE, secret.attrs.handle, undefined, 10))).toBe(Errno.EACCES);
    expect(errno(await h.machine.query.lookup(ALICE, secret.attrs.handle, 'x'))).toBe(Errno.EACCES);
    expect(errno(await h.machine.query.readdir(ROOT, 777, undefined, 10))).toBe(Errno.ESTALE);
  });
});

describe('snapshot and restore', () => {
  it('restores into a fresh machine that answers every query identically, and keeps applying from there', async () => {
    await buildSmallTree();
    const snapshot = await h.machine.snapshot();
    expect(snapshot.index).toBe(await h.machine.appliedIndex());
    const fresh = await Harness.open();
    others.push(fresh);
    await fresh.machine.restore({ metadata: { index: snapshot.index, term: 1, membership: { members: [] } }, data: snapshot.data });
    expect(await describeTree(fresh.machine)).toEqual(await describeTree(h.machine));
    // The same next command gives the same answer on both (same handle, same dedup state).
    const next = s.command({ op: 'mkdir', parent: ROOT_HANDLE, name: 'after', mode: 0o755 });
    expect(await fresh.apply(next)).toEqual(await h.apply(next));
  });

  it('replaces whatever the machine held before, and refuses data that is not a snapshot', async () => {
    const empty = await Harness.open();
    others.push(empty);
    await empty.noop();
    const emptySnapshot = await empty.machine.snapshot();
    await buildSmallTree();
    await h.machine.restore({ metadata: { index: emptySnapshot.index, term: 1, membership: { members: [] } }, data: emptySnapshot.data });
    expect(await describeTree(h.machine)).toEqual(await describeTree(empty.machine));
    await expect(h.machine.restore({ metadata: { index: 5, term: 1, membership: { members: [] } }, data: Buffer.from('KVS1') })).rejects.toThrow(/HMS1/);
  });
});

describe('the snapshot format', () => {
  it('refuses to build or read a snapshot beyond its size limit, with an error naming the limit', async () => {
    await buildSmallTree();
    const { data } = await h.machine.snapshot();
    const records = decodeSnapshot(META_KEYSPACE, data);
    const batches: Array<Array<[Buffer, Uint8Array]>> = [records.map((r) => [r.key, r.value])];
    expect(encodeSnapshot(META_KEYSPACE, batches)).toEqual(Buffer.from(data));
    expect(() => encodeSnapshot(META_KEYSPACE, batches, 100)).toThrow(SnapshotTooLargeError);
    expect(() => decodeSnapshot(META_KEYSPACE, data, 100)).toThrow(/more than 100 bytes/);
  });

  it('refuses a truncated snapshot or one holding the applied index or an unknown key', () => {
    const frame = (key: Buffer) => Buffer.concat([Buffer.from('HMS1'), Buffer.from([0, 0, 0, key.length, 0, 0, 0, 1]), key, Buffer.from([7])]);
    expect(() => decodeSnapshot(META_KEYSPACE, frame(Buffer.from([0x00, 0x01])))).toThrow(/unexpected key/);
    expect(() => decodeSnapshot(META_KEYSPACE, frame(Buffer.from([0x99, 0x01])))).toThrow(/unexpected key/);
    expect(() => decodeSnapshot(META_KEYSPACE, frame(Buffer.from([0x10, 0x01])).subarray(0, 12))).toThrow(/truncated/);
  });
});

describe('restart', () => {
  it('keeps every record and the applied index across close and reopen', async () => {
    await buildSmallTree();
    const before = await describeTree(h.machine);
    await h.reopen();
    expect(await describeTree(h.machine)).toEqual(before);
    const index = (await h.machine.appliedIndex()) + 1;
    await expect(h.machine.apply([{ term: 1, index: index + 1, type: EntryType.Noop, data: new Uint8Array(0) }])).rejects.toThrow(/applied index/);
  });
});
