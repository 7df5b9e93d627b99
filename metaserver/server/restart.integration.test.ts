/**
 * Crashes and restarts of real metadata server processes: every member
 * SIGKILLed and restarted with every byte intact, a member wiped and brought
 * back by a snapshot and block repair, an fh and its session living through a
 * leader kill, and an expired session's fhs released. The members compact
 * their logs every 20 entries, so a wiped member cannot catch up from the log.
 * Run `npx tsc -p .` first (the members run dist/).
 */
import { Errno } from '../rules/errno';
import * as p from '../../proto/meta-proto';
import {
  BLOCK_BYTES, MetaTestCluster, ROOT_CALLER, ROOT_HANDLE, TestSession, eventually, patternBytes, readThroughFh, readVersion, sleep, uploadBlocks,
} from './testing';

const MiB = BLOCK_BYTES;
/** The kept-alive session's TTL: short, so surviving a leader change is shown by outliving it. */
const SESSION_TTL_MS = 3_000;

async function createOpen(session: TestSession, name: string): Promise<{ handle: number; fh: number }> {
  const created = await session.mutate('Create', { parent: ROOT_HANDLE, name, mode: 0o644, exclusive: true, open: { read: true, write: true, append: false } });
  if (created.error || created.reply.errno !== 0) throw new Error(`Create ${name}: ${created.error?.message ?? created.reply!.message}`);
  return { handle: created.reply.attr!.handle, fh: created.reply.opened!.fh };
}

async function commitInline(session: TestSession, fh: number, baseVersion: number, text: string, release = false): Promise<p.CommitVersionReply> {
  const committed = await session.mutate('CommitVersion', { fh, baseVersion, written: [{ offset: 0, data: Buffer.from(text) }], newSize: text.length, policy: p.ConflictPolicy.LWW, release });
  if (committed.error) throw new Error(`CommitVersion: ${committed.error.message}`);
  return committed.reply;
}

async function commitBlocks(session: TestSession, fh: number, baseVersion: number, content: Uint8Array, release = false): Promise<p.CommitVersionReply> {
  const blocks = await uploadBlocks(session, content);
  const committed = await session.mutate('CommitVersion', {
    fh, baseVersion, written: [], newSize: content.byteLength, policy: p.ConflictPolicy.LWW, release, blockForm: true, blocks,
    writtenExtents: [{ offset: 0, length: content.byteLength }],
  }, 15_000);
  if (committed.error) throw new Error(`CommitVersion: ${committed.error.message}`);
  return committed.reply;
}

async function metricValue(httpAddress: string, name: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddress}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('metadata server members crashing and restarting (3 real processes, --snapshot-entries 20)', () => {
  let cluster: MetaTestCluster;
  /** Kept alive by the test for the whole file. */
  let session: TestSession;
  const inlineText = 'inline content that must survive a crash';
  const blockContent = patternBytes(2 * MiB + 333, 7);
  const files = { inline: 0, block: 0 };
  /** session's fh on the block file, kept open across the crashes. */
  let openFh = 0;

  beforeAll(async () => {
    cluster = await MetaTestCluster.start({
      extraArgs: ['--snapshot-entries', '20', '--snapshot-trailing-entries', '5', '--session-ttl-ms', '2000', '--block-repair-interval-ms', '2000', '--verbose'],
    });
    session = await cluster.openSession({ ttlMs: SESSION_TTL_MS, name: 'survivor', keepAliveEveryMs: 300 });
  }, 30_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  /** Every file reads back byte-exact on `member`, with its history. */
  async function expectFilesIntact(member = cluster.running()[0]): Promise<void> {
    const inline = await readVersion(cluster, member, files.inline, 2);
    expect(inline.bytes.toString()).toBe(inlineText);
    const history = await cluster.call(member, 'ListVersions', { caller: ROOT_CALLER, handle: files.block, fromVersion: 1, limit: 0 });
    expect(history.reply!.versions.slice(0, 3).map((v) => [v.version, v.kind])).toEqual([[1, 'create'], [2, 'fast-forward'], [3, 'fast-forward']]);
    expect((await readVersion(cluster, member, files.block, 3)).bytes.equals(blockContent)).toBe(true);
    expect((await readThroughFh(cluster, member, openFh, session.id)).equals(blockContent)).toBe(true);
  }

  it('all three members SIGKILLed and restarted: every byte, every version and a live session\'s open fh survive, and the cluster serves again', async () => {
    const inline = await createOpen(session, 'small.txt');
    files.inline = inline.handle;
    expect(await commitInline(session, inline.fh, 1, inlineText, true)).toMatchObject({ errno: 0, version: 2 });
    const big = await createOpen(session, 'big.bin');
    files.block = big.handle;
    expect(await commitBlocks(session, big.fh, 1, patternBytes(MiB + 1, 8))).toMatchObject({ errno: 0, version: 2 });
    expect(await commitBlocks(session, big.fh, 2, blockContent)).toMatchObject({ errno: 0, version: 3 });
    openFh = big.fh;
    await expectFilesIntact();

    await Promise.all(cluster.members.map((m) => cluster.kill9(m)));
    expect(cluster.running()).toHaveLength(0);
    await Promise.all(cluster.members.map((m) => cluster.restart(m)));
    await cluster.leader();
    for (const member of cluster.members) {
      // A restarted member serves linearizable reads once it hears from the new leader.
      await cluster.caughtUp(member);
      await expectFilesIntact(member);
    }
    // The session lived through it: its fh commits the next version.
    const next = patternBytes(MiB + 50, 9);
    expect(await commitBlocks(session, openFh, 3, next)).toMatchObject({ errno: 0, kind: 'fast-forward', version: 4 });
    expect((await readThroughFh(cluster, cluster.running()[1], openFh)).equals(next)).toBe(true);
    const made = await session.mutate('Mkdir', { parent: ROOT_HANDLE, name: 'after-restart', mode: 0o755 });
    expect(made.reply).toMatchObject({ errno: 0, sessionError: '' });
    // Back to version 3's bytes for the tests below (a restore, so the history keeps growing by one).
    expect((await session.mutate('RestoreVersion', { handle: files.block, version: 3 })).reply).toMatchObject({ errno: 0, version: 5 });
    expect((await session.mutate('Release', { fh: openFh })).reply?.errno).toBe(0);
    openFh = (await session.mutate('Open', { handle: files.block, read: true, write: true, append: false })).reply!.fh;
  }, 60_000);

  it('a member killed and wiped comes back by a snapshot, serves the same content, and block repair refills its DATA/blocks', async () => {
    const leader = await cluster.leader();
    const victim = (await cluster.followers())[0];
    await cluster.kill9(victim);
    cluster.wipe(victim);
    // Enough entries that the leader's log has been compacted past anything a fresh member could start from.
    for (let i = 0; i < 30; i++) expect((await session.mutate('Mkdir', { parent: ROOT_HANDLE, name: `filler-${i}`, mode: 0o755 })).reply?.errno).toBe(0);
    const referenced = new Set<string>();
    for (const [handle, version] of [[files.block, 2], [files.block, 3], [files.block, 4], [files.block, 5]]) {
      for (const id of (await readVersion(cluster, leader, handle, version)).info.blocks) if (id) referenced.add(id);
    }
    expect(referenced.size).toBeGreaterThanOrEqual(5);
    await cluster.restart(victim);
    await cluster.caughtUp(victim);
    expect(victim.logCounts.get('restored snapshot from leader') ?? 0).toBeGreaterThanOrEqual(1);
    // Metadata reads served by the wiped member (linearizable there too) see everything.
    // The member may still be settling after the snapshot (a read can answer UNAVAILABLE for a moment): ask until it answers.
    const lookup = await eventually('the wiped member answering a read', 10_000, async () => {
      const outcome = await cluster.call(victim, 'Lookup', { caller: ROOT_CALLER, parent: ROOT_HANDLE, name: 'filler-29' });
      return outcome.reply ? outcome : undefined;
    });
    expect(lookup.reply).toMatchObject({ errno: 0, attr: { type: 'dir' } });
    const history = await cluster.call(victim, 'ListVersions', { caller: ROOT_CALLER, handle: files.block, fromVersion: 1, limit: 0 });
    expect(history.reply!.versions.map((v) => v.version)).toEqual([1, 2, 3, 4, 5]);
    // Repair (not a read: none of its block content has been read through it yet) refills DATA/blocks.
    // A repair pass runs right after the snapshot is installed (and every --block-repair-interval-ms).
    await eventually('block repair refilling the wiped member', 45_000, async () => [...referenced].every((id) => cluster.blockIdsOnDisk(victim).has(id)), 250);
    expect(await metricValue(victim.httpAddress!, 'handlefs_blocks_repaired_total')).toBeGreaterThanOrEqual(referenced.size);
    await expectFilesIntact(victim);
    expect((await readVersion(cluster, victim, files.block, 4)).bytes.equals(patternBytes(MiB + 50, 9))).toBe(true);
  }, 80_000);

  it('an fh and its session survive a leader kill: the session is kept alive on the new leader and the same fh commits the next version', async () => {
    const oldLeader = await cluster.leader();
    const opened = await cluster.call(oldLeader, 'Open', { header: session.header(), handle: files.block, read: true, write: true, append: false });
    expect(opened.reply).toMatchObject({ errno: 0, version: 5 });
    const fh = opened.reply!.fh;
    await cluster.kill9(oldLeader);
    const newLeader = await cluster.leader();
    expect(newLeader).not.toBe(oldLeader);
    const failuresBefore = session.keepAliveFailures.filter((f) => /SESSION_EXPIRED/.test(f)).length;
    // Outlive the session's TTL: only keepalives reaching the new leader keep it.
    await sleep(SESSION_TTL_MS + 1_000);
    const kept = await cluster.call(newLeader, 'KeepAlive', { sessionId: session.id });
    expect(kept.reply).toMatchObject({ errno: 0, ttlMs: SESSION_TTL_MS });
    expect(session.keepAliveFailures.filter((f) => /SESSION_EXPIRED/.test(f)).length).toBe(failuresBefore);
    const content = patternBytes(MiB + 77, 10);
    const committed = await commitBlocks(session, fh, 5, content);
    expect(committed).toMatchObject({ errno: 0, kind: 'fast-forward', version: 6, sizeBytes: content.byteLength });
    expect((await readThroughFh(cluster, newLeader, fh, session.id)).equals(content)).toBe(true);
    expect((await session.mutate('Release', { fh })).reply?.errno).toBe(0);
    await cluster.restart(oldLeader);
    await cluster.caughtUp(oldLeader);
  }, 40_000);

  /** Waits for the leader to expire a session, asking with a failing mutation (a KeepAlive would renew it). */
  async function expired(doomed: TestSession): Promise<void> {
    await eventually(`session ${doomed.id} expiring`, 10_000, async () => {
      const probe = await doomed.mutate('Unlink', { parent: ROOT_HANDLE, name: 'no-such-name' }, 2_000);
      return probe.reply?.sessionError === 'SESSION_EXPIRED';
    }, 200);
  }

  it('an expired session\'s fhs are released: the fh answers EBADF and a file unlinked while open is gone', async () => {
    const doomed = await cluster.openSession({ ttlMs: 1_500, name: 'doomed' });
    const created = await doomed.mutate('Create', { parent: ROOT_HANDLE, name: 'doomed.txt', mode: 0o644, exclusive: true });
    const handle = created.reply!.attr!.handle;
    const opened = await doomed.mutate('Open', { handle, read: true, write: true, append: false });
    expect(opened.reply).toMatchObject({ errno: 0, version: 1 });
    const fh = opened.reply!.fh;
    expect(await commitInline(doomed, fh, 1, 'short-lived')).toMatchObject({ errno: 0, version: 2 });
    expect((await session.mutate('Unlink', { parent: ROOT_HANDLE, name: 'doomed.txt' })).reply?.errno).toBe(0);
    const leader = await cluster.leader();
    // Still open: the unlinked file lives on through the fh.
    const before = await cluster.call(leader, 'ReadFh', { fh, offset: 0, length: 100, sessionId: doomed.id });
    expect(before.reply).toMatchObject({ errno: 0 });
    expect(Buffer.from(before.reply!.data).toString()).toBe('short-lived');
    expect((await cluster.call(leader, 'GetAttr', { handle, generation: 0 })).reply).toMatchObject({ errno: 0, attr: { nlink: 0 } });
    await eventually('the fh of the expired session released', 10_000, async () => {
      const read = await cluster.call(leader, 'ReadFh', { fh, offset: 0, length: 1, sessionId: 0 });
      return read.reply?.errno === Errno.EBADF;
    });
    // The handle is gone for good (ESTALE: the handle no longer names a file), on every member.
    for (const member of cluster.running()) {
      expect((await cluster.call(member, 'GetAttr', { handle, generation: 0 })).reply?.errno).toBe(Errno.ESTALE);
      expect((await cluster.call(member, 'ReadFh', { fh, offset: 0, length: 1, sessionId: 0 })).reply?.errno).toBe(Errno.EBADF);
    }
    const late = await doomed.mutate('CommitVersion', { fh, baseVersion: 2, written: [{ offset: 0, data: Buffer.from('x') }], newSize: 11, policy: p.ConflictPolicy.LWW });
    expect(late.reply).toMatchObject({ errno: Errno.ENOTCONN, sessionError: 'SESSION_EXPIRED' });
    // The long-lived session is untouched.
    expect((await session.mutate('Mkdir', { parent: ROOT_HANDLE, name: 'still-here', mode: 0o755 })).reply).toMatchObject({ errno: 0 });
  }, 30_000);

  // Regression: the session record was rewritten from its copy before the command, dropping the fh create added.
  it('an fh opened by Create\'s open flags is released when its session expires', async () => {
    const doomed = await cluster.openSession({ ttlMs: 1_000, name: 'doomed-create-open' });
    const { handle, fh } = await createOpen(doomed, 'doomed-create-open.txt');
    expect((await session.mutate('Unlink', { parent: ROOT_HANDLE, name: 'doomed-create-open.txt' })).reply?.errno).toBe(0);
    const leader = await cluster.leader();
    await expired(doomed);
    await eventually('the fh released with its session', 3_000, async () => (await cluster.call(leader, 'ReadFh', { fh, offset: 0, length: 1, sessionId: 0 })).reply?.errno === Errno.EBADF);
    expect((await cluster.call(leader, 'GetAttr', { handle, generation: 0 })).reply?.errno).toBe(Errno.ESTALE);
  }, 20_000);

  // Regression, last in this file because it stopped members: the same rewrite put a released fh back in the session's
  // list, and the session's expiry then hit a broken invariant in apply on every member.
  it('a session whose fh was released by a commit\'s release flag expires without stopping any member', async () => {
    const doomed = await cluster.openSession({ ttlMs: 1_000, name: 'doomed-commit-release' });
    const created = await doomed.mutate('Create', { parent: ROOT_HANDLE, name: 'doomed-release.txt', mode: 0o644, exclusive: true });
    const opened = await doomed.mutate('Open', { handle: created.reply!.attr!.handle, read: true, write: true, append: false });
    expect(await commitInline(doomed, opened.reply!.fh, 1, 'released by its commit', true)).toMatchObject({ errno: 0, version: 2 });
    // The TTL (1 s) and an expiry round (every 500 ms here) pass; the expiry entry applies on every member.
    await sleep(3_000);
    expect(cluster.running().map((m) => m.id)).toEqual(cluster.members.map((m) => m.id));
    const probe = await doomed.mutate('Unlink', { parent: ROOT_HANDLE, name: 'no-such-name' }, 3_000);
    expect(probe.reply).toMatchObject({ errno: Errno.ENOTCONN, sessionError: 'SESSION_EXPIRED' });
    expect((await session.mutate('Mkdir', { parent: ROOT_HANDLE, name: 'after-expiry', mode: 0o755 }, 3_000)).reply).toMatchObject({ errno: 0 });
  }, 20_000);
});
