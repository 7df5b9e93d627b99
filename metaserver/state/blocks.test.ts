/**
 * Block content in the state machine on a real LevelDB folder: a version is a
 * list of block ids that must be pinned or referenced, unchanged blocks are
 * shared, blocks mixing sources come back as NEEDS_ASSEMBLY for the leader,
 * retention drops old versions (never one an fh pins) and their references,
 * and collection deletes only blocks nothing references, after the grace
 * period, handing their ids to the member's block store.
 */
import { createHash } from 'node:crypto';
import { Errno } from '../rules/errno';
import { MutationBody } from './commands';
import { CommandResult } from './meta-state-machine';
import { OpenResult } from './fh-ops';
import { ROOT_HANDLE } from './records';
import { Harness, ROOT, TestSession } from './testing';
import { BLOCK_SIZE_BYTES } from './version-content';

const B = BLOCK_SIZE_BYTES;
const idOf = (label: string) => createHash('sha256').update(label).digest('hex');
const HOUR_MS = 3_600_000;

let h: Harness;
let s: TestSession;
let collected: string[];
beforeEach(async () => {
  h = await Harness.open();
  collected = [];
  h.machine.onBlocksCollected = async (ids) => {
    collected.push(...ids);
  };
  s = await h.openSession(ROOT);
});
afterEach(async () => {
  await h.destroy();
});

async function newFile(name = 'f'): Promise<{ handle: number; fh: OpenResult }> {
  const created = await s.must<{ attrs: { handle: number }; open: OpenResult }>({
    op: 'create', parent: ROOT_HANDLE, name, mode: 0o644, exclusive: true, open: { read: true, write: true, append: false },
  });
  return { handle: created.attrs.handle, fh: created.open };
}

const pin = (ids: string[], untilMs = h.nowMs + HOUR_MS): Promise<CommandResult> => s.run({ op: 'pinBlocks', ids, untilMs });

function blockCommit(fh: number, baseVersion: number, blocks: string[], written: Array<[number, number]>, newSize: number, extra: Partial<MutationBody> = {}): MutationBody {
  return {
    op: 'commitVersion', fh, baseVersion, written: [], newSize, policy: 'lww', blocks, writtenExtents: written.map(([offset, length]) => ({ offset, length })), ...extra,
  } as MutationBody;
}

async function versionBlocks(handle: number, version: number): Promise<string[] | undefined> {
  const v = await h.machine.query.getVersion(ROOT, handle, version);
  if (!v.ok) throw new Error(v.message);
  return v.value.info.blocks;
}

describe('committing block content', () => {
  it('stores a pinned block list as the new version and counts one reference per listing', async () => {
    const { handle, fh } = await newFile();
    const [a, b] = [idOf('a'), idOf('b')];
    expect((await pin([a, b])).ok).toBe(true);
    const result = await s.run(blockCommit(fh.fh, 1, [a, b, ''], [[0, 2 * B + 10]], 2 * B + 10));
    expect(result).toMatchObject({ ok: true, value: { kind: 'fast-forward', version: 2, sizeBytes: 2 * B + 10 } });
    expect(await versionBlocks(handle, 2)).toEqual([a, b, '']);
    expect(await h.machine.query.getattr(handle)).toMatchObject({ ok: true, value: { sizeBytes: 2 * B + 10, headVersion: 2 } });
  });

  it('refuses a block that is neither pinned nor referenced with ENOENT and changes nothing', async () => {
    const { handle, fh } = await newFile();
    const result = await s.run(blockCommit(fh.fh, 1, [idOf('never uploaded')], [[0, 100]], 100 + B - B));
    expect(result).toMatchObject({ ok: false, errno: Errno.ENOENT });
    expect(!result.ok && result.message).toMatch(/neither referenced nor pinned/);
    expect(await h.machine.query.getattr(handle)).toMatchObject({ ok: true, value: { headVersion: 1, sizeBytes: 0 } });
  });

  it('refuses a block list that does not match the size, and malformed ids, as EINVAL', async () => {
    const { fh } = await newFile();
    await pin([idOf('a')]);
    expect(await s.run(blockCommit(fh.fh, 1, [idOf('a'), idOf('a')], [[0, 10]], 10))).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(await s.run(blockCommit(fh.fh, 1, ['not-an-id'], [[0, 10]], 10))).toMatchObject({ ok: false, errno: Errno.EINVAL });
  });

  it('rebases disjoint writes in different blocks by reusing each side\'s blocks, with no assembly', async () => {
    const { handle, fh } = await newFile();
    const other = await s.must<OpenResult>({ op: 'open', handle, read: true, write: true, append: false });
    const base = [idOf('0'), idOf('1')];
    await pin([...base, idOf('0 by fh'), idOf('1 by other')]);
    await s.run(blockCommit(fh.fh, 1, base, [[0, 2 * B]], 2 * B));
    const theirs = await s.must<OpenResult>({ op: 'open', handle, read: true, write: true, append: false });
    expect(theirs.version).toBe(2);
    await s.run(blockCommit(theirs.fh, 2, [base[0], idOf('1 by other')], [[B + 5, 10]], 2 * B));
    // fh committed version 2 and wrote block 0 only; the head (3) changed block 1 since.
    const rebased = await s.run(blockCommit(fh.fh, 2, [idOf('0 by fh'), base[1]], [[5, 10]], 2 * B));
    expect(rebased).toMatchObject({ ok: true, value: { kind: 'rebase', version: 4 } });
    expect(await versionBlocks(handle, 4)).toEqual([idOf('0 by fh'), idOf('1 by other')]);
    void other;
  });

  it('answers NEEDS_ASSEMBLY when disjoint writes share a block, remembers nothing, and applies once the leader names the built block', async () => {
    const { handle, fh } = await newFile();
    await pin([idOf('v2'), idOf('theirs'), idOf('mine'), idOf('merged')]);
    await s.run(blockCommit(fh.fh, 1, [idOf('v2')], [[0, B]], B));
    const theirs = await s.must<OpenResult>({ op: 'open', handle, read: true, write: true, append: false });
    await s.run(blockCommit(theirs.fh, 2, [idOf('theirs')], [[0, 10]], B));
    const sequence = s.sequence + 1;
    const first = await s.run(blockCommit(fh.fh, 2, [idOf('mine')], [[100, 10]], B), sequence);
    expect(first).toMatchObject({ ok: false, errno: Errno.EAGAIN, session: 'NEEDS_ASSEMBLY' });
    const needed = (first as unknown as { assembly: { headVersion: number; blocks: Array<{ index: number; pieces: Array<{ source: string }> }> } }).assembly;
    expect(needed.headVersion).toBe(3);
    expect(needed.blocks.map((b) => b.index)).toEqual([0]);
    expect(new Set(needed.blocks[0].pieces.map((p) => p.source))).toEqual(new Set(['head', 'fh']));
    // Named for a stale head, the build is asked again; named for head 3, the same sequence applies.
    const stale = await s.run(blockCommit(fh.fh, 2, [idOf('mine')], [[100, 10]], B, { assembled: { forHead: 2, ids: [[0, idOf('merged')]] } } as Partial<MutationBody>), sequence);
    expect(stale).toMatchObject({ session: 'NEEDS_ASSEMBLY' });
    const applied = await s.run(blockCommit(fh.fh, 2, [idOf('mine')], [[100, 10]], B, { assembled: { forHead: 3, ids: [[0, idOf('merged')]] } } as Partial<MutationBody>), sequence);
    expect(applied).toMatchObject({ ok: true, value: { kind: 'rebase', version: 4 } });
    expect(await versionBlocks(handle, 4)).toEqual([idOf('merged')]);
  });

  it('restores an old version as the new head, sharing its blocks', async () => {
    const { handle, fh } = await newFile();
    await pin([idOf('old'), idOf('new')]);
    await s.run(blockCommit(fh.fh, 1, [idOf('old')], [[0, 50]], 50 + 4096));
    await s.run(blockCommit(fh.fh, 2, [idOf('new')], [[0, 50]], 50 + 4096));
    const restored = await s.run({ op: 'restoreVersion', handle, version: 2 });
    expect(restored).toMatchObject({ ok: true, value: { version: 4 } });
    expect(await versionBlocks(handle, 4)).toEqual([idOf('old')]);
    expect(await s.run({ op: 'restoreVersion', handle, version: 99 })).toMatchObject({ ok: false, errno: Errno.ENOENT });
  });
});

describe('retention and collection', () => {
  const retain = (handle: number, keepLast: number) =>
    h.apply({ op: 'retainVersions', handle, nowMs: h.nowMs, keepLast, keepYoungerThanMs: 0, keepConflictsYoungerThanMs: 0 });
  const collect = (ids: string[], graceMs: number) => h.apply({ op: 'collectBlocks', ids, nowMs: h.nowMs, graceMs });

  it('drops versions beyond keepLast but never one an open fh pins, and collects their blocks only after the grace period', async () => {
    const { handle, fh } = await newFile();
    const reader = await s.must<OpenResult>({ op: 'open', handle, read: true, write: false, append: false });
    const ids = [1, 2, 3, 4].map((n) => idOf(`v${n}`));
    await pin(ids, h.nowMs + 1_000);
    let base = 1;
    for (const id of ids) {
      const r = await s.run(blockCommit(fh.fh, base, [id], [[0, 8]], 8 + 4096));
      if (!r.ok) throw new Error(r.message);
      base += 1;
    }
    const pinnedReader = await s.must<OpenResult>({ op: 'open', handle, read: true, write: false, append: false });
    expect(pinnedReader.version).toBe(5);
    // Versions 1..5; keep the last 2 (4, 5); version 1 is pinned by the first reader.
    h.nowMs += 2_000;
    const dropped = await retain(handle, 2);
    expect(dropped).toMatchObject({ ok: true, value: { droppedVersions: [2, 3] } });
    const listed = await h.machine.query.listVersions(ROOT, handle);
    expect(listed.ok && listed.value.map((v) => v.version)).toEqual([1, 4, 5]);
    // v2's and v3's blocks lost their last reference; the pins expired a second ago.
    expect(await collect([ids[0], ids[1], ids[2]], 60_000)).toMatchObject({ ok: true, value: { collected: [] } });
    h.nowMs += 60_000;
    expect(await collect([ids[0], ids[1], ids[2]], 60_000)).toMatchObject({ ok: true, value: { collected: [ids[0], ids[1]] } });
    expect(collected).toEqual([ids[0], ids[1]]);
    // Releasing the reader lets version 1 go too.
    await s.run({ op: 'release', fh: reader.fh });
    expect(await retain(handle, 2)).toMatchObject({ ok: true, value: { droppedVersions: [1] } });
  });

  it('never collects a block a pin applied before the collection protects, nor one still referenced', async () => {
    const { fh } = await newFile();
    const [kept, repinned] = [idOf('kept'), idOf('repinned')];
    await pin([kept, repinned], h.nowMs);
    await s.run(blockCommit(fh.fh, 1, [kept], [[0, 10]], 10 + 4096));
    h.nowMs += 10 * HOUR_MS;
    await pin([repinned]);
    expect(await collect([kept, repinned], 0)).toMatchObject({ ok: true, value: { collected: [] } });
    expect(collected).toEqual([]);
  });

  it('drops the references of a removed file, so its blocks become collectable', async () => {
    const { fh } = await newFile('gone');
    const id = idOf('gone');
    await pin([id], h.nowMs);
    await s.run(blockCommit(fh.fh, 1, [id], [[0, 10]], 10 + 4096, { release: true } as Partial<MutationBody>));
    expect((await s.run({ op: 'unlink', parent: ROOT_HANDLE, name: 'gone' })).ok).toBe(true);
    h.nowMs += 1;
    expect(await collect([id], 0)).toMatchObject({ ok: true, value: { collected: [id] } });
  });
});

describe('a block file cut to nothing', () => {
  it('takes small inline commits again (an empty block list is empty content)', async () => {
    const { handle, fh } = await newFile();
    await pin([idOf('big')]);
    expect((await s.run(blockCommit(fh.fh, 1, [idOf('big')], [[0, 5000]], 5000))).ok).toBe(true);
    expect((await s.run({ op: 'setattr', handle, sizeBytes: 0 })).ok).toBe(true);
    const reopened = await s.must<OpenResult>({ op: 'open', handle, read: true, write: true, append: false });
    const small = await s.run({ op: 'commitVersion', fh: reopened.fh, baseVersion: reopened.version, written: [{ offset: 0, dataBase64: Buffer.from('tiny').toString('base64') }], newSize: 4, policy: 'lww' });
    expect(small).toMatchObject({ ok: true, value: { kind: 'fast-forward', sizeBytes: 4 } });
    const v = await h.machine.query.getVersion(ROOT, handle, (small as { value: { version: number } }).value.version);
    expect(v.ok && Buffer.from(v.value.bytes).toString()).toBe('tiny');
  });
});
