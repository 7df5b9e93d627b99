/**
 * The subtree restriction of client tokens (`TOKEN rw subtree=/projects/a`):
 * decides, before any handler runs, whether a Meta call made with such a
 * token stays inside its subtree, and which handle is the session's root.
 * Called by client-auth.ts's guard; refused calls never reach a handler, so
 * nothing is proposed and nothing answered from the state machine.
 *
 * The rule (docs/security.md "Subtree restriction"):
 * - a DIRECTORY is inside iff the walk up its parent links ('..') reaches the
 *   subtree root before the file system root (directories have one parent);
 * - every directory a call names (parent of lookup, readdir, create, mkdir,
 *   mknod, symlink, unlink, rmdir, both parents of rename, the new parent of
 *   link, and the handle of every handle-only call when that handle is a
 *   directory) must be inside;
 * - a NON-DIRECTORY named by handle alone passes: files keep no parent link
 *   (hard links may give them several), so a file is protected only by not
 *   being reachable by name from inside. A client that guesses the handle
 *   number of a file outside its subtree can reach it (documented);
 * - a handle that does not exist answers ESTALE, as the handler would, so a
 *   handle created between this check and the handler is never let through;
 * - Admin and BlockPeer calls are refused (they see the whole cluster).
 * Outside answers ENOENT, not EACCES: the outside must not be probeable.
 *
 * Owns the walk and the per-subtree root cache. Must never change state, and
 * never let a Meta method through that it has not classified (fail closed).
 * The check reads this member's applied state; a verdict of "outside" or
 * "missing" is re-checked after a ReadIndex, so only a directory moved OUT of
 * the subtree in the last moments can still pass (see docs/security.md).
 */
import { Errno } from '../rules/errno';
import { MAX_DIRECTORY_DEPTH } from '../state/namespace-ops';
import { MetaQueries } from '../state/queries';

/** The file system root's handle (metaserver/state/records.ts). */
const FS_ROOT_HANDLE = 1;
const ROOT_CALLER = { uid: 0, gid: 0, groups: [] as number[] };
/** Distinct subtree paths whose root is cached (one per token line at most; bounded all the same). */
const MAX_CACHED_ROOTS = 1_024;
const MAX_SUBTREE_PATH_CHARS = 4_096;
/** Items one GetAttrs may carry (the handler refuses more). */
const MAX_CHECKED_ITEMS = 1_024;

/** What the guard needs of the member: its state's reads and a ReadIndex barrier. */
export interface SubtreeState {
  query: Pick<MetaQueries, 'placeOf' | 'lookup'>;
  /** Resolves once this member has applied everything committed before the call (node.readIndex). */
  linearizable(timeoutMs: number): Promise<void>;
}

export type Admission =
  | { admit: true; rootHandle: number; rootGeneration: number }
  /** A Meta reply carrying the POSIX refusal. */
  | { admit: false; reply: Record<string, unknown> }
  /** A gRPC status (Admin, BlockPeer, or the cluster cannot answer now). */
  | { admit: false; status: 'PERMISSION_DENIED' | 'UNAVAILABLE'; details: string };

/**
 * Checks a `subtree=` value: absolute, no empty, '.' or '..' component.
 * Returns the normalized path ('/' means the whole tree); throws a message.
 */
export function normalizeSubtree(value: string): string {
  if (!value.startsWith('/')) throw new Error(`subtree ${JSON.stringify(value)} must be an absolute path`);
  if (value.length > MAX_SUBTREE_PATH_CHARS) throw new Error(`subtree path is longer than ${MAX_SUBTREE_PATH_CHARS} characters`);
  const parts = value.split('/').filter((part, i, all) => !(part === '' && (i === 0 || i === all.length - 1)));
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') throw new Error(`subtree ${JSON.stringify(value)} has an empty, "." or ".." component`);
  }
  return '/' + parts.join('/');
}

type Where = 'dir' | 'handle';
/** Per Meta method: the request fields naming a directory that must be inside ('dir'), or a handle that must be inside when it is a directory ('handle'). */
const NAMED: Record<string, Array<[string, Where]>> = {
  Lookup: [['parent', 'dir']], ReadDir: [['parent', 'dir']],
  Mkdir: [['parent', 'dir']], Create: [['parent', 'dir']], Mknod: [['parent', 'dir']], Symlink: [['parent', 'dir']],
  Unlink: [['parent', 'dir']], Rmdir: [['parent', 'dir']], Rename: [['fromParent', 'dir'], ['toParent', 'dir']],
  Link: [['handle', 'handle'], ['newParent', 'dir']],
  GetAttr: [['handle', 'handle']], ReadLink: [['handle', 'handle']], SetAttr: [['handle', 'handle']], Open: [['handle', 'handle']],
  GetXattr: [['handle', 'handle']], ListXattr: [['handle', 'handle']], SetXattr: [['handle', 'handle']], RemoveXattr: [['handle', 'handle']],
  RestoreVersion: [['handle', 'handle']], GetVersion: [['handle', 'handle']], ListVersions: [['handle', 'handle']], GetConflictCopy: [['handle', 'handle']],
  // Calls naming no inode: sessions, statfs, fhs (an fh comes from an Open that was checked), blocks (content-addressed ids).
  OpenSession: [], KeepAlive: [], CloseSession: [], StatFs: [], Release: [], CommitVersion: [], ReadFh: [],
  PutBlock: [], PinBlocks: [], GetBlock: [], HasBlocks: [],
};

type Verdict = 'inside' | 'outside' | 'missing';

export class SubtreeGuard {
  private readonly roots = new Map<string, { handle: number; generation: number }>();
  readonly counters = { refusedOutside: 0 };

  constructor(private readonly state: SubtreeState) {}

  /**
   * Whether `method` ("Service/Method") with `request` may run for a token
   * restricted to `subtree` (normalized). Never throws: a failure to decide
   * answers UNAVAILABLE (the SDK retries), never "admit".
   */
  async admit(method: string, request: unknown, subtree: string, deadlineMs: number): Promise<Admission> {
    const [service, name] = method.split('/');
    if (service !== 'Meta') return { admit: false, status: 'PERMISSION_DENIED', details: `a token restricted to the subtree ${subtree} may not call ${method}` };
    const fields = NAMED[name];
    if (fields === undefined) return { admit: false, status: 'PERMISSION_DENIED', details: `${method} is not classified for subtree tokens; refused` };
    try {
      let root = await this.root(subtree, deadlineMs, false);
      if (root === undefined) root = await this.root(subtree, deadlineMs, true);
      if (root === undefined) return { admit: false, reply: { errno: Errno.ENOENT, message: `this token's subtree ${subtree} does not exist` } };
      const named = this.namedHandles(name, fields, request);
      let refusal = await this.firstRefusal(named, root.handle);
      if (refusal !== undefined) {
        // Stale state may hide a directory just created inside, or show one just moved in as outside: decide again after a ReadIndex.
        await this.state.linearizable(this.timeoutMs(deadlineMs));
        root = await this.root(subtree, deadlineMs, false);
        if (root === undefined) return { admit: false, reply: { errno: Errno.ENOENT, message: `this token's subtree ${subtree} does not exist` } };
        refusal = await this.firstRefusal(named, root.handle);
      }
      if (refusal !== undefined) {
        this.counters.refusedOutside++;
        const message = refusal.verdict === 'missing' ? `handle ${refusal.handle} does not exist` : `handle ${refusal.handle} is not inside this token's subtree ${subtree}`;
        const errno = refusal.verdict === 'missing' ? Errno.ESTALE : Errno.ENOENT;
        if (name === 'GetAttrs') return { admit: false, reply: { items: named.map(() => ({ errno, message, attr: null })) } };
        return { admit: false, reply: { errno, message } };
      }
      return { admit: true, rootHandle: root.handle, rootGeneration: root.generation };
    } catch (error) {
      return { admit: false, status: 'UNAVAILABLE', details: `cannot check the subtree ${subtree} now: ${(error as Error).message}` };
    }
  }

  private timeoutMs(deadlineMs: number): number {
    return Math.max(1, deadlineMs - Date.now());
  }

  /** The handles a request names, with how each is checked. GetAttrs names one per item. */
  private namedHandles(name: string, fields: Array<[string, Where]>, request: unknown): Array<{ handle: number; where: Where }> {
    const body = (request ?? {}) as Record<string, unknown>;
    if (name === 'GetAttr' || name === 'GetAttrs') {
      const items = name === 'GetAttrs' ? (Array.isArray(body.items) ? body.items : []) : [body];
      return items.slice(0, MAX_CHECKED_ITEMS + 1).map((item) => ({ handle: Number((item as Record<string, unknown> | null)?.handle), where: 'handle' as const }));
    }
    return fields.map(([field, where]) => ({ handle: Number(body[field]), where }));
  }

  private async firstRefusal(named: Array<{ handle: number; where: Where }>, rootHandle: number): Promise<{ handle: number; verdict: Verdict } | undefined> {
    for (const { handle, where } of named) {
      // Malformed handles (0, negative, not integers) go on to the handler, which answers INVALID_ARGUMENT; they name no inode.
      if (!Number.isSafeInteger(handle) || handle < 1) continue;
      const verdict = await this.placeOf(handle, rootHandle, where);
      if (verdict !== 'inside') return { handle, verdict };
    }
    return undefined;
  }

  /** Walks '..' from a directory up to the subtree root (inside) or the file system root (outside). */
  private async placeOf(handle: number, rootHandle: number, where: Where): Promise<Verdict> {
    const start = await this.state.query.placeOf(handle);
    if (start === undefined) return 'missing';
    if (start.type !== 'dir') return where === 'handle' ? 'inside' : 'outside';
    let current: { parent?: number } | undefined = start;
    let currentHandle = handle;
    for (let depth = 0; depth <= MAX_DIRECTORY_DEPTH; depth++) {
      if (currentHandle === rootHandle) return 'inside';
      if (currentHandle === FS_ROOT_HANDLE) return 'outside';
      if (current?.parent === undefined) throw new Error(`directory ${currentHandle} has no parent link`);
      currentHandle = current.parent;
      current = await this.state.query.placeOf(currentHandle);
      if (current === undefined) return 'missing'; // a parent removed while walking: the state moved on under us
    }
    throw new Error(`directory ${handle} is nested deeper than ${MAX_DIRECTORY_DEPTH}`);
  }

  /**
   * The subtree's root directory: cached while it still exists with the
   * same generation (so renaming it carries the restriction along, like a
   * bind mount), resolved again by path otherwise. `fresh` reads after a ReadIndex.
   */
  private async root(subtree: string, deadlineMs: number, fresh: boolean): Promise<{ handle: number; generation: number } | undefined> {
    if (fresh) await this.state.linearizable(this.timeoutMs(deadlineMs));
    const cached = this.roots.get(subtree);
    if (cached !== undefined) {
      const place = await this.state.query.placeOf(cached.handle);
      if (place !== undefined && place.type === 'dir' && place.generation === cached.generation) return cached;
      this.roots.delete(subtree);
    }
    let handle = FS_ROOT_HANDLE;
    for (const part of subtree.split('/').filter(Boolean)) {
      const found = await this.state.query.lookup(ROOT_CALLER, handle, part);
      if (!found.ok) return undefined;
      handle = found.value.handle;
    }
    const place = await this.state.query.placeOf(handle);
    if (place === undefined || place.type !== 'dir') return undefined;
    if (this.roots.size >= MAX_CACHED_ROOTS) this.roots.clear();
    const root = { handle, generation: place.generation };
    this.roots.set(subtree, root);
    return root;
  }
}
