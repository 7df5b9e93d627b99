/**
 * fsck scans on the real state machine: a state built by real commands (hard
 * links, an unlinked file still open, block content) scans clean; a scan
 * asked for an index inside a later batch sees exactly the state at that
 * index (the batch is cut there), and its digest equals that of a machine that
 * applied the same entries one by one; an index already passed, or never
 * reached in time, is refused; one changed record changes the digest.
 */
import { createHash } from 'node:crypto';
import { ClassicLevel } from 'classic-level';
import * as path from 'node:path';
import { Command, MutationBody } from './commands';
import { ROOT_HANDLE, inodeKey } from './records';
import { Harness, ROOT, TestSession } from './testing';
import { ScanPassedError, ScanTimeoutError } from './state-scan';

const HOUR_MS = 3_600_000;
const idOf = (label: string): string => createHash('sha256').update(label).digest('hex');

const harnesses: Harness[] = [];
async function open(): Promise<Harness> {
  const h = await Harness.open();
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.destroy();
});

/** A small tree: /d, /d/f (hard-linked as /g), /big in blocks, /gone unlinked while open. */
async function buildTree(s: TestSession): Promise<void> {
  const d = await s.must({ op: 'mkdir', parent: ROOT_HANDLE, name: 'd', mode: 0o755 });
  const f = await s.must({ op: 'create', parent: d.attrs.handle, name: 'f', mode: 0o644, exclusive: true });
  await s.must({ op: 'link', handle: f.attrs.handle, newParent: ROOT_HANDLE, newName: 'g' });
  const ids = [idOf('x'), idOf('y')];
  await s.must({ op: 'pinBlocks', ids, untilMs: s.harness.nowMs + HOUR_MS });
  const big = await s.must<{ attrs: { handle: number }; open: { fh: number; version: number } }>({
    op: 'create', parent: ROOT_HANDLE, name: 'big', mode: 0o644, exclusive: true, open: { read: true, write: true, append: false },
  });
  await s.must({
    op: 'commitVersion', fh: big.open.fh, baseVersion: big.open.version, written: [], newSize: 2 << 20, policy: 'lww',
    blocks: ids, writtenExtents: [{ offset: 0, length: 2 << 20 }],
  } as MutationBody);
  await s.must({ op: 'create', parent: ROOT_HANDLE, name: 'gone', mode: 0o644, exclusive: true, open: { read: true, write: false, append: false } });
  await s.must({ op: 'unlink', parent: ROOT_HANDLE, name: 'gone' });
}

describe('scanning the state at an applied index', () => {
  it('finds a state built by real commands clean, and counts what it holds', async () => {
    const h = await open();
    await buildTree(await h.openSession(ROOT));
    const index = await h.machine.appliedIndex();
    const scan = await h.machine.scans.scanAt(index, 1_000, 10);
    expect(scan.findings.samples).toEqual([]);
    expect(scan.index).toBe(index);
    expect(scan.digestHex).toMatch(/^[0-9a-f]{64}$/);
    expect(scan.findings.stats).toMatchObject({ inodes: 5, entries: 4, fhs: 2, referencedBlocks: 2 });
  });

  it('cuts a later batch at the asked index, and the digest equals a machine that stopped there', async () => {
    const one = await open();
    const other = await open();
    const s1 = await one.openSession(ROOT);
    const s2 = await other.openSession(ROOT);
    await buildTree(s1);
    await buildTree(s2);
    const base = await one.machine.appliedIndex();
    const names = ['a', 'b', 'c', 'e', 'h'];
    const batch = (s: TestSession): Command[] => names.map((name) => s.command({ op: 'mkdir', parent: ROOT_HANDLE, name, mode: 0o755 }));
    // `one` applies five entries in one batch while a scan waits for the third.
    const pending = one.machine.scans.scanAt(base + 3, 5_000, 10);
    await one.applyBatch(batch(s1));
    const cut = await pending;
    expect(cut.index).toBe(base + 3);
    expect(await one.machine.appliedIndex()).toBe(base + 5);
    // `other` applies the same entries one at a time and is scanned at the same index.
    const commands = batch(s2);
    for (const command of commands.slice(0, 3)) await other.apply(command);
    const stopped = await other.machine.scans.scanAt(base + 3, 1_000, 10);
    expect(stopped.digestHex).toBe(cut.digestHex);
    expect(stopped.keys).toBe(cut.keys);
    // Past that index the two differ from the scan (two more directories).
    const later = await one.machine.scans.scanAt(base + 5, 1_000, 10);
    expect(later.digestHex).not.toBe(cut.digestHex);
    expect(later.findings.stats.inodes).toBe(cut.findings.stats.inodes + 2);
  });

  it('refuses an index already passed, and one not reached in time', async () => {
    const h = await open();
    await buildTree(await h.openSession(ROOT));
    const index = await h.machine.appliedIndex();
    await expect(h.machine.scans.scanAt(index - 1, 1_000, 10)).rejects.toBeInstanceOf(ScanPassedError);
    await expect(h.machine.scans.scanAt(index + 1, 50, 10)).rejects.toBeInstanceOf(ScanTimeoutError);
  });

  it('gives a different digest when one record of the folder was changed behind the machine', async () => {
    const h = await open();
    await buildTree(await h.openSession(ROOT));
    const index = await h.machine.appliedIndex();
    const before = await h.machine.scans.scanAt(index, 1_000, 10);
    await h.machine.close();
    const db = new ClassicLevel<Buffer, Buffer>(path.join(h.dir, 'state'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const inode = JSON.parse((await db.get(inodeKey(ROOT_HANDLE)))!.toString()) as { mode: number };
    await db.put(inodeKey(ROOT_HANDLE), Buffer.from(JSON.stringify({ ...inode, mode: 0o700 })));
    await db.close();
    await h.reopen();
    const after = await h.machine.scans.scanAt(index, 1_000, 10);
    expect(after.index).toBe(index);
    expect(after.digestHex).not.toBe(before.digestHex);
    expect(after.findings.samples).toEqual([]); // a changed mode breaks no rule: only the digest sees it
  });
});
