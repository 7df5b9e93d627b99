/**
 * fsck --repair's metadata command on the real state machine: damage made
 * behind the machine's back (a wrong nlink, an entry deleted from its
 * directory) is found by a scan, and a repairNamespace command built from the
 * findings makes the next scan clean — the orphan goes with its versions and
 * block references. A fix whose inode moved on since the scan is skipped, and
 * a malformed command changes nothing.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { Errno } from '../rules/errno';
import { Command, MutationBody, encodeCommand } from './commands';
import { Finding } from './fsck-checks';
import { ROOT_HANDLE, direntKey, inodeKey } from './records';
import { Harness, ROOT, TestSession } from './testing';

const HOUR_MS = 3_600_000;
const idOf = (label: string): string => createHash('sha256').update(label).digest('hex');

let h: Harness;
let s: TestSession;
let small: number;
let big: number;
beforeEach(async () => {
  h = await Harness.open();
  s = await h.openSession(ROOT);
  small = (await s.must({ op: 'create', parent: ROOT_HANDLE, name: 'small', mode: 0o644, exclusive: true })).attrs.handle;
  await s.must({ op: 'link', handle: small, newParent: ROOT_HANDLE, newName: 'small-2' });
  const ids = [idOf('p'), idOf('q')];
  await s.must({ op: 'pinBlocks', ids, untilMs: h.nowMs + HOUR_MS });
  const created = await s.must<{ attrs: { handle: number }; open: { fh: number; version: number } }>({
    op: 'create', parent: ROOT_HANDLE, name: 'big', mode: 0o644, exclusive: true, open: { read: true, write: true, append: false },
  });
  big = created.attrs.handle;
  await s.must({
    op: 'commitVersion', fh: created.open.fh, baseVersion: created.open.version, written: [], newSize: 2 << 20, policy: 'lww',
    blocks: ids, writtenExtents: [{ offset: 0, length: 2 << 20 }], release: true,
  } as MutationBody);
});
afterEach(async () => {
  await h.destroy();
});

/** Edits the stopped machine's folder directly, as a bug or a bad disk would. */
async function damage(edit: (db: ClassicLevel<Buffer, Buffer>) => Promise<void>): Promise<void> {
  await h.machine.close();
  const db = new ClassicLevel<Buffer, Buffer>(path.join(h.dir, 'state'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await edit(db);
  await db.close();
  await h.reopen();
}

async function setField(db: ClassicLevel<Buffer, Buffer>, handle: number, changes: Record<string, number>): Promise<void> {
  const inode = JSON.parse((await db.get(inodeKey(handle)))!.toString()) as Record<string, unknown>;
  await db.put(inodeKey(handle), Buffer.from(JSON.stringify({ ...inode, ...changes })));
}

/** What the leader proposes from its scan (metaserver/server/fsck-admin.ts does the same). */
function repairFrom(samples: Finding[]): Command {
  const orphans = samples.filter((f) => f.kind === 'orphan' && f.type !== 'dir' && f.names === 0);
  const collecting = new Set(orphans.map((f) => f.handle));
  return {
    op: 'repairNamespace',
    nowMs: h.nowMs,
    nlink: samples.filter((f) => f.kind === 'nlink' && f.expected !== undefined && !collecting.has(f.handle))
      .map((f) => ({ handle: f.handle!, generation: f.generation!, fromNlink: f.stored!, toNlink: f.expected! })),
    collect: orphans.map((f) => ({ handle: f.handle!, generation: f.generation!, nlink: f.stored! })),
  };
}

const scan = async () => h.machine.scans.scanNow(100);

describe('repairing the namespace from a scan', () => {
  it('sets a wrong nlink back to the entries naming the file', async () => {
    await damage((db) => setField(db, small, { nlink: 5 }));
    const before = await scan();
    expect(before.findings.samples).toEqual([expect.objectContaining({ kind: 'nlink', handle: small, stored: 5, expected: 2 })]);
    const result = await h.apply(repairFrom(before.findings.samples));
    expect(result).toEqual({ ok: true, value: { nlinkFixed: [small], collected: [], skipped: [] } });
    expect((await scan()).findings.samples).toEqual([]);
    const attrs = await h.machine.query.getattr(small);
    expect(attrs.ok && attrs.value.nlink).toBe(2);
  });

  it('collects a file no entry names with its versions and block references', async () => {
    // The entry goes and the directory's count with it, but the inode stays: an orphan with nlink 1.
    await damage(async (db) => {
      await db.del(direntKey(ROOT_HANDLE, 'big'));
      await setField(db, ROOT_HANDLE, { entries: 2 });
    });
    const before = await scan();
    expect(before.findings.counts).toMatchObject({ orphan: 1, nlink: 1 });
    const result = await h.apply(repairFrom(before.findings.samples));
    expect(result).toEqual({ ok: true, value: { nlinkFixed: [], collected: [big], skipped: [] } });
    const after = await scan();
    expect(after.findings.samples).toEqual([]);
    expect(after.findings.stats).toMatchObject({ inodes: 2, referencedBlocks: 0, blockRecords: 2 });
    const attrs = await h.machine.query.getattr(big);
    expect(attrs.ok).toBe(false);
  });

  it('skips a fix whose inode changed since the scan, and repeating a repair changes nothing more', async () => {
    await damage((db) => setField(db, small, { nlink: 5 }));
    const command = repairFrom((await scan()).findings.samples);
    // A new name since the scan: nlink is now 6, and the fix from the scan would lose it.
    await s.must({ op: 'link', handle: small, newParent: ROOT_HANDLE, newName: 'small-3' });
    const result = await h.apply(command);
    expect(result).toEqual({ ok: true, value: { nlinkFixed: [], collected: [], skipped: [expect.stringMatching(/^handle \d+: nlink changed since the check \(5 → 6\)/)] } });
    const fresh = repairFrom((await scan()).findings.samples);
    expect((await h.apply(fresh)).ok).toBe(true);
    expect(await h.apply(fresh)).toEqual({ ok: true, value: { nlinkFixed: [], collected: [], skipped: [expect.stringContaining('nlink changed since the check (6 → 3)')] } });
    expect((await scan()).findings.samples).toEqual([]);
  });

  it('answers a malformed repair command EINVAL and changes nothing', async () => {
    await damage((db) => setField(db, small, { nlink: 5 }));
    const before = await scan();
    const bad = encodeCommand({ op: 'repairNamespace', nowMs: 0, nlink: [], collect: [] });
    const raw = JSON.parse(Buffer.from(bad).toString()) as Record<string, unknown>;
    const result = await h.apply(Buffer.from(JSON.stringify({ ...raw, nlink: [{ handle: small, generation: 1, fromNlink: -1, toNlink: 2 }] })));
    expect(result).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect((await scan()).findings.samples).toEqual(before.findings.samples);
  });
});
