/**
 * `handlefs fsck --repair`'s metadata repairs, applied as one leader-proposed
 * command (repairNamespace) inside a command Scope: nlink counts set to what
 * the directory entries say, and orphans (non-directories no entry names and
 * no fh holds) removed with their versions, xattrs and block references.
 *
 * Each fix is a compare-and-set against what the check saw, re-judged at this
 * log position, so a repair proposed from a scan at an earlier index never
 * undoes a change made since: every operation that adds or drops a name also
 * moves nlink (namespace-ops.ts), so "nlink is still fromNlink" means the
 * names the check counted are still the names there are (or a link and an
 * unlink cancelled out, which leaves the count right too). A fix whose inode
 * is gone, was reborn (generation), or moved on is skipped and said so.
 * Repeating the command changes nothing more. Must never decide what is wrong
 * (fsck-checks.ts does) or read a clock.
 */
import { Command, NlinkFix, OrphanCollect } from './commands';
import { removeInode } from './namespace-ops';
import { Scope } from './overlay';
import { ROOT_HANDLE } from './records';

export interface RepairResult {
  nlinkFixed: number[];
  collected: number[];
  /** "handle N: why" for each fix not made. */
  skipped: string[];
}

async function current(scope: Scope, fix: { handle: number; generation: number }, nlinkSeen: number): Promise<{ inode?: Awaited<ReturnType<Scope['inode']>>; why?: string }> {
  const inode = await scope.inode(fix.handle);
  if (!inode || inode.generation !== fix.generation) return { why: `handle ${fix.handle}: gone since the check` };
  if (inode.nlink !== nlinkSeen) return { why: `handle ${fix.handle}: nlink changed since the check (${nlinkSeen} → ${inode.nlink}); check again` };
  return { inode };
}

export async function repairNamespace(scope: Scope, command: Extract<Command, { op: 'repairNamespace' }>): Promise<RepairResult> {
  const result: RepairResult = { nlinkFixed: [], collected: [], skipped: [] };
  for (const fix of command.nlink as NlinkFix[]) {
    const { inode, why } = await current(scope, fix, fix.fromNlink);
    if (!inode) {
      result.skipped.push(why!);
      continue;
    }
    if (inode.type === 'dir' && fix.toNlink < 2) {
      result.skipped.push(`handle ${fix.handle}: a directory's nlink is at least 2, not ${fix.toNlink}`);
      continue;
    }
    if (inode.type !== 'dir' && fix.toNlink === 0 && (inode.openFhs ?? 0) === 0) {
      // Nameless and unheld: that is an orphan to collect, not an nlink to write.
      result.skipped.push(`handle ${fix.handle}: no entry names it; collect it as an orphan instead`);
      continue;
    }
    inode.nlink = fix.toNlink;
    scope.saveInode(inode);
    result.nlinkFixed.push(fix.handle);
  }
  for (const orphan of command.collect as OrphanCollect[]) {
    const { inode, why } = await current(scope, orphan, orphan.nlink);
    if (!inode) {
      result.skipped.push(why!);
      continue;
    }
    if (orphan.handle === ROOT_HANDLE || inode.type === 'dir') {
      result.skipped.push(`handle ${orphan.handle}: directories are not collected (their entries would dangle); look at it by hand`);
      continue;
    }
    if ((inode.openFhs ?? 0) > 0) {
      result.skipped.push(`handle ${orphan.handle}: an fh holds it now`);
      continue;
    }
    await removeInode(scope, inode, await scope.counters(), command.nowMs);
    result.collected.push(orphan.handle);
  }
  return result;
}
