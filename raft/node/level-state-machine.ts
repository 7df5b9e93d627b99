/**
 * Start-up recovery of the state machine against the Raft storage, before the
 * core is created. Owns the rule that the machine resumes exactly where its
 * durable applied index says: restore the stored snapshot if the machine is
 * behind it, refuse a machine ahead of the log. Must never apply entries.
 */
import { InitialState } from '../core/api';
import { applyMembershipChange, decodeMembershipChange } from '../core/membership';
import { EntryType, Membership } from '../core/types';
import { RaftStorage, StateMachine } from './interfaces';

/**
 * Brings the state machine level with the stored log: restores the stored
 * snapshot if the machine is behind it (entries it covers are gone), and
 * refuses a machine that is ahead of the log. Sets initial.applied; returns
 * the term of the entry at the applied index and the membership as of it.
 */
export async function levelStateMachine(initial: InitialState, storage: RaftStorage, stateMachine: StateMachine): Promise<{ appliedTerm: number; appliedMembership: Membership }> {
  let applied = await stateMachine.appliedIndex();
  if (!Number.isInteger(applied) || applied < 0) throw new Error(`raft node: stateMachine.appliedIndex() returned ${String(applied)}`);
  if (applied < initial.snapshot.index) {
    const snapshot = await storage.loadSnapshot();
    if (!snapshot || snapshot.metadata.index !== initial.snapshot.index) {
      throw new Error(`raft node: the state machine is at index ${applied}, behind the stored snapshot at ${initial.snapshot.index}, but storage.loadSnapshot() returned ${snapshot ? `index ${snapshot.metadata.index}` : 'nothing'}`);
    }
    await stateMachine.restore(snapshot);
    applied = snapshot.metadata.index;
  }
  const lastIndex = initial.entries.length > 0 ? initial.entries[initial.entries.length - 1].index : initial.snapshot.index;
  if (applied > lastIndex) {
    throw new Error(`raft node: the state machine has applied index ${applied} but the Raft log ends at ${lastIndex}; the state machine and the Raft storage do not belong together`);
  }
  if (applied > initial.hardState.commit) {
    // Entries are applied only after the commit index that covers them is persisted, so this means the stored commit index lags; applied entries are committed by definition.
    initial.hardState = { ...initial.hardState, commit: applied };
  }
  initial.applied = applied;
  let appliedMembership = initial.snapshot.membership;
  for (const entry of initial.entries) {
    if (entry.index > applied) break;
    if (entry.index > initial.snapshot.index && entry.type === EntryType.MembershipChange) {
      appliedMembership = applyMembershipChange(appliedMembership, decodeMembershipChange(entry.data));
    }
  }
  if (applied === initial.snapshot.index) return { appliedTerm: initial.snapshot.term, appliedMembership };
  const entry = initial.entries[applied - initial.entries[0].index];
  if (!entry || entry.index !== applied) throw new Error(`raft node: stored log has no entry at the applied index ${applied}`);
  return { appliedTerm: entry.term, appliedMembership };
}
