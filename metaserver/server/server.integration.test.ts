/**
 * Three real metadata server processes (dist/metaserver/server/server-main.js)
 * on 127.0.0.1: sessions, mutations and reads through gRPC, NOT_LEADER
 * redirects, follower reads, malformed requests, fhs and versions (close-to-open
 * visibility, rebase, REJECT's conflict copy), and exactly-once retries across
 * leader kills. Run `npx tsc -p .` first.
 */
import { spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { ProcessMember } from '../../raft/node/process-cluster';
import { Errno } from '../rules/errno';
import * as p from '../../proto/meta-proto';
import { MetaTestCluster, metaServerMainPath, sleep } from './testing';

const CALL_DEADLINE_MS = 3_000;
const ROOT = 1;
const CALLER: p.Caller = { uid: 0, gid: 0, groups: [] };

describe('a 3-member metadata server cluster of real processes', () => {
  let cluster: MetaTestCluster;
  let sessionId = 0;
  let sequence = 0;
  const header = (seq = ++sequence): p.Header => ({ sessionId, sequence: seq, caller: CALLER });
  const running = (): ProcessMember[] => cluster.running();

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
  }, 30_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('opens a session on the leader, following a redirect from whichever member it asks first', async () => {
    const outcome = await cluster.onLeader('OpenSession', { ttlMs: 0, clientName: 'integration' });
    expect(outcome.error).toBeUndefined();
    expect(outcome.reply!.errno).toBe(0);
    expect(outcome.reply!.ttlMs).toBe(10_000);
    sessionId = outcome.reply!.sessionId;
    expect(sessionId).toBeGreaterThan(0);
    const l = await cluster.leader();
    const keepAlive = await cluster.call(l, 'KeepAlive', { sessionId });
    expect(keepAlive.reply).toMatchObject({ errno: 0, ttlMs: 10_000 });
  }, 15_000);

  it('creates a directory and a file through the leader and reads them back', async () => {
    const l = await cluster.leader();
    const mkdir = await cluster.call(l, 'Mkdir', { header: header(), parent: ROOT, name: 'docs', mode: 0o755 });
    expect(mkdir.reply).toMatchObject({ errno: 0, attr: { type: 'dir', mode: 0o755, nlink: 2 } });
    const dir = mkdir.reply!.attr!.handle;
    const create = await cluster.call(l, 'Create', { header: header(), parent: dir, name: 'a.txt', mode: 0o644, exclusive: true });
    expect(create.reply).toMatchObject({ errno: 0, created: true, attr: { type: 'reg', sizeBytes: 0 } });
    const again = await cluster.call(l, 'Create', { header: header(), parent: dir, name: 'a.txt', mode: 0o644, exclusive: true });
    expect(again.reply).toMatchObject({ errno: Errno.EEXIST, sessionError: '' });
    const listing = await cluster.call(l, 'ReadDir', { caller: CALLER, parent: dir, cookie: '', limit: 0 });
    expect(listing.reply).toMatchObject({ errno: 0, cookie: '', entries: [{ name: 'a.txt', handle: create.reply!.attr!.handle, type: 'reg' }] });
    const attr = await cluster.call(l, 'GetAttr', { handle: create.reply!.attr!.handle, generation: 0 });
    expect(attr.reply!.attr).toEqual(create.reply!.attr);
    const missing = await cluster.call(l, 'Lookup', { caller: CALLER, parent: dir, name: 'nope' });
    expect(missing.reply).toMatchObject({ errno: Errno.ENOENT, attr: null });
  });

  it('a follower answers a mutation with FAILED_PRECONDITION naming the leader\'s client address', async () => {
    const l = await cluster.leader();
    const follower = running().find((m) => m !== l)!;
    const outcome = await cluster.call(follower, 'Mkdir', { header: header(), parent: ROOT, name: 'x', mode: 0o755 });
    expect(outcome.error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(outcome.error!.metadata.get(p.LEADER_ID_METADATA)).toEqual([l.id]);
    expect(outcome.error!.metadata.get(p.LEADER_ADDRESS_METADATA)).toEqual([l.clientAddress]);
    const keepAlive = await cluster.call(follower, 'KeepAlive', { sessionId });
    expect(keepAlive.error?.code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('a follower serves a linearizable read through ReadIndex, seeing the leader\'s last write', async () => {
    const l = await cluster.leader();
    const made = await cluster.call(l, 'Mkdir', { header: header(), parent: ROOT, name: 'fresh', mode: 0o700 });
    expect(made.reply!.errno).toBe(0);
    const follower = running().find((m) => m !== l)!;
    const found = await cluster.call(follower, 'Lookup', { caller: CALLER, parent: ROOT, name: 'fresh' });
    expect(found.reply).toMatchObject({ errno: 0, attr: { handle: made.reply!.attr!.handle } });
    const statfs = await cluster.call(follower, 'StatFs', {});
    expect(statfs.reply).toMatchObject({ errno: 0, sessionsOpen: 1 });
  });

  it('serves its metrics on /metrics: calls by method and code, errno answers, the state\'s sizes, and Raft\'s per-peer lag on the leader', async () => {
    const l = await cluster.leader();
    await cluster.call(l, 'Mkdir', { header: header(), parent: ROOT, name: 'fresh', mode: 0o700 }); // EEXIST by now: an errno answer
    const text = await (await fetch(`http://${l.httpAddress}/metrics`)).text();
    const value = (pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? NaN);
    expect(value(/handlefs_meta_requests_total\{[^}]*method="Mkdir"[^}]*code="OK"[^}]*\} (\d+)/)).toBeGreaterThanOrEqual(2);
    expect(value(/handlefs_meta_request_errno_total\{[^}]*method="Mkdir"[^}]*errno="EEXIST"[^}]*\} (\d+)/)).toBeGreaterThanOrEqual(1);
    expect(value(/handlefs_meta_sessions\{[^}]*\} (\d+)/)).toBeGreaterThanOrEqual(1);
    expect(value(/handlefs_meta_handles\{[^}]*\} (\d+)/)).toBeGreaterThanOrEqual(3);
    expect(text).toMatch(/handlefs_meta_request_duration_seconds_bucket\{/);
    expect(text.match(/handlefs_raft_peer_lag_entries\{[^}]*peer="/g)?.length).toBe(2);
  });

  it('answers malformed requests with INVALID_ARGUMENT and keeps serving', async () => {
    const l = await cluster.leader();
    const garbage = await new Promise<grpc.ServiceError | null>((resolve) => {
      cluster.client(l).makeUnaryRequest('/handlefs.meta.Meta/Create', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0xff, 0xff, 0x01]),
        { deadline: Date.now() + CALL_DEADLINE_MS }, (error) => resolve(error));
    });
    expect(garbage?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const noHeader = await cluster.call(l, 'Create', { parent: ROOT, name: 'n', mode: 0o644 } as p.CreateRequest);
    expect(noHeader.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(noHeader.error!.details).toMatch(/header is missing/);
    const zeroHandle = await cluster.call(l, 'GetAttr', { handle: 0, generation: 0 });
    expect(zeroHandle.error?.details).toMatch(/^handle must be/);
    const badType = await cluster.call(l, 'Mknod', { header: header(), parent: ROOT, name: 'n', fileType: 'dir', mode: 0, rdev: 0 });
    expect(badType.error?.details).toMatch(/file_type "dir"/);
    const huge = await cluster.call(l, 'Mkdir', { header: header(), parent: ROOT, name: 'x'.repeat(10_000), mode: 0 });
    expect(huge.error?.details).toMatch(/^name is 10000 characters/);
    const longName = await cluster.call(l, 'Mkdir', { header: header(), parent: ROOT, name: 'x'.repeat(256), mode: 0 });
    expect(longName.reply?.errno).toBe(Errno.ENAMETOOLONG);
    const stillThere = await cluster.call(l, 'GetAttr', { handle: ROOT, generation: 0 });
    expect(stillThere.reply).toMatchObject({ errno: 0, attr: { type: 'dir' } });
  });

  it('carries every other call of the namespace slice: symlink, setattr, xattrs, link, rename, unlink, rmdir', async () => {
    const l = await cluster.leader();
    const c = l;
    const dir = (await cluster.call(c, 'Mkdir', { header: header(), parent: ROOT, name: 'misc', mode: 0o755 })).reply!.attr!.handle;
    const link = await cluster.call(c, 'Symlink', { header: header(), parent: dir, name: 'l', target: '../docs/a.txt' });
    expect(link.reply).toMatchObject({ errno: 0, attr: { type: 'lnk' } });
    expect((await cluster.call(c, 'ReadLink', { handle: link.reply!.attr!.handle })).reply).toMatchObject({ errno: 0, target: '../docs/a.txt' });
    const file = (await cluster.call(c, 'Create', { header: header(), parent: dir, name: 'f', mode: 0o644, exclusive: false })).reply!.attr!;
    const set = await cluster.call(c, 'SetAttr', { header: header(), handle: file.handle, mode: 0o600, atime: null, mtime: { now: false, ms: 1_000 } });
    expect(set.reply).toMatchObject({ errno: 0, attr: { mode: 0o600, mtimeMs: 1_000, uid: 0 } });
    const value = Buffer.from('blue');
    expect((await cluster.call(c, 'SetXattr', { header: header(), handle: file.handle, name: 'user.color', value, flags: 0 })).reply!.errno).toBe(0);
    expect(Buffer.from((await cluster.call(c, 'GetXattr', { caller: CALLER, handle: file.handle, name: 'user.color' })).reply!.value)).toEqual(value);
    expect((await cluster.call(c, 'ListXattr', { caller: CALLER, handle: file.handle })).reply!.names).toEqual(['user.color']);
    const tooBig = await cluster.call(c, 'SetXattr', { header: header(), handle: file.handle, name: 'user.big', value: Buffer.alloc(65_537), flags: 0 });
    expect(tooBig.reply!.errno).toBe(Errno.E2BIG);
    expect((await cluster.call(c, 'RemoveXattr', { header: header(), handle: file.handle, name: 'user.color' })).reply!.errno).toBe(0);
    expect((await cluster.call(c, 'Link', { header: header(), handle: file.handle, newParent: dir, newName: 'g' })).reply).toMatchObject({ errno: 0, attr: { nlink: 2 } });
    expect((await cluster.call(c, 'Rename', { header: header(), fromParent: dir, fromName: 'g', toParent: ROOT, toName: 'g2', noReplace: false })).reply!.errno).toBe(0);
    expect((await cluster.call(c, 'Unlink', { header: header(), parent: ROOT, name: 'g2' })).reply!.errno).toBe(0);
    expect((await cluster.call(c, 'Rmdir', { header: header(), parent: ROOT, name: 'misc' })).reply!.errno).toBe(Errno.ENOTEMPTY);
    const fifo = await cluster.call(c, 'Mknod', { header: header(), parent: dir, name: 'p', fileType: 'fifo', mode: 0o600, rdev: 0 });
    expect(fifo.reply).toMatchObject({ errno: 0, attr: { type: 'fifo' } });
  });

  it('the leader expires a session that stops keeping alive, and its mutations then answer SESSION_EXPIRED', async () => {
    const opened = await cluster.onLeader('OpenSession', { ttlMs: 300, clientName: 'short-lived' });
    expect(opened.reply).toMatchObject({ errno: 0, ttlMs: 300 });
    const shortId = opened.reply!.sessionId;
    let reply: p.EntryReply | undefined;
    for (let attempt = 0; attempt < 50; attempt++) {
      await sleep(100);
      reply = (await cluster.onLeader('Mkdir', { header: { sessionId: shortId, sequence: attempt + 1, caller: CALLER }, parent: ROOT, name: `s${attempt}`, mode: 0o755 })).reply;
      if (reply?.sessionError) break;
      // Keep the session silent: only the first mkdir may land before expiry.
    }
    expect(reply).toMatchObject({ errno: Errno.ENOTCONN, sessionError: 'SESSION_EXPIRED' });
    const l = await cluster.leader();
    expect((await cluster.call(l, 'KeepAlive', { sessionId: shortId })).reply).toMatchObject({ errno: Errno.ENOTCONN, sessionError: 'SESSION_EXPIRED' });
  }, 10_000);

  // ---- open file handles and versions (two sessions of their own, A and B, with the longest TTL) ----

  const fhSessions = { a: 0, b: 0, seqA: 0, seqB: 0 };
  const hA = (seq = ++fhSessions.seqA): p.Header => ({ sessionId: fhSessions.a, sequence: seq, caller: CALLER });
  const hB = (seq = ++fhSessions.seqB): p.Header => ({ sessionId: fhSessions.b, sequence: seq, caller: CALLER });
  const bytes = (text: string) => Buffer.from(text);
  const text = (data: Uint8Array | undefined) => Buffer.from(data ?? new Uint8Array()).toString();
  let versioned = { handle: 0, fhA: 0, fhB: 0 };

  async function openFh(h: p.Header, handle: number, write: boolean): Promise<p.OpenReply> {
    const opened = await cluster.onLeader('Open', { header: h, handle, read: true, write, append: false });
    expect(opened.error).toBeUndefined();
    return opened.reply!;
  }

  function commit(h: p.Header, fh: number, baseVersion: number, written: Array<[number, string]>, newSize: number, policy: number = p.ConflictPolicy.LWW) {
    const request: p.CommitVersionRequest = { header: h, fh, baseVersion, written: written.map(([offset, data]) => ({ offset, data: bytes(data) })), newSize, policy };
    return cluster.onLeader('CommitVersion', request);
  }

  it('close-to-open: what one session commits through its fh, another session\'s later open reads back on a follower', async () => {
    for (const key of ['a', 'b'] as const) {
      const opened = await cluster.onLeader('OpenSession', { ttlMs: 60_000, clientName: `fh-${key}` });
      expect(opened.reply!.errno).toBe(0);
      fhSessions[key] = opened.reply!.sessionId;
    }
    const created = await cluster.onLeader('Create', { header: hA(), parent: ROOT, name: 'versioned.txt', mode: 0o644, exclusive: true });
    const handle = created.reply!.attr!.handle;
    const fhA = await openFh(hA(), handle, true);
    expect(fhA).toMatchObject({ errno: 0, version: 1, sizeBytes: 0, attr: { handle, type: 'reg' } });
    const committed = await commit(hA(), fhA.fh, 1, [[0, '........']], 8);
    expect(committed.reply).toMatchObject({ errno: 0, kind: 'fast-forward', version: 2, sizeBytes: 8 });
    const fhB = await openFh(hB(), handle, true);
    expect(fhB).toMatchObject({ errno: 0, version: 2, sizeBytes: 8, attr: { sizeBytes: 8 } });
    const l = await cluster.leader();
    const follower = running().find((m) => m !== l)!;
    const read = await cluster.call(follower, 'ReadFh', { fh: fhB.fh, offset: 0, length: 100, sessionId: fhSessions.b });
    expect(read.reply).toMatchObject({ errno: 0, version: 2, sizeBytes: 8 });
    expect(text(read.reply!.data)).toBe('........');
    const part = await cluster.call(follower, 'ReadFh', { fh: fhB.fh, offset: 6, length: 10, sessionId: 0 });
    expect(text(part.reply!.data)).toBe('..');
    const otherSession = await cluster.call(follower, 'ReadFh', { fh: fhB.fh, offset: 0, length: 1, sessionId: fhSessions.a });
    expect(otherSession.reply!.errno).toBe(Errno.EBADF);
    versioned = { handle, fhA: fhA.fh, fhB: fhB.fh };
  });

  it('two sessions committing disjoint ranges both land (the second rebases), and ListVersions pages a gap-free history', async () => {
    const { handle, fhA, fhB } = versioned;
    expect((await commit(hA(), fhA, 2, [[0, 'AA']], 8)).reply).toMatchObject({ errno: 0, kind: 'fast-forward', version: 3 });
    expect((await commit(hB(), fhB, 2, [[6, 'BB']], 8)).reply).toMatchObject({ errno: 0, kind: 'rebase', version: 4, sizeBytes: 8 });
    const l = await cluster.leader();
    const head = await cluster.call(l, 'GetVersion', { caller: CALLER, handle, version: 4 });
    expect(text(head.reply!.content)).toBe('AA....BB');
    expect(head.reply!.info).toMatchObject({ version: 4, kind: 'rebase', baseVersion: 2, sessionId: fhSessions.b, fh: fhB });
    const first = await cluster.call(l, 'ListVersions', { caller: CALLER, handle, fromVersion: 0, limit: 2 });
    expect(first.reply!.versions.map((v) => [v.version, v.kind])).toEqual([[1, 'create'], [2, 'fast-forward']]);
    expect(first.reply!.nextFromVersion).toBe(3);
    const rest = await cluster.call(l, 'ListVersions', { caller: CALLER, handle, fromVersion: 3, limit: 0 });
    expect(rest.reply!.versions.map((v) => [v.version, v.kind])).toEqual([[3, 'fast-forward'], [4, 'rebase']]);
    expect(rest.reply!.nextFromVersion).toBe(0);
    expect((await cluster.call(l, 'GetVersion', { caller: CALLER, handle, version: 9 })).reply!.errno).toBe(Errno.ENOENT);
  });

  it('REJECT answers EBUSY with a readable conflict copy and leaves the head; LWW then wins and marks the old head conflict', async () => {
    const { handle, fhA } = versioned;
    // A's fh is on version 3; B's version 4 changed bytes 6..8 since.
    const rejected = await commit(hA(), fhA, 3, [[6, 'CC']], 8, p.ConflictPolicy.REJECT);
    expect(rejected.reply).toMatchObject({ errno: Errno.EBUSY, sessionError: '', conflictCopy: 1, headVersion: 4, kind: '' });
    const l = await cluster.leader();
    const copy = await cluster.call(l, 'GetConflictCopy', { caller: CALLER, handle, copy: 1 });
    expect(copy.reply).toMatchObject({ errno: 0, info: { copy: 1, baseVersion: 3, lostToVersion: 4, sizeBytes: 8, fh: fhA } });
    expect(text(copy.reply!.content)).toBe('AA....CC');
    expect((await cluster.call(l, 'GetAttr', { handle, generation: 0 })).reply!.attr!.sizeBytes).toBe(8);
    const won = await commit(hA(), fhA, 3, [[6, 'DD']], 8);
    expect(won.reply).toMatchObject({ errno: 0, kind: 'conflict-lww', version: 5, conflictVersion: 4 });
    const old = await cluster.call(l, 'GetVersion', { caller: CALLER, handle, version: 4 });
    expect(old.reply!.info).toMatchObject({ conflict: true, lostToVersion: 5 });
    const nothing = await commit(hA(), fhA, 5, [], 8);
    expect(nothing.reply).toMatchObject({ errno: 0, kind: 'no-change', version: 5 });
  });

  it('answers malformed fh and version requests with INVALID_ARGUMENT naming the field, and oversized content with EFBIG', async () => {
    const { handle, fhA } = versioned;
    const l = await cluster.leader();
    const c = l;
    const noHeader = await cluster.call(c, 'Open', { handle, read: true } as p.OpenRequest);
    expect(noHeader.error?.details).toMatch(/^header is missing/);
    const zeroFh = await cluster.call(c, 'ReadFh', { fh: 0, offset: 0, length: 1, sessionId: 0 });
    expect(zeroFh.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(zeroFh.error!.details).toMatch(/^fh must be/);
    const longRead = await cluster.call(c, 'ReadFh', { fh: fhA, offset: 0, length: 5 * 1024 * 1024, sessionId: 0 });
    expect(longRead.error?.details).toMatch(/^length must be/);
    const negative = await cluster.call(c, 'CommitVersion', { header: hA(), fh: fhA, baseVersion: 5, written: [{ offset: -1, data: bytes('x') }], newSize: 8, policy: 0 });
    expect(negative.error?.details).toMatch(/^written\[0\]\.offset must be/);
    const empty = await cluster.call(c, 'CommitVersion', { header: hA(), fh: fhA, baseVersion: 5, written: [{ offset: 0, data: new Uint8Array() }], newSize: 8, policy: 0 });
    expect(empty.error?.details).toMatch(/^written\[0\]\.data is empty/);
    const policy = await cluster.call(c, 'CommitVersion', { header: hA(), fh: fhA, baseVersion: 5, written: [], newSize: 8, policy: 7 });
    expect(policy.error?.details).toMatch(/^policy 7/);
    const zeroVersion = await cluster.call(c, 'GetVersion', { caller: CALLER, handle, version: 0 });
    expect(zeroVersion.error?.details).toMatch(/^version must be/);
    const tooMuch = await cluster.call(c, 'CommitVersion', { header: hA(), fh: fhA, baseVersion: 5, written: [{ offset: 0, data: Buffer.alloc(4_097) }], newSize: 4_097, policy: 0 });
    expect(tooMuch.reply).toMatchObject({ errno: Errno.EFBIG, version: 0 });
    const tooLarge = await cluster.call(c, 'CommitVersion', { header: hA(), fh: fhA, baseVersion: 5, written: [], newSize: 5_000, policy: 0 });
    expect(tooLarge.reply).toMatchObject({ errno: Errno.EFBIG, sessionError: '' });
    const notOpen = await cluster.call(c, 'ReadFh', { fh: 999_999, offset: 0, length: 1, sessionId: 0 });
    expect(notOpen.reply!.errno).toBe(Errno.EBADF);
  });

  it('after kill -9 of the leader, a retried CommitVersion with the same (session, sequence) returns the original answer and makes one version', async () => {
    const { handle, fhA, fhB } = versioned;
    const l = await cluster.leader();
    const retryHeader = hA();
    const first = await commit(retryHeader, fhA, 5, [[0, 'ZZ']], 8);
    expect(first.reply).toMatchObject({ errno: 0, kind: 'fast-forward', version: 6 });
    await cluster.kill9(l);
    const retried = await commit(retryHeader, fhA, 5, [[0, 'ZZ']], 8);
    expect(retried.error).toBeUndefined();
    expect(retried.reply).toEqual(first.reply);
    const released = await cluster.onLeader('Release', { header: hB(), fh: fhB });
    expect(released.reply).toMatchObject({ errno: 0 });
    const survivor = running()[0];
    const history = await cluster.call(survivor, 'ListVersions', { caller: CALLER, handle, fromVersion: 1, limit: 0 });
    expect(history.reply!.versions.map((v) => v.version)).toEqual([1, 2, 3, 4, 5, 6]);
    const read = await cluster.call(survivor, 'ReadFh', { fh: fhA, offset: 0, length: 8, sessionId: fhSessions.a });
    expect(text(read.reply!.data)).toBe('ZZ....DD');
    expect((await cluster.call(survivor, 'ReadFh', { fh: fhB, offset: 0, length: 8, sessionId: 0 })).reply!.errno).toBe(Errno.EBADF);
    // Bring the member back so the tests below still have three; the main session gets a fresh TTL on the new leader.
    await cluster.restart(l);
    const kept = await cluster.onLeader('KeepAlive', { sessionId });
    expect(kept.reply).toMatchObject({ errno: 0 });
  }, 20_000);

  it('after kill -9 of the leader, a retried create with the same (session, sequence) returns the original answer', async () => {
    const l = await cluster.leader();
    const retrySequence = ++sequence;
    const request: p.CreateRequest = { header: header(retrySequence), parent: ROOT, name: 'once', mode: 0o600, exclusive: true };
    const first = await cluster.call(l, 'Create', request);
    expect(first.reply).toMatchObject({ errno: 0, created: true });
    await cluster.kill9(l);
    const retried = await cluster.onLeader('Create', request);
    expect(retried.error).toBeUndefined();
    expect(retried.reply).toMatchObject({ errno: 0, created: true, attr: { handle: first.reply!.attr!.handle } });
    // The session survived the change of leader: the new leader gave it a full TTL.
    const next = await cluster.onLeader('Create', { ...request, header: header() });
    expect(next.reply).toMatchObject({ errno: Errno.EEXIST, sessionError: '' });
  }, 20_000);

  it('a member killed earlier restarts with its data; SIGTERM on the leader then hands over and exits 0, and the cluster keeps committing', async () => {
    const dead = cluster.members.find((m) => !m.child)!;
    await cluster.restart(dead);
    const l = await cluster.leader();
    expect(await cluster.terminate(l)).toBe(0);
    const made = await cluster.onLeader('Mkdir', { header: header(), parent: ROOT, name: 'after-sigterm', mode: 0o755 });
    expect(made.reply).toMatchObject({ errno: 0, sessionError: '' });
    for (const member of running()) {
      const seen = await cluster.call(member, 'Lookup', { caller: CALLER, parent: ROOT, name: 'once' });
      expect(seen.reply).toMatchObject({ errno: 0, attr: { type: 'reg' } });
    }
  }, 20_000);

  it('a bad command line exits with code 2 and names the flag', () => {
    const result = spawnSync(process.execPath, [metaServerMainPath(), '--id', 'm1'], { encoding: 'utf8', timeout: 10_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/--listen is required/);
  });
});
