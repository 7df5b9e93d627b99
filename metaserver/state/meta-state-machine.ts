/**
 * The metadata StateMachine that raft/ replicates, on its own classic-level
 * folder. Owns the apply loop (decode, session check, exactly-once dedup, run
 * the command), the root directory and sessions; the applied index (written
 * in one synced batch with each apply), the one-apply-at-a-time guard,
 * snapshot and restore are raft/node/level-keyspace.ts's. Must never read a
 * clock or throw on a bad command (every member must answer the same entry
 * the same way: a bad command is an errno result); it throws only on a broken invariant or a
 * storage failure, which the Raft node treats as fatal.
 *
 * Exactly-once (Raft thesis §6.3): a mutation's sequence must exceed the
 * session's lastSequence; equal to it, the stored result is returned again
 * and nothing is applied; below it, STALE_SEQUENCE. A command from a session
 * that is unknown, closed or expired answers SESSION_EXPIRED. Both are
 * ordinary results, marked with `session` so the client can tell them from a
 * file-system errno. A failing command's writes are dropped, except a commit
 * rejected under policy reject, whose conflict copy is kept (fh-ops.ts). A
 * session's end (close or expiry) releases its open fhs in the same command.
 */
import { Entry, EntryType, Snapshot } from '../../raft/core/types';
import { StateMachine } from '../../raft/node/interfaces';
import { KeyspaceLayout, LevelKeyspace } from '../../raft/node/level-keyspace';
import { Errno, Failure, Ok, Result, fail, ok } from '../rules/errno';
import { checkCaller } from '../rules/permissions';
import { setattr, setxattr, removexattr } from './attr-ops';
import { Command, MutationCommand, decodeCommand, keysNamedBy } from './commands';
import { commitVersion, keepsWrites, openFh, releaseFh, releaseSessionFhs } from './fh-ops';
import { pinBlocks } from './block-refs';
import { collectBlocks, restoreVersion, retainVersions } from './history-ops';
import { createEntry, link, rename, rmdir, unlink } from './namespace-ops';
import { Overlay, Scope } from './overlay';
import { RecordCache } from './record-cache';
import { AssemblyRequired, isAssemblyRequired } from './version-content';
import { MetaQueries } from './queries';
import { ScanPoints } from './state-scan';
import { repairNamespace } from './repair-ops';
import { APPLIED_KEY, Inode, ROOT_HANDLE, Session, decodeRecord, encodeRecord, isStateKey, sessionKey, sessionResultKey, inodeKey, direntKey, fhKey } from './records';

/** The keyspace as level-keyspace.ts sees it; snapshots open with "HMS1". */
export const META_KEYSPACE: KeyspaceLayout = { label: 'metastate', appliedKey: APPLIED_KEY, snapshotMagic: Buffer.from('HMS1'), isStateKey };

/**
 * A session that is unknown, closed or expired. ENOTCONN is what a FUSE mount
 * answers when its server is gone; the client reopens a session, and only if
 * it cannot does the kernel see ENOTCONN.
 */
export const SESSION_EXPIRED_ERRNO = Errno.ENOTCONN;
/** A sequence below the session's last: a delayed duplicate of a request already superseded. */
export const STALE_SEQUENCE_ERRNO = Errno.EINVAL;

export interface SessionFailure extends Failure {
  readonly session: 'SESSION_EXPIRED' | 'STALE_SEQUENCE' | 'WINDOW_FULL';
}

export type CommandResult = Ok<unknown> | Failure | SessionFailure | AssemblyRequired;

/** Applied mutations whose answers a session may leave unacknowledged; beyond, WINDOW_FULL (EAGAIN), nothing applied. */
export const MAX_OUTSTANDING_PER_SESSION = 256;


/**
 * debug-unsafe fault switches (metaserver --debug-unsafe, only with
 * HANDLEFS_DEBUG_UNSAFE=1), for proving the chaos checkers catch real
 * wrongness. A server-start flag, identical on every member of a run, so
 * apply stays deterministic across members even when it is wrong on purpose.
 */
export interface MetaStateMachineOptions {
  /** no-dedup: a mutation whose sequence was applied already is applied again instead of answered from the stored result. */
  debugNoDedup?: boolean;
}

export interface OpenSessionResult {
  sessionId: number;
  ttlMs: number;
}

function sessionFailure(session: SessionFailure['session'], message: string): SessionFailure {
  const errno = session === 'SESSION_EXPIRED' ? SESSION_EXPIRED_ERRNO : session === 'STALE_SEQUENCE' ? STALE_SEQUENCE_ERRNO : Errno.EAGAIN;
  return { ...fail(errno, message), session };
}

/** FUSE's create: the entry and an fh on it in one command, so a failing open leaves no file behind. */
async function createAndOpen(scope: Scope, command: Extract<MutationCommand, { op: 'create' }>, entryIndex: number): Promise<Result<unknown>> {
  if (!command.open) throw new Error('metastate: createAndOpen without open flags');
  const created = await createEntry(scope, command, entryIndex);
  if (!created.ok) return created;
  const { op: _create, parent: _parent, name: _name, mode: _mode, umask: _umask, exclusive: _exclusive, open, ...header } = command;
  const opened = await openFh(scope, { ...header, ...open, op: 'open', handle: created.value.attrs.handle }, entryIndex, created.value.created === true);
  if (!opened.ok) return opened;
  return ok({ ...created.value, open: opened.value });
}

/** Deletes a session's record and its stored results (its fhs are releaseSessionFhs's). */
function removeSession(overlay: Overlay, session: Session): void {
  for (const sequence of session.outstanding) overlay.del(sessionResultKey(session.id, sequence));
  overlay.del(sessionKey(session.id));
}

const PREFETCH_KEYS = { session: sessionKey, inode: inodeKey, dirent: direntKey, fh: fhKey };

export class MetaStateMachine implements StateMachine {
  /** Set once the root directory is known to exist (created by the first apply). */
  private rootExists = false;
  readonly query: MetaQueries;
  /** fsck's digest-and-check scans at a chosen applied index (state-scan.ts): apply stops at such an index long enough to open a snapshot. */
  readonly scans: ScanPoints;

  private readonly cache: RecordCache;
  /** Block ids collectBlocks commands of the running batch collected; handed to onBlocksCollected once it is durable. */
  private collectedInBatch: string[] = [];
  /**
   * Deletes collected blocks' bytes (the member's block store). Awaited before
   * apply returns, so an upload pinned by a later entry is stored only after
   * the deletion it might otherwise race.
   */
  onBlocksCollected: (ids: string[]) => Promise<void> = async () => {};
  /** Called after a snapshot replaced the state (the member's block side looks for blocks it lacks). */
  onRestored: () => void = () => {};

  private constructor(private readonly keyspace: LevelKeyspace, readonly dataDir: string, private readonly options: MetaStateMachineOptions = {}) {
    this.cache = new RecordCache(keyspace.db);
    this.query = new MetaQueries(keyspace.db, this.cache);
    this.scans = new ScanPoints(() => keyspace.db, () => keyspace.appliedIndex);
  }

  static async open(dataDir: string, options: MetaStateMachineOptions = {}): Promise<MetaStateMachine> {
    return new MetaStateMachine(await LevelKeyspace.open(dataDir, META_KEYSPACE), dataDir, options);
  }

  async appliedIndex(): Promise<number> {
    return this.keyspace.appliedIndex;
  }

  async apply(entries: Entry[]): Promise<unknown[]> {
    // A scan wants the state at an index inside this batch: apply up to it, let the scan open its snapshot, then the rest.
    const cut = entries.length < 2 ? 0 : this.scans.cutAt(entries[0].index, entries[entries.length - 1].index);
    if (cut > 0 && cut < entries.length) return [...await this.apply(entries.slice(0, cut)), ...await this.apply(entries.slice(cut))];
    const results = await this.applyBatch(entries);
    this.scans.reached(this.keyspace.appliedIndex);
    return results;
  }

  private async applyBatch(entries: Entry[]): Promise<unknown[]> {
    let createdRoot = false;
    this.collectedInBatch = [];
    // Decoded once: the prefetch and the apply both need the commands.
    const commands = entries.map((entry) => (entry.type === EntryType.Normal ? decodeCommand(entry.data) : undefined));
    await this.prefetch(commands);
    const overlay = new Overlay(this.cache);
    const results = await this.keyspace.applyEntries(entries, async (batch) => {
      createdRoot = await this.ensureRoot(overlay);
      const results: unknown[] = [];
      for (const [i, entry] of entries.entries()) {
        const command = commands[i];
        results.push(command === undefined ? undefined : await this.applyOne(overlay, command, entry.index));
      }
      overlay.writeTo(batch);
      return results;
    });
    this.cache.committed(overlay.writes());
    if (createdRoot) this.rootExists = true;
    if (this.collectedInBatch.length > 0) {
      const collected = this.collectedInBatch;
      this.collectedInBatch = [];
      await this.onBlocksCollected(collected);
    }
    return results;
  }

  /** One LevelDB call for the records the batch's commands name, instead of a thread-pool trip per record. */
  private async prefetch(commands: ReadonlyArray<Command | string | undefined>): Promise<void> {
    const keys: Buffer[] = [];
    for (const command of commands) {
      if (command !== undefined && typeof command !== 'string') keys.push(...keysNamedBy(command, PREFETCH_KEYS));
    }
    await this.cache.prefetch(keys);
  }

  /** The root directory, handle 1, owned by root with mode 0755 and times 0, written with the first batch ever applied. */
  private async ensureRoot(overlay: Overlay): Promise<boolean> {
    if (this.rootExists) return false;
    const scope = new Scope(overlay);
    if (await scope.inode(ROOT_HANDLE)) {
      this.rootExists = true;
      return false;
    }
    const counters = await scope.counters();
    if (counters.nextHandle !== 1 || counters.inodesInUse !== 0) throw new Error('metastate: the root directory is missing from a state that has handed out handles');
    const root: Inode = {
      handle: ROOT_HANDLE, generation: 1, type: 'dir', mode: 0o755, uid: 0, gid: 0, nlink: 2, sizeBytes: 0,
      atimeMs: 0, mtimeMs: 0, ctimeMs: 0, rdev: 0, parent: ROOT_HANDLE, entries: 0, xattrs: [],
    };
    scope.saveInode(root);
    counters.nextHandle = ROOT_HANDLE + 1;
    counters.inodesInUse = 1;
    scope.flush();
    return true;
  }

  /** `command` is the entry's decoded command, or what is wrong with it. */
  private async applyOne(overlay: Overlay, command: Command | string, entryIndex: number): Promise<CommandResult> {
    if (typeof command === 'string') return fail(Errno.EINVAL, `malformed command at index ${entryIndex}: ${command}`);
    if (command.op === 'openSession' || command.op === 'expireSession') return this.sessionCommand(overlay, command, entryIndex);
    if (command.op === 'retainVersions' || command.op === 'collectBlocks' || command.op === 'repairNamespace') return this.leaderCommand(overlay, command);
    const bytes = await overlay.get(sessionKey(command.sessionId));
    if (!bytes) return sessionFailure('SESSION_EXPIRED', `session ${command.sessionId} is unknown, closed or expired`);
    const session = decodeRecord<Session>(bytes, 'session');
    if (command.sequence < session.ackedBelow) {
      return sessionFailure('STALE_SEQUENCE', `sequence ${command.sequence} is below session ${session.id}'s acknowledged sequences (< ${session.ackedBelow})`);
    }
    // debug-unsafe no-dedup: skip the exactly-once answer, so a retried sequence is applied a second time.
    if (session.outstanding.includes(command.sequence) && !this.options.debugNoDedup) {
      const stored = await overlay.get(sessionResultKey(session.id, command.sequence));
      if (!stored) throw new Error(`metastate: session ${session.id} lists sequence ${command.sequence} but its result is missing`);
      return decodeRecord<CommandResult>(stored, 'session result');
    }
    const ackedBelow = Math.max(session.ackedBelow, command.firstUnacked ?? command.sequence);
    const stillOutstanding = session.outstanding.filter((sequence) => sequence >= ackedBelow);
    // The client's oldest unanswered mutation (its sequence is its own firstUnacked) is never refused: the window
    // drains only once that one is answered, so refusing it would leave every later one refused until its deadline
    // (seen after a leader kill: 256 younger creates answered while the oldest was backing off). It adds one result.
    const oldestUnanswered = command.sequence <= ackedBelow;
    if (stillOutstanding.length >= MAX_OUTSTANDING_PER_SESSION && !oldestUnanswered) {
      // Not applied and not remembered: a retry is judged afresh, so exactly-once holds.
      return sessionFailure('WINDOW_FULL', `session ${session.id} already holds ${stillOutstanding.length} unacknowledged results; acknowledge some (firstUnacked) before sending more`);
    }
    const scope = new Scope(new Overlay(this.cache, overlay));
    const result = await this.mutation(scope, command, entryIndex);
    // Not applied and not remembered: the leader builds the blocks and proposes the same sequence again.
    if (isAssemblyRequired(result)) return result;
    // A rejected commit is a failure whose conflict copy is still kept.
    const kept = keepsWrites(result);
    if (kept) {
      scope.flush();
      scope.overlay.mergeDown();
    }
    if (command.op === 'closeSession') return result; // the session and its stored results are gone (mutation() removed them)
    for (const sequence of session.outstanding) {
      if (sequence < ackedBelow) overlay.del(sessionResultKey(session.id, sequence));
    }
    overlay.put(sessionResultKey(session.id, command.sequence), encodeRecord(result));
    // Opens and releases (also inside create and commitVersion) change the session's fh list: start from the record as the command left it.
    const current = kept ? await overlay.get(sessionKey(session.id)) : undefined;
    const base = current ? decodeRecord<Session>(current, 'session') : session;
    // (The filter only matters under debug-unsafe no-dedup, where the sequence may be outstanding already.)
    const outstanding = [...stillOutstanding.filter((sequence) => sequence !== command.sequence), command.sequence].sort((a, b) => a - b);
    overlay.put(sessionKey(session.id), encodeRecord({ ...base, ackedBelow, outstanding } satisfies Session));
    return result;
  }

  private async mutation(scope: Scope, command: MutationCommand, entryIndex: number): Promise<Result<unknown> | AssemblyRequired> {
    const caller = checkCaller(command.caller);
    if (!caller.ok) return caller;
    switch (command.op) {
      case 'closeSession': {
        const bytes = await scope.overlay.get(sessionKey(command.sessionId));
        if (!bytes) throw new Error(`metastate: session ${command.sessionId} vanished during its own command`);
        removeSession(scope.overlay, decodeRecord<Session>(bytes, 'session'));
        await releaseSessionFhs(scope, decodeRecord<Session>(bytes, 'session'), command.nowMs);
        (await scope.counters()).sessionsOpen -= 1;
        return ok(null);
      }
      case 'create':
        return command.open ? createAndOpen(scope, command, entryIndex) : createEntry(scope, command, entryIndex);
      case 'mkdir':
      case 'mknod':
      case 'symlink':
        return createEntry(scope, command, entryIndex);
      case 'link':
        return link(scope, command);
      case 'unlink':
        return unlink(scope, command);
      case 'rmdir':
        return rmdir(scope, command);
      case 'rename':
        return rename(scope, command);
      case 'setattr':
        return setattr(scope, command);
      case 'setxattr':
        return setxattr(scope, command);
      case 'removexattr':
        return removexattr(scope, command);
      case 'open':
        return openFh(scope, command, entryIndex);
      case 'release':
        return releaseFh(scope, command);
      case 'commitVersion':
        return commitVersion(scope, command);
      case 'restoreVersion':
        return restoreVersion(scope, command);
      case 'pinBlocks':
        await pinBlocks(scope, command.ids, command.untilMs, command.nowMs);
        return ok(null);
    }
  }

  /** Retention and block collection, proposed by the leader with its clock and policy; no session. */
  private async leaderCommand(overlay: Overlay, command: Extract<Command, { op: 'retainVersions' | 'collectBlocks' | 'repairNamespace' }>): Promise<CommandResult> {
    const scope = new Scope(overlay);
    if (command.op === 'repairNamespace') {
      const result = await repairNamespace(scope, command);
      scope.flush();
      return ok(result);
    }
    if (command.op === 'retainVersions') {
      const result = await retainVersions(scope, command);
      if (result.ok) scope.flush();
      return result;
    }
    const result = await collectBlocks(scope, command);
    scope.flush();
    this.collectedInBatch.push(...result.collected);
    return ok(result);
  }

  private async sessionCommand(overlay: Overlay, command: Extract<Command, { op: 'openSession' | 'expireSession' }>, entryIndex: number): Promise<CommandResult> {
    const scope = new Scope(overlay);
    const counters = await scope.counters();
    if (command.op === 'openSession') {
      // The entry's index is unique and the same on every member: a deterministic id that is never reused.
      const session: Session = { id: entryIndex, clientName: command.clientName, ttlMs: command.ttlMs, createdAtMs: command.nowMs, ackedBelow: 0, outstanding: [] };
      overlay.put(sessionKey(session.id), encodeRecord(session));
      counters.sessionsOpen += 1;
      scope.flush();
      return ok({ sessionId: session.id, ttlMs: session.ttlMs } satisfies OpenSessionResult);
    }
    const bytes = await overlay.get(sessionKey(command.sessionId));
    if (!bytes) return ok({ expired: false });
    removeSession(overlay, decodeRecord<Session>(bytes, 'session'));
    await releaseSessionFhs(scope, decodeRecord<Session>(bytes, 'session'), command.nowMs);
    counters.sessionsOpen -= 1;
    scope.flush();
    return ok({ expired: true });
  }

  /**
   * debug-unsafe (--debug-unsafe ack-before-commit only): the result the
   * mutation will have if it is applied at `entryIndex` on the state as it is
   * now (the caller waits until entryIndex - 1 is applied), computed on a
   * throwaway overlay: nothing is written. Undefined before the root exists.
   */
  async debugPredict(command: MutationCommand, entryIndex: number): Promise<CommandResult | undefined> {
    if (!this.rootExists) return undefined;
    return this.applyOne(new Overlay(this.cache), command, entryIndex);
  }

  /** The whole keyspace as of the applied index. */
  async snapshot(): Promise<{ index: number; data: Uint8Array }> {
    return this.keyspace.snapshot();
  }

  /** Replaces everything with the snapshot's keys and sets the applied index, in one synchronous batch. */
  async restore(snapshot: Snapshot): Promise<void> {
    this.scans.cancelAll('this member is installing a snapshot; ask again');
    this.cache.clear();
    await this.keyspace.restore(snapshot);
    this.cache.clear();
    this.rootExists = false;
    this.onRestored();
  }

  async close(): Promise<void> {
    this.scans.cancelAll('this member is closing');
    await this.keyspace.close();
  }
}
