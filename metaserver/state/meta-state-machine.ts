/**
 * The metadata StateMachine that raft/ replicates, on its own classic-level
 * folder. Owns the apply loop (decode, session check, exactly-once dedup, run
 * the command, one synced batch with the applied index), the root directory,
 * sessions, snapshot and restore. Must never read a clock or throw on a bad
 * command (every member must answer the same entry the same way: a bad
 * command is an errno result); it throws only on a broken invariant or a
 * storage failure, which the Raft node treats as fatal.
 *
 * Exactly-once (Raft thesis §6.3): a mutation's sequence must exceed the
 * session's lastSequence; equal to it, the stored result is returned again
 * and nothing is applied; below it, STALE_SEQUENCE. A command from a session
 * that is unknown, closed or expired answers SESSION_EXPIRED. Both are
 * ordinary results, marked with `session` so the client can tell them from a
 * file-system errno.
 */
import { ClassicLevel } from 'classic-level';
import { Entry, EntryType, Snapshot } from '../../raft/core/types';
import { StateMachine } from '../../raft/node/interfaces';
import { Errno, Failure, Ok, Result, fail, ok } from '../rules/errno';
import { checkCaller } from '../rules/permissions';
import { setattr, setxattr, removexattr } from './attr-ops';
import { Command, MutationCommand, decodeCommand } from './commands';
import { createEntry, link, rename, rmdir, unlink } from './namespace-ops';
import { Overlay, Scope } from './overlay';
import { MetaQueries } from './queries';
import { APPLIED_KEY, Inode, ROOT_HANDLE, Session, decodeRecord, encodeRecord, readU64, sessionKey, u64 } from './records';
import { MAX_SNAPSHOT_BYTES, SnapshotTooLargeError, decodeSnapshot, encodeSnapshot } from './snapshot-codec';

/** Keys read per native call while snapshotting or clearing. */
const ITERATOR_BATCH_KEYS = 10_000;

/**
 * A session that is unknown, closed or expired. ENOTCONN is what a FUSE mount
 * answers when its server is gone; the client reopens a session, and only if
 * it cannot does the kernel see ENOTCONN.
 */
export const SESSION_EXPIRED_ERRNO = Errno.ENOTCONN;
/** A sequence below the session's last: a delayed duplicate of a request already superseded. */
export const STALE_SEQUENCE_ERRNO = Errno.EINVAL;

export interface SessionFailure extends Failure {
  readonly session: 'SESSION_EXPIRED' | 'STALE_SEQUENCE';
}

export type CommandResult = Ok<unknown> | Failure | SessionFailure;

export interface OpenSessionResult {
  sessionId: number;
  ttlMs: number;
}

function sessionFailure(session: SessionFailure['session'], message: string): SessionFailure {
  return { ...fail(session === 'SESSION_EXPIRED' ? SESSION_EXPIRED_ERRNO : STALE_SEQUENCE_ERRNO, message), session };
}

export class MetaStateMachine implements StateMachine {
  private applied = 0;
  private applying = false;
  /** Set once the root directory is known to exist (created by the first apply). */
  private rootExists = false;
  readonly query: MetaQueries;

  private constructor(private readonly db: ClassicLevel<Buffer, Uint8Array>, readonly dataDir: string) {
    this.query = new MetaQueries(db);
  }

  static async open(dataDir: string): Promise<MetaStateMachine> {
    const db = new ClassicLevel<Buffer, Uint8Array>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'view' });
    await db.open();
    const machine = new MetaStateMachine(db, dataDir);
    const stored = await db.get(APPLIED_KEY);
    machine.applied = stored ? readU64(stored) : 0;
    return machine;
  }

  async appliedIndex(): Promise<number> {
    return this.applied;
  }

  async apply(entries: Entry[]): Promise<unknown[]> {
    if (this.applying) throw new Error('metastate: apply called while another apply is in flight');
    if (entries.length === 0) return [];
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].index !== this.applied + 1 + i) throw new Error(`metastate: apply of index ${entries[i].index} but the applied index is ${this.applied} (entry ${i} of the batch)`);
    }
    this.applying = true;
    try {
      const overlay = new Overlay(this.db);
      const createdRoot = await this.ensureRoot(overlay);
      const results: unknown[] = [];
      for (const entry of entries) {
        results.push(entry.type === EntryType.Normal ? await this.applyOne(overlay, entry) : undefined);
      }
      const last = entries[entries.length - 1].index;
      const batch = this.db.batch();
      overlay.writeTo(batch);
      batch.put(APPLIED_KEY, u64(last));
      await batch.write({ sync: true });
      this.applied = last;
      if (createdRoot) this.rootExists = true;
      return results;
    } finally {
      this.applying = false;
    }
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

  private async applyOne(overlay: Overlay, entry: Entry): Promise<CommandResult> {
    const command = decodeCommand(entry.data);
    if (typeof command === 'string') return fail(Errno.EINVAL, `malformed command at index ${entry.index}: ${command}`);
    if (command.op === 'openSession' || command.op === 'expireSession') return this.sessionCommand(overlay, command, entry.index);
    const bytes = await overlay.get(sessionKey(command.sessionId));
    if (!bytes) return sessionFailure('SESSION_EXPIRED', `session ${command.sessionId} is unknown, closed or expired`);
    const session = decodeRecord<Session>(bytes, 'session');
    if (command.sequence === session.lastSequence) return session.lastResult as CommandResult;
    if (command.sequence < session.lastSequence) {
      return sessionFailure('STALE_SEQUENCE', `sequence ${command.sequence} is below session ${session.id}'s last applied sequence ${session.lastSequence}`);
    }
    const scope = new Scope(new Overlay(this.db, overlay));
    const result = await this.mutation(scope, command, entry.index);
    if (result.ok) {
      scope.flush();
      scope.overlay.mergeDown();
    }
    if (command.op !== 'closeSession') {
      overlay.put(sessionKey(session.id), encodeRecord({ ...session, lastSequence: command.sequence, lastResult: result } satisfies Session));
    }
    return result;
  }

  private async mutation(scope: Scope, command: MutationCommand, entryIndex: number): Promise<Result<unknown>> {
    const caller = checkCaller(command.caller);
    if (!caller.ok) return caller;
    switch (command.op) {
      case 'closeSession': {
        scope.overlay.del(sessionKey(command.sessionId));
        (await scope.counters()).sessionsOpen -= 1;
        return ok(null);
      }
      case 'mkdir':
      case 'create':
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
    }
  }

  private async sessionCommand(overlay: Overlay, command: Extract<Command, { op: 'openSession' | 'expireSession' }>, entryIndex: number): Promise<CommandResult> {
    const scope = new Scope(overlay);
    const counters = await scope.counters();
    if (command.op === 'openSession') {
      // The entry's index is unique and the same on every member: a deterministic id that is never reused.
      const session: Session = { id: entryIndex, clientName: command.clientName, ttlMs: command.ttlMs, createdAtMs: command.nowMs, lastSequence: 0, lastResult: null };
      overlay.put(sessionKey(session.id), encodeRecord(session));
      counters.sessionsOpen += 1;
      scope.flush();
      return ok({ sessionId: session.id, ttlMs: session.ttlMs } satisfies OpenSessionResult);
    }
    if (!(await overlay.get(sessionKey(command.sessionId)))) return ok({ expired: false });
    overlay.del(sessionKey(command.sessionId));
    counters.sessionsOpen -= 1;
    scope.flush();
    return ok({ expired: true });
  }

  /** The whole keyspace as of the applied index (the iterator reads one LevelDB snapshot). */
  async snapshot(): Promise<{ index: number; data: Uint8Array }> {
    const iterator = this.db.iterator();
    const batches: Array<Array<[Buffer, Uint8Array]>> = [];
    let index = 0;
    let sizeBytes = 0;
    try {
      for (;;) {
        const batch = await iterator.nextv(ITERATOR_BATCH_KEYS);
        if (batch.length === 0) break;
        for (const [key, value] of batch) {
          if (key.equals(APPLIED_KEY)) index = readU64(value);
          sizeBytes += 8 + key.length + value.byteLength;
        }
        // Refuse before reading the rest of a state that cannot fit anyway.
        if (sizeBytes > MAX_SNAPSHOT_BYTES) throw new SnapshotTooLargeError(sizeBytes, MAX_SNAPSHOT_BYTES);
        batches.push(batch);
      }
    } finally {
      await iterator.close();
    }
    return { index, data: encodeSnapshot(batches) };
  }

  /** Replaces everything with the snapshot's keys and sets the applied index, in one synchronous batch. */
  async restore(snapshot: Snapshot): Promise<void> {
    if (this.applying) throw new Error('metastate: restore called while an apply is in flight');
    const incoming = decodeSnapshot(snapshot.data);
    const batch = this.db.batch();
    const iterator = this.db.keys();
    try {
      for (;;) {
        const keys = await iterator.nextv(ITERATOR_BATCH_KEYS);
        if (keys.length === 0) break;
        for (const key of keys) batch.del(key);
      }
    } catch (error) {
      await batch.close();
      throw error;
    } finally {
      await iterator.close();
    }
    for (const { key, value } of incoming) batch.put(key, value);
    batch.put(APPLIED_KEY, u64(snapshot.metadata.index));
    await batch.write({ sync: true });
    this.applied = snapshot.metadata.index;
    this.rootExists = false;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
