/**
 * The replicated application of a simulated node: a set of client writes
 * (op id → log index), the membership as of the applied index, and a chain
 * digest of everything applied. Durable together with its applied index, as
 * the StateMachine interface requires. It reports what it applies to the
 * checker and flags a write applied twice; it must never skip or reorder.
 */
import { decodeMembershipChange } from '../core/membership';
import { Entry, EntryType, Membership, MembershipChange, MembershipChangeType, Snapshot } from '../core/types';
import { SafetyViolation } from './checker';
import { CHAIN_ORIGIN, chainDigest } from './digest';
import { cloneMembership } from './storage';

const OP_PREFIX = 'op:';
const PADDING_SEPARATOR = '#';

export function encodeOp(opId: string, paddingBytes: number): Uint8Array {
  return Buffer.from(`${OP_PREFIX}${opId}${paddingBytes > 0 ? PADDING_SEPARATOR + 'x'.repeat(paddingBytes) : ''}`, 'utf8');
}

/** The op id a Normal entry carries, or undefined when the data is not a simulator write. */
export function decodeOp(data: Uint8Array): string | undefined {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  if (!text.startsWith(OP_PREFIX)) return undefined;
  const end = text.indexOf(PADDING_SEPARATOR);
  return end === -1 ? text.slice(OP_PREFIX.length) : text.slice(OP_PREFIX.length, end);
}

/** The membership after a committed change; one that no longer applies changes nothing (as the core's rule). */
export function applyChangeToMembership(membership: Membership, change: MembershipChange): Membership {
  const existing = membership.members.find((m) => m.id === change.id);
  const voterCount = membership.members.filter((m) => m.role === 'voter').length;
  let members = membership.members.map((m) => ({ ...m }));
  switch (change.type) {
    case MembershipChangeType.AddVoter:
    case MembershipChangeType.AddLearner:
      if (existing !== undefined || membership.members.some((m) => m.address === change.address)) return membership;
      members.push({ id: change.id, address: change.address, role: change.type === MembershipChangeType.AddVoter ? 'voter' : 'learner' });
      break;
    case MembershipChangeType.PromoteLearner:
      if (existing === undefined || existing.role !== 'learner') return membership;
      members = members.map((m) => (m.id === change.id ? { ...m, role: 'voter' as const } : m));
      break;
    case MembershipChangeType.RemoveMember:
      if (existing === undefined || (existing.role === 'voter' && voterCount === 1)) return membership;
      members = members.filter((m) => m.id !== change.id);
      break;
    default:
      return membership;
  }
  members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { members };
}

interface SnapshotBody {
  applied: number;
  appliedTerm: number;
  chain: string;
  membership: Membership;
  ops: Array<[string, number]>;
}

export class SimStateMachine {
  applied = 0;
  appliedTerm = 0;
  chain = CHAIN_ORIGIN;
  membership: Membership;
  readonly ops = new Map<string, number>();

  /** `clusterBootstrap` is the membership at index 0 for every node, including ones added later. */
  constructor(readonly nodeId: string, clusterBootstrap: Membership) {
    this.membership = cloneMembership(clusterBootstrap);
  }

  /** Applies the next entry; returns the write's op id for Normal entries. */
  apply(entry: Entry): string | undefined {
    if (entry.index !== this.applied + 1) {
      throw new SafetyViolation('state-machine-safety', `${this.nodeId} was handed entry ${entry.index} to apply after ${this.applied}`);
    }
    let opId: string | undefined;
    if (entry.type === EntryType.Normal) {
      opId = decodeOp(entry.data);
      if (opId !== undefined) {
        const earlier = this.ops.get(opId);
        if (earlier !== undefined) throw new SafetyViolation('exactly-once', `${this.nodeId} applied write ${opId} twice: at ${earlier} and at ${entry.index}`);
        this.ops.set(opId, entry.index);
      }
    } else if (entry.type === EntryType.MembershipChange) {
      this.membership = applyChangeToMembership(this.membership, decodeMembershipChange(entry.data));
    }
    this.applied = entry.index;
    this.appliedTerm = entry.term;
    this.chain = chainDigest(this.chain, entry);
    return opId;
  }

  snapshotData(): Uint8Array {
    const body: SnapshotBody = { applied: this.applied, appliedTerm: this.appliedTerm, chain: this.chain, membership: this.membership, ops: [...this.ops] };
    return Buffer.from(JSON.stringify(body), 'utf8');
  }

  /** Replaces the whole state with a snapshot's. A snapshot whose data does not match its metadata is a violation. */
  restore(snapshot: Snapshot): void {
    let body: SnapshotBody;
    try {
      body = JSON.parse(Buffer.from(snapshot.data.buffer, snapshot.data.byteOffset, snapshot.data.byteLength).toString('utf8')) as SnapshotBody;
    } catch {
      throw new SafetyViolation('state-machine-safety', `${this.nodeId} got snapshot ${snapshot.metadata.index}@${snapshot.metadata.term} with unreadable data (${snapshot.data.byteLength} bytes)`);
    }
    if (body.applied !== snapshot.metadata.index || body.appliedTerm !== snapshot.metadata.term) {
      throw new SafetyViolation('state-machine-safety', `${this.nodeId} got snapshot metadata ${snapshot.metadata.index}@${snapshot.metadata.term} with data of ${body.applied}@${body.appliedTerm}`);
    }
    if (JSON.stringify(body.membership) !== JSON.stringify(snapshot.metadata.membership)) {
      throw new SafetyViolation('state-machine-safety', `${this.nodeId} got snapshot ${snapshot.metadata.index} whose metadata membership differs from the state it carries`);
    }
    this.applied = body.applied;
    this.appliedTerm = body.appliedTerm;
    this.chain = body.chain;
    this.membership = cloneMembership(body.membership);
    this.ops.clear();
    for (const [opId, index] of body.ops) this.ops.set(opId, index);
  }
}
