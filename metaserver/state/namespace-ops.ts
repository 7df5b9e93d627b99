/**
 * The namespace commands (mkdir, create, mknod, symlink, link, unlink, rmdir,
 * rename) run against one command Scope: every check first, through rules/,
 * against the state at this log position; then the writes. Owns nlink, entry
 * counts, parent pointers and which times change. Must never read a clock
 * (times come from the command's nowMs) or write outside its Scope.
 */
import { Errno, Result, fail, ok } from '../rules/errno';
import { FileType } from '../rules/modes';
import { checkName, checkSymlinkTarget } from '../rules/names';
import { Caller, mayCreateIn, mayDeleteFrom, mayLookup, mayRename, newInodeOwnership } from '../rules/permissions';
import { MutationCommand } from './commands';
import { Scope } from './overlay';
import { Attrs, Inode, ROOT_HANDLE, attrsOf, xattrKey } from './records';
import { removeFileContent, writeInitialVersion } from './versions';

/** Directories nest at most this deep (mkdir and rename answer ENOSPC beyond), so every walk up the parent chain is bounded. */
export const MAX_DIRECTORY_DEPTH = 4096;
/** Hard links per inode, as ext4's EXT4_LINK_MAX. */
export const MAX_LINKS = 65000;

type Cmd<Op extends MutationCommand['op']> = Extract<MutationCommand, { op: Op }>;

export interface EntryResult {
  attrs: Attrs;
  /** create only: false when a non-exclusive create found the file already there. */
  created?: boolean;
}

/** An inode the command names by handle: ESTALE when it no longer exists. */
export async function existing(scope: Scope, handle: number, role: string): Promise<Result<Inode>> {
  const inode = await scope.inode(handle);
  return inode ? ok(inode) : fail(Errno.ESTALE, `${role} handle ${handle} does not exist`);
}

/** Touches a directory whose entries changed. */
function touchDir(dir: Inode, nowMs: number): void {
  dir.mtimeMs = nowMs;
  dir.ctimeMs = nowMs;
}

/** Resolves the parent and checks the name, x on the parent and whether the name exists. */
async function prepareCreate(scope: Scope, caller: Caller, parentHandle: number, rawName: string): Promise<Result<{ parent: Inode; name: string; existingHandle?: number }>> {
  const name = checkName(rawName);
  if (!name.ok) return name;
  const parent = await existing(scope, parentHandle, 'parent');
  if (!parent.ok) return parent;
  const lookup = mayLookup(caller, parent.value);
  if (!lookup.ok) return lookup;
  return ok({ parent: parent.value, name: name.value, existingHandle: await scope.lookup(parentHandle, name.value) });
}

async function makeInode(scope: Scope, entryIndex: number, nowMs: number, type: FileType, owner: { uid: number; gid: number; mode: number }, extra: Partial<Inode>): Promise<Inode> {
  const counters = await scope.counters();
  const handle = counters.nextHandle;
  counters.nextHandle += 1;
  counters.inodesInUse += 1;
  const inode: Inode = {
    handle,
    generation: entryIndex,
    type,
    mode: owner.mode,
    uid: owner.uid,
    gid: owner.gid,
    nlink: type === 'dir' ? 2 : 1,
    sizeBytes: 0,
    atimeMs: nowMs,
    mtimeMs: nowMs,
    ctimeMs: nowMs,
    rdev: 0,
    xattrs: [],
    ...extra,
  };
  scope.saveInode(inode);
  return inode;
}

/** mkdir, create, mknod and symlink: one new inode under one new name. */
export async function createEntry(scope: Scope, cmd: Cmd<'mkdir' | 'create' | 'mknod' | 'symlink'>, entryIndex: number): Promise<Result<EntryResult>> {
  const prepared = await prepareCreate(scope, cmd.caller, cmd.parent, cmd.name);
  if (!prepared.ok) return prepared;
  const { parent, name, existingHandle } = prepared.value;
  const type: FileType = cmd.op === 'mkdir' ? 'dir' : cmd.op === 'create' ? 'reg' : cmd.op === 'symlink' ? 'lnk' : cmd.fileType;
  let target: string | undefined;
  if (cmd.op === 'symlink') {
    const checked = checkSymlinkTarget(cmd.target);
    if (!checked.ok) return checked;
    target = checked.value;
  }
  if (cmd.op === 'create' && !cmd.exclusive && existingHandle !== undefined) {
    // open(O_CREAT) without O_EXCL on an existing name opens what is there.
    const found = await existing(scope, existingHandle, 'entry');
    if (!found.ok) throw new Error(`metastate: entry ${name} in ${parent.handle} names missing handle ${existingHandle}`);
    if (found.value.type === 'dir') return fail(Errno.EISDIR, `${name} is a directory`);
    return ok({ attrs: attrsOf(found.value), created: false });
  }
  const allowed = mayCreateIn(cmd.caller, parent, existingHandle !== undefined);
  if (!allowed.ok) return allowed;
  const requestedMode = cmd.op === 'symlink' ? 0o777 : cmd.mode;
  const umask = cmd.op === 'symlink' ? 0 : cmd.umask;
  const owner = newInodeOwnership(cmd.caller, parent, type, requestedMode, umask);
  if (!owner.ok) return owner;
  if (type === 'dir') {
    if (parent.nlink >= MAX_LINKS) return fail(Errno.EMLINK, `directory ${parent.handle} holds ${MAX_LINKS - 2} subdirectories already`);
    const depth = await depthOf(scope, parent);
    if (!depth.ok) return depth;
  }
  const rdev = cmd.op === 'mknod' && (type === 'chr' || type === 'blk') ? cmd.rdev : 0;
  const extra: Partial<Inode> = { rdev };
  if (type === 'dir') Object.assign(extra, { parent: parent.handle, entries: 0 });
  if (target !== undefined) Object.assign(extra, { target, sizeBytes: Buffer.byteLength(target, 'utf8') });
  const inode = await makeInode(scope, entryIndex, cmd.nowMs, type, owner.value, extra);
  if (type === 'reg') await writeInitialVersion(scope, inode, cmd.sessionId, cmd.nowMs);
  scope.putDirent(parent.handle, name, inode);
  parent.entries = (parent.entries ?? 0) + 1;
  if (type === 'dir') parent.nlink += 1;
  touchDir(parent, cmd.nowMs);
  scope.saveInode(parent);
  return ok(cmd.op === 'create' ? { attrs: attrsOf(inode), created: true } : { attrs: attrsOf(inode) });
}

export async function link(scope: Scope, cmd: Cmd<'link'>): Promise<Result<EntryResult>> {
  const source = await existing(scope, cmd.handle, 'link source');
  if (!source.ok) return source;
  const prepared = await prepareCreate(scope, cmd.caller, cmd.newParent, cmd.newName);
  if (!prepared.ok) return prepared;
  const { parent, name, existingHandle } = prepared.value;
  const allowed = mayCreateIn(cmd.caller, parent, existingHandle !== undefined);
  if (!allowed.ok) return allowed;
  const inode = source.value;
  if (inode.type === 'dir') return fail(Errno.EPERM, 'hard links to directories are not allowed');
  // linkat(2) of an open but unlinked file answers ENOENT (only O_TMPFILE files may be linked back).
  if (inode.nlink === 0) return fail(Errno.ENOENT, `handle ${inode.handle} has been unlinked`);
  if (inode.nlink >= MAX_LINKS) return fail(Errno.EMLINK, `handle ${inode.handle} has ${inode.nlink} links already`);
  inode.nlink += 1;
  inode.ctimeMs = cmd.nowMs;
  scope.saveInode(inode);
  scope.putDirent(parent.handle, name, inode);
  parent.entries = (parent.entries ?? 0) + 1;
  touchDir(parent, cmd.nowMs);
  scope.saveInode(parent);
  return ok({ attrs: attrsOf(inode) });
}

/** Resolves (parent, name) to the entry a removal names: name rules, x on the parent, ENOENT. */
async function resolveEntry(scope: Scope, caller: Caller, parentHandle: number, rawName: string): Promise<Result<{ parent: Inode; name: string; child: Inode }>> {
  const prepared = await prepareCreate(scope, caller, parentHandle, rawName);
  if (!prepared.ok) return prepared;
  const { parent, name, existingHandle } = prepared.value;
  if (existingHandle === undefined) return fail(Errno.ENOENT, `no entry ${JSON.stringify(name)} in directory ${parentHandle}`);
  const child = await scope.inode(existingHandle);
  if (!child) throw new Error(`metastate: entry ${name} in ${parentHandle} names missing handle ${existingHandle}`);
  return ok({ parent, name, child });
}

/**
 * Drops one name of a non-directory; the inode goes when its last name does,
 * unless an fh holds it: then it stays, nameless (nlink 0), with its versions,
 * until the last fh is released (fh-ops.ts).
 */
async function dropLink(scope: Scope, inode: Inode, nowMs: number, counters: { inodesInUse: number }): Promise<void> {
  inode.nlink -= 1;
  inode.ctimeMs = nowMs;
  if (inode.nlink > 0 || (inode.openFhs ?? 0) > 0) {
    scope.saveInode(inode);
    return;
  }
  await removeInode(scope, inode, counters, nowMs);
}

/** Deletes an inode with its xattrs and, for a regular file, its versions and conflict copies. */
export async function removeInode(scope: Scope, inode: Inode, counters: { inodesInUse: number }, nowMs: number): Promise<void> {
  if ((inode.openFhs ?? 0) > 0) throw new Error(`metastate: removing handle ${inode.handle} while ${inode.openFhs} fhs hold it`);
  if (inode.type === 'reg') await removeFileContent(scope, inode, nowMs);
  for (const name of inode.xattrs) scope.overlay.del(xattrKey(inode.handle, name));
  scope.deleteInode(inode.handle);
  counters.inodesInUse -= 1;
  if (counters.inodesInUse < 1) throw new Error('metastate: inodesInUse fell below 1 (the root always exists)');
}

export async function unlink(scope: Scope, cmd: Cmd<'unlink'>): Promise<Result<null>> {
  const resolved = await resolveEntry(scope, cmd.caller, cmd.parent, cmd.name);
  if (!resolved.ok) return resolved;
  const { parent, name, child } = resolved.value;
  const allowed = mayDeleteFrom(cmd.caller, parent, child, 'nondir');
  if (!allowed.ok) return allowed;
  scope.delDirent(parent.handle, name);
  parent.entries = (parent.entries ?? 0) - 1;
  touchDir(parent, cmd.nowMs);
  scope.saveInode(parent);
  await dropLink(scope, child, cmd.nowMs, await scope.counters());
  return ok(null);
}

export async function rmdir(scope: Scope, cmd: Cmd<'rmdir'>): Promise<Result<null>> {
  const resolved = await resolveEntry(scope, cmd.caller, cmd.parent, cmd.name);
  if (!resolved.ok) return resolved;
  const { parent, name, child } = resolved.value;
  const allowed = mayDeleteFrom(cmd.caller, parent, child, 'dir');
  if (!allowed.ok) return allowed;
  if ((child.entries ?? 0) > 0) return fail(Errno.ENOTEMPTY, `directory ${JSON.stringify(name)} holds ${child.entries} entries`);
  scope.delDirent(parent.handle, name);
  parent.entries = (parent.entries ?? 0) - 1;
  parent.nlink -= 1;
  touchDir(parent, cmd.nowMs);
  scope.saveInode(parent);
  await removeInode(scope, child, await scope.counters(), cmd.nowMs);
  return ok(null);
}

export async function rename(scope: Scope, cmd: Cmd<'rename'>): Promise<Result<null>> {
  const from = await resolveEntry(scope, cmd.caller, cmd.fromParent, cmd.fromName);
  if (!from.ok) return from;
  const to = await prepareCreate(scope, cmd.caller, cmd.toParent, cmd.toName);
  if (!to.ok) return to;
  const { parent: fromDir, name: fromName, child: source } = from.value;
  const sameDir = fromDir.handle === to.value.parent.handle;
  // One record per directory, so the writes below cannot overwrite each other.
  const toDir = sameDir ? fromDir : to.value.parent;
  const toName = to.value.name;
  const target = to.value.existingHandle === undefined ? undefined : await scope.inode(to.value.existingHandle);
  if (to.value.existingHandle !== undefined && !target) throw new Error(`metastate: entry ${toName} in ${toDir.handle} names a missing handle`);
  // Two names of one inode (or the very same name): rename(2) succeeds and does nothing.
  if (target && target.handle === source.handle) return ok(null);
  const allowed = mayRename(cmd.caller, { fromDir, source, toDir, target, sameDir, noReplace: cmd.noReplace });
  if (!allowed.ok) return allowed;
  if (source.type === 'dir' && !sameDir) {
    const inside = await ancestorOf(scope, source.handle, toDir);
    if (!inside.ok) return inside;
    if (inside.value) return fail(Errno.EINVAL, `cannot move directory ${source.handle} into its own subtree`);
  }
  if (target && target.type === 'dir' && (target.entries ?? 0) > 0) return fail(Errno.ENOTEMPTY, `target directory ${JSON.stringify(toName)} holds ${target.entries} entries`);
  if (source.type === 'dir' && !sameDir && !target && toDir.nlink >= MAX_LINKS) return fail(Errno.EMLINK, `directory ${toDir.handle} holds too many subdirectories`);

  const counters = await scope.counters();
  if (target) {
    if (target.type === 'dir') {
      toDir.nlink -= 1;
      await removeInode(scope, target, counters, cmd.nowMs);
    } else await dropLink(scope, target, cmd.nowMs, counters);
    toDir.entries = (toDir.entries ?? 0) - 1;
  }
  scope.delDirent(fromDir.handle, fromName);
  scope.putDirent(toDir.handle, toName, source);
  fromDir.entries = (fromDir.entries ?? 0) - 1;
  toDir.entries = (toDir.entries ?? 0) + 1;
  if (source.type === 'dir' && !sameDir) {
    fromDir.nlink -= 1;
    toDir.nlink += 1;
    source.parent = toDir.handle;
  }
  source.ctimeMs = cmd.nowMs;
  touchDir(fromDir, cmd.nowMs);
  touchDir(toDir, cmd.nowMs);
  scope.saveInode(source);
  scope.saveInode(fromDir);
  if (!sameDir) scope.saveInode(toDir);
  return ok(null);
}

/** Whether `ancestor` is `dir` or one of its ancestors (walks parent pointers up to the root). */
async function ancestorOf(scope: Scope, ancestor: number, dir: Inode): Promise<Result<boolean>> {
  let current: Inode | undefined = dir;
  for (let depth = 0; depth <= MAX_DIRECTORY_DEPTH; depth++) {
    if (!current) throw new Error('metastate: a directory\'s parent chain names a missing handle');
    if (current.handle === ancestor) return ok(true);
    if (current.handle === ROOT_HANDLE) return ok(false);
    current = await scope.inode(requireParent(current));
  }
  return fail(Errno.ENOSPC, `directory ${dir.handle} is nested deeper than ${MAX_DIRECTORY_DEPTH}`);
}

/** A new directory under `parent` must stay within MAX_DIRECTORY_DEPTH, so ancestorOf's walk always ends. */
async function depthOf(scope: Scope, parent: Inode): Promise<Result<number>> {
  let current: Inode | undefined = parent;
  for (let depth = 1; depth < MAX_DIRECTORY_DEPTH; depth++) {
    if (!current) throw new Error('metastate: a directory\'s parent chain names a missing handle');
    if (current.handle === ROOT_HANDLE) return ok(depth);
    current = await scope.inode(requireParent(current));
  }
  return fail(Errno.ENOSPC, `directories may nest at most ${MAX_DIRECTORY_DEPTH} deep`);
}

function requireParent(dir: Inode): number {
  if (dir.type !== 'dir' || dir.parent === undefined) throw new Error(`metastate: inode ${dir.handle} on a parent chain is not a directory with a parent`);
  return dir.parent;
}

