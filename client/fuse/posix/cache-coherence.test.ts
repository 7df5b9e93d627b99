/**
 * POSIX conformance on a real mount of a 3-member cluster, part 5: what the
 * kernel's attribute cache must never hide, with the mount's default options
 * (no attribute or negative-entry caching: libfuse 2.9 cannot make the kernel
 * drop cached attributes on open, and a cached size outlives a rewrite on
 * another mount or through another name). A mount with --attr-timeout-s > 0
 * trades exactly these guarantees for fewer getattr calls.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useClusterMounts } from './harness';

const fsp = fs.promises;
const m = useClusterMounts('cache', 2);

async function scenario(name: string): Promise<{ a: string; b: string }> {
  await fsp.mkdir(path.join(m.a, name));
  return { a: path.join(m.a, name), b: path.join(m.b, name) };
}

describe('close-to-open between two mounts with cached attributes', () => {
  it('reads the full new content on b after close on a, when b did not look at the file before', async () => {
    const d = await scenario('c2o-cold');
    await fsp.writeFile(path.join(d.a, 'f'), 'short');
    await fsp.writeFile(path.join(d.a, 'f'), 'a much longer second version');
    expect(await fsp.readFile(path.join(d.b, 'f'), 'utf8')).toBe('a much longer second version');
  });

  it('reads the full new content on b after close on a, even when b stat()ed the file just before', async () => {
    const d = await scenario('c2o-stat');
    await fsp.writeFile(path.join(d.a, 'f'), 'short');
    const writer = await fsp.open(path.join(d.a, 'f'), 'w');
    try {
      await writer.write('a much longer second version');
      expect((await fsp.stat(path.join(d.b, 'f'))).size).toBe(5);
    } finally {
      await writer.close();
    }
    expect(await fsp.readFile(path.join(d.b, 'f'), 'utf8')).toBe('a much longer second version');
  });
});

describe('hard links on one mount', () => {
  it('shows a rewrite through one name in full through the other name at once', async () => {
    const d = await scenario('links-content');
    await fsp.writeFile(path.join(d.a, 'one'), 'shared');
    await fsp.link(path.join(d.a, 'one'), path.join(d.a, 'two'));
    expect((await fsp.stat(path.join(d.a, 'two'))).size).toBe(6);
    await fsp.writeFile(path.join(d.a, 'one'), 'changed through one');
    expect(await fsp.readFile(path.join(d.a, 'two'), 'utf8')).toBe('changed through one');
  });

  it('lowers nlink seen through the remaining name at once when the other name is unlinked', async () => {
    const d = await scenario('links-unlink');
    await fsp.writeFile(path.join(d.a, 'one'), 'shared');
    await fsp.link(path.join(d.a, 'one'), path.join(d.a, 'two'));
    expect((await fsp.stat(path.join(d.a, 'two'))).nlink).toBe(2);
    await fsp.unlink(path.join(d.a, 'one'));
    expect((await fsp.stat(path.join(d.a, 'two'))).nlink).toBe(1);
  });

  it('shows the new content through the same name it was rewritten through', async () => {
    const d = await scenario('same-name');
    await fsp.writeFile(path.join(d.a, 'f'), 'shared');
    expect((await fsp.stat(path.join(d.a, 'f'))).size).toBe(6);
    await fsp.writeFile(path.join(d.a, 'f'), 'changed through f');
    expect(await fsp.readFile(path.join(d.a, 'f'), 'utf8')).toBe('changed through f');
  });
});
