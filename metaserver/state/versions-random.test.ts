/**
 * Seeded random traffic of opens, commits (both policies, O_APPEND, shrinks),
 * truncations, releases, unlinks and session expiry over a few files, fed to
 * two machines in different batch sizes: both must end in byte-identical
 * snapshots, and every file's history must stay gap-free with sizes, heads
 * and fh counts agreeing.
 */
import { seededRandom } from '../../raft/core/config';
import { INLINE_LIMIT_BYTES } from '../rules/commit';
import { Command, MutationBody } from './commands';
import { OpenResult } from './fh-ops';
import { CommandResult } from './meta-state-machine';
import { ROOT_HANDLE } from './records';
import { Harness, ROOT, TestSession } from './testing';

const SEEDS = [1, 2, 3];
const STEPS = 300;
const FILES = 3;
const APPLY_BATCH_ENTRIES = 7;

let machines: Harness[] = [];
afterEach(async () => {
  for (const m of machines.splice(0)) await m.destroy();
});

interface OpenFh {
  fh: number;
  session: TestSession;
  version: number;
  size: number;
  append: boolean;
}

/** Drives `h` one command at a time (so it can follow fh ids and versions) and records every command. */
async function randomTraffic(h: Harness, seed: number): Promise<{ log: Command[]; files: number[] }> {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const log: Command[] = [];
  let sessions = [await h.openSession(ROOT), await h.openSession(ROOT)];
  log.push({ op: 'openSession', ttlMs: 10_000, clientName: 'test', nowMs: h.nowMs }, { op: 'openSession', ttlMs: 10_000, clientName: 'test', nowMs: h.nowMs });
  const run = async (session: TestSession, body: MutationBody): Promise<CommandResult> => {
    const command = session.command(body);
    log.push(command);
    return h.apply(command);
  };
  const files: number[] = [];
  for (let i = 0; i < FILES; i++) {
    const r = await run(sessions[0], { op: 'create', parent: ROOT_HANDLE, name: `f${i}`, mode: 0o644, exclusive: true });
    if (!r.ok) throw new Error(r.message);
    files.push((r.value as { attrs: { handle: number } }).attrs.handle);
  }
  let fhs: OpenFh[] = [];
  for (let step = 0; step < STEPS; step++) {
    h.nowMs += 1 + Math.floor(random() * 1000);
    const roll = random();
    if (roll < 0.2 || fhs.length === 0) {
      const session = pick(sessions);
      const append = random() < 0.25;
      const r = await run(session, { op: 'open', handle: pick(files), read: true, write: true, append });
      if (r.ok) {
        const o = r.value as OpenResult;
        fhs.push({ fh: o.fh, session, version: o.version, size: o.sizeBytes, append });
      }
    } else if (roll < 0.8) {
      const fh = pick(fhs);
      const grow = Math.floor(random() * 64);
      const newSize = fh.append ? fh.size + grow : Math.min(INLINE_LIMIT_BYTES, Math.floor(random() * 200));
      const offset = fh.append ? fh.size : Math.floor(random() * Math.max(1, newSize));
      const length = fh.append ? grow : Math.min(newSize - offset, Math.floor(random() * 40));
      const written = length > 0 ? [{ offset, dataBase64: Buffer.from(String.fromCharCode(97 + step % 26).repeat(length)).toString('base64') }] : [];
      const r = await run(fh.session, { op: 'commitVersion', fh: fh.fh, baseVersion: fh.version, written, newSize, policy: random() < 0.5 ? 'lww' : 'reject' });
      if (r.ok) {
        const value = r.value as { version: number; sizeBytes: number };
        fh.version = value.version;
        fh.size = value.sizeBytes;
      }
    } else if (roll < 0.88) {
      const fh = pick(fhs);
      await run(fh.session, { op: 'release', fh: fh.fh });
      fhs = fhs.filter((f) => f !== fh);
    } else if (roll < 0.93) {
      await run(pick(sessions), { op: 'setattr', handle: pick(files), sizeBytes: Math.floor(random() * 100) });
    } else if (roll < 0.97) {
      // Unlink a file and make a new one in its place: an open fh keeps the old one alive.
      const i = Math.floor(random() * files.length);
      await run(sessions[0], { op: 'unlink', parent: ROOT_HANDLE, name: `f${i}` });
      const r = await run(sessions[0], { op: 'create', parent: ROOT_HANDLE, name: `f${i}`, mode: 0o644, exclusive: true });
      if (r.ok) files[i] = (r.value as { attrs: { handle: number } }).attrs.handle;
    } else {
      const doomed = sessions[1];
      const expire: Command = { op: 'expireSession', sessionId: doomed.id, nowMs: h.nowMs };
      log.push(expire);
      await h.apply(expire);
      fhs = fhs.filter((f) => f.session !== doomed);
      const fresh: Command = { op: 'openSession', ttlMs: 10_000, clientName: 'test', nowMs: h.nowMs };
      log.push(fresh);
      sessions = [sessions[0], await h.openSession(ROOT)];
    }
  }
  return { log, files };
}

describe('random version traffic', () => {
  it.each(SEEDS)('keeps histories gap-free and consistent, and replays byte-identically in other batch sizes (seed %i)', async (seed) => {
    const driven = await Harness.open();
    machines.push(driven);
    const { log, files } = await randomTraffic(driven, seed);
    for (const file of files) {
      const attrs = await driven.machine.query.getattr(file);
      if (!attrs.ok || attrs.value.headVersion === undefined) throw new Error(`file ${file} has no head`);
      const listed = await driven.machine.query.listVersions(ROOT, file);
      if (!listed.ok) throw new Error(listed.message);
      expect(listed.value.map((v) => v.version)).toEqual(Array.from({ length: attrs.value.headVersion }, (_, i) => i + 1));
      expect(listed.value[listed.value.length - 1].sizeBytes).toBe(attrs.value.sizeBytes);
      for (const v of listed.value) {
        const got = await driven.machine.query.getVersion(ROOT, file, v.version);
        expect(got.ok && got.value.bytes.length).toBe(v.sizeBytes);
        if (v.conflict) expect(v.lostToVersion).toBe(v.version + 1);
      }
    }
    const replayed = await Harness.open();
    machines.push(replayed);
    for (let i = 0; i < log.length; i += APPLY_BATCH_ENTRIES) await replayed.applyBatch(log.slice(i, i + APPLY_BATCH_ENTRIES));
    expect(await replayed.machine.appliedIndex()).toBe(await driven.machine.appliedIndex());
    expect(Buffer.from((await replayed.machine.snapshot()).data).equals(Buffer.from((await driven.machine.snapshot()).data))).toBe(true);
  });
});
