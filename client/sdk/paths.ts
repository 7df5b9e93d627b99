/**
 * Path helpers over MetaClient: resolve '/a/b' from the client's root (handle 1, or its token's subtree) one
 * lookup a component, read a whole file (through an fh, or a kept version) and
 * write a whole file with O_TRUNC semantics (inline up to 4,096 bytes, else
 * 1 MiB blocks uploaded with bounded parallelism and a block-form commit that
 * also releases the fh). Owns path walking and whole-file transfer; must
 * never talk to the servers but through MetaClient.
 */
import type * as p from '../../proto/meta-proto';
import { BLOCK_SIZE_BYTES, INLINE_LIMIT_BYTES } from './constants';
import { EINVAL, EIO, EISDIR, ELOOP, ENOENT, MetaError } from './errors';
import type { CommitContent, CommitOutcome, MetaClient, Policy } from './meta-client';

/** Blocks uploaded or fetched at once by one whole-file call. */
export const PARALLEL_BLOCKS = 4;
/** Symlinks followed by one resolve (Linux's MAXSYMLINKS). */
const SYMLINK_HOPS_MAX = 40;
/** Components of one path (a 4,096-byte PATH_MAX holds at most 2,048). */
const COMPONENTS_MAX = 4_096;
/** Lookups of a head read whose version retention dropped before its bytes were fetched (each a newer head). */
const HEAD_READ_ATTEMPTS_MAX = 5;

/** Runs the tasks, at most `limit` at a time; the first failure rejects (the rest still settle). */
export async function boundedParallel(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  let failure: unknown;
  const lane = async (): Promise<void> => {
    while (next < tasks.length && failure === undefined) {
      const task = tasks[next++];
      try {
        await task();
      } catch (error) {
        failure ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane));
  if (failure !== undefined) throw failure;
}

/** The components of a path; '' components are kept (the server answers them EINVAL), a leading '/' is the root. */
export function components(path: string): string[] {
  if (path === '' ) throw new MetaError(EINVAL, 'an empty path');
  const trimmed = path.startsWith('/') ? path.slice(1) : path;
  if (trimmed === '') return [];
  const parts = trimmed.split('/');
  if (parts.length > COMPONENTS_MAX) throw new MetaError(EINVAL, `a path of more than ${COMPONENTS_MAX} components`);
  return parts;
}

export async function resolve(client: MetaClient, path: string, caller: p.Caller | undefined, followLast: boolean): Promise<p.Attr> {
  let parts = components(path);
  let attr = await client.getattr(client.rootHandle);
  let parent = attr;
  for (let hops = 0, i = 0; i < parts.length; i++) {
    parent = attr;
    attr = await client.lookup(parent.handle, parts[i], caller);
    if (i === parts.length - 1 && followLast && attr.type === 'lnk') {
      if (++hops > SYMLINK_HOPS_MAX) throw new MetaError(ELOOP, `${path}: more than ${SYMLINK_HOPS_MAX} symlinks`);
      const target = await client.readlink(attr.handle);
      // A relative target continues from the link's directory; an absolute one from the root.
      const rest = components(target);
      if (target.startsWith('/')) {
        attr = await client.getattr(client.rootHandle);
        parts = rest;
      } else {
        attr = parent;
        parts = rest;
      }
      i = -1;
      if (parts.length === 0) return attr;
    }
  }
  return attr;
}

/** The parent directory's attrs and the last name of a path naming a file (not the root). */
async function parentOf(client: MetaClient, path: string, caller: p.Caller | undefined): Promise<{ parent: p.Attr; name: string }> {
  const parts = components(path);
  if (parts.length === 0) throw new MetaError(EINVAL, `${path}: the root is not a file`);
  const name = parts[parts.length - 1];
  const parentPath = '/' + parts.slice(0, -1).join('/');
  return { parent: await resolve(client, parentPath, caller, false), name };
}

export async function readFile(client: MetaClient, path: string, opts: { version?: number | 'head' }, caller: p.Caller | undefined): Promise<Uint8Array> {
  if (opts.version === 'head') return readHead(client, path, caller);
  const attr = await resolve(client, path, caller, true);
  if (opts.version !== undefined) return (await client.getVersion(attr.handle, opts.version, caller)).content;
  const opened = await client.open(attr.handle, { read: true, write: false, append: false }, caller);
  try {
    const { data, sizeBytes } = await client.readFh(opened.fh, 0, opened.sizeBytes);
    if (data.byteLength !== sizeBytes) throw new MetaError(EIO, `${path}: read ${data.byteLength} of ${sizeBytes} bytes`);
    return data;
  } finally {
    await client.release(opened.fh);
  }
}

/**
 * The head version named by a linearizable lookup, read as a kept version: no fh, so no log entry.
 * Versions never change, so the bytes are the head's at the lookup whenever they are fetched; only
 * retention can drop that version (or its blocks) meanwhile (ENOENT), and then the path is looked up again.
 */
async function readHead(client: MetaClient, path: string, caller: p.Caller | undefined): Promise<Uint8Array> {
  for (let attempt = 1; ; attempt++) {
    const attr = await resolve(client, path, caller, true);
    if (attr.type !== 'reg') throw new MetaError(attr.type === 'dir' ? EISDIR : EINVAL, `${path}: not a regular file (${attr.type})`);
    if (!attr.headVersion) throw new MetaError(EIO, `${path}: the server named no head version for handle ${attr.handle}`);
    try {
      return (await client.getVersion(attr.handle, attr.headVersion, caller)).content;
    } catch (error) {
      if (!(error instanceof MetaError && error.errno === ENOENT) || attempt >= HEAD_READ_ATTEMPTS_MAX) throw error;
    }
  }
}

export async function writeFile(client: MetaClient, path: string, data: Uint8Array, opts: { policy?: Policy; mode?: number }, caller: p.Caller | undefined): Promise<CommitOutcome> {
  const { parent, name } = await parentOf(client, path, caller);
  const made = await client.create(parent.handle, name, opts.mode ?? 0o644, { exclusive: false, open: { read: false, write: true, append: false } }, caller);
  const opened = made.opened!;
  let released = false;
  // A whole-file write replaces what was there (even nothing): it cuts to 0 before writing, so a concurrent longer write's tail does not survive it.
  const cut = { truncatedTo: 0 };
  try {
    // A base stored as blocks takes only block-form commits.
    let content: CommitContent = data.byteLength <= INLINE_LIMIT_BYTES && opened.sizeBytes <= INLINE_LIMIT_BYTES
      ? { kind: 'inline', written: data.byteLength > 0 ? [{ offset: 0, data }] : [], newSize: data.byteLength }
      : await blockContent(client, data);
    let outcome: CommitOutcome;
    try {
      outcome = await client.commit(opened.fh, opened.version, { ...content, ...cut }, { policy: opts.policy, release: true });
    } catch (error) {
      // A small base may still be stored as blocks (written in block form once): say it again as blocks.
      if (!(error instanceof MetaError && error.errno === EINVAL && content.kind === 'inline' && /as blocks/.test(error.message))) throw error;
      content = await blockContent(client, data);
      outcome = await client.commit(opened.fh, opened.version, { ...content, ...cut }, { policy: opts.policy, release: true });
    }
    released = true;
    return outcome;
  } finally {
    // A failed commit leaves the fh open: release it (quietly: the commit's error is the one to report).
    if (!released) await client.release(opened.fh).catch(() => {});
  }
}

async function blockContent(client: MetaClient, data: Uint8Array): Promise<CommitContent> {
  const count = Math.ceil(data.byteLength / BLOCK_SIZE_BYTES);
  const blocks: string[] = new Array<string>(count);
  await boundedParallel(Array.from({ length: count }, (_, index) => async () => {
    blocks[index] = await client.putBlock(data.subarray(index * BLOCK_SIZE_BYTES, Math.min(data.byteLength, (index + 1) * BLOCK_SIZE_BYTES)));
  }), PARALLEL_BLOCKS);
  return { kind: 'blocks', blocks, writtenExtents: data.byteLength > 0 ? [{ offset: 0, length: data.byteLength }] : [], newSize: data.byteLength };
}
