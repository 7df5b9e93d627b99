/**
 * Block bookkeeping inside one command Scope: how many kept versions and
 * conflict copies reference each content-addressed block, upload pins, the
 * candidates for collection, and the collection rule itself (re-run at the
 * command's log position, so a pin or a new reference applied in between
 * wins). Must never touch block bytes: members delete files only after a
 * collectBlocks command applied (meta-state-machine.ts hands the ids out).
 *
 * Pins are leases, not per-fh lists: `pinBlocks` sets pinnedUntilMs (the
 * leader's clock + a pin TTL) before the leader stores an upload, so an
 * upload can never race a collection, and no fh has to enumerate its pins on
 * release. A writer that holds uploaded blocks uncommitted longer than the
 * TTL pins them again (the commit refuses an unpinned, unreferenced block).
 */
import { Errno, Result, fail, ok } from '../rules/errno';
import { Scope } from './overlay';
import { BlockRecord, StoredContent, blockKey, decodeRecord, encodeRecord, unreferencedBlockKey } from './records';

/** Ids one pinBlocks or collectBlocks command may carry (a 1 MiB block each: 1 GiB per pin command). */
export const MAX_BLOCK_IDS_PER_COMMAND = 1024;

async function readBlock(scope: Scope, id: string): Promise<BlockRecord | undefined> {
  const bytes = await scope.overlay.get(blockKey(id));
  return bytes ? decodeRecord<BlockRecord>(bytes, 'block') : undefined;
}

async function writeBlock(scope: Scope, id: string, record: BlockRecord, existed: boolean, nowMs: number): Promise<void> {
  if (record.refs < 0) throw new Error(`metastate: block ${id} would have ${record.refs} references`);
  scope.overlay.put(blockKey(id), encodeRecord(record));
  if (record.refs === 0) scope.overlay.put(unreferencedBlockKey(id), encodeRecord({ sinceMs: Math.max(nowMs, record.pinnedUntilMs) }));
  else scope.overlay.del(unreferencedBlockKey(id));
  if (!existed) {
    const counters = await scope.counters();
    counters.blockRecords = (counters.blockRecords ?? 0) + 1;
  }
}

/** The non-hole block ids of a stored content (none for inline content). */
export function blockIdsOf(content: StoredContent): string[] {
  return (content.blocks ?? []).filter((id) => id !== '');
}

/** One more reference to each listed block (a new version or copy that lists them). */
export async function addRefs(scope: Scope, ids: readonly string[], nowMs: number): Promise<void> {
  for (const id of ids) {
    const record = await readBlock(scope, id);
    await writeBlock(scope, id, { refs: (record?.refs ?? 0) + 1, pinnedUntilMs: record?.pinnedUntilMs ?? 0 }, record !== undefined, nowMs);
  }
}

/** One reference less to each listed block (a version or copy dropped); the last one makes it a collection candidate. */
export async function dropRefs(scope: Scope, ids: readonly string[], nowMs: number): Promise<void> {
  for (const id of ids) {
    const record = await readBlock(scope, id);
    if (!record) throw new Error(`metastate: dropping a reference to block ${id}, which has no record`);
    await writeBlock(scope, id, { ...record, refs: record.refs - 1 }, true, nowMs);
  }
}

/** Pins each block until untilMs at least (a pin never shortens). */
export async function pinBlocks(scope: Scope, ids: readonly string[], untilMs: number, nowMs: number): Promise<void> {
  for (const id of ids) {
    const record = await readBlock(scope, id);
    await writeBlock(scope, id, { refs: record?.refs ?? 0, pinnedUntilMs: Math.max(record?.pinnedUntilMs ?? 0, untilMs) }, record !== undefined, nowMs);
  }
}

/**
 * A block a new version or copy may list: referenced already, or pinned at
 * this command's time. ENOENT names the first one that is neither: its bytes
 * may be collected, so the client must pin and upload it again.
 */
export async function checkUsable(scope: Scope, ids: readonly string[], nowMs: number, trusted: ReadonlySet<string>): Promise<Result<null>> {
  for (const id of new Set(ids)) {
    if (trusted.has(id)) continue;
    const record = await readBlock(scope, id);
    if (!record || (record.refs === 0 && record.pinnedUntilMs < nowMs)) {
      return fail(Errno.ENOENT, `block ${id} is neither referenced nor pinned: pin and upload it (PutBlock) before committing`);
    }
  }
  return ok(null);
}

/**
 * Collects the listed blocks that, at this log position, have no reference,
 * no live pin and have been unreferenced for graceMs; returns their ids so
 * every member deletes their bytes after the command applied.
 */
export async function collectBlocks(scope: Scope, ids: readonly string[], nowMs: number, graceMs: number): Promise<string[]> {
  const collected: string[] = [];
  for (const id of new Set(ids)) {
    const record = await readBlock(scope, id);
    const candidate = await scope.overlay.get(unreferencedBlockKey(id));
    if (!record || record.refs !== 0 || !candidate) continue;
    const { sinceMs } = decodeRecord<{ sinceMs: number }>(candidate, 'unreferenced block');
    if (nowMs - sinceMs < graceMs || nowMs - record.pinnedUntilMs < graceMs) continue;
    scope.overlay.del(blockKey(id));
    scope.overlay.del(unreferencedBlockKey(id));
    collected.push(id);
  }
  const counters = await scope.counters();
  counters.blockRecords = (counters.blockRecords ?? 0) - collected.length;
  if (counters.blockRecords < 0) throw new Error('metastate: blockRecords fell below 0');
  return collected;
}
