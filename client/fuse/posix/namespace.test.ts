/**
 * POSIX conformance on a real mount of a 3-member cluster, part 2: the
 * namespace. Every rename case, hard links and nlink counts, symlinks and
 * ELOOP, mkdir/rmdir errors, mkfifo and mknod, user.* xattrs and the
 * read-only handlefs xattrs. Results are checked from a second mount too, so
 * nothing passes only because one mount cached it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectErrno, py, q, useClusterMounts } from './harness';

const fsp = fs.promises;
const m = useClusterMounts('ns', 2);

/** A fresh folder for one scenario, with its path on both mounts. */
async function scenario(name: string): Promise<{ a: string; b: string }> {
  await fsp.mkdir(path.join(m.a, name));
  return { a: path.join(m.a, name), b: path.join(m.b, name) };
}

describe('rename', () => {
  it('replaces an existing file: the target name now holds the source content, the source name is gone', async () => {
    const d = await scenario('rename-over-file');
    await fsp.writeFile(path.join(d.a, 'src'), 'source');
    await fsp.writeFile(path.join(d.a, 'dst'), 'target');
    const srcIno = (await fsp.stat(path.join(d.a, 'src'))).ino;
    await fsp.rename(path.join(d.a, 'src'), path.join(d.a, 'dst'));
    expect(await fsp.readFile(path.join(d.b, 'dst'), 'utf8')).toBe('source');
    expect((await fsp.stat(path.join(d.b, 'dst'))).ino).toBe(srcIno);
    expect((await fsp.readdir(d.b)).sort()).toEqual(['dst']);
  });

  it('replaces an empty directory with a directory, and refuses a non-empty one with ENOTEMPTY', async () => {
    const d = await scenario('rename-over-dir');
    await fsp.mkdir(path.join(d.a, 'src'));
    await fsp.writeFile(path.join(d.a, 'src', 'inside'), 'x');
    await fsp.mkdir(path.join(d.a, 'empty'));
    await fsp.rename(path.join(d.a, 'src'), path.join(d.a, 'empty'));
    expect(await fsp.readFile(path.join(d.b, 'empty', 'inside'), 'utf8')).toBe('x');
    await fsp.mkdir(path.join(d.a, 'other'));
    await fsp.mkdir(path.join(d.a, 'full'));
    await fsp.writeFile(path.join(d.a, 'full', 'keep'), 'k');
    await expectErrno(fsp.rename(path.join(d.a, 'other'), path.join(d.a, 'full')), 'ENOTEMPTY');
    expect(await fsp.readFile(path.join(d.b, 'full', 'keep'), 'utf8')).toBe('k');
    expect((await fsp.readdir(d.b)).sort()).toEqual(['empty', 'full', 'other']);
  });

  it('refuses to move a directory into its own subtree with EINVAL', async () => {
    const d = await scenario('rename-subtree');
    await fsp.mkdir(path.join(d.a, 'top', 'mid', 'low'), { recursive: true });
    await expectErrno(fsp.rename(path.join(d.a, 'top'), path.join(d.a, 'top', 'mid', 'low', 'top')), 'EINVAL');
    await expectErrno(fsp.rename(path.join(d.a, 'top'), path.join(d.a, 'top', 'child')), 'EINVAL');
    expect(await fsp.readdir(path.join(d.b, 'top', 'mid'))).toEqual(['low']);
  });

  it('moves a file and a directory tree across directories', async () => {
    const d = await scenario('rename-across');
    await fsp.mkdir(path.join(d.a, 'one', 'tree', 'deep'), { recursive: true });
    await fsp.mkdir(path.join(d.a, 'two'));
    await fsp.writeFile(path.join(d.a, 'one', 'tree', 'deep', 'f'), 'deep file');
    await fsp.writeFile(path.join(d.a, 'one', 'file'), 'plain');
    await fsp.rename(path.join(d.a, 'one', 'file'), path.join(d.a, 'two', 'moved'));
    await fsp.rename(path.join(d.a, 'one', 'tree'), path.join(d.a, 'two', 'tree'));
    expect(await fsp.readdir(path.join(d.b, 'one'))).toEqual([]);
    expect((await fsp.readdir(path.join(d.b, 'two'))).sort()).toEqual(['moved', 'tree']);
    expect(await fsp.readFile(path.join(d.b, 'two', 'tree', 'deep', 'f'), 'utf8')).toBe('deep file');
    expect(await fsp.readFile(path.join(d.a, 'two', 'moved'), 'utf8')).toBe('plain');
    // The moved directory's ".." is its new parent: nlink of the old parent drops, the new one's rises.
    expect((await fsp.stat(path.join(d.b, 'one'))).nlink).toBe(2);
    expect((await fsp.stat(path.join(d.b, 'two'))).nlink).toBe(3);
  });

  it('refuses a file over a directory with EISDIR and a directory over a file with ENOTDIR', async () => {
    const d = await scenario('rename-types');
    await fsp.writeFile(path.join(d.a, 'file'), 'f');
    await fsp.mkdir(path.join(d.a, 'dir'));
    await expectErrno(fsp.rename(path.join(d.a, 'file'), path.join(d.a, 'dir')), 'EISDIR');
    await expectErrno(fsp.rename(path.join(d.a, 'dir'), path.join(d.a, 'file')), 'ENOTDIR');
    expect((await fsp.readdir(d.b)).sort()).toEqual(['dir', 'file']);
  });

  it('does nothing when a name is renamed onto itself or onto a hard link of the same file', async () => {
    const d = await scenario('rename-same');
    await fsp.writeFile(path.join(d.a, 'f'), 'same');
    await fsp.rename(path.join(d.a, 'f'), path.join(d.a, 'f'));
    await fsp.link(path.join(d.a, 'f'), path.join(d.a, 'g'));
    await fsp.rename(path.join(d.a, 'f'), path.join(d.a, 'g'));
    expect((await fsp.readdir(d.b)).sort()).toEqual(['f', 'g']);
    expect((await fsp.stat(path.join(d.b, 'g'))).nlink).toBe(2);
  });

  it('answers ENOENT for a missing source and leaves the target alone', async () => {
    const d = await scenario('rename-missing');
    await fsp.writeFile(path.join(d.a, 'dst'), 'stay');
    await expectErrno(fsp.rename(path.join(d.a, 'nope'), path.join(d.a, 'dst')), 'ENOENT');
    expect(await fsp.readFile(path.join(d.b, 'dst'), 'utf8')).toBe('stay');
  });
});

describe('renameat2 flags', () => {
  /** renameat2(2) through ctypes (python's os.rename cannot pass flags); prints 'OK' or the errno name. */
  const renameat2 = (from: string, to: string, flags: number): string => [
    'import ctypes',
    'libc = ctypes.CDLL(None, use_errno=True)',
    `r = libc.renameat2(-100, ${q(from)}.encode(), -100, ${q(to)}.encode(), ${flags})`,
    "out('OK' if r == 0 else errno.errorcode[ctypes.get_errno()])",
  ].join('\n');
  const RENAME_NOREPLACE = 1;

  it('answers EEXIST to RENAME_NOREPLACE onto an existing name and replaces nothing', async () => {
    const d = await scenario('noreplace-existing');
    await fsp.writeFile(path.join(d.a, 's'), 's');
    await fsp.writeFile(path.join(d.a, 't'), 't');
    expect(await py(renameat2(path.join(d.a, 's'), path.join(d.a, 't'), RENAME_NOREPLACE))).toEqual(['EEXIST']);
    expect(await fsp.readFile(path.join(d.b, 't'), 'utf8')).toBe('t');
  });

  // Not a bug but a limit: fuse-native (libfuse 2.9) has no rename2 operation, so the kernel answers EINVAL
  // ("flags not supported by the filesystem", renameat2(2)) to a RENAME_NOREPLACE onto a free name; tools
  // (coreutils mv -n) fall back. This pins that nothing moves.
  it('answers EINVAL to RENAME_NOREPLACE onto a free name (no rename2 in libfuse 2.9) and moves nothing', async () => {
    const d = await scenario('noreplace-free');
    await fsp.writeFile(path.join(d.a, 's'), 's');
    expect(await py(renameat2(path.join(d.a, 's'), path.join(d.a, 'u'), RENAME_NOREPLACE))).toEqual(['EINVAL']);
    expect(await fsp.readdir(d.b)).toEqual(['s']);
  });
});

describe('hard links and unlink', () => {
  it('counts links: link raises nlink on every name, unlink lowers it, the content lives until the last name goes', async () => {
    const d = await scenario('links');
    const first = path.join(d.a, 'first');
    await fsp.writeFile(first, 'shared');
    expect((await fsp.stat(first)).nlink).toBe(1);
    await fsp.link(first, path.join(d.a, 'second'));
    await fsp.mkdir(path.join(d.a, 'sub'));
    await fsp.link(first, path.join(d.a, 'sub', 'third'));
    for (const name of ['first', 'second', 'sub/third']) expect((await fsp.stat(path.join(d.b, name))).nlink).toBe(3);
    expect((await fsp.stat(path.join(d.b, 'second'))).ino).toBe((await fsp.stat(path.join(d.b, 'first'))).ino);
    await fsp.unlink(first);
    await fsp.unlink(path.join(d.a, 'second'));
    // The servers' count is right once the kernels' cached attributes (attr_timeout 1 s) expire; see cache-coherence.test.ts.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await fsp.stat(path.join(d.b, 'sub', 'third'))).nlink).toBe(1);
    expect((await fsp.stat(path.join(d.a, 'sub', 'third'))).nlink).toBe(1);
    expect(await fsp.readFile(path.join(d.a, 'sub', 'third'), 'utf8')).toBe('shared');
  });

  it('refuses to hard-link a directory (EPERM), onto an existing name (EEXIST), and unlink of a directory (EISDIR)', async () => {
    const d = await scenario('link-errors');
    await fsp.mkdir(path.join(d.a, 'dir'));
    await fsp.writeFile(path.join(d.a, 'f'), 'f');
    await fsp.writeFile(path.join(d.a, 'g'), 'g');
    await expectErrno(fsp.link(path.join(d.a, 'dir'), path.join(d.a, 'dirlink')), 'EPERM');
    await expectErrno(fsp.link(path.join(d.a, 'f'), path.join(d.a, 'g')), 'EEXIST');
    await expectErrno(fsp.unlink(path.join(d.a, 'dir')), 'EISDIR');
    await expectErrno(fsp.unlink(path.join(d.a, 'missing')), 'ENOENT');
  });
});

describe('symlinks', () => {
  it('stores the target text as given, follows relative and absolute targets, and lstat shows the link', async () => {
    const d = await scenario('symlinks');
    await fsp.writeFile(path.join(d.a, 'target'), 'pointed at');
    await fsp.symlink('target', path.join(d.a, 'rel'));
    await fsp.symlink(path.join(d.b, 'target'), path.join(d.a, 'abs'));
    await fsp.symlink('does/not/exist', path.join(d.a, 'dangling'));
    expect(await fsp.readlink(path.join(d.b, 'rel'))).toBe('target');
    expect(await fsp.readlink(path.join(d.b, 'dangling'))).toBe('does/not/exist');
    expect(await fsp.readFile(path.join(d.b, 'rel'), 'utf8')).toBe('pointed at');
    expect(await fsp.readFile(path.join(d.b, 'abs'), 'utf8')).toBe('pointed at');
    const l = await fsp.lstat(path.join(d.b, 'rel'));
    expect(l.isSymbolicLink()).toBe(true);
    expect(l.size).toBe('target'.length);
    await expectErrno(fsp.stat(path.join(d.b, 'dangling')), 'ENOENT');
    await expectErrno(fsp.readlink(path.join(d.b, 'target')), 'EINVAL');
    await expectErrno(fsp.symlink('x', path.join(d.a, 'rel')), 'EEXIST');
  });

  it('answers ELOOP for a loop of two symlinks and for a link to itself', async () => {
    const d = await scenario('symlink-loop');
    await fsp.symlink('ping', path.join(d.a, 'pong'));
    await fsp.symlink('pong', path.join(d.a, 'ping'));
    await fsp.symlink('self', path.join(d.a, 'self'));
    await expectErrno(fsp.readFile(path.join(d.b, 'ping')), 'ELOOP');
    await expectErrno(fsp.stat(path.join(d.b, 'self')), 'ELOOP');
    await expectErrno(fsp.writeFile(path.join(d.a, 'pong'), 'x'), 'ELOOP');
  });
});

describe('mkdir and rmdir', () => {
  it('refuses mkdir of an existing name (EEXIST), rmdir of a non-empty directory (ENOTEMPTY) or a file (ENOTDIR)', async () => {
    const d = await scenario('dirs');
    await fsp.mkdir(path.join(d.a, 'x'));
    await expectErrno(fsp.mkdir(path.join(d.a, 'x')), 'EEXIST');
    await fsp.writeFile(path.join(d.a, 'x', 'f'), 'f');
    await expectErrno(fsp.rmdir(path.join(d.a, 'x')), 'ENOTEMPTY');
    await expectErrno(fsp.rmdir(path.join(d.a, 'x', 'f')), 'ENOTDIR');
    await expectErrno(fsp.mkdir(path.join(d.a, 'x', 'f', 'below')), 'ENOTDIR');
    await expectErrno(fsp.mkdir(path.join(d.a, 'missing', 'below')), 'ENOENT');
    await expectErrno(fsp.rmdir(path.join(d.a, 'missing')), 'ENOENT');
    await fsp.unlink(path.join(d.a, 'x', 'f'));
    await fsp.rmdir(path.join(d.a, 'x'));
    expect(await fsp.readdir(d.b)).toEqual([]);
  });

  it('counts a directory\'s links: 2 plus one per subdirectory', async () => {
    const d = await scenario('dir-nlink');
    expect((await fsp.stat(d.a)).nlink).toBe(2);
    await fsp.mkdir(path.join(d.a, 's1'));
    await fsp.mkdir(path.join(d.a, 's2'));
    await fsp.writeFile(path.join(d.a, 'file'), '');
    expect((await fsp.stat(d.b)).nlink).toBe(4);
    await fsp.rmdir(path.join(d.a, 's1'));
    // Mount a did the rmdir (its kernel drops the cached attributes); b may serve its cached ones for attr_timeout.
    expect((await fsp.stat(d.a)).nlink).toBe(3);
  });

  it('applies the mode given to mkdir, less the caller\'s umask', async () => {
    const d = await scenario('dir-mode');
    const [mode] = await py(`os.umask(0o022)\nos.mkdir(${q(path.join(d.a, 'm'))}, 0o777)\nout(stat.S_IMODE(os.stat(${q(path.join(d.b, 'm'))}).st_mode))`);
    expect(mode).toBe(0o755);
  });
});

describe('special files', () => {
  it('makes a FIFO with mkfifo that both mounts see as a FIFO with its mode', async () => {
    const d = await scenario('fifo');
    const [mode] = await py(`os.umask(0)\nos.mkfifo(${q(path.join(d.a, 'pipe'))}, 0o640)\nst = os.stat(${q(path.join(d.b, 'pipe'))})\nout([stat.S_ISFIFO(st.st_mode), stat.S_IMODE(st.st_mode)])`);
    expect(mode).toEqual([true, 0o640]);
  });

  it('makes a character device with mknod as root, keeping its device number', async () => {
    const d = await scenario('chr');
    const dev = path.join(d.a, 'null-like');
    const [res] = await py(`os.mknod(${q(dev)}, 0o600 | stat.S_IFCHR, os.makedev(1, 3))\nst = os.stat(${q(path.join(d.b, 'null-like'))})\nout([stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode)])`);
    expect(res).toEqual([true, 1, 3, 0o600]);
  });

  it('refuses mknod of a character device by a non-root user with EPERM', async () => {
    const d = await scenario('chr-user');
    await fsp.chmod(d.a, 0o777);
    const [res] = await py(`out(E(os.mknod, ${q(path.join(d.a, 'dev'))}, 0o600 | stat.S_IFCHR, os.makedev(1, 3)))`, { uid: 1234 });
    expect(res).toBe('EPERM');
  });
});

describe('extended attributes', () => {
  it('sets, gets, lists and removes user.* attributes, seen from the other mount', async () => {
    const d = await scenario('xattr');
    const fa = path.join(d.a, 'f');
    const fb = path.join(d.b, 'f');
    await fsp.writeFile(fa, 'x');
    const res = await py([
      `os.setxattr(${q(fa)}, 'user.colour', b'blue')`,
      `os.setxattr(${q(fa)}, 'user.bin', bytes(range(256)))`,
      `out(os.getxattr(${q(fb)}, 'user.colour').decode())`,
      `out(os.getxattr(${q(fb)}, 'user.bin') == bytes(range(256)))`,
      `out(sorted(os.listxattr(${q(fb)})))`,
      `os.setxattr(${q(fa)}, 'user.colour', b'red')`,
      `out(os.getxattr(${q(fb)}, 'user.colour').decode())`,
      `os.removexattr(${q(fa)}, 'user.colour')`,
      `out(E(os.getxattr, ${q(fb)}, 'user.colour'))`,
      `out(E(os.removexattr, ${q(fa)}, 'user.colour'))`,
    ].join('\n'));
    expect(res).toEqual(['blue', true, ['user.bin', 'user.colour', 'user.handlefs.handle', 'user.handlefs.version'], 'red', 'ENODATA', 'ENODATA']);
  });

  it('honours XATTR_CREATE (EEXIST) and XATTR_REPLACE (ENODATA)', async () => {
    const d = await scenario('xattr-flags');
    const f = path.join(d.a, 'f');
    await fsp.writeFile(f, 'x');
    const res = await py([
      `out(E(os.setxattr, ${q(f)}, 'user.k', b'1', os.XATTR_REPLACE))`,
      `out(E(os.setxattr, ${q(f)}, 'user.k', b'1', os.XATTR_CREATE))`,
      `out(E(os.setxattr, ${q(f)}, 'user.k', b'2', os.XATTR_CREATE))`,
      `out(E(os.setxattr, ${q(f)}, 'user.k', b'3', os.XATTR_REPLACE))`,
      `out(os.getxattr(${q(f)}, 'user.k').decode())`,
    ].join('\n'));
    expect(res).toEqual(['ENODATA', 'OK', 'EEXIST', 'OK', '3']);
  });

  it('answers ENODATA for a missing attribute and EPERM to setting or removing user.handlefs.*', async () => {
    const d = await scenario('xattr-ro');
    const f = path.join(d.a, 'f');
    await fsp.writeFile(f, 'one');
    await fsp.writeFile(f, 'two');
    const res = await py([
      `out(E(os.getxattr, ${q(f)}, 'user.nothing'))`,
      `out(os.getxattr(${q(f)}, 'user.handlefs.version').decode())`,
      `out(os.getxattr(${q(f)}, 'user.handlefs.handle').decode() == str(os.stat(${q(f)}).st_ino))`,
      `out(E(os.setxattr, ${q(f)}, 'user.handlefs.version', b'1'))`,
      `out(E(os.setxattr, ${q(f)}, 'user.handlefs.handle', b'1'))`,
      `out(E(os.removexattr, ${q(f)}, 'user.handlefs.version'))`,
    ].join('\n'));
    // create = version 1, each close with writes one more.
    expect(res).toEqual(['ENODATA', '3', true, 'EPERM', 'EPERM', 'EPERM']);
  });

  it('keeps user.* attributes on directories and symlinks\' targets too', async () => {
    const d = await scenario('xattr-dir');
    const res = await py([
      `os.setxattr(${q(d.a)}, 'user.dir', b'yes')`,
      `out(os.getxattr(${q(d.b)}, 'user.dir').decode())`,
    ].join('\n'));
    expect(res).toEqual(['yes']);
  });
});
