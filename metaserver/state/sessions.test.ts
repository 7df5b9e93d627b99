/**
 * Sessions and the exactly-once rule (Raft thesis §6.3) on a real LevelDB
 * folder: retries answer the stored result and apply nothing, stale and
 * sessionless commands are refused, malformed entries change nothing.
 */
import { Errno } from '../rules/errno';
import { MAX_COMMAND_BYTES, encodeCommand } from './commands';
import { CommandResult, SESSION_EXPIRED_ERRNO } from './meta-state-machine';
import { ROOT_HANDLE } from './records';
import { Harness, ROOT, TestSession } from './testing';

const errnoOf = (r: CommandResult) => (r.ok ? 0 : r.errno);

let h: Harness;
let s: TestSession;
beforeEach(async () => {
  h = await Harness.open();
  s = await h.openSession(ROOT);
});
afterEach(async () => {
  await h.destroy();
});

describe('opening sessions', () => {
  it('gives each session the log index of its openSession entry as id, on every member alike', async () => {
    const applied = await h.machine.appliedIndex();
    const other = await h.openSession(ROOT);
    expect(other.id).toBe(applied + 1);
    expect(other.id).not.toBe(s.id);
    expect(await h.machine.query.sessionIds()).toEqual([s.id, other.id]);
  });
});

describe('a retried command', () => {
  it('answers a retried create with the first answer, never EEXIST, and creates one file', async () => {
    const first = await s.run({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o644, exclusive: true });
    const retry = await s.run({ op: 'create', parent: ROOT_HANDLE, name: 'f', mode: 0o644, exclusive: true }, s.sequence);
    expect(retry).toEqual(first);
    expect(first.ok).toBe(true);
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 2 });
  });

  it('answers a retried rename with success, never ENOENT, and a retried mkdir with the same handle', async () => {
    await s.must({ op: 'create', parent: ROOT_HANDLE, name: 'old', mode: 0o644, exclusive: true });
    const first = await s.run({ op: 'rename', fromParent: ROOT_HANDLE, fromName: 'old', toParent: ROOT_HANDLE, toName: 'new' });
    const retry = await s.run({ op: 'rename', fromParent: ROOT_HANDLE, fromName: 'old', toParent: ROOT_HANDLE, toName: 'new' }, s.sequence);
    expect(first.ok && retry.ok).toBe(true);
    const mkdir = await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 });
    const again = await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 }, s.sequence);
    expect(again).toEqual(mkdir);
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 3 });
  });

  it('keeps a stored failure too: a retried failing unlink answers the same ENOENT without re-running', async () => {
    const first = await s.run({ op: 'unlink', parent: ROOT_HANDLE, name: 'ghost' });
    expect(errnoOf(first)).toBe(Errno.ENOENT);
    // Another client creates the name meanwhile: had the retry re-run, it would now unlink it.
    const other = await h.openSession(ROOT);
    await other.must({ op: 'create', parent: ROOT_HANDLE, name: 'ghost', mode: 0o644, exclusive: true });
    const retry = await s.run({ op: 'unlink', parent: ROOT_HANDLE, name: 'ghost' }, s.sequence);
    expect(retry).toEqual(first);
    expect((await h.machine.query.lookup(ROOT, ROOT_HANDLE, 'ghost')).ok).toBe(true);
  });

  it('is deduplicated inside one apply batch as well (the retry sits in the same Raft batch)', async () => {
    const create = s.command({ op: 'create', parent: ROOT_HANDLE, name: 'twice', mode: 0o644, exclusive: true });
    const [first, retry] = await h.applyBatch([create, create]);
    expect(retry).toEqual(first);
    expect(first.ok).toBe(true);
  });

  it('survives a restart: the dedup record is durable with the state', async () => {
    const first = await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 });
    await h.reopen();
    expect(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 }, s.sequence)).toEqual(first);
  });
});

describe('refused commands', () => {
  it('refuses a sequence below the last one with STALE_SEQUENCE and applies nothing', async () => {
    await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'a', mode: 0o755 });
    await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'b', mode: 0o755 });
    const stale = await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'c', mode: 0o755 }, 1);
    expect(stale).toMatchObject({ ok: false, errno: Errno.EINVAL, session: 'STALE_SEQUENCE' });
    expect(errnoOf(await h.machine.query.lookup(ROOT, ROOT_HANDLE, 'c'))).toBe(Errno.ENOENT);
  });

  it('refuses commands from an unknown, closed or expired session with SESSION_EXPIRED', async () => {
    const stranger = new TestSession(h, 9_999, ROOT);
    expect(await stranger.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'x', mode: 0o755 })).toMatchObject({ ok: false, errno: SESSION_EXPIRED_ERRNO, session: 'SESSION_EXPIRED' });
    expect((await s.run({ op: 'closeSession' })).ok).toBe(true);
    expect(await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'x', mode: 0o755 })).toMatchObject({ session: 'SESSION_EXPIRED' });
    const other = await h.openSession(ROOT);
    expect(await h.apply({ op: 'expireSession', sessionId: other.id, nowMs: h.nowMs })).toEqual({ ok: true, value: { expired: true } });
    expect(await h.apply({ op: 'expireSession', sessionId: other.id, nowMs: h.nowMs })).toEqual({ ok: true, value: { expired: false } });
    expect(await other.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'x', mode: 0o755 })).toMatchObject({ session: 'SESSION_EXPIRED' });
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 1, sessionsOpen: 0 });
  });

  it('answers malformed entries and bad callers with EINVAL, changing nothing, and keeps applying', async () => {
    const before = await h.machine.snapshot();
    const bad = [
      Buffer.from('not json'),
      Buffer.from('{"v":2,"op":"mkdir"}'),
      Buffer.from(JSON.stringify({ v: 1, op: 'explode' })),
      Buffer.from(JSON.stringify({ v: 1, op: 'mkdir', sessionId: s.id, sequence: 50, caller: { uid: -1, gid: 0, groups: [] }, nowMs: 0, parent: 1, name: 'x', mode: 0 })),
      Buffer.alloc(0),
      Buffer.alloc(MAX_COMMAND_BYTES + 1, 0x20),
    ];
    const results = await h.applyBatch(bad);
    for (const r of results) expect(errnoOf(r)).toBe(Errno.EINVAL);
    const after = await h.machine.snapshot();
    expect(Buffer.from(after.data).equals(Buffer.from(before.data))).toBe(true);
    const badGroups = await s.harness.apply(encodeCommand(s.command({ op: 'mkdir', parent: ROOT_HANDLE, name: 'x', mode: 0o755 }, undefined, { uid: 5, gid: 5, groups: [-3] })));
    expect(errnoOf(badGroups)).toBe(Errno.EINVAL);
    expect((await s.run({ op: 'mkdir', parent: ROOT_HANDLE, name: 'ok', mode: 0o755 })).ok).toBe(true);
  });

  it('advances the applied index over Noop entries without a result', async () => {
    const before = await h.machine.appliedIndex();
    await h.noop();
    expect(await h.machine.appliedIndex()).toBe(before + 1);
  });
});

describe('a session with many mutations in flight (the dedup window)', () => {
  const windowed = (sequence: number, firstUnacked: number, name: string) =>
    ({ op: 'create', parent: ROOT_HANDLE, name, mode: 0o644, exclusive: true, sessionId: s.id, sequence, firstUnacked, caller: ROOT, nowMs: h.nowMs }) as const;

  it('applies sequences that arrive out of order and answers each retry with its own result', async () => {
    const [third, first, second] = await h.applyBatch([windowed(3, 1, 'c'), windowed(1, 1, 'a'), windowed(2, 1, 'b')]);
    expect([first.ok, second.ok, third.ok]).toEqual([true, true, true]);
    const retries = await h.applyBatch([windowed(1, 1, 'a'), windowed(2, 1, 'b'), windowed(3, 1, 'c')]);
    expect(retries).toEqual([first, second, third]);
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 4 });
  });

  it('forgets acknowledged results: a sequence below firstUnacked is stale and applies nothing', async () => {
    await h.applyBatch([windowed(1, 1, 'a'), windowed(2, 1, 'b')]);
    await h.apply(windowed(3, 3, 'c'));
    const stale = await h.apply(windowed(2, 2, 'b'));
    expect(stale).toMatchObject({ ok: false, errno: Errno.EINVAL, session: 'STALE_SEQUENCE' });
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 4 });
  });

  it('refuses, without applying or remembering, a mutation beyond 256 unacknowledged results', async () => {
    const batch = Array.from({ length: 256 }, (_, i) => windowed(i + 1, 1, `f${i}`));
    const results = await h.applyBatch(batch);
    expect(results.every((r) => r.ok)).toBe(true);
    const refused = await h.apply(windowed(257, 1, 'over'));
    expect(refused).toMatchObject({ ok: false, errno: Errno.EAGAIN, session: 'WINDOW_FULL' });
    // Acknowledging the first 200 frees room: the same sequence now applies, once.
    const accepted = await h.apply(windowed(257, 201, 'over'));
    expect(accepted.ok).toBe(true);
    expect(await h.apply(windowed(257, 201, 'over'))).toEqual(accepted);
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 258 });
  });

  it('never refuses the oldest unanswered mutation: 256 younger answers are held and it still applies, then frees the window', async () => {
    // Sequence 1 is still on its way (a retry after a leader change) while 2..257 were answered.
    const younger = await h.applyBatch(Array.from({ length: 256 }, (_, i) => windowed(i + 2, 1, `y${i}`)));
    expect(younger.every((r) => r.ok)).toBe(true);
    expect(await h.apply(windowed(258, 1, 'too-young'))).toMatchObject({ session: 'WINDOW_FULL' });
    const oldest = await h.apply(windowed(1, 1, 'oldest'));
    expect(oldest.ok).toBe(true);
    // Its answer acknowledged (firstUnacked 258), the window has room again.
    expect((await h.apply(windowed(258, 258, 'too-young'))).ok).toBe(true);
  });

  it('refuses a firstUnacked above the sequence as a malformed command', async () => {
    const result = await h.apply({ ...windowed(2, 3, 'x') });
    expect(result).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(await h.machine.query.statfs()).toMatchObject({ inodesInUse: 1 });
  });
});
