/**
 * setattr and the extended-attribute commands, run against one command Scope:
 * every check through rules/ first (on the inode as each earlier part of the
 * same setattr leaves it), then one write. Owns which times a change touches.
 * Must never read a clock: "now" is the command's nowMs.
 */
import { Placement, decideCommit } from '../rules/commit';
import { Errno, Result, fail, ok } from '../rules/errno';
import { checkXattrName, checkXattrSetFlags, checkXattrValue } from '../rules/names';
import { W_OK, checkChmod, checkChown, checkTruncate, checkUtimes, mayAccessXattr } from '../rules/permissions';
import { MutationCommand, TimeSpec } from './commands';
import { existing } from './namespace-ops';
import { Scope } from './overlay';
import { Attrs, Inode, attrsOf, xattrKey } from './records';
import { contentFor } from './fh-ops';
import { AssemblyRequired, sourceOf } from './version-content';
import { addVersion, requireVersion } from './versions';

/** The largest size setattr accepts: 2^53 − 1, what a JS number holds exactly (regular files: the inline limit until blocks land). */
export const MAX_FILE_SIZE_BYTES = Number.MAX_SAFE_INTEGER;
/** Extended attributes per inode: their names live in the inode record, so the list is bounded. */
export const MAX_XATTRS_PER_INODE = 128;

type Cmd<Op extends MutationCommand['op']> = Extract<MutationCommand, { op: Op }>;

function timeUpdate(spec: TimeSpec | undefined): 'now' | 'omit' | 'set' {
  return spec === undefined ? 'omit' : spec === 'now' ? 'now' : 'set';
}

export async function setattr(scope: Scope, cmd: Cmd<'setattr'>): Promise<Result<Attrs> | AssemblyRequired> {
  const found = await existing(scope, cmd.handle, 'setattr');
  if (!found.ok) return found;
  const inode = found.value;
  // Work on a copy: nothing is written unless every part passes.
  const next = { ...inode };
  let changed = false;
  if (cmd.sizeBytes !== undefined) {
    const truncate = checkTruncate(cmd.caller, next, { newSizeBytes: cmd.sizeBytes, maxFileSizeBytes: MAX_FILE_SIZE_BYTES });
    if (!truncate.ok) return truncate;
    next.mode = truncate.value;
    if (next.sizeBytes !== cmd.sizeBytes) {
      next.sizeBytes = cmd.sizeBytes;
      next.mtimeMs = cmd.nowMs;
    }
    changed = true;
  }
  if (cmd.uid !== undefined || cmd.gid !== undefined) {
    const chown = checkChown(cmd.caller, next, { uid: cmd.uid, gid: cmd.gid });
    if (!chown.ok) return chown;
    Object.assign(next, chown.value);
    changed = true;
  }
  if (cmd.mode !== undefined) {
    const chmod = checkChmod(cmd.caller, next, cmd.mode);
    if (!chmod.ok) return chmod;
    next.mode = chmod.value;
    changed = true;
  }
  const atime = timeUpdate(cmd.atime);
  const mtime = timeUpdate(cmd.mtime);
  if (atime !== 'omit' || mtime !== 'omit') {
    const utimes = checkUtimes(cmd.caller, inode, atime, mtime);
    if (!utimes.ok) return utimes;
    if (cmd.atime !== undefined) next.atimeMs = cmd.atime === 'now' ? cmd.nowMs : cmd.atime;
    if (cmd.mtime !== undefined) next.mtimeMs = cmd.mtime === 'now' ? cmd.nowMs : cmd.mtime;
    changed = true;
  }
  if (changed) {
    if (next.headVersion !== undefined && cmd.sizeBytes !== undefined) {
      const truncated = await truncateVersion(scope, next, cmd);
      if (!truncated.ok) return truncated;
    }
    next.ctimeMs = cmd.nowMs;
    scope.saveInode(next);
  }
  return ok(attrsOf(next));
}

/**
 * truncate(2) of a regular file is a commit by no fh: the head cut or
 * zero-extended to the new size becomes the next version (none when the size
 * is already that), so the history and getattr agree on the size and fhs
 * based on older versions see the size change when they commit.
 */
async function truncateVersion(scope: Scope, inode: Inode, cmd: Cmd<'setattr'>): Promise<Result<null> | AssemblyRequired> {
  const headVersion = inode.headVersion;
  if (headVersion === undefined || cmd.sizeBytes === undefined) throw new Error('metastate: truncateVersion on a file without versions');
  const head = await requireVersion(scope, inode.handle, headVersion, 'head');
  const point = { version: head.version, size: head.sizeBytes };
  const decided = decideCommit({ head: point, base: point, written: [], newSize: cmd.sizeBytes, append: false, changedSinceBase: [], policy: 'lww' });
  if (!decided.ok) return decided;
  const decision = decided.value;
  if (decision.kind === 'no-change') return ok(null);
  if (decision.kind !== 'fast-forward') throw new Error(`metastate: a truncation onto its own head was decided ${decision.kind}`);
  // A truncation keeps the head's bytes up to the shorter size and zero-fills beyond: no fh content is involved.
  const kept = Math.min(head.sizeBytes, decision.size);
  const placements: Placement[] = [
    { offset: 0, length: kept, source: 'head' as const, sourceOffset: 0 },
    { offset: kept, length: decision.size - kept, source: 'zero' as const, sourceOffset: 0 },
  ].filter((p) => p.length > 0);
  const content = await contentFor(scope, placements, decision.size, head, sourceOf(head), cmd);
  if (!content.ok) return content;
  await addVersion(scope, inode.handle, {
    ...content.value, version: decision.version, kind: 'truncate', baseVersion: head.version, sessionId: cmd.sessionId,
    // The inode's mtime as the whole setattr leaves it (an explicit mtime in the same call wins).
    commitTimeMs: cmd.nowMs, mtimeMs: inode.mtimeMs, changedExtents: decision.changedExtents, conflict: false,
  }, cmd.nowMs);
  inode.headVersion = decision.version;
  inode.sizeBytes = decision.size;
  return ok(null);
}

export async function setxattr(scope: Scope, cmd: Cmd<'setxattr'>): Promise<Result<null>> {
  const found = await existing(scope, cmd.handle, 'setxattr');
  if (!found.ok) return found;
  const inode = found.value;
  const name = checkXattrName(cmd.name);
  if (!name.ok) return name;
  const value = Buffer.from(cmd.valueBase64, 'base64');
  if (value.toString('base64') !== cmd.valueBase64) return fail(Errno.EINVAL, 'xattr value is not canonical base64');
  const sized = checkXattrValue(value);
  if (!sized.ok) return sized;
  const access = mayAccessXattr(cmd.caller, inode, name.value.namespace, W_OK);
  if (!access.ok) return access;
  const exists = inode.xattrs.includes(name.value.name);
  const flags = checkXattrSetFlags(cmd.flags, exists);
  if (!flags.ok) return flags;
  if (!exists) {
    if (inode.xattrs.length >= MAX_XATTRS_PER_INODE) return fail(Errno.ENOSPC, `handle ${inode.handle} has ${MAX_XATTRS_PER_INODE} extended attributes already`);
    inode.xattrs = [...inode.xattrs, name.value.name].sort(byUtf8);
  }
  scope.overlay.put(xattrKey(inode.handle, name.value.name), value);
  inode.ctimeMs = cmd.nowMs;
  scope.saveInode(inode);
  return ok(null);
}

export async function removexattr(scope: Scope, cmd: Cmd<'removexattr'>): Promise<Result<null>> {
  const found = await existing(scope, cmd.handle, 'removexattr');
  if (!found.ok) return found;
  const inode = found.value;
  const name = checkXattrName(cmd.name);
  if (!name.ok) return name;
  const access = mayAccessXattr(cmd.caller, inode, name.value.namespace, W_OK);
  if (!access.ok) return access;
  if (!inode.xattrs.includes(name.value.name)) return fail(Errno.ENODATA, `no attribute ${JSON.stringify(name.value.name)}`);
  inode.xattrs = inode.xattrs.filter((x) => x !== name.value.name);
  scope.overlay.del(xattrKey(inode.handle, name.value.name));
  inode.ctimeMs = cmd.nowMs;
  scope.saveInode(inode);
  return ok(null);
}

/** Byte order of UTF-8, the order LevelDB keeps the values in (UTF-16 order differs above the BMP). */
export function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

