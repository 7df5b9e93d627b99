/**
 * The rules against the real thing: every family of permission rules is run
 * on the running Linux kernel (fixtures on the local disk, the operation done
 * by a python3 child that drops to the caller's uid/gid/groups and calls the
 * syscall directly) and each kernel answer (errno, and the mode/owner left
 * behind) must equal the rule's. Needs root and python3; skipped otherwise.
 * The rules follow Linux ≥ 6.2, so an older kernel may disagree on set-id
 * clearing.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Result, errnoName } from './errno';
import { FileType } from './modes';
import { checkXattrName } from './names';
import {
  Caller,
  InodeAttrs,
  Ownership,
  R_OK,
  TimeUpdate,
  W_OK,
  X_OK,
  checkChmod,
  checkChown,
  checkTruncate,
  checkUtimes,
  clearSetIdOnWrite,
  mayAccess,
  mayAccessXattr,
  mayCreateIn,
  mayDeleteFrom,
  mayRename,
  newInodeOwnership,
} from './permissions';

/** Runs a list of operations as one identity (root when `as` is null) and prints one result per operation. */
const SYSCALL_RUNNER = `
import ctypes, errno, json, os, stat, sys
req = json.load(sys.stdin)
libc = ctypes.CDLL(None, use_errno=True)
class Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]
UTIME = {'now': (1 << 30) - 1, 'omit': (1 << 30) - 2, 'set': 0}
def check(rc):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def make(kind, p, mode, uid, gid):
    if kind == 'reg': os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0))
    elif kind == 'dir': os.mkdir(p)
    elif kind == 'fifo': os.mkfifo(p)
    elif kind == 'lnk': os.symlink('nowhere', p)
    os.chown(p, uid, gid, follow_symlinks=False)
    if kind != 'lnk': os.chmod(p, mode)
def run(op, *a):
    if op == 'make': make(*a)
    elif op == 'stat':
        st = os.lstat(a[0])
        return [stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
    elif op == 'umask': os.umask(a[0])
    elif op == 'access': return 'OK' if os.access(a[0], a[1]) else 'EACCES'
    elif op == 'mkdir': os.mkdir(a[0], a[1])
    elif op == 'create': os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, a[1]))
    elif op == 'mkfifo': os.mkfifo(a[0], a[1])
    elif op == 'mknod_chr': os.mknod(a[0], a[1] | stat.S_IFCHR, os.makedev(1, 3))
    elif op == 'symlink': os.symlink('nowhere', a[0])
    elif op == 'unlink': os.unlink(a[0])
    elif op == 'rmdir': os.rmdir(a[0])
    elif op == 'rename': check(libc.renameat2(-100, a[0].encode(), -100, a[1].encode(), a[2]))
    elif op == 'chmod': os.chmod(a[0], a[1])
    elif op == 'chown': os.chown(a[0], a[1], a[2])
    elif op == 'utimens':
        ts = (Timespec * 2)()
        for i in range(2):
            ts[i].tv_sec = 1000000
            ts[i].tv_nsec = UTIME[a[1 + i]]
        check(libc.utimensat(-100, a[0].encode(), ts, 0))
    elif op == 'truncate': os.truncate(a[0], a[1])
    elif op == 'append':
        fd = os.open(a[0], os.O_WRONLY | os.O_APPEND)
        try: os.write(fd, b'x')
        finally: os.close(fd)
    elif op == 'setxattr': os.setxattr(a[0], a[1], b'v', follow_symlinks=False)
    elif op == 'getxattr': os.getxattr(a[0], a[1], follow_symlinks=False)
    else: raise ValueError('unknown op ' + op)
    return 'OK'
who = req['as']
if who is not None:
    os.setgroups(who['groups'])
    os.setgid(who['gid'])
    os.setuid(who['uid'])
os.umask(0)
out = []
for op in req['ops']:
    try: out.append(run(*op))
    except OSError as e: out.append(errno.errorcode[e.errno])
print(json.dumps(out))
`;

const alice: Caller = { uid: 1000, gid: 1000, groups: [1000, 50] };
const bob: Caller = { uid: 1001, gid: 1001, groups: [1001, 50] };
const carol: Caller = { uid: 1002, gid: 1002, groups: [1002] };
const root: Caller = { uid: 0, gid: 0, groups: [0] };
const NAMES = new Map<Caller, string>([[alice, 'alice'], [bob, 'bob'], [carol, 'carol'], [root, 'root']]);

type Op = [string, ...Array<string | number>];
interface Fixture extends InodeAttrs {
  path: string;
}
/** One operation by one caller, with what the rules predict: an errno name, and on success the attributes left on `observe`. */
interface OracleCase {
  name: string;
  who: Caller;
  ops: Op[];
  predicted: string;
  observe?: string;
  predictedAttrs?: Ownership;
}

/** The interpreter itself, resolved once: a version-manager shim in front of python3 costs a process per call. */
function findPython(): string | undefined {
  const probe = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', timeout: 10_000 });
  const executable = probe.status === 0 ? probe.stdout.trim() : '';
  return executable === '' ? undefined : executable;
}
const python = process.platform === 'linux' && process.getuid?.() === 0 ? findPython() : undefined;
const runnable = python !== undefined;
const describeOnLinuxAsRoot = runnable ? describe : describe.skip;
let baseDir = '';

function runAs(who: Caller | null, ops: Op[]): unknown[] {
  const child = spawnSync(python as string, ['-c', SYSCALL_RUNNER], {
    input: JSON.stringify({ as: who, ops }),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 30_000,
  });
  if (child.status !== 0) throw new Error(`syscall runner failed (status ${String(child.status)}): ${child.stderr}`);
  const results = JSON.parse(child.stdout) as unknown[];
  if (results.length !== ops.length) throw new Error(`syscall runner answered ${results.length} of ${ops.length} operations`);
  return results;
}

function codeOf(r: Result<unknown>): string {
  return r.ok ? 'OK' : errnoName(r.errno);
}

/** A fresh directory for one family, and a fixture maker that records what root must create there. */
function family(name: string) {
  const dir = path.join(baseDir, name);
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  const makes: Op[] = [];
  let counter = 0;
  const fixture = (type: FileType, mode: number, uid: number, gid: number, parent = dir): Fixture => {
    const p = path.join(parent, `${type}${counter++}`);
    makes.push(['make', type, p, mode, uid, gid]);
    return { path: p, type, mode, uid, gid };
  };
  const fresh = (parent: string) => path.join(parent, `new${counter++}`);
  return { fixture, fresh, makes };
}

/** Creates the fixtures, runs each caller's operations in one child, stats what changed, and lists every disagreement. */
function disagreements(makes: Op[], cases: OracleCase[], extraSetup: Op[] = []): string[] {
  runAs(null, [...makes, ...extraSetup]).forEach((r, i) => {
    if (r !== 'OK') throw new Error(`fixture ${JSON.stringify([...makes, ...extraSetup][i])} failed: ${String(r)}`);
  });
  const observed = new Map<OracleCase, string>();
  for (const who of new Set(cases.map((c) => c.who))) {
    const mine = cases.filter((c) => c.who === who);
    const results = runAs(who, mine.flatMap((c) => c.ops));
    let at = 0;
    for (const c of mine) {
      at += c.ops.length;
      observed.set(c, String(results[at - 1]));
    }
  }
  const toStat = cases.filter((c) => c.observe !== undefined && observed.get(c) === 'OK' && c.predicted === 'OK');
  const stats = runAs(null, toStat.map((c): Op => ['stat', c.observe as string])) as Array<[number, number, number]>;
  const statOf = new Map(toStat.map((c, i) => [c, stats[i]]));
  const wrong: string[] = [];
  for (const c of cases) {
    const got = observed.get(c);
    const who = NAMES.get(c.who) ?? String(c.who.uid);
    if (got !== c.predicted) {
      wrong.push(`${c.name} by ${who}: kernel ${String(got)}, rules ${c.predicted}`);
      continue;
    }
    const stat = statOf.get(c);
    const want = c.predictedAttrs;
    if (stat && want && (stat[0] !== want.mode || stat[1] !== want.uid || stat[2] !== want.gid)) {
      const show = (mode: number, uid: number, gid: number) => `0${mode.toString(8)} ${uid}:${gid}`;
      wrong.push(`${c.name} by ${who}: kernel left ${show(...stat)}, rules ${show(want.mode, want.uid, want.gid)}`);
    }
  }
  return wrong;
}

const describeInode = (f: InodeAttrs) => `${f.type} 0${f.mode.toString(8)} ${f.uid}:${f.gid}`;
const OWNERS = [
  { uid: 1000, gid: 1000 }, // alice's own
  { uid: 1001, gid: 50 }, // bob's, in a group alice and bob share
  { uid: 1001, gid: 1001 }, // bob's alone
];

describeOnLinuxAsRoot('the rules agree with the running Linux kernel', () => {
  beforeAll(() => {
    baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-rules-'));
    fs.chmodSync(baseDir, 0o755);
  });
  afterAll(() => {
    if (baseDir !== '') fs.rmSync(baseDir, { recursive: true, force: true });
  });

  it('access(2) for every mode, file type, class and access mask', () => {
    const { fixture, makes } = family('access');
    const fixtures: Fixture[] = [];
    for (const type of ['reg', 'dir'] as const) {
      for (const owner of OWNERS) for (let mode = 0; mode <= 0o777; mode++) fixtures.push(fixture(type, mode, owner.uid, owner.gid));
    }
    const cases: OracleCase[] = [];
    for (const who of [alice, carol, root]) {
      for (const f of fixtures) {
        for (let want = 1; want <= (R_OK | W_OK | X_OK); want++) {
          cases.push({ name: `access ${want} on ${describeInode(f)}`, who, ops: [['access', f.path, want]], predicted: codeOf(mayAccess(who, f, want)) });
        }
      }
    }
    expect(disagreements(makes, cases)).toEqual([]);
  });

  it('creating entries: permission on the directory, EEXIST, and the new inode\'s owner, group and mode', () => {
    const { fixture, fresh, makes } = family('create');
    const kinds: Array<{ op: string; type: FileType; mode: number; umask: number }> = [
      { op: 'mkdir', type: 'dir', mode: 0o7777, umask: 0o022 },
      { op: 'create', type: 'reg', mode: 0o6775, umask: 0o002 },
      { op: 'mkfifo', type: 'fifo', mode: 0o666, umask: 0o027 },
      { op: 'symlink', type: 'lnk', mode: 0o777, umask: 0o077 },
      { op: 'mknod_chr', type: 'chr', mode: 0o666, umask: 0 },
    ];
    const cases: OracleCase[] = [];
    for (const dirMode of [0o777, 0o773, 0o775, 0o755, 0o733, 0o711, 0o577, 0o1777, 0o2777, 0o2775, 0o2773]) {
      for (const owner of OWNERS) {
        const dir = fixture('dir', dirMode, owner.uid, owner.gid);
        for (const who of [alice, carol, root]) {
          for (const kind of kinds) {
            for (const exists of [false, true]) {
              const target = exists ? fixture('reg', 0o644, 0, 0, dir.path).path : fresh(dir.path);
              const op: Op = kind.op === 'symlink' ? ['symlink', target] : [kind.op, target, kind.mode];
              const allowed = mayCreateIn(who, dir, exists);
              const made = newInodeOwnership(who, dir, kind.type, kind.mode, kind.umask);
              cases.push({
                name: `${kind.op} 0${kind.mode.toString(8)} umask 0${kind.umask.toString(8)} ${exists ? 'over an existing name ' : ''}in ${describeInode(dir)}`,
                who,
                ops: [['umask', kind.umask], op],
                predicted: allowed.ok ? codeOf(made) : codeOf(allowed),
                observe: target,
                predictedAttrs: made.ok ? made.value : undefined,
              });
            }
          }
        }
      }
    }
    expect(disagreements(makes, cases)).toEqual([]);
  });

  it('unlink and rmdir: w+x on the directory, the sticky rule and the victim\'s type', () => {
    const { fixture, makes } = family('delete');
    const cases: OracleCase[] = [];
    for (const dirMode of [0o777, 0o1777, 0o755, 0o1755, 0o733, 0o1733, 0o1770]) {
      for (const dirOwner of [OWNERS[0], OWNERS[1]]) {
        const dir = fixture('dir', dirMode, dirOwner.uid, dirOwner.gid);
        for (const victimUid of [1000, 1001, 1002]) {
          for (const who of [alice, carol, root]) {
            for (const [op, type, expect] of [['unlink', 'reg', 'nondir'], ['rmdir', 'reg', 'dir'], ['unlink', 'dir', 'nondir'], ['rmdir', 'dir', 'dir']] as const) {
              const victim = fixture(type, 0o644, victimUid, victimUid, dir.path);
              cases.push({
                name: `${op} ${describeInode(victim)} from ${describeInode(dir)}`,
                who,
                ops: [[op, victim.path]],
                predicted: codeOf(mayDeleteFrom(who, dir, victim, expect)),
              });
            }
          }
        }
      }
    }
    expect(disagreements(makes, cases)).toEqual([]);
  });

  it('rename: both directories, ".." of a moved directory, sticky directories, kinds and flags', () => {
    const { fixture, fresh, makes } = family('rename');
    const cases: OracleCase[] = [];
    const add = (who: Caller, name: string, from: Fixture, source: Fixture, to: Fixture, target: Fixture | undefined, flags = 0) => {
      const sameDir = from.path === to.path;
      const destination = target?.path ?? fresh(to.path);
      const predicted = codeOf(mayRename(who, { fromDir: from, source, toDir: to, target, sameDir, noReplace: (flags & 1) !== 0, exchange: (flags & 2) !== 0 }));
      cases.push({ name, who, ops: [['rename', source.path, destination, flags]], predicted });
    };
    for (const who of [alice, carol, root]) {
      for (const parentMode of [0o777, 0o755, 0o1777]) {
        for (const parentOwner of [OWNERS[0], OWNERS[2]]) {
          const a = fixture('dir', parentMode, parentOwner.uid, parentOwner.gid);
          const b = fixture('dir', 0o777, 1001, 1001);
          for (const sourceMode of [0o755, 0o555, 0o777]) {
            for (const sourceOwner of [OWNERS[0], OWNERS[2]]) {
              for (const type of ['dir', 'reg'] as const) {
                for (const [to, label] of [[a, 'within'], [b, 'out of']] as const) {
                  const source = fixture(type, sourceMode, sourceOwner.uid, sourceOwner.gid, a.path);
                  add(who, `rename ${describeInode(source)} ${label} ${describeInode(a)}`, a, source, to, undefined);
                }
                for (const targetType of ['dir', 'reg'] as const) {
                  for (const flags of [0, 1, 2]) {
                    const source = fixture(type, sourceMode, sourceOwner.uid, sourceOwner.gid, a.path);
                    const target = fixture(targetType, 0o755, 1001, 1001, b.path);
                    add(who, `rename(flags ${flags}) ${describeInode(source)} in ${describeInode(a)} onto ${describeInode(target)}`, a, source, b, target, flags);
                  }
                }
                const lonely = fixture(type, sourceMode, sourceOwner.uid, sourceOwner.gid, a.path);
                add(who, `exchange ${describeInode(lonely)} with nothing`, a, lonely, b, undefined, 2);
              }
            }
          }
        }
      }
    }
    expect(disagreements(makes, cases)).toEqual([]);
  });

  it('chmod: owner or root, and setgid dropped for a caller outside the group', () => {
    const { fixture, makes } = family('chmod');
    const cases: OracleCase[] = [];
    for (const who of [alice, carol, root]) {
      for (const gid of [1000, 50, 3000]) {
        for (const type of ['reg', 'dir'] as const) {
          for (const requested of [0o2755, 0o4755, 0o1777, 0o644, 0o6710]) {
            const f = fixture(type, 0o640, 1000, gid);
            const r = checkChmod(who, f, requested);
            cases.push({
              name: `chmod 0${requested.toString(8)} ${describeInode(f)}`,
              who,
              ops: [['chmod', f.path, requested]],
              predicted: codeOf(r),
              observe: f.path,
              predictedAttrs: r.ok ? { mode: r.value, uid: f.uid, gid: f.gid } : undefined,
            });
          }
        }
      }
    }
    expect(disagreements(makes, cases)).toEqual([]);
  });

  it('chown: who may change owner and group, and which set-id bits survive', () => {
    const { fixture, makes } = family('chown');
    const cases: OracleCase[] = [];
    const changes: Array<{ uid?: number; gid?: number }> = [{}, { uid: 1000 }, { uid: 1001 }, { gid: 50 }, { gid: 1000 }, { gid: 3000 }, { gid: 4000 }];
    for (const who of [alice, carol, root]) {
      for (const gid of [1000, 50, 3000]) {
        for (const type of ['reg', 'dir'] as const) {
          for (const mode of [0o6755, 0o2644, 0o4644, 0o644, 0o2754, 0o6711]) {
            for (const change of changes) {
              const f = fixture(type, mode, 1000, gid);
              const r = checkChown(who, f, change);
              cases.push({
                name: `chown ${JSON.stringify(change)} ${describeInode(f)}`,
                who,
                ops: [['chown', f.path, change.uid ?? -1, change.gid ?? -1]],
                predicted: codeOf(r),
                observe: f.path,
                predictedAttrs: r.ok ? r.value : undefined,
              });
            }
          }
        }
      }
    }
    expect(disagreements(makes, cases)).toEqual([]);
  });

  it('utimensat: now, omit and explicit times for owner, group member, other and root', () => {
    const { fixture, makes } = family('utimes');
    const cases: OracleCase[] = [];
    const pairs: Array<[TimeUpdate, TimeUpdate]> = [['now', 'now'], ['set', 'set'], ['now', 'omit'], ['omit', 'now'], ['now', 'set'], ['omit', 'set'], ['omit', 'omit']];
    for (const mode of [0o646, 0o664, 0o644, 0o000, 0o666]) {
      const f = fixture('reg', mode, 1000, 50);
      for (const who of [alice, bob, carol, root]) {
        for (const [atime, mtime] of pairs) {
          cases.push({
            name: `utimensat(${atime}, ${mtime}) ${describeInode(f)}`,
            who,
            ops: [['utimens', f.path, atime, mtime]],
            predicted: codeOf(checkUtimes(who, f, atime, mtime)),
          });
        }
      }
    }
    expect(disagreements(makes, cases)).toEqual([]);
  });

  it('truncate and write: write access, file types, and the set-id bits left behind', () => {
    const { fixture, makes } = family('write');
    const cases: OracleCase[] = [];
    for (const who of [alice, bob, carol, root]) {
      for (const type of ['reg', 'dir', 'fifo'] as const) {
        for (const mode of [0o6777, 0o2766, 0o2666, 0o4666, 0o644, 0o664, 0o6646]) {
          const t = fixture(type, mode, 1000, 50);
          const r = checkTruncate(who, t, { newSizeBytes: 3, maxFileSizeBytes: 2 ** 40 });
          cases.push({
            name: `truncate ${describeInode(t)}`,
            who,
            ops: [['truncate', t.path, 3]],
            predicted: codeOf(r),
            observe: t.path,
            predictedAttrs: r.ok ? { mode: r.value, uid: t.uid, gid: t.gid } : undefined,
          });
          if (type !== 'reg') continue;
          const w = fixture(type, mode, 1000, 50);
          const writable = mayAccess(who, w, W_OK);
          cases.push({
            name: `write ${describeInode(w)}`,
            who,
            ops: [['append', w.path]],
            predicted: codeOf(writable),
            observe: w.path,
            predictedAttrs: { mode: clearSetIdOnWrite(who, w), uid: w.uid, gid: w.gid },
          });
        }
      }
    }
    expect(disagreements(makes, cases)).toEqual([]);
  });

  it('extended attributes: reading and writing user., trusted. and security. by namespace, type and owner', () => {
    const { fixture, makes } = family('xattr');
    const inodes = [
      fixture('reg', 0o640, 1000, 50),
      fixture('reg', 0o606, 1000, 50),
      fixture('dir', 0o1777, 1000, 1000),
      fixture('dir', 0o775, 1000, 50),
      fixture('lnk', 0o777, 1000, 1000),
      fixture('fifo', 0o666, 1000, 1000),
    ];
    const presets: Op[] = [];
    const present = new Set<string>();
    for (const f of inodes) {
      for (const ns of ['user', 'trusted', 'security']) {
        if (ns === 'user' && f.type !== 'reg' && f.type !== 'dir') continue;
        presets.push(['setxattr', f.path, `${ns}.x`]);
        present.add(`${f.path} ${ns}.x`);
      }
    }
    const cases: OracleCase[] = [];
    for (const who of [alice, bob, carol, root]) {
      for (const f of inodes) {
        for (const ns of ['user', 'trusted', 'security'] as const) {
          const name = checkXattrName(`${ns}.x`);
          if (!name.ok) throw new Error(name.message);
          const read = mayAccessXattr(who, f, name.value.namespace, R_OK);
          cases.push({
            name: `getxattr ${ns}.x ${describeInode(f)}`,
            who,
            ops: [['getxattr', f.path, `${ns}.x`]],
            predicted: read.ok && !present.has(`${f.path} ${ns}.x`) ? 'ENODATA' : codeOf(read),
          });
          cases.push({
            name: `setxattr ${ns}.new ${describeInode(f)}`,
            who,
            ops: [['setxattr', f.path, `${ns}.new`]],
            predicted: codeOf(mayAccessXattr(who, f, ns, W_OK)),
          });
        }
      }
    }
    expect(disagreements(makes, cases, presets)).toEqual([]);
  });
});

if (!runnable) {
  it('skips the kernel comparison: it needs Linux, root and python3', () => {
    expect(runnable).toBe(false);
  });
}
