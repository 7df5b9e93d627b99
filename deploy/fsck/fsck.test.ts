/**
 * `handlefs fsck` as an operator runs it (node bin/handlefs.js) against a
 * live three-member cluster of real processes: clean after work through the
 * SDK (inline and block files, hard links, versions, an unlinked file still
 * open); a block file deleted from two members' DATA/blocks is reported and
 * `--repair` copies it back from the third; a member whose LevelDB state was
 * changed while it was stopped is named by the digest comparison; an
 * unreachable cluster and bad usage exit non-zero. Run `npx tsc -p .` first.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { MetaClient } from '../../client/sdk';
import { MetaTestCluster, eventually, patternBytes } from '../../metaserver/server/testing';
import { freePort } from '../../raft/node/process-cluster';
import { WriteLoad, handlefs } from '../ops/testing';
import type { FsckReport } from './fsck-report';

const ROOT_HANDLE = 1;
/** records.ts's keys: an inode is 0x10 + big-endian u64 handle; a directory entry 0x20 + parent + the name's UTF-8. */
const inodeKeyOf = (handle: number): Buffer => {
  const key = Buffer.alloc(9);
  key[0] = 0x10;
  key.writeBigUInt64BE(BigInt(handle), 1);
  return key;
};
const direntKeyOf = (parent: number, name: string): Buffer => {
  const key = inodeKeyOf(parent);
  key[0] = 0x20;
  return Buffer.concat([key, Buffer.from(name, 'utf8')]);
};
const DAY_MS = 86_400_000;

describe('handlefs fsck on a live three-member cluster', () => {
  let cluster: MetaTestCluster;
  let client: MetaClient;
  let servers: string;
  let bigBlocks: string[];

  const fsckJson = async (...extra: string[]): Promise<{ code: number; report: FsckReport; stderr: string }> => {
    const run = await handlefs(['fsck', '--servers', servers, '--json', ...extra]);
    if (run.stdout === '') throw new Error(`fsck printed nothing (exit ${run.code}): ${run.stderr}`);
    return { code: run.code, report: JSON.parse(run.stdout) as FsckReport, stderr: run.stderr };
  };

  beforeAll(async () => {
    // No background block repair: the test wants to see what fsck alone finds and fixes.
    cluster = await MetaTestCluster.start({ extraArgs: ['--block-repair-interval-ms', String(DAY_MS)] });
    servers = cluster.members.map((m) => m.clientAddress).join(',');
    client = await MetaClient.connect({ servers: cluster.members.map((m) => m.clientAddress), deadlineMs: 20_000 });
    const dir = await client.mkdir(ROOT_HANDLE, 'docs', 0o755);
    await client.writeFile('/docs/small.txt', Buffer.from('inline content'));
    await client.writeFile('/docs/small.txt', Buffer.from('inline content, version 3'));
    await client.writeFile('/big.bin', patternBytes((2 << 20) + 12_345, 7));
    await client.writeFile('/big.bin', patternBytes((2 << 20) + 12_345, 8)); // a second version in blocks
    const small = await client.lookup(dir.handle, 'small.txt');
    await client.link(small.handle, ROOT_HANDLE, 'small-link.txt');
    // Unlinked while open: legal, and not an orphan while the fh holds it.
    const held = await client.create(ROOT_HANDLE, 'held.tmp', 0o644, { exclusive: true, open: { read: true, write: true, append: false } });
    expect(held.opened).toBeDefined();
    await client.unlink(ROOT_HANDLE, 'held.tmp');
    await client.writeFile('/orphan-to-be.txt', Buffer.from('soon nameless'));
    const onLeader = cluster.blockIdsOnDisk(await cluster.leader());
    bigBlocks = [...onLeader];
    expect(bigBlocks.length).toBeGreaterThanOrEqual(6);
    // The client stores its blocks on every member; wait until each holds them all.
    await eventually('every member holding every block', 10_000, async () => cluster.members.every((m) => bigBlocks.every((id) => cluster.blockIdsOnDisk(m).has(id))));
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await cluster?.destroy();
  });

  it('reports a cluster after ordinary work as clean, with equal digests, exit 0', async () => {
    const run = await handlefs(['fsck', '--servers', servers]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^fsck of 3 members at applied index \d+ \(leader m\d\)$/m);
    expect(run.stdout).toContain('digests equal on all 3 members');
    expect(run.stdout).toContain('nlink, orphans, dangling entries, block reference counts: ok');
    expect(run.stdout).toContain('every checked block is on a majority');
    expect(run.stdout.trimEnd().split('\n').pop()).toBe('result: clean');
    // Progress goes to stderr, never stdout.
    expect(run.stderr).toMatch(/fsck: scanning state: 3\/3 members scanned/);

    const { code, report } = await fsckJson();
    expect(code).toBe(0);
    expect(report.clean).toBe(true);
    expect(report.digests.equal).toBe(true);
    expect(new Set(report.members.map((m) => m.digest)).size).toBe(1);
    expect(report.namespace).toMatchObject({ inodes: 6, fhs: 1, incomplete: false, counts: {} });
    expect(report.blocks.checked).toBe(report.blocks.referenced);
    expect(report.blocks.referenced).toBe(bigBlocks.length);
  }, 60_000);

  it('compares digests at one applied index while a write load keeps every member applying', async () => {
    const load = await WriteLoad.start(cluster.members.map((m) => m.clientAddress), 'load');
    try {
      await load.writeMore(20, 15_000);
      const { code, report, stderr } = await fsckJson();
      expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
      expect(report.digests.equal).toBe(true);
      expect(report.members.every((m) => m.digest === report.digests.reference)).toBe(true);
      await load.writeMore(5, 15_000); // the load went on through the check
    } finally {
      await load.stop();
    }
    expect(load.failures).toEqual([]);
  }, 60_000);

  it('reports a block deleted from two members, and --repair copies it back from the third', async () => {
    const [keeper, ...losers] = cluster.members;
    const id = bigBlocks[0];
    for (const member of losers) fs.rmSync(path.join(member.dataDir, 'blocks', id.slice(0, 2), id.slice(2, 4), id));
    expect(losers.every((m) => !cluster.blockIdsOnDisk(m).has(id))).toBe(true);

    const found = await fsckJson();
    expect(found.code).toBe(1);
    expect(found.report.clean).toBe(false);
    expect(found.report.blocks).toMatchObject({ underReplicated: 1, lost: 0 });
    expect(found.report.blocks.samples).toEqual([{ id, holders: [keeper.id], lacking: losers.map((m) => m.id) }]);
    const human = await handlefs(['fsck', '--servers', servers]);
    expect(human.code).toBe(1);
    expect(human.stdout).toContain(`${id}: held by ${keeper.id}, missing on ${losers.map((m) => m.id).join(', ')}`);
    expect(human.stdout.trimEnd().split('\n').pop()).toBe('result: 1 problem remains');

    const repaired = await fsckJson('--repair');
    expect(repaired.report.repair).toMatchObject({ requested: true, blocksRepaired: 1, blocksFailed: 0, notRepaired: [] });
    expect(repaired.code).toBe(0);
    expect(losers.every((m) => cluster.blockIdsOnDisk(m).has(id))).toBe(true);
    expect((await fsckJson()).code).toBe(0);
  }, 60_000);

  it('reports a wrong nlink and an orphan made on every member alike, and --repair fixes both through the leader', async () => {
    const small = await client.lookup((await client.lookup(ROOT_HANDLE, 'docs')).handle, 'small.txt');
    const orphan = await client.lookup(ROOT_HANDLE, 'orphan-to-be.txt');
    for (const member of cluster.members) await cluster.caughtUp(member);
    for (const member of await cluster.followers()) expect(await cluster.terminate(member)).toBe(0);
    expect(await cluster.terminate(await cluster.leader())).toBe(0);
    // The same damage on every member (the states are equal, so the bytes stay equal): digests agree, the rules do not.
    for (const member of cluster.members) {
      const db = new ClassicLevel<Buffer, Buffer>(path.join(member.dataDir, 'state'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      const edit = async (handle: number, change: (inode: Record<string, number>) => void): Promise<void> => {
        const key = inodeKeyOf(handle);
        const inode = JSON.parse((await db.get(key))!.toString()) as Record<string, number>;
        change(inode);
        await db.put(key, Buffer.from(JSON.stringify(inode)));
      };
      await edit(small.handle, (inode) => { inode.nlink = 4; });
      await db.del(direntKeyOf(ROOT_HANDLE, 'orphan-to-be.txt'));
      await edit(ROOT_HANDLE, (inode) => { inode.entries -= 1; });
      await db.close();
    }
    for (const member of cluster.members) await cluster.restart(member);
    await cluster.leader();

    const found = await fsckJson();
    expect(found.code).toBe(1);
    expect(found.report.digests.equal).toBe(true);
    expect(found.report.namespace.counts).toEqual({ nlink: 2, orphan: 1 });
    expect(found.report.namespace.samples).toEqual(expect.arrayContaining([
      expect.objectContaining({ kind: 'nlink', subject: `handle ${small.handle}`, detail: 'reg nlink is 4, named by 2 entries' }),
      expect.objectContaining({ kind: 'orphan', subject: `handle ${orphan.handle}` }),
    ]));

    const repaired = await fsckJson('--repair');
    expect(repaired.report.repair).toMatchObject({ nlinkFixed: 1, orphansCollected: 1, skipped: [], notRepaired: [] });
    expect(repaired.code).toBe(0);
    expect(repaired.report.namespace.counts).toEqual({});
    expect((await client.getattr(small.handle)).nlink).toBe(2);
    expect((await fsckJson()).code).toBe(0);
  }, 60_000);

  it('names the member whose state differs at the same applied index', async () => {
    const follower = (await cluster.followers())[0];
    expect(await cluster.terminate(follower)).toBe(0);
    const db = new ClassicLevel<Buffer, Buffer>(path.join(follower.dataDir, 'state'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    // A stray record the other members do not have: nothing reads it, so the member runs on as before.
    await db.put(Buffer.from([0x30, 0, 0, 0, 0, 0, 0, 0, 1, ...Buffer.from('user.tampered')]), Buffer.from('x'));
    await db.close();
    await cluster.restart(follower);
    await cluster.caughtUp(follower);
    await client.writeFile('/after-restart.txt', Buffer.from('more work'));

    const { code, report } = await fsckJson();
    expect(code).toBe(1);
    expect(report.digests.equal).toBe(false);
    expect(report.digests.differing.map((d) => d.id)).toEqual([follower.id]);
    expect(report.digests.agreeing).toHaveLength(2);
    const human = await handlefs(['fsck', '--servers', servers]);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(new RegExp(`DIGESTS DIFFER: ${follower.id} differs from m\\d, m\\d at index \\d+`));
    expect(human.stdout).toMatch(new RegExp(`^  ${follower.id} at \\S+: [0-9a-f]{16}… \\(\\d+ keys\\)  DIFFERS from the majority$`, 'm'));
  }, 60_000);
});

describe('handlefs fsck refusals', () => {
  it('exits 3 naming every address when no server answers', async () => {
    const addresses = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const run = await handlefs(['fsck', '--servers', addresses.join(',')]);
    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^handlefs fsck: the cluster is unreachable: no server answered/);
    for (const address of addresses) expect(run.stderr).toContain(address);
  }, 30_000);

  it('exits 2 on bad usage before calling anything', async () => {
    const missing = await handlefs(['fsck'], { HANDLEFS_SERVERS: '' });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--servers HOST:PORT,... is required');
    const bad = await handlefs(['fsck', '--servers', 'nohost', '--repair']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--servers: .*nohost/);
    const unknown = await handlefs(['fsck', '--servers', '127.0.0.1:1', '--fix']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown option --fix');
    const samples = await handlefs(['fsck', '--servers', '127.0.0.1:1', '--samples', '-1']);
    expect(samples.code).toBe(2);
    const noCa = await handlefs(['fsck', '--servers', '127.0.0.1:1', '--tls-ca', '/nonexistent/ca.pem']);
    expect(noCa.code).toBe(2);
    expect(noCa.stderr).toContain('/nonexistent/ca.pem');
  }, 30_000);
});
