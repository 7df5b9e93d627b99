/**
 * Block content through three real metadata server processes: uploads
 * (PutBlock) replicated into every member's DATA/blocks, block-form commits,
 * the leader assembling a rebased block, both conflict policies over blocks,
 * bad block requests, RestoreVersion, and (on a second cluster with
 * aggressive flags) version retention and block collection. Run
 * `npx tsc -p .` first (the members run dist/).
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Errno } from '../rules/errno';
import * as p from '../../proto/meta-proto';
import {
  BLOCK_BYTES, MetaTestCluster, ROOT_CALLER, ROOT_HANDLE, TestSession, blocksOf, eventually, patternBytes, readThroughFh, readVersion, sleep, uploadBlocks,
} from './testing';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const MiB = BLOCK_BYTES;

/** Creates a file and opens it read-write in the same command; its fh pins version 1 (empty). */
async function createOpen(session: TestSession, name: string): Promise<{ handle: number; fh: number }> {
  const created = await session.mutate('Create', { parent: ROOT_HANDLE, name, mode: 0o644, exclusive: true, open: { read: true, write: true, append: false } });
  if (created.error || created.reply.errno !== 0) throw new Error(`Create ${name}: ${created.error?.message ?? created.reply!.message}`);
  return { handle: created.reply.attr!.handle, fh: created.reply.opened!.fh };
}

async function open(session: TestSession, handle: number, write = true): Promise<p.OpenReply> {
  const opened = await session.mutate('Open', { handle, read: true, write, append: false });
  if (opened.error || opened.reply.errno !== 0) throw new Error(`Open ${handle}: ${opened.error?.message ?? opened.reply!.message}`);
  return opened.reply;
}

/** Uploads `content` and commits it in block form as the fh's whole version, claiming `written` as its writes. */
async function commitBlocks(
  session: TestSession, fh: number, baseVersion: number, content: Uint8Array, written: p.Extent[],
  options: { policy?: number; release?: boolean } = {},
): Promise<p.CommitVersionReply> {
  const blocks = await uploadBlocks(session, content);
  const committed = await session.mutate('CommitVersion', {
    fh, baseVersion, written: [], newSize: content.byteLength, policy: options.policy ?? p.ConflictPolicy.LWW, release: options.release ?? false,
    blockForm: true, blocks, writtenExtents: written,
  }, 15_000);
  if (committed.error) throw new Error(`CommitVersion: ${committed.error.message}`);
  return committed.reply;
}

function withBytes(base: Uint8Array, offset: number, bytes: Uint8Array): Buffer {
  const out = Buffer.from(base);
  out.set(bytes, offset);
  return out;
}

/** How many members hold each id in their DATA/blocks. */
function holders(cluster: MetaTestCluster, ids: readonly string[]): number[] {
  const onDisk = cluster.members.map((m) => cluster.blockIdsOnDisk(m));
  return ids.map((id) => onDisk.filter((set) => set.has(id)).length);
}

describe('block content on a 3-member cluster of real metadata server processes', () => {
  let cluster: MetaTestCluster;
  let session: TestSession;
  let other: TestSession;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
    session = await cluster.openSession({ ttlMs: 60_000, name: 'blocks-a' });
    other = await cluster.openSession({ ttlMs: 60_000, name: 'blocks-b' });
  }, 30_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('a 3 MiB + 10 byte file committed in block form reads back byte-exact, its version lists the ids, and every member stores every block', async () => {
    const { handle, fh } = await createOpen(session, 'big.bin');
    const content = patternBytes(3 * MiB + 10, 1);
    const expectedIds = blocksOf(content).map(sha256);
    expect(expectedIds).toHaveLength(4);
    const blocks = await uploadBlocks(session, content);
    expect(blocks).toEqual(expectedIds);
    // Right after each upload a majority (the leader included) holds it durably.
    for (const count of holders(cluster, blocks)) expect(count).toBeGreaterThanOrEqual(2);
    const committed = await session.mutate('CommitVersion', {
      fh, baseVersion: 1, written: [], newSize: content.byteLength, policy: p.ConflictPolicy.LWW, release: true, blockForm: true, blocks, writtenExtents: [{ offset: 0, length: content.byteLength }],
    });
    expect(committed.reply).toMatchObject({ errno: 0, kind: 'fast-forward', version: 2, sizeBytes: content.byteLength });
    // release: the fh is gone with the commit.
    const leader = await cluster.leader();
    expect((await cluster.call(leader, 'ReadFh', { fh, offset: 0, length: 1, sessionId: 0 })).reply?.errno).toBe(Errno.EBADF);

    const again = await open(session, handle, false);
    expect(again).toMatchObject({ version: 2, sizeBytes: content.byteLength });
    for (const member of cluster.members) {
      const read = await readThroughFh(cluster, member, again.fh, session.id);
      expect(read.byteLength).toBe(content.byteLength);
      expect(read.equals(content)).toBe(true);
    }
    const unaligned = await cluster.call(leader, 'ReadFh', { fh: again.fh, offset: MiB - 5, length: 10, sessionId: 0 });
    expect(Buffer.from(unaligned.reply!.data).equals(content.subarray(MiB - 5, MiB + 5))).toBe(true);
    const tail = await cluster.call(leader, 'ReadFh', { fh: again.fh, offset: 3 * MiB, length: 100, sessionId: 0 });
    expect(Buffer.from(tail.reply!.data).equals(content.subarray(3 * MiB))).toBe(true);

    const version = await readVersion(cluster, leader, handle, 2);
    expect(version.info).toMatchObject({ version: 2, kind: 'fast-forward', sizeBytes: content.byteLength, blockSizeBytes: MiB, blocks: expectedIds });
    expect(version.bytes.equals(content)).toBe(true);
    const has = await cluster.call(leader, 'HasBlocks', { ids: expectedIds });
    expect(has.reply!.present).toEqual([true, true, true, true]);
    // The third member's copy arrives in the background (or by repair).
    await eventually('every member holding every block', 10_000, async () => holders(cluster, expectedIds).every((n) => n === 3));
    expect((await session.mutate('Release', { fh: again.fh })).reply?.errno).toBe(0);
  }, 40_000);

  it('two fhs writing disjoint bytes of the same 1 MiB block both land: the second commit is a rebase the leader assembles', async () => {
    const { handle, fh } = await createOpen(session, 'shared-block.bin');
    const base = patternBytes(2 * MiB + 100, 2);
    expect((await commitBlocks(session, fh, 1, base, [{ offset: 0, length: base.byteLength }], { release: true })).version).toBe(2);
    const a = await open(session, handle);
    const b = await open(other, handle);
    expect([a.version, b.version]).toEqual([2, 2]);
    const writeA = Buffer.alloc(100, 0xaa);
    const writeB = Buffer.alloc(100, 0xbb);
    const contentA = withBytes(base, 100, writeA);
    const contentB = withBytes(base, 500_000, writeB);
    const first = await commitBlocks(session, a.fh, 2, contentA, [{ offset: 100, length: 100 }]);
    expect(first).toMatchObject({ errno: 0, kind: 'fast-forward', version: 3 });
    const second = await commitBlocks(other, b.fh, 2, contentB, [{ offset: 500_000, length: 100 }]);
    expect(second).toMatchObject({ errno: 0, kind: 'rebase', version: 4, sizeBytes: base.byteLength });

    const both = withBytes(contentA, 500_000, writeB);
    const leader = await cluster.leader();
    const head = await readVersion(cluster, leader, handle, 4);
    expect(head.bytes.equals(both)).toBe(true);
    // Block 0 holds both writes: a block neither writer uploaded, built by the leader; blocks 1 and 2 are reused.
    const expectedIds = blocksOf(both).map(sha256);
    expect(head.info.blocks).toEqual(expectedIds);
    expect(head.info.blocks[0]).not.toBe(sha256(blocksOf(contentA)[0]));
    expect(head.info.blocks[0]).not.toBe(sha256(blocksOf(contentB)[0]));
    expect(head.info).toMatchObject({ kind: 'rebase', baseVersion: 2, sessionId: other.id, fh: b.fh });
    // b's fh moved to the new head and reads both writes, through a follower too.
    const follower = (await cluster.followers())[0];
    expect((await readThroughFh(cluster, follower, b.fh)).equals(both)).toBe(true);
    const history = await cluster.call(follower, 'ListVersions', { caller: ROOT_CALLER, handle, fromVersion: 1, limit: 0 });
    expect(history.reply!.versions.map((v) => [v.version, v.kind])).toEqual([[1, 'create'], [2, 'fast-forward'], [3, 'fast-forward'], [4, 'rebase']]);
    expect((await readVersion(cluster, follower, handle, 3)).bytes.equals(contentA)).toBe(true);
    await eventually('every member holding the assembled block', 10_000, async () => holders(cluster, [expectedIds[0]])[0] === 3);
    for (const [s, fhId] of [[session, a.fh], [other, b.fh]] as const) expect((await s.mutate('Release', { fh: fhId })).reply?.errno).toBe(0);
  }, 40_000);

  it('overlapping block writes: REJECT answers EBUSY with a conflict copy; LWW then wins and the old head, marked conflict, keeps its bytes', async () => {
    const { handle, fh } = await createOpen(session, 'contested.bin');
    const base = patternBytes(MiB + MiB / 2, 3);
    expect((await commitBlocks(session, fh, 1, base, [{ offset: 0, length: base.byteLength }], { release: true })).version).toBe(2);
    const a = await open(session, handle);
    const b = await open(other, handle);
    const contentA = withBytes(base, 1_000, Buffer.alloc(100, 0xa1));
    const contentB = withBytes(base, 1_050, Buffer.alloc(100, 0xb2));
    expect(await commitBlocks(session, a.fh, 2, contentA, [{ offset: 1_000, length: 100 }])).toMatchObject({ errno: 0, kind: 'fast-forward', version: 3 });

    const rejected = await commitBlocks(other, b.fh, 2, contentB, [{ offset: 1_050, length: 100 }], { policy: p.ConflictPolicy.REJECT });
    expect(rejected).toMatchObject({ errno: Errno.EBUSY, kind: '', conflictCopy: 1, headVersion: 3 });
    const leader = await cluster.leader();
    const copy = await cluster.call(leader, 'GetConflictCopy', { caller: ROOT_CALLER, handle, copy: 1 });
    expect(copy.reply).toMatchObject({ errno: 0, info: { copy: 1, baseVersion: 2, lostToVersion: 3, sizeBytes: contentB.byteLength, fh: b.fh, blockSizeBytes: MiB } });
    expect(copy.reply!.info!.blocks).toEqual(blocksOf(contentB).map(sha256));
    const attr = await cluster.call(leader, 'GetAttr', { handle, generation: 0 });
    const headAfterReject = await cluster.call(leader, 'ListVersions', { caller: ROOT_CALLER, handle, fromVersion: 1, limit: 0 });
    expect(headAfterReject.reply!.versions.map((v) => v.version)).toEqual([1, 2, 3]);
    expect(attr.reply!.attr!.sizeBytes).toBe(base.byteLength);

    const won = await commitBlocks(other, b.fh, 2, contentB, [{ offset: 1_050, length: 100 }], { policy: p.ConflictPolicy.LWW });
    expect(won).toMatchObject({ errno: 0, kind: 'conflict-lww', version: 4, conflictVersion: 3 });
    const loser = await readVersion(cluster, leader, handle, 3);
    expect(loser.info).toMatchObject({ conflict: true, lostToVersion: 4 });
    expect(loser.bytes.equals(contentA)).toBe(true);
    const winner = await readVersion(cluster, leader, handle, 4);
    expect(winner.info).toMatchObject({ kind: 'conflict-lww', overwroteVersion: 3 });
    // B's bytes laid over the head: A's write survives where B did not write.
    expect(winner.bytes.equals(withBytes(contentA, 1_050, Buffer.alloc(100, 0xb2)))).toBe(true);
    for (const [s, fhId] of [[session, a.fh], [other, b.fh]] as const) expect((await s.mutate('Release', { fh: fhId })).reply?.errno).toBe(0);
  }, 40_000);

  it('refuses bad block requests: an unknown block in a commit (ENOENT, nothing changes), a wrong id, an oversized block, unknown and malformed ids', async () => {
    const { handle, fh } = await createOpen(session, 'refusals.bin');
    const content = patternBytes(MiB + 10, 4);
    const [known] = await uploadBlocks(session, content.subarray(0, MiB));
    const neverUploaded = sha256(Buffer.from('a block nobody uploaded'));
    const leader = await cluster.leader();
    const before = await cluster.call(leader, 'GetAttr', { handle, generation: 0 });

    const refused = await session.mutate('CommitVersion', {
      fh, baseVersion: 1, written: [], newSize: content.byteLength, policy: p.ConflictPolicy.LWW, blockForm: true, blocks: [known, neverUploaded], writtenExtents: [{ offset: 0, length: content.byteLength }],
    });
    expect(refused.reply).toMatchObject({ errno: Errno.ENOENT, kind: '', version: 0 });
    expect(refused.reply!.message).toContain(neverUploaded);
    const after = await cluster.call(leader, 'GetAttr', { handle, generation: 0 });
    expect(after.reply!.attr).toEqual(before.reply!.attr);
    const history = await cluster.call(leader, 'ListVersions', { caller: ROOT_CALLER, handle, fromVersion: 1, limit: 0 });
    expect(history.reply!.versions.map((v) => v.version)).toEqual([1]);
    // The fh still works: the same commit with the missing block uploaded lands as version 2.
    expect(await commitBlocks(session, fh, 1, content, [{ offset: 0, length: content.byteLength }], { release: true })).toMatchObject({ errno: 0, version: 2 });

    const data = Buffer.from('these bytes hash to something else');
    const mismatch = await session.mutate('PutBlock', { data, id: known });
    expect(mismatch.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(mismatch.error!.details).toContain(known);
    expect(mismatch.error!.details).toContain(sha256(data));
    const oversized = await session.mutate('PutBlock', { data: Buffer.alloc(MiB + 1, 7), id: '' });
    expect(oversized.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(oversized.error!.details).toMatch(/1048577 bytes/);
    expect(holders(cluster, [sha256(Buffer.alloc(MiB + 1, 7)), sha256(data)])).toEqual([0, 0]);

    const unknown = await cluster.call(leader, 'GetBlock', { id: neverUploaded });
    expect(unknown.reply?.errno).toBe(Errno.ENOENT);
    const pinOnly = await session.mutate('PutBlock', { data: new Uint8Array(), id: neverUploaded });
    expect(pinOnly.reply?.errno).toBe(Errno.ENOENT);
    const pinKnown = await session.mutate('PutBlock', { data: new Uint8Array(), id: known });
    expect(pinKnown.reply).toMatchObject({ errno: 0, id: known });
    expect((await cluster.call(leader, 'HasBlocks', { ids: [known, neverUploaded] })).reply!.present).toEqual([true, false]);

    for (const bad of ['xyz', known.toUpperCase(), known.slice(1), '']) {
      const get = await cluster.call(leader, 'GetBlock', { id: bad });
      expect(get.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    }
    expect((await cluster.call(leader, 'HasBlocks', { ids: [known, 'not-an-id'] })).error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await session.mutate('PutBlock', { data: new Uint8Array(), id: 'g'.repeat(64) })).error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const reopened = await open(session, handle);
    const badCommit = await session.mutate('CommitVersion', {
      fh: reopened.fh, baseVersion: 2, written: [], newSize: 10, policy: p.ConflictPolicy.LWW, blockForm: true, blocks: ['zz'], writtenExtents: [{ offset: 0, length: 10 }],
    });
    expect(badCommit.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(badCommit.error!.details).toMatch(/blocks/);
    expect((await session.mutate('Release', { fh: reopened.fh })).reply?.errno).toBe(0);
  }, 40_000);

  it('RestoreVersion makes an old version the head again, with its bytes', async () => {
    const { handle, fh } = await createOpen(session, 'restored.bin');
    const first = patternBytes(MiB + 300, 5);
    const second = patternBytes(2 * MiB + 7, 6);
    expect((await commitBlocks(session, fh, 1, first, [{ offset: 0, length: first.byteLength }])).version).toBe(2);
    expect((await commitBlocks(session, fh, 2, second, [{ offset: 0, length: second.byteLength }], { release: true })).version).toBe(3);
    const restored = await session.mutate('RestoreVersion', { handle, version: 2 });
    expect(restored.reply).toMatchObject({ errno: 0, version: 4, sizeBytes: first.byteLength });
    const leader = await cluster.leader();
    const head = await readVersion(cluster, leader, handle, 4);
    expect(head.info).toMatchObject({ kind: 'restore', restoredFrom: 2, sizeBytes: first.byteLength });
    expect(head.bytes.equals(first)).toBe(true);
    expect((await cluster.call(leader, 'GetAttr', { handle, generation: 0 })).reply!.attr!.sizeBytes).toBe(first.byteLength);
    const reader = await open(session, handle, false);
    expect(reader).toMatchObject({ version: 4, sizeBytes: first.byteLength });
    expect((await readThroughFh(cluster, (await cluster.followers())[0], reader.fh)).equals(first)).toBe(true);
    // Version 3 stays in the history, unchanged.
    expect((await readVersion(cluster, leader, handle, 3)).bytes.equals(second)).toBe(true);
    expect((await session.mutate('RestoreVersion', { handle, version: 99 })).reply?.errno).toBe(Errno.ENOENT);
    expect((await session.mutate('Release', { fh: reader.fh })).reply?.errno).toBe(0);
  }, 30_000);
});

describe('version retention and block collection (--keep-last 2 --keep-younger-than-ms 0 --block-gc-grace-ms 0 --block-pin-ttl-ms 1000 --duty-interval-ms 200)', () => {
  let cluster: MetaTestCluster;
  let session: TestSession;
  /** What each version of the file held, by number. */
  const contents = new Map<number, Buffer>();
  let handle = 0;
  let pinningFh = 0;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start({ extraArgs: ['--keep-last', '2', '--keep-younger-than-ms', '0', '--block-gc-grace-ms', '0', '--block-pin-ttl-ms', '1000', '--duty-interval-ms', '200'] });
    session = await cluster.openSession({ ttlMs: 60_000, name: 'retention' });
  }, 30_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  const listed = async (): Promise<number[]> => {
    const history = await cluster.call(await cluster.leader(), 'ListVersions', { caller: ROOT_CALLER, handle, fromVersion: 1, limit: 0 });
    if (history.error || history.reply.errno !== 0) throw new Error(`ListVersions: ${history.error?.message ?? history.reply!.message}`);
    return history.reply.versions.map((v) => v.version);
  };

  /** Every block of every kept version is in every member's DATA/blocks. */
  const assertKeptBlocksStored = async (kept: number[]) => {
    const leader = await cluster.leader();
    for (const version of kept) {
      const { info, bytes } = await readVersion(cluster, leader, handle, version);
      expect(bytes.equals(contents.get(version)!)).toBe(true);
      expect(holders(cluster, info.blocks.filter((id) => id !== ''))).toEqual(info.blocks.filter((id) => id !== '').map(() => 3));
    }
  };

  it('keeps only the last 2 versions plus one an open fh pins, and every kept version reads back byte-exact after many collection rounds', async () => {
    const created = await createOpen(session, 'retained.bin');
    handle = created.handle;
    let fh = created.fh;
    contents.set(1, Buffer.alloc(0));
    for (let version = 2; version <= 6; version++) {
      const content = patternBytes(MiB + 1_000 * version, 100 + version);
      const committed = await commitBlocks(session, fh, version - 1, content, [{ offset: 0, length: content.byteLength }], { release: true });
      expect(committed).toMatchObject({ errno: 0, version });
      contents.set(version, content);
      if (version === 3) pinningFh = (await open(session, handle, false)).fh; // read-only, stays open on version 3
      if (version < 6) fh = (await open(session, handle)).fh;
    }
    await eventually('retention leaving versions 3, 5, 6', 10_000, async () => JSON.stringify(await listed()) === '[3,5,6]');
    // Many duty rounds (every 200 ms) later nothing more went, and no kept block was deleted anywhere.
    await sleep(1_500);
    expect(await listed()).toEqual([3, 5, 6]);
    await assertKeptBlocksStored([3, 5, 6]);
    expect((await readThroughFh(cluster, (await cluster.followers())[0], pinningFh)).equals(contents.get(3)!)).toBe(true);
    // Released, version 3 goes too.
    expect((await session.mutate('Release', { fh: pinningFh })).reply?.errno).toBe(0);
    await eventually('retention leaving versions 5, 6', 10_000, async () => JSON.stringify(await listed()) === '[5,6]');
    await sleep(1_000);
    await assertKeptBlocksStored([5, 6]);
  }, 60_000);

  it('a block only a dropped version referenced (one the leader built for a truncation) is deleted from every member', async () => {
    // Versions 5 and 6 are kept; a truncation makes 7 from 6, whose cut last block the leader assembles (it is never uploaded, so never pinned).
    const six = contents.get(6)!;
    const cutSize = MiB + 123;
    const truncated = await session.mutate('SetAttr', { handle, sizeBytes: cutSize, atime: null, mtime: null });
    expect(truncated.reply).toMatchObject({ errno: 0, attr: { sizeBytes: cutSize } });
    const cut = six.subarray(0, cutSize);
    contents.set(7, Buffer.from(cut));
    const leader = await cluster.leader();
    const seven = await readVersion(cluster, leader, handle, 7);
    expect(seven.bytes.equals(cut)).toBe(true);
    const assembledId = seven.info.blocks[1];
    expect(assembledId).toBe(sha256(cut.subarray(MiB)));
    await eventually('every member holding the assembled block', 10_000, async () => holders(cluster, [assembledId])[0] === 3);
    // Two more commits push 7 out of the last 2.
    let fh = (await open(session, handle)).fh;
    for (let version = 8; version <= 9; version++) {
      const content = patternBytes(MiB / 2 + version, 200 + version);
      expect(await commitBlocks(session, fh, version - 1, content, [{ offset: 0, length: content.byteLength }], { release: true })).toMatchObject({ errno: 0, version });
      contents.set(version, content);
      if (version < 9) fh = (await open(session, handle)).fh;
    }
    await eventually('retention leaving versions 8, 9', 10_000, async () => JSON.stringify(await listed()) === '[8,9]');
    await eventually('the assembled block deleted from every member', 10_000, async () => holders(cluster, [assembledId])[0] === 0);
    await assertKeptBlocksStored([8, 9]);
  }, 40_000);

  // An upload's pin (--block-pin-ttl-ms, here 1 s) is a lease: once it ran out, a dropped version's uploaded blocks go.
  it('the uploaded blocks of dropped versions disappear from every member\'s DATA/blocks', async () => {
    // Versions 2..7 are gone (earlier tests); their uploaded blocks are referenced by nothing.
    const kept = new Set<string>();
    const leader = await cluster.leader();
    for (const version of await listed()) for (const id of (await readVersion(cluster, leader, handle, version)).info.blocks) kept.add(id);
    const dropped = [2, 3, 4, 5, 6].flatMap((version) => blocksOf(contents.get(version)!).map(sha256)).filter((id) => !kept.has(id));
    expect(dropped.length).toBeGreaterThanOrEqual(10);
    await eventually('the dropped versions\' uploaded blocks deleted from every member', 5_000, async () => holders(cluster, dropped).every((n) => n === 0));
  }, 20_000);
});
