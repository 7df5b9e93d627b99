/**
 * Membership rules: encoding a change into a log entry, checking that a
 * change is allowed, and computing the membership that results. Single-server
 * changes only (Raft thesis §4.1): one voter added or removed at a time.
 */
import { Entry, EntryType, Member, Membership, MembershipChange, MembershipChangeType, NodeId } from './types';

const MAX_ADDRESS_LENGTH = 255;

export function voters(membership: Membership): NodeId[] {
  return membership.members.filter((m) => m.role === 'voter').map((m) => m.id);
}

export function findMember(membership: Membership, id: NodeId): Member | undefined {
  return membership.members.find((m) => m.id === id);
}

export function isVoter(membership: Membership, id: NodeId): boolean {
  return findMember(membership, id)?.role === 'voter';
}

export function encodeMembershipChange(change: MembershipChange): Uint8Array {
  // clientAddress only when set, so a change without one encodes exactly as before it existed.
  const fields = change.clientAddress ? { type: change.type, id: change.id, address: change.address, clientAddress: change.clientAddress } : { type: change.type, id: change.id, address: change.address };
  return Buffer.from(JSON.stringify(fields), 'utf8');
}

export function decodeMembershipChange(data: Uint8Array): MembershipChange {
  const parsed: unknown = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  if (typeof parsed !== 'object' || parsed === null) throw new Error('membership change: not an object');
  const { type, id, address, clientAddress } = parsed as Record<string, unknown>;
  if (typeof type !== 'number' || !(type in MembershipChangeType) || typeof id !== 'string' || typeof address !== 'string' || (clientAddress !== undefined && typeof clientAddress !== 'string')) {
    throw new Error(`membership change: malformed ${JSON.stringify(parsed)}`);
  }
  return clientAddress ? { type, id, address, clientAddress } : { type, id, address };
}

/** Returns why the change cannot be made to `membership`, or undefined if it can. Caught-up checks are the caller's. */
export function membershipChangeProblem(membership: Membership, change: MembershipChange): string | undefined {
  if (typeof change.id !== 'string' || change.id.length === 0 || change.id.length > 64) return `member id ${JSON.stringify(change.id)} must be 1..64 characters`;
  const existing = findMember(membership, change.id);
  switch (change.type) {
    case MembershipChangeType.AddVoter:
    case MembershipChangeType.AddLearner:
      if (existing !== undefined) return `member ${change.id} is already in the cluster as a ${existing.role}`;
      if (change.address.length === 0 || change.address.length > MAX_ADDRESS_LENGTH) return `member ${change.id} needs an address (1..${MAX_ADDRESS_LENGTH} characters)`;
      if (membership.members.some((m) => m.address === change.address)) return `address ${change.address} is already used by another member`;
      if (change.clientAddress !== undefined && (typeof change.clientAddress !== 'string' || change.clientAddress.length > MAX_ADDRESS_LENGTH)) return `member ${change.id}'s client address must be at most ${MAX_ADDRESS_LENGTH} characters`;
      return undefined;
    case MembershipChangeType.PromoteLearner:
      if (existing === undefined) return `member ${change.id} is not in the cluster`;
      if (existing.role !== 'learner') return `member ${change.id} is already a voter`;
      return undefined;
    case MembershipChangeType.RemoveMember:
      if (existing === undefined) return `member ${change.id} is not in the cluster`;
      if (existing.role === 'voter' && voters(membership).length === 1) return `member ${change.id} is the last voter`;
      return undefined;
    default:
      return `unknown membership change type ${String(change.type)}`;
  }
}

/**
 * The membership after a committed change. A change that no longer applies
 * (it was valid when proposed) leaves the membership as it is, so every member
 * computes the same result from the same log.
 */
export function applyMembershipChange(membership: Membership, change: MembershipChange): Membership {
  if (membershipChangeProblem(membership, change) !== undefined) return membership;
  let members: Member[];
  switch (change.type) {
    case MembershipChangeType.AddVoter:
      members = [...membership.members, newMember(change, 'voter')];
      break;
    case MembershipChangeType.AddLearner:
      members = [...membership.members, newMember(change, 'learner')];
      break;
    case MembershipChangeType.PromoteLearner:
      members = membership.members.map((m) => (m.id === change.id ? { ...m, role: 'voter' as const } : m));
      break;
    case MembershipChangeType.RemoveMember:
      members = membership.members.filter((m) => m.id !== change.id);
      break;
  }
  members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { members };
}

function newMember(change: MembershipChange, role: Member['role']): Member {
  return change.clientAddress ? { id: change.id, address: change.address, role, clientAddress: change.clientAddress } : { id: change.id, address: change.address, role };
}

/**
 * The first log entries of a new cluster: one committed change per founding
 * member at term 1, identical on every founder, so a member added later
 * learns the whole membership by replaying the log from index 1.
 */
export function bootstrapEntries(membership: Membership): Entry[] {
  return membership.members.map((member, i) => ({
    term: 1,
    index: i + 1,
    type: EntryType.MembershipChange,
    data: encodeMembershipChange({
      type: member.role === 'voter' ? MembershipChangeType.AddVoter : MembershipChangeType.AddLearner, id: member.id, address: member.address, clientAddress: member.clientAddress,
    }),
  }));
}
