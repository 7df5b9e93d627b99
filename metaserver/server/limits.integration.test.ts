/**
 * Server limits through three real metadata server processes: a read-only
 * cluster answers every change EROFS yet serves reads and lets sessions
 * close; an inode quota answers creates ENOSPC, deletes still work; StatFs
 * reports the limits. Run `npx tsc -p .` first (the members run dist/).
 */
import { Errno } from '../rules/errno';
import { MetaTestCluster, ROOT_HANDLE } from './testing';

describe('a read-only cluster (--read-only)', () => {
  let cluster: MetaTestCluster;
  beforeAll(async () => {
    cluster = await MetaTestCluster.start({ extraArgs: ['--read-only'] });
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('answers creates, setattr and uploads EROFS, changes nothing, and still serves reads and session close', async () => {
    const session = await cluster.openSession();
    expect((await session.mutate('Mkdir', { parent: ROOT_HANDLE, name: 'd', mode: 0o755 })).reply).toMatchObject({ errno: Errno.EROFS });
    expect((await session.mutate('SetAttr', { handle: ROOT_HANDLE, mode: 0o700, atime: null, mtime: null })).reply).toMatchObject({ errno: Errno.EROFS });
    expect((await session.mutate('PutBlock', { data: Buffer.from('x'), id: '' })).reply).toMatchObject({ errno: Errno.EROFS });
    const listed = await cluster.onLeader('ReadDir', { caller: { uid: 0, gid: 0, groups: [] }, parent: ROOT_HANDLE, cookie: '', limit: 0 });
    expect(listed.reply).toMatchObject({ errno: 0, entries: [] });
    const statfs = await cluster.onLeader('StatFs', {});
    expect(statfs.reply).toMatchObject({ errno: 0, readOnly: true, inodesInUse: 1 });
    expect((await session.mutate('CloseSession', {})).reply).toMatchObject({ errno: 0 });
  }, 30_000);
});

describe('an inode quota (--max-inodes 3)', () => {
  let cluster: MetaTestCluster;
  beforeAll(async () => {
    cluster = await MetaTestCluster.start({ extraArgs: ['--max-inodes', '3'] });
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('answers the create past the quota ENOSPC, and lets a delete make room again', async () => {
    const session = await cluster.openSession();
    for (const name of ['a', 'b']) expect((await session.mutate('Mkdir', { parent: ROOT_HANDLE, name, mode: 0o755 })).reply).toMatchObject({ errno: 0 });
    // The root and two directories: three inodes. The usage is read at most a second ago.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const refused = await session.mutate('Mkdir', { parent: ROOT_HANDLE, name: 'c', mode: 0o755 });
    expect(refused.reply).toMatchObject({ errno: Errno.ENOSPC });
    expect(refused.reply!.message).toMatch(/--max-inodes 3/);
    expect((await cluster.onLeader('StatFs', {})).reply).toMatchObject({ maxInodes: 3, inodesInUse: 3 });
    expect((await session.mutate('Rmdir', { parent: ROOT_HANDLE, name: 'a' })).reply).toMatchObject({ errno: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await session.mutate('Mkdir', { parent: ROOT_HANDLE, name: 'c', mode: 0o755 })).reply).toMatchObject({ errno: 0 });
  }, 30_000);
});
