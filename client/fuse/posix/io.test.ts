/**
 * POSIX conformance on a real mount of a 3-member cluster, part 1: open flags,
 * reads and writes at offsets, holes, truncate up and down (path and fd),
 * files crossing the 4096-byte inline limit both ways, an unlinked file used
 * through its descriptor, 255/256-byte names, statfs. Driven from this process
 * with fs.promises (the mount runs in its own process, from dist/).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { patternBytes } from '../../../metaserver/server/testing';
import { expectErrno, py, q, useClusterMounts } from './harness';

const fsp = fs.promises;
const C = fs.constants;
const MiB = 1024 * 1024;
const m = useClusterMounts('io', 2);

describe('open flags on a handlefs mount', () => {
  it('refuses O_CREAT|O_EXCL on an existing file with EEXIST and leaves its content alone', async () => {
    const file = path.join(m.a, 'excl.txt');
    await fsp.writeFile(file, 'original');
    await expectErrno(fsp.open(file, C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o644), 'EEXIST');
    await expectErrno(fsp.open(path.join(m.b, 'excl.txt'), C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o644), 'EEXIST');
    const fresh = await fsp.open(path.join(m.a, 'excl-new.txt'), C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o644);
    await fresh.close();
    expect(await fsp.readFile(file, 'utf8')).toBe('original');
  });

  it('empties a file opened with O_TRUNC, whether or not anything is written afterwards', async () => {
    const file = path.join(m.a, 'trunc.txt');
    await fsp.writeFile(file, 'hello world, a long first version');
    const h1 = await fsp.open(file, C.O_WRONLY | C.O_TRUNC);
    expect((await h1.stat()).size).toBe(0);
    await h1.write('hi');
    await h1.close();
    expect(await fsp.readFile(path.join(m.b, 'trunc.txt'), 'utf8')).toBe('hi');
    const h2 = await fsp.open(file, C.O_RDWR | C.O_TRUNC);
    await h2.close();
    // Close-to-open: an open on the other mount sees the emptied file (a plain stat there may be up to the 1 s attribute cache old).
    const h3 = await fsp.open(path.join(m.b, 'trunc.txt'), 'r');
    try {
      expect((await h3.stat()).size).toBe(0);
    } finally {
      await h3.close();
    }
    expect(await fsp.readFile(file, 'utf8')).toBe('');
  });

  /** Two O_APPEND descriptors of one mount writing in turns; returns what the other mount reads after both close. */
  async function interleavedAppends(name: string): Promise<{ seen: string; expected: string }> {
    const file = path.join(m.a, name);
    await fsp.writeFile(file, 'start\n');
    const first = await fsp.open(file, 'a');
    const second = await fsp.open(file, 'a');
    let expected = 'start\n';
    for (let i = 0; i < 10; i++) {
      await first.write(`A${i}\n`);
      await second.write(`B${i}\n`);
      expected += `A${i}\nB${i}\n`;
    }
    await first.close();
    await second.close();
    return { seen: await fsp.readFile(path.join(m.b, name), 'utf8'), expected };
  }

  it('loses no O_APPEND write of two descriptors interleaving on one file', async () => {
    const { seen, expected } = await interleavedAppends('append-all.log');
    expect(seen.length).toBe(expected.length);
    expect(seen.split('\n').sort()).toEqual(expected.split('\n').sort());
  });

  it('puts O_APPEND writes of two descriptors of one mount in the order they were written', async () => {
    const { seen, expected } = await interleavedAppends('append-order.log');
    expect(seen).toBe(expected);
  });

  it('keeps O_APPEND writes of two mounts: each lands at the end of what the other closed', async () => {
    const name = 'append-two-mounts.log';
    await fsp.writeFile(path.join(m.a, name), '');
    for (let i = 0; i < 3; i++) {
      await fsp.appendFile(path.join(m.a, name), `a${i}\n`);
      await fsp.appendFile(path.join(m.b, name), `b${i}\n`);
    }
    expect(await fsp.readFile(path.join(m.a, name), 'utf8')).toBe('a0\nb0\na1\nb1\na2\nb2\n');
  });

  it('leaves exactly the last close\'s bytes when a shorter O_TRUNC rewrite races a longer one from another mount (lww)', async () => {
    // A chaos run found the longer write's tail surviving past the shorter one's end.
    const name = 'rewrite-race.txt';
    await fsp.writeFile(path.join(m.a, name), '0123456789');
    const longer = await fsp.open(path.join(m.a, name), C.O_WRONLY | C.O_TRUNC);
    const shorter = await fsp.open(path.join(m.b, name), C.O_WRONLY | C.O_TRUNC);
    await longer.write('LLLLLLLLLLLLLLLLLLLL');
    await longer.close();
    await shorter.write('ssssssssssss');
    await shorter.close();
    expect(await fsp.readFile(path.join(m.a, name), 'utf8')).toBe('ssssssssssss');
    expect(await fsp.readFile(path.join(m.b, name), 'utf8')).toBe('ssssssssssss');
    // The same race on an empty file: O_TRUNC of nothing still says "the file is what I write".
    await fsp.writeFile(path.join(m.a, 'rewrite-race-empty.txt'), '');
    const longerEmpty = await fsp.open(path.join(m.a, 'rewrite-race-empty.txt'), C.O_WRONLY | C.O_TRUNC);
    const shorterEmpty = await fsp.open(path.join(m.b, 'rewrite-race-empty.txt'), C.O_WRONLY | C.O_TRUNC);
    await longerEmpty.write('LLLLLLLLL');
    await longerEmpty.close();
    await shorterEmpty.write('ssssssss');
    await shorterEmpty.close();
    expect(await fsp.readFile(path.join(m.a, 'rewrite-race-empty.txt'), 'utf8')).toBe('ssssssss');
  });

  it('answers EBADF to a write through a descriptor opened O_RDONLY, and EBADF to a read through O_WRONLY', async () => {
    const file = path.join(m.a, 'readonly-fd.txt');
    await fsp.writeFile(file, 'data');
    const reader = await fsp.open(file, 'r');
    await expectErrno(reader.write('x'), 'EBADF');
    await reader.close();
    const writer = await fsp.open(file, 'w');
    await expectErrno(writer.read(Buffer.alloc(4), 0, 4, 0), 'EBADF');
    await writer.close();
    expect(await fsp.readFile(file, 'utf8')).toBe('');
  });

  it('refuses to open a directory for writing with EISDIR', async () => {
    await fsp.mkdir(path.join(m.a, 'not-writable-dir'));
    await expectErrno(fsp.open(path.join(m.a, 'not-writable-dir'), 'r+'), 'EISDIR');
    await expectErrno(fsp.open(path.join(m.a, 'not-writable-dir'), C.O_WRONLY), 'EISDIR');
  });
});

describe('reads and writes at offsets', () => {
  it('writes at scattered offsets inside and past the end, reads them back before and after close', async () => {
    const file = path.join(m.a, 'offsets.bin');
    const model = Buffer.from(patternBytes(3 * MiB + 333, 7));
    await fsp.writeFile(file, model);
    const grown = Buffer.alloc(3 * MiB + 400);
    model.copy(grown);
    const h = await fsp.open(file, 'r+');
    const writes: Array<[number, number]> = [[0, 10], [4095, 2], [MiB - 5, 10], [2 * MiB + 17, 70_000], [3 * MiB + 300, 100]];
    for (const [pos, len] of writes) {
      const chunk = Buffer.from(patternBytes(len, pos + 1));
      await h.write(chunk, 0, len, pos);
      chunk.copy(grown, pos);
    }
    for (const [pos, len] of writes) {
      const seen = Buffer.alloc(len);
      const { bytesRead } = await h.read(seen, 0, len, pos);
      expect({ pos, bytesRead, same: seen.equals(grown.subarray(pos, pos + len)) }).toEqual({ pos, bytesRead: len, same: true });
    }
    expect((await h.stat()).size).toBe(3 * MiB + 400);
    await h.close();
    expect((await fsp.readFile(path.join(m.b, 'offsets.bin'))).equals(grown)).toBe(true);
  }, 30_000);

  it('reads a short count at end of file and zero bytes past it', async () => {
    const file = path.join(m.a, 'short.txt');
    await fsp.writeFile(file, '0123456789');
    const h = await fsp.open(file, 'r');
    const buf = Buffer.alloc(100);
    expect((await h.read(buf, 0, 100, 6)).bytesRead).toBe(4);
    expect(buf.subarray(0, 4).toString()).toBe('6789');
    expect((await h.read(buf, 0, 100, 10)).bytesRead).toBe(0);
    expect((await h.read(buf, 0, 100, 1_000_000)).bytesRead).toBe(0);
    await h.close();
  });

  it('makes a hole of zeros when one byte is written at 10 MiB into an empty file', async () => {
    const file = path.join(m.a, 'hole.bin');
    const h = await fsp.open(file, 'w+');
    await h.write(Buffer.from('X'), 0, 1, 10 * MiB);
    expect((await h.stat()).size).toBe(10 * MiB + 1);
    const early = Buffer.alloc(4096, 0xff);
    await h.read(early, 0, 4096, 5 * MiB);
    expect(early.every((b) => b === 0)).toBe(true);
    await h.close();
    expect((await fsp.stat(path.join(m.b, 'hole.bin'))).size).toBe(10 * MiB + 1);
    const all = await fsp.readFile(path.join(m.b, 'hole.bin'));
    expect(all.length).toBe(10 * MiB + 1);
    expect(all.subarray(0, 10 * MiB).every((b) => b === 0)).toBe(true);
    expect(all[10 * MiB]).toBe('X'.charCodeAt(0));
  }, 30_000);
});

describe('truncate up and down', () => {
  it('truncates a closed file by path down and up: the tail is cut, the growth reads as zeros', async () => {
    const file = path.join(m.a, 'truncate-path.bin');
    const content = Buffer.from(patternBytes(2 * MiB + 10, 3));
    await fsp.writeFile(file, content);
    await fsp.truncate(file, MiB + 5);
    expect((await fsp.stat(path.join(m.b, 'truncate-path.bin'))).size).toBe(MiB + 5);
    expect((await fsp.readFile(path.join(m.b, 'truncate-path.bin'))).equals(content.subarray(0, MiB + 5))).toBe(true);
    await fsp.truncate(file, 3 * MiB);
    const grown = await fsp.readFile(path.join(m.b, 'truncate-path.bin'));
    expect(grown.length).toBe(3 * MiB);
    expect(grown.subarray(0, MiB + 5).equals(content.subarray(0, MiB + 5))).toBe(true);
    expect(grown.subarray(MiB + 5).every((b) => b === 0)).toBe(true);
    await fsp.truncate(file, 0);
    expect((await fsp.stat(file)).size).toBe(0);
  }, 30_000);

  it('ftruncates through an open descriptor down and up, and the other mount sees it after close', async () => {
    const file = path.join(m.a, 'ftruncate.txt');
    await fsp.writeFile(file, 'abcdefghij');
    const h = await fsp.open(file, 'r+');
    await h.truncate(4);
    expect((await h.stat()).size).toBe(4);
    await h.truncate(8);
    const buf = Buffer.alloc(8);
    await h.read(buf, 0, 8, 0);
    expect(buf).toEqual(Buffer.from([...Buffer.from('abcd'), 0, 0, 0, 0]));
    await h.close();
    expect(await fsp.readFile(path.join(m.b, 'ftruncate.txt'))).toEqual(buf);
  });

  it('ftruncates a large file inside a block it has just written and uploaded', async () => {
    const file = path.join(m.a, 'ftruncate-large.bin');
    const content = Buffer.from(patternBytes(3 * MiB, 11));
    const h = await fsp.open(file, 'w+');
    try {
      await h.write(content, 0, content.length, 0);
      await h.truncate(MiB + MiB / 2);
    } finally {
      await h.close();
    }
    expect((await fsp.readFile(path.join(m.b, 'ftruncate-large.bin'))).equals(content.subarray(0, MiB + MiB / 2))).toBe(true);
  }, 30_000);

  it('moves a file across the 4096-byte inline limit up and back down, byte-exact each way', async () => {
    const file = path.join(m.a, 'inline-edge.bin');
    const small = Buffer.from(patternBytes(4000, 21));
    await fsp.writeFile(file, small);
    const extra = Buffer.from(patternBytes(200, 22));
    await fsp.appendFile(file, extra);
    const up = Buffer.concat([small, extra]);
    expect((await fsp.readFile(path.join(m.b, 'inline-edge.bin'))).equals(up)).toBe(true);
    await fsp.truncate(file, 4096);
    expect((await fsp.readFile(path.join(m.b, 'inline-edge.bin'))).equals(up.subarray(0, 4096))).toBe(true);
    const h = await fsp.open(file, 'r+');
    await h.write(Buffer.from('Z'), 0, 1, 4096);
    await h.close();
    expect((await fsp.readFile(path.join(m.b, 'inline-edge.bin'))).equals(Buffer.concat([up.subarray(0, 4096), Buffer.from('Z')]))).toBe(true);
    const h2 = await fsp.open(file, 'r+');
    await h2.truncate(100);
    await h2.close();
    expect((await fsp.readFile(path.join(m.b, 'inline-edge.bin'))).equals(up.subarray(0, 100))).toBe(true);
  });
});

describe('an unlinked open file', () => {
  it('stays readable, writable and fstat-able through its descriptor until closed, and then is gone', async () => {
    const file = path.join(m.a, 'doomed.txt');
    await fsp.writeFile(file, 'before unlink');
    const h = await fsp.open(file, 'r+');
    await fsp.unlink(file);
    await expectErrno(fsp.stat(file), 'ENOENT');
    expect(await fsp.readdir(m.a)).not.toContain('doomed.txt');
    const buf = Buffer.alloc(13);
    await h.read(buf, 0, 13, 0);
    expect(buf.toString()).toBe('before unlink');
    await h.write('B', 0, 'utf8');
    const st = await h.stat();
    expect(st.size).toBe(13);
    await h.write('!!', 13, 'utf8');
    expect((await h.stat()).size).toBe(15);
    const all = Buffer.alloc(15);
    await h.read(all, 0, 15, 0);
    expect(all.toString()).toBe('Before unlink!!');
    await h.sync();
    await h.close();
    expect((await fsp.readdir(m.a)).filter((n) => n.startsWith('.fuse_hidden'))).toEqual([]);
    await expectErrno(fsp.stat(path.join(m.b, 'doomed.txt')), 'ENOENT');
  });

  it('accepts fchmod, fchown, futimens and fsetxattr on an unlinked open file', async () => {
    const res = await py([
      `p = ${q(path.join(m.a, 'doomed-attrs'))}`,
      `fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)`,
      `os.write(fd, b'abc')`,
      `os.unlink(p)`,
      `out([E(os.fchmod, fd, 0o600), E(os.fchown, fd, 1234, 1234), E(os.utime, fd, (1, 2)), E(os.setxattr, fd, 'user.x', b'1')])`,
      `st = os.fstat(fd)`,
      `out([stat.S_IMODE(st.st_mode), st.st_uid, st.st_mtime, st.st_size])`,
      `os.close(fd)`,
    ].join('\n'));
    expect(res).toEqual([['OK', 'OK', 'OK', 'OK'], [0o600, 1234, 2, 3]]);
  });
});

describe('name lengths', () => {
  it('accepts a 255-byte name (ASCII and multi-byte UTF-8) and refuses 256 bytes with ENAMETOOLONG', async () => {
    const longest = 'n'.repeat(255);
    const utf8 = 'é'.repeat(127) + 'a';
    expect(Buffer.byteLength(utf8)).toBe(255);
    for (const name of [longest, utf8]) {
      await fsp.writeFile(path.join(m.a, name), 'ok');
      expect(await fsp.readFile(path.join(m.b, name), 'utf8')).toBe('ok');
      expect(await fsp.readdir(m.a)).toContain(name);
      await fsp.unlink(path.join(m.a, name));
    }
    const tooLong = 'n'.repeat(256);
    await expectErrno(fsp.writeFile(path.join(m.a, tooLong), 'no'), 'ENAMETOOLONG');
    await expectErrno(fsp.mkdir(path.join(m.a, tooLong)), 'ENAMETOOLONG');
    await expectErrno(fsp.mkdir(path.join(m.a, 'é'.repeat(128))), 'ENAMETOOLONG');
    await fsp.writeFile(path.join(m.a, 'short-name'), 'x');
    await expectErrno(fsp.rename(path.join(m.a, 'short-name'), path.join(m.a, tooLong)), 'ENAMETOOLONG');
    await expectErrno(fsp.symlink('short-name', path.join(m.a, tooLong)), 'ENAMETOOLONG');
    await expectErrno(fsp.link(path.join(m.a, 'short-name'), path.join(m.a, tooLong)), 'ENAMETOOLONG');
  });

  it('answers ENAMETOOLONG, not ENOENT, to a lookup of a 256-byte name', async () => {
    await expectErrno(fsp.stat(path.join(m.a, 'n'.repeat(256))), 'ENAMETOOLONG');
  });
});

describe('statfs', () => {
  it('answers sane numbers: block sizes, free <= total, inode counts and a 255-byte name limit', async () => {
    const [s] = (await py(`s = os.statvfs(${q(m.a)})\nout({k: getattr(s, k) for k in ['f_bsize','f_frsize','f_blocks','f_bfree','f_bavail','f_files','f_ffree','f_favail','f_namemax']})`)) as Array<Record<string, number>>;
    expect(s.f_bsize).toBeGreaterThan(0);
    expect(s.f_frsize).toBeGreaterThan(0);
    expect(s.f_blocks).toBeGreaterThan(0);
    expect(s.f_bfree).toBeLessThanOrEqual(s.f_blocks);
    expect(s.f_bavail).toBeLessThanOrEqual(s.f_bfree);
    expect(s.f_files).toBeGreaterThan(0);
    expect(s.f_ffree).toBeLessThanOrEqual(s.f_files);
    expect(s.f_favail).toBeLessThanOrEqual(s.f_ffree);
    expect(s.f_namemax).toBe(255);
    // The free space is the servers' disk, not zero and not absurd.
    expect(s.f_bavail * s.f_frsize).toBeGreaterThan(100 * MiB);
    expect(s.f_blocks * s.f_frsize).toBeLessThan(2 ** 60);
  });
});
