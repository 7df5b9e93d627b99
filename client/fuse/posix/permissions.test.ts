/**
 * POSIX conformance on a real mount of a 3-member cluster, part 3: who may do
 * what. Short python3 children switch to uid/gid 1234 or 2345 (no
 * supplementary groups) and report errno names; the mount checks permissions
 * itself with the caller's uid/gid (default_permissions is off), so every
 * answer here comes from handlefs, not from the kernel.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OTHER_UID, THIRD_UID, py, q, useClusterMounts } from './harness';

const fsp = fs.promises;
const m = useClusterMounts('perm', 1);
const alice = { uid: OTHER_UID };
const bob = { uid: THIRD_UID };

/** A folder everyone may write in (0777, not sticky), for one scenario. */
async function openFolder(name: string): Promise<string> {
  const dir = path.join(m.a, name);
  await fsp.mkdir(dir);
  await fsp.chmod(dir, 0o777);
  return dir;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** Longer than the kernel's and the mount's entry/attribute caches (1 s), so a check starts cold. */
const CACHES_EXPIRE_MS = 1_200;

const modeOf = async (file: string): Promise<number> => (await fsp.stat(file)).mode & 0o7777;

describe('setuid and setgid bits', () => {
  // Regression: the kernel clears the bits with a mode change from the writer's uid (no handle_killpriv).
  it('clears setuid and setgid when another user writes the file', async () => {
    const dir = await openFolder('suid-write');
    const file = path.join(dir, 'prog');
    await fsp.writeFile(file, 'binary');
    await fsp.chmod(file, 0o6777);
    expect(await modeOf(file)).toBe(0o6777);
    const [res] = await py(`fd = os.open(${q(file)}, os.O_WRONLY)\nos.write(fd, b'patched')\nos.close(fd)\nout('OK')`, alice);
    expect(res).toBe('OK');
    expect(await fsp.readFile(file, 'utf8')).toBe('patched');
    expect(await modeOf(file)).toBe(0o777);
  });

  it('clears setuid and setgid when root gives the file to another owner', async () => {
    const dir = await openFolder('suid-chown');
    const file = path.join(dir, 'prog');
    await fsp.writeFile(file, 'binary');
    await fsp.chmod(file, 0o6755);
    await fsp.chown(file, OTHER_UID, OTHER_UID);
    const st = await fsp.stat(file);
    expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }).toEqual({ uid: OTHER_UID, gid: OTHER_UID, mode: 0o755 });
  });

  it('clears setgid when a user not in the file\'s group sets it with chmod', async () => {
    const dir = await openFolder('sgid-chmod');
    const file = path.join(dir, 'mine');
    await fsp.writeFile(file, '');
    await fsp.chown(file, OTHER_UID, 0);
    const [res] = await py(`os.chmod(${q(file)}, 0o2755)\nout(stat.S_IMODE(os.stat(${q(file)}).st_mode))`, alice);
    expect(res).toBe(0o755);
  });
});

describe('a sticky directory (/tmp-like, 1777)', () => {
  it('lets only the file\'s owner (or root) unlink or rename it; others get EPERM', async () => {
    const dir = path.join(m.a, 'sticky');
    await fsp.mkdir(dir);
    await fsp.chmod(dir, 0o1777);
    expect(await modeOf(dir)).toBe(0o1777);
    const mine = path.join(dir, 'alice.txt');
    const [created] = await py(`open(${q(mine)}, 'w').write('alice')\nout(os.stat(${q(mine)}).st_uid)`, alice);
    expect(created).toBe(OTHER_UID);
    const res = await py([
      `out(E(os.unlink, ${q(mine)}))`,
      `out(E(os.rename, ${q(mine)}, ${q(path.join(dir, 'stolen'))}))`,
      `open(${q(path.join(dir, 'bob.txt'))}, 'w').write('bob')`,
      `out(E(os.rename, ${q(path.join(dir, 'bob.txt'))}, ${q(mine)}))`,
    ].join('\n'), bob);
    expect(res).toEqual(['EPERM', 'EPERM', 'EPERM']);
    expect(await fsp.readFile(mine, 'utf8')).toBe('alice');
    const [own] = await py(`os.rename(${q(mine)}, ${q(path.join(dir, 'alice2.txt'))})\nout(E(os.unlink, ${q(path.join(dir, 'alice2.txt'))}))`, alice);
    expect(own).toBe('OK');
    await fsp.unlink(path.join(dir, 'bob.txt'));
    expect(await fsp.readdir(dir)).toEqual([]);
  });
});

describe('setting times', () => {
  /** A 0666 file of alice in an open folder. */
  async function sharedFile(name: string, mode = 0o666): Promise<string> {
    const dir = await openFolder(name);
    const file = path.join(dir, 'shared.txt');
    await fsp.writeFile(file, 'x');
    await fsp.chmod(file, mode);
    await fsp.chown(file, OTHER_UID, OTHER_UID);
    return file;
  }

  it('lets only the owner (or root) set explicit times: another user gets EPERM even with write access', async () => {
    const file = await sharedFile('times-explicit');
    const [byBob] = await py(`out(E(os.utime, ${q(file)}, (1000, 2000)))`, bob);
    expect(byBob).toBe('EPERM');
    const byAlice = await py(`out(E(os.utime, ${q(file)}, (1000, 2000)))\nst = os.stat(${q(file)})\nout([st.st_atime, st.st_mtime])`, alice);
    expect(byAlice).toEqual(['OK', [1000, 2000]]);
    await fsp.utimes(file, 3000, 4000);
    const after = await fsp.stat(file);
    expect([after.atimeMs, after.mtimeMs]).toEqual([3_000_000, 4_000_000]);
  });

it('lets anyone with write access set the times to "now"', async () => {
    const file = await sharedFile('times-now');
    const [byBob] = await py(`out(E(os.utime, ${q(file)}, None))`, bob);
    expect(byBob).toBe('OK');
    expect(Math.abs((await fsp.stat(file)).mtimeMs - Date.now())).toBeLessThan(10_000);
  });

it('refuses "now" with EACCES to a user who may not write the file', async () => {
    const file = await sharedFile('times-ro', 0o644);
    const [res] = await py(`out(E(os.utime, ${q(file)}, None))`, bob);
    expect(res).toBe('EACCES');
  });
});

describe('chmod and chown by a non-owner', () => {
  it('answers EPERM to chmod by another user and to chown of someone else\'s file, and to giving a file away', async () => {
    const dir = await openFolder('chmod');
    const file = path.join(dir, 'alice.txt');
    await py(`open(${q(file)}, 'w').write('a')`, alice);
    const byBob = await py(`out(E(os.chmod, ${q(file)}, 0o777))\nout(E(os.chown, ${q(file)}, ${THIRD_UID}, -1))\nout(E(os.chown, ${q(file)}, -1, ${THIRD_UID}))`, bob);
    expect(byBob).toEqual(['EPERM', 'EPERM', 'EPERM']);
    const byAlice = await py([
      `out(E(os.chmod, ${q(file)}, 0o600))`,
      `out(E(os.chown, ${q(file)}, ${THIRD_UID}, -1))`,
      `out(E(os.chown, ${q(file)}, -1, ${THIRD_UID}))`,
      `out(E(os.chown, ${q(file)}, -1, ${OTHER_UID}))`,
    ].join('\n'), alice);
    // Alice may chmod her file and "change" its group to one she is in; she may not give it away nor pick a foreign group.
    expect(byAlice).toEqual(['OK', 'EPERM', 'EPERM', 'OK']);
    const st = await fsp.stat(file);
    expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }).toEqual({ uid: OTHER_UID, gid: OTHER_UID, mode: 0o600 });
  });
});

describe('denials for a non-root uid', () => {
  it('refuses reading and writing a 0600 file of root with EACCES, and access() agrees', async () => {
    const dir = await openFolder('deny-file');
    const file = path.join(dir, 'secret');
    await fsp.writeFile(file, 'secret', { mode: 0o600 });
    await fsp.chmod(file, 0o600);
    const res = await py([
      `out(E(open, ${q(file)}, 'r'))`,
      `out(E(open, ${q(file)}, 'r+'))`,
      `out(E(os.truncate, ${q(file)}, 0))`,
      `out([os.access(${q(file)}, os.R_OK), os.access(${q(file)}, os.W_OK), os.access(${q(file)}, os.F_OK)])`,
      `out(E(os.stat, ${q(file)}))`,
    ].join('\n'), alice);
    expect(res).toEqual(['EACCES', 'EACCES', 'EACCES', [false, false, true], 'OK']);
    expect(await fsp.readFile(file, 'utf8')).toBe('secret');
  });

  it('uses the group bits for a member of the file\'s group and the other bits for everyone else', async () => {
    const dir = await openFolder('deny-group');
    const file = path.join(dir, 'group-readable');
    await fsp.writeFile(file, 'for the group');
    await fsp.chown(file, 0, OTHER_UID);
    await fsp.chmod(file, 0o640);
    const member = await py(`out(open(${q(file)}).read())\nout(E(open, ${q(file)}, 'a'))`, alice);
    expect(member).toEqual(['for the group', 'EACCES']);
    const [other] = await py(`out(E(open, ${q(file)}, 'r'))`, bob);
    expect(other).toBe('EACCES');
  });

  it('refuses listing, reaching into and creating in a 0700 directory of root with EACCES', async () => {
    const dir = path.join(m.a, 'private');
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, 'inside'), 'x');
    await fsp.chmod(dir, 0o700);
    await sleep(CACHES_EXPIRE_MS);
    const res = await py([
      `out(E(os.listdir, ${q(dir)}))`,
      `out(E(os.stat, ${q(path.join(dir, 'inside'))}))`,
      `out(E(open, ${q(path.join(dir, 'inside'))}, 'r'))`,
      `out(E(open, ${q(path.join(dir, 'new'))}, 'w'))`,
      `out(E(os.mkdir, ${q(path.join(dir, 'sub'))}))`,
      `out(E(os.unlink, ${q(path.join(dir, 'inside'))}))`,
      `out(E(os.rename, ${q(path.join(dir, 'inside'))}, ${q(path.join(m.a, 'out'))}))`,
    ].join('\n'), alice);
    expect(res).toEqual(['EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES']);
    expect(await fsp.readdir(dir)).toEqual(['inside']);
  });

  it('lets a user read a 0755 directory of root but not create, remove or rename in it (EACCES)', async () => {
    const dir = path.join(m.a, 'readable');
    await fsp.mkdir(dir);
    await fsp.chmod(dir, 0o755);
    await fsp.writeFile(path.join(dir, 'present'), 'x');
    const res = await py([
      `out(os.listdir(${q(dir)}))`,
      `out(E(open, ${q(path.join(dir, 'new'))}, 'w'))`,
      `out(E(os.unlink, ${q(path.join(dir, 'present'))}))`,
      `out(E(os.rename, ${q(path.join(dir, 'present'))}, ${q(path.join(dir, 'renamed'))}))`,
      `out(E(os.symlink, 'x', ${q(path.join(dir, 'link'))}))`,
      `out(E(os.mkfifo, ${q(path.join(dir, 'fifo'))}))`,
    ].join('\n'), alice);
    expect(res).toEqual([['present'], 'EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES']);
  });

  it('refuses a directory without search (x) permission even to one who may list it', async () => {
    const dir = path.join(m.a, 'list-only');
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, 'f'), 'x');
    await fsp.chmod(dir, 0o744);
    await sleep(CACHES_EXPIRE_MS);
    // listdir comes last: its answer fills the mount's entry cache (per caller: it never skips another caller's check).
    const res = await py(`out(E(os.stat, ${q(path.join(dir, 'f'))}))\nout(E(open, ${q(path.join(dir, 'f'))}))\nout(os.listdir(${q(dir)}))`, alice);
    expect(res).toEqual(['EACCES', 'EACCES', ['f']]);
  });

  it('refuses stat through a directory without search permission even while root\'s lookup is cached', async () => {
    const dir = path.join(m.a, 'list-only-warm');
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, 'f'), 'x');
    await fsp.chmod(dir, 0o700);
    // Root's lookup and alice's stat within milliseconds (one python process forking), well inside the 1 s caches.
    const f = q(path.join(dir, 'f'));
    const res = await py([
      `os.stat(${f})`,
      'pid = os.fork()',
      'if pid == 0:',
      `    os.setgroups([]); os.setgid(${OTHER_UID}); os.setuid(${OTHER_UID})`,
      `    out([E(os.stat, ${f}), E(os.getxattr, ${f}, 'user.handlefs.version')])`,
      '    os._exit(0)',
      'os.waitpid(pid, 0)',
    ].join('\n'));
    expect(res).toEqual([['EACCES', 'EACCES']]);
  });
});

describe('a setgid directory', () => {
  it('gives new entries the directory\'s group, and new subdirectories the setgid bit', async () => {
    const dir = path.join(m.a, 'sgid-dir');
    await fsp.mkdir(dir);
    await fsp.chown(dir, 0, 4242);
    await fsp.chmod(dir, 0o2777);
    const res = await py([
      `open(${q(path.join(dir, 'f'))}, 'w').close()`,
      `os.mkdir(${q(path.join(dir, 'd'))})`,
      `f = os.stat(${q(path.join(dir, 'f'))}); d = os.stat(${q(path.join(dir, 'd'))})`,
      `out([f.st_uid, f.st_gid, d.st_gid, bool(d.st_mode & stat.S_ISGID)])`,
    ].join('\n'), alice);
    expect(res).toEqual([[OTHER_UID, 4242, 4242, true]]);
  });
});
