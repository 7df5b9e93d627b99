/**
 * The metadata state machine replicated by three in-process RaftNodes (real
 * LevelDB storage, gRPC on loopback): what the leader applies, every member
 * answers through its queries.
 */
import { encodeCommand } from './commands';
import { CommandResult, OpenSessionResult } from './meta-state-machine';
import { OpenResult } from './fh-ops';
import { EntryResult } from './namespace-ops';
import { ROOT_HANDLE } from './records';
import { MetaCluster, ROOT, T0_MS, waitFor } from './testing';

jest.setTimeout(20_000);

let cluster: MetaCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

describe('a three-member cluster', () => {
  it('makes a mkdir, a create and a committed version proposed on the leader visible through queries on every member', async () => {
    cluster = await MetaCluster.start(['m1', 'm2', 'm3']);
    const leader = await cluster.leader();
    const opened = (await leader.propose(encodeCommand({ op: 'openSession', ttlMs: 10_000, clientName: 'test', nowMs: T0_MS }))) as CommandResult;
    if (!opened.ok) throw new Error(opened.message);
    const sessionId = (opened.value as OpenSessionResult).sessionId;
    const header = { sessionId, caller: ROOT, nowMs: T0_MS };
    const mkdir = (await leader.propose(encodeCommand({ ...header, sequence: 1, op: 'mkdir', parent: ROOT_HANDLE, name: 'shared', mode: 0o755 }))) as CommandResult;
    if (!mkdir.ok) throw new Error(mkdir.message);
    const dir = (mkdir.value as EntryResult).attrs.handle;
    const create = (await leader.propose(encodeCommand({ ...header, sequence: 2, op: 'create', parent: dir, name: 'notes.txt', mode: 0o644, exclusive: true }))) as CommandResult;
    if (!create.ok) throw new Error(create.message);
    const created = (create.value as EntryResult).attrs;
    const open = (await leader.propose(encodeCommand({ ...header, sequence: 3, op: 'open', handle: created.handle, read: true, write: true, append: false }))) as CommandResult;
    if (!open.ok) throw new Error(open.message);
    const fh = (open.value as OpenResult).fh;
    const written = [{ offset: 0, dataBase64: Buffer.from('replicated').toString('base64') }];
    const commit = (await leader.propose(encodeCommand({ ...header, sequence: 4, op: 'commitVersion', fh, baseVersion: 1, written, newSize: 10, policy: 'lww' }))) as CommandResult;
    expect(commit).toEqual({ ok: true, value: { kind: 'fast-forward', version: 2, sizeBytes: 10 } });
    const file = { ...created, sizeBytes: 10, headVersion: 2 };
    const appliedOnLeader = leader.status().appliedIndex;

    for (const [id, { node, machine }] of cluster.nodes) {
      // A follower forwards ReadIndex to the leader, so it must have heard from one first.
      await waitFor(`${id} to know the leader`, () => node.status().leaderId !== '');
      await node.readIndex();
      await waitFor(`${id} to apply index ${appliedOnLeader}`, async () => (await machine.appliedIndex()) >= appliedOnLeader);
      const looked = await machine.query.lookup(ROOT, dir, 'notes.txt');
      expect(looked).toEqual({ ok: true, value: file });
      const listing = await machine.query.readdir(ROOT, ROOT_HANDLE, undefined, 10);
      expect(listing.ok && listing.value.entries).toEqual([{ name: 'shared', handle: dir, type: 'dir' }]);
      expect(await machine.query.statfs()).toEqual({ inodesInUse: 3, nextHandle: file.handle + 1, sessionsOpen: 1 });
      const version = await machine.query.readThroughFh(fh);
      expect(version.ok && Buffer.from(version.value.bytes).toString()).toBe('replicated');
    }
  });
});
