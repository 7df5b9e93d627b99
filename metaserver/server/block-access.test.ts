/**
 * A member's block side against its real state machine and block store on
 * disk: collected blocks' files go when the collection applies, and the
 * orphan sweep deletes only old files the state has no record of.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { silentLogger } from '../../raft/node/node-logger';
import { blockIdOf } from '../blocks/block-store';
import { Harness, ROOT, TestSession } from '../state/testing';
import { BlockAccess, ORPHAN_AGE_MS } from './block-access';

let h: Harness;
let s: TestSession;
let access: BlockAccess;
let blocksDir: string;

beforeEach(async () => {
  h = await Harness.open();
  s = await h.openSession(ROOT);
  blocksDir = path.join(h.dir, 'blocks');
  const store = await BlockAccess.openStoreFor(h.machine, blocksDir);
  access = BlockAccess.create({ store, selfId: 'm1', peers: new Map(), machine: h.machine, logger: silentLogger, registry: new Registry() });
});
afterEach(async () => {
  await access.stop();
  await h.destroy();
});

async function stored(label: string, ageMs = 0): Promise<string> {
  const bytes = Buffer.from(label);
  const id = blockIdOf(bytes);
  await access.store.put(id, bytes);
  if (ageMs > 0) {
    const file = path.join(blocksDir, id.slice(0, 2), id.slice(2, 4), id);
    const when = new Date(Date.now() - ageMs);
    fs.utimesSync(file, when, when);
  }
  return id;
}

describe('a member\'s block store beside its state', () => {
  it('deletes a block\'s file once a collection of it applies', async () => {
    const id = await stored('collected');
    await s.must({ op: 'pinBlocks', ids: [id], untilMs: h.nowMs });
    h.nowMs += 1;
    expect(await h.apply({ op: 'collectBlocks', ids: [id], nowMs: h.nowMs, graceMs: 0 })).toMatchObject({ ok: true, value: { collected: [id] } });
    expect(await access.store.has(id)).toBe(false);
  });

  it('sweeps old orphans only: a young file and one the state knows stay', async () => {
    const orphan = await stored('orphan', ORPHAN_AGE_MS + 60_000);
    const young = await stored('young', 1_000);
    const known = await stored('known', ORPHAN_AGE_MS + 60_000);
    await s.must({ op: 'pinBlocks', ids: [known], untilMs: h.nowMs + 1_000 });
    expect(await access.sweepOrphans()).toBe(1);
    expect(await access.store.has(orphan)).toBe(false);
    expect(await access.store.has(young)).toBe(true);
    expect(await access.store.has(known)).toBe(true);
  });
});
