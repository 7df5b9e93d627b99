/**
 * The API of open file handles, versions and blocks (issue 3 §1, §3, §4):
 * Open, Release, CommitVersion (inline or block form), RestoreVersion, ReadFh,
 * GetVersion, ListVersions, GetConflictCopy, PutBlock, GetBlock, HasBlocks.
 * Mutations go through the context's mutate (exactly once, leader only);
 * reads are linearizable on any member. Owns the upload rule — a block is
 * pinned by a replicated command before its bytes are stored, and a commit
 * naming a block no majority holds is refused before it is proposed. Must
 * never decide a POSIX answer the state machine decides.
 */
import { INLINE_LIMIT_BYTES } from '../rules/commit';
import { Errno } from '../rules/errno';
import { MAX_HAS_BLOCKS_IDS } from '../../proto/blocks-proto';
import { MAX_BLOCK_BYTES, blockIdOf } from '../blocks/block-store';
import { MAX_BLOCK_IDS_PER_COMMAND } from '../state/block-refs';
import { MAX_BLOCKS_PER_VERSION } from '../state/commands';
import { CommitRejected, CommitResult, OpenResult } from '../state/fh-ops';
import { RestoreResult } from '../state/history-ops';
import { MAX_VERSIONS_LISTED, ConflictCopyInfo as StateConflictCopyInfo, VersionInfo as StateVersionInfo } from '../state/queries';
import { StoredContent } from '../state/records';
import * as p from '../../proto/meta-proto';
import {
  MAX_READ_LENGTH_BYTES, RequestError, inlineBytesOf, requireBlockIds, requireCaller, requireExtents, requireHeader, requireId, requirePolicy, requireUint,
  requireWritten,
} from './request-checks';
import { CallInfo, Handler, ServiceContext, attrOf, failureFields } from './service-context';


const NO_COMMIT = { kind: '', version: 0, sizeBytes: 0, conflictVersion: 0, conflictCopy: 0, headVersion: 0 };
/** Ids one PinBlocks may name (one log entry; a client batches the pins of the blocks it is about to store). */
export const MAX_PIN_BLOCKS_IDS = 64;

function versionInfoOf(info: StateVersionInfo): p.VersionInfo {
  return {
    version: info.version, sizeBytes: info.sizeBytes, kind: info.kind, baseVersion: info.baseVersion, sessionId: info.sessionId, fh: info.fh ?? 0,
    commitTimeMs: info.commitTimeMs, mtimeMs: info.mtimeMs, changedExtents: info.changedExtents.map((e) => ({ offset: e.offset, length: e.length })),
    conflict: info.conflict, lostToVersion: info.lostToVersion ?? 0, overwroteVersion: info.overwroteVersion ?? 0,
    blocks: info.blocks ?? [], blockSizeBytes: info.blockSizeBytes ?? 0, restoredFrom: info.restoredFrom ?? 0,
  };
}

function conflictCopyInfoOf(info: StateConflictCopyInfo): p.ConflictCopyInfo {
  return {
    copy: info.copy, baseVersion: info.baseVersion, lostToVersion: info.lostToVersion, sizeBytes: info.sizeBytes, sessionId: info.sessionId, fh: info.fh,
    commitTimeMs: info.commitTimeMs, changedExtents: info.changedExtents.map((e) => ({ offset: e.offset, length: e.length })),
    blocks: info.blocks ?? [], blockSizeBytes: info.blockSizeBytes ?? 0,
  };
}

/** The bytes a GetVersion / GetConflictCopy reply carries: inline content whole; block content is read by id (GetBlock) or through ReadFh. */
function inlineContentOf(info: { blocks?: string[] }, bytes: Uint8Array): Uint8Array {
  return info.blocks ? new Uint8Array() : bytes;
}

type FileMethods = 'Open' | 'Release' | 'CommitVersion' | 'RestoreVersion' | 'ReadFh' | 'GetVersion' | 'ListVersions' | 'GetConflictCopy' | 'PutBlock' | 'PinBlocks' | 'GetBlock' | 'HasBlocks';

export function fileHandlers(ctx: ServiceContext): { [M in FileMethods]: Handler<M> } {
  const q = ctx.machine.query;
  return {
    Open: async (r, call) => {
      const handle = requireId('handle', r.handle);
      const result = await ctx.mutate(r.header, { op: 'open', handle, read: r.read === true, write: r.write === true, append: r.append === true }, call);
      if (!result.ok) return { ...failureFields(result), fh: 0, version: 0, sizeBytes: 0, attr: null };
      const opened = result.value as OpenResult;
      // The open has applied on this member (propose resolved), so these attrs are at least as new as it.
      const attrs = await q.getattr(handle);
      return { ...failureFields(result), fh: opened.fh, version: opened.version, sizeBytes: opened.sizeBytes, attr: attrs.ok ? attrOf(attrs.value) : null };
    },
    Release: async (r, call) => failureFields(await ctx.mutate(r.header, { op: 'release', fh: requireId('fh', r.fh) }, call)),
    CommitVersion: async (r, call) => {
      requireHeader(r.header);
      const fh = requireId('fh', r.fh);
      const baseVersion = requireId('base_version', r.baseVersion);
      const newSize = requireUint('new_size', r.newSize);
      const policy = requirePolicy(r.policy);
      const release = r.release === true;
      // A cut below the base (O_TRUNC, ftruncate): checked against the base's size by the commit rule.
      const cut = r.truncated === true ? { truncatedTo: requireUint('truncated_to', r.truncatedTo ?? 0) } : {};
      let body;
      if (r.blockForm === true) {
        if ((r.written ?? []).length > 0) throw new RequestError('a block-form commit carries no inline written bytes (use written_extents)');
        if (Array.isArray(r.blocks) && r.blocks.length > MAX_BLOCKS_PER_VERSION) {
          // A well-formed request for a file larger than one log entry can list: the file is too big, not the request malformed.
          return { errno: Errno.EFBIG, message: `a version lists at most ${MAX_BLOCKS_PER_VERSION} blocks (${MAX_BLOCKS_PER_VERSION} MiB) until indirect block lists exist; this commit lists ${r.blocks.length}`, sessionError: '', ...NO_COMMIT };
        }
        const blocks = requireBlockIds('blocks', r.blocks, true, MAX_BLOCKS_PER_VERSION);
        const writtenExtents = requireExtents('written_extents', r.writtenExtents);
        const unheld = await unheldBlocks(ctx, blocks, call);
        if (unheld) return { errno: Errno.ENOENT, message: `block ${unheld} is not held by a majority of the members and none can copy it: upload it (PutBlock) and commit again`, sessionError: '', ...NO_COMMIT };
        body = { op: 'commitVersion' as const, fh, baseVersion, written: [], newSize, policy, release, blocks, writtenExtents, ...cut };
      } else {
        const written = requireWritten(r.written);
        // Over the inline limit is a POSIX answer no state can change (as SetXattr's E2BIG): not proposed, and never near the command size cap.
        const carriedBytes = inlineBytesOf(r.written);
        if (carriedBytes > INLINE_LIMIT_BYTES) {
          return { errno: Errno.EFBIG, message: `an inline commit carries at most ${INLINE_LIMIT_BYTES} bytes, this one ${carriedBytes}: commit larger content in block form`, sessionError: '', ...NO_COMMIT };
        }
        body = { op: 'commitVersion' as const, fh, baseVersion, written, newSize, policy, release, ...cut };
      }
      const result = await ctx.mutate(r.header, body, call);
      if (!result.ok) {
        const rejected = result as Partial<CommitRejected>;
        if (rejected.conflictCopy !== undefined) ctx.metrics?.commit('conflict-reject');
        return { ...failureFields(result), ...NO_COMMIT, conflictCopy: rejected.conflictCopy ?? 0, headVersion: rejected.headVersion ?? 0 };
      }
      const committed = result.value as CommitResult;
      ctx.metrics?.commit(committed.kind);
      return { ...failureFields(result), ...NO_COMMIT, kind: committed.kind, version: committed.version, sizeBytes: committed.sizeBytes, conflictVersion: committed.conflictVersion ?? 0 };
    },
    RestoreVersion: async (r, call) => {
      const result = await ctx.mutate(r.header, { op: 'restoreVersion', handle: requireId('handle', r.handle), version: requireId('version', r.version) }, call);
      const restored = result.ok ? (result.value as RestoreResult) : { version: 0, sizeBytes: 0 };
      if (result.ok) ctx.metrics?.commit('restore');
      return { ...failureFields(result), version: restored.version, sizeBytes: restored.sizeBytes };
    },
    ReadFh: async (r, call) => {
      const fh = requireId('fh', r.fh);
      const offset = requireUint('offset', r.offset);
      const length = requireUint('length', r.length, MAX_READ_LENGTH_BYTES);
      const sessionId = requireUint('session_id', r.sessionId);
      await ctx.linearizable(call);
      const result = await q.readThroughFh(fh, sessionId === 0 ? undefined : sessionId);
      if (!result.ok) return { errno: result.errno, message: result.message, data: new Uint8Array(), version: 0, sizeBytes: 0 };
      const { info, bytes } = result.value;
      const content: StoredContent = { sizeBytes: info.sizeBytes, inlineBase64: '', blocks: info.blocks, blockSizeBytes: info.blockSizeBytes };
      const data = info.blocks ? await ctx.blocks.readRange(content, offset, length, call.deadlineMs) : bytes.subarray(Math.min(offset, bytes.byteLength), Math.min(bytes.byteLength, offset + length));
      return { errno: 0, message: '', data, version: info.version, sizeBytes: info.sizeBytes };
    },
    GetVersion: async (r, call) => {
      const c = requireCaller('caller', r.caller);
      const handle = requireId('handle', r.handle);
      const version = requireId('version', r.version);
      await ctx.linearizable(call);
      const result = await q.getVersion(c, handle, version);
      if (!result.ok) return { errno: result.errno, message: result.message, info: null, content: new Uint8Array() };
      return { errno: 0, message: '', info: versionInfoOf(result.value.info), content: inlineContentOf(result.value.info, result.value.bytes) };
    },
    ListVersions: async (r, call) => {
      const c = requireCaller('caller', r.caller);
      const handle = requireId('handle', r.handle);
      const fromVersion = requireUint('from_version', r.fromVersion) || 1;
      const pageSize = Math.min(requireUint('limit', r.limit, 0xffffffff) || MAX_VERSIONS_LISTED, MAX_VERSIONS_LISTED);
      await ctx.linearizable(call);
      const result = await q.listVersions(c, handle, fromVersion, pageSize);
      if (!result.ok) return { errno: result.errno, message: result.message, versions: [], nextFromVersion: 0 };
      const versions = result.value.map(versionInfoOf);
      // Versions are numbered by key order, so the next page starts after the last one listed.
      const nextFromVersion = versions.length === pageSize ? versions[versions.length - 1].version + 1 : 0;
      return { errno: 0, message: '', versions, nextFromVersion };
    },
    GetConflictCopy: async (r, call) => {
      const c = requireCaller('caller', r.caller);
      const handle = requireId('handle', r.handle);
      const copy = requireId('copy', r.copy);
      await ctx.linearizable(call);
      const result = await q.getConflictCopy(c, handle, copy);
      if (!result.ok) return { errno: result.errno, message: result.message, info: null, content: new Uint8Array() };
      return { errno: 0, message: '', info: conflictCopyInfoOf(result.value.info), content: inlineContentOf(result.value.info, result.value.bytes) };
    },
    PutBlock: async (r, call) => {
      requireHeader(r.header);
      const data = r.data instanceof Uint8Array ? r.data : new Uint8Array();
      if (data.byteLength > MAX_BLOCK_BYTES) throw new RequestError(`data is ${data.byteLength} bytes; a block holds at most ${MAX_BLOCK_BYTES}`);
      const given = r.id ? requireBlockIds('id', [r.id], false, 1)[0] : '';
      if (data.byteLength === 0 && given === '') throw new RequestError('a PutBlock carries data, or an id to pin a block the cluster holds already');
      const id = data.byteLength > 0 ? blockIdOf(data) : given;
      if (given !== '' && given !== id) throw new RequestError(`id ${given} does not match the data, whose SHA-256 is ${id}`);
      // Pinned first, through the log: a collection applied after this cannot take the block, one applied before has deleted it already.
      const pinned = await ctx.mutate(r.header, { op: 'pinBlocks', ids: [id], untilMs: Date.now() + ctx.blockPinTtlMs }, call, data.byteLength);
      if (!pinned.ok) return { ...failureFields(pinned), id: '' };
      if (data.byteLength === 0) {
        const [held] = await ctx.blocks.replicator.majorityHolds([id], call.deadlineMs);
        if (!held) return { errno: Errno.ENOENT, message: `no majority holds block ${id}: send its bytes`, sessionError: '', id };
        return { errno: 0, message: '', sessionError: '', id };
      }
      // Members store it once their state has applied the pin (the pin's entry is at or below this member's applied index now).
      await ctx.blocks.replicator.replicate(id, data, await ctx.machine.appliedIndex(), call.deadlineMs);
      return { errno: 0, message: '', sessionError: '', id };
    },
    PinBlocks: async (r, call) => {
      requireHeader(r.header);
      const ids = requireBlockIds('ids', r.ids, false, MAX_PIN_BLOCKS_IDS);
      if (ids.length === 0) throw new RequestError('PinBlocks names no block');
      const newBytes = requireUint('new_bytes', r.newBytes);
      if (newBytes > ids.length * MAX_BLOCK_BYTES) throw new RequestError(`new_bytes ${newBytes} is more than ${ids.length} blocks can hold`);
      const pinned = await ctx.mutate(r.header, { op: 'pinBlocks', ids, untilMs: Date.now() + ctx.blockPinTtlMs }, call, newBytes);
      if (!pinned.ok) return { ...failureFields(pinned), appliedIndex: 0 };
      // A member that applied this index knows the pins; StoreReplica waits for it, so a collection can never race the bytes.
      return { errno: 0, message: '', sessionError: '', appliedIndex: await ctx.machine.appliedIndex() };
    },
    GetBlock: async (r, call) => {
      const [id] = requireBlockIds('id', [r.id], false, 1);
      try {
        return { errno: 0, message: '', data: await ctx.blocks.read(id, call.deadlineMs) };
      } catch (error) {
        return { errno: Errno.ENOENT, message: `no member could serve block ${id}: ${(error as Error).message}`, data: new Uint8Array() };
      }
    },
    HasBlocks: async (r, call) => {
      const ids = requireBlockIds('ids', r.ids, false, Math.min(MAX_HAS_BLOCKS_IDS, MAX_BLOCK_IDS_PER_COMMAND));
      return { present: await ctx.blocks.replicator.majorityHolds(ids, call.deadlineMs) };
    },
  };
}

/**
 * The first non-hole block of a commit that no majority holds and that this
 * leader cannot bring to a majority, or undefined. A block that lost holders
 * (the leader that took the upload died, a member was wiped) but that some
 * member still has is copied from it to a majority first: the writer may no
 * longer have the bytes.
 */
async function unheldBlocks(ctx: ServiceContext, blocks: readonly string[], call: CallInfo): Promise<string | undefined> {
  const unique = [...new Set(blocks.filter((id) => id !== ''))];
  for (let i = 0; i < unique.length; i += MAX_HAS_BLOCKS_IDS) {
    const page = unique.slice(i, i + MAX_HAS_BLOCKS_IDS);
    const held = await ctx.blocks.replicator.majorityHolds(page, call.deadlineMs);
    for (const [k, id] of page.entries()) {
      if (held[k]) continue;
      try {
        // Pinned by its upload (or referenced), so no collection races this copy; peers may store it at once.
        await ctx.blocks.replicator.replicate(id, await ctx.blocks.read(id, call.deadlineMs), 0, call.deadlineMs);
      } catch {
        return id;
      }
    }
  }
  return undefined;
}
