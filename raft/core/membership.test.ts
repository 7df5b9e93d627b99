/** Single-server membership changes (Raft thesis §4.1) with learners. */
import { TestCluster, bytes } from './testing/cluster';
import { EntryType, Membership, MembershipChangeType, MessageType, ProposalRejectedError, emptyMessage } from './types';
import { applyMembershipChange, bootstrapEntries, decodeMembershipChange, encodeMembershipChange } from './membership';

function roles(c: TestCluster, on: string): Record<string, string> {
  return Object.fromEntries(c.core(on).status().membership.members.map((m) => [m.id, m.role]));
}

describe('membership changes', () => {
  it('adds a learner that receives the log but does not vote, then promotes it once caught up', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    for (let i = 0; i < 10; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    c.addBlankNode('d');
    c.core('a').proposeMembershipChange({ type: MembershipChangeType.AddLearner, id: 'd', address: 'addr-d' });
    c.stabilize();
    c.tick('a', 2);
    c.stabilize();
    expect(roles(c, 'a')).toEqual({ a: 'voter', b: 'voter', c: 'voter', d: 'learner' });
    expect(c.applied.get('d')!.filter((e) => e.type === EntryType.Normal)).toHaveLength(10);
    // A learner never campaigns.
    c.isolate('d');
    c.tick('d', 100);
    c.stabilize();
    expect(c.core('d').status().role).toBe('follower');
    c.heal();
    c.tick('a', 2);
    c.stabilize();
    c.core('a').proposeMembershipChange({ type: MembershipChangeType.PromoteLearner, id: 'd', address: '' });
    c.stabilize();
    expect(roles(c, 'd')).toEqual({ a: 'voter', b: 'voter', c: 'voter', d: 'voter' });
  });

  it('a member replaying the log accepts a leader its partial membership does not yet list', () => {
    // One entry per append, so d commits the log's first entry ("add a") on its own and knows only a for a while; c leads.
    const c = new TestCluster(['a', 'b', 'c'], { maxEntriesPerAppend: 1 });
    c.elect('c');
    c.addBlankNode('d');
    c.core('c').proposeMembershipChange({ type: MembershipChangeType.AddLearner, id: 'd', address: 'addr-d' });
    c.core('c').propose(bytes('after-join'));
    for (let i = 0; i < 3; i++) {
      c.tick('c');
      c.stabilize();
    }
    expect(c.appliedData('d')).toEqual(['after-join']);
    expect(roles(c, 'd')).toEqual({ a: 'voter', b: 'voter', c: 'voter', d: 'learner' });
  });

  it('refuses to promote a learner that lags too far behind', () => {
    const c = new TestCluster(['a', 'b', 'c'], { learnerCatchUpLagEntries: 5 });
    c.elect('a');
    c.addBlankNode('d');
    c.core('a').proposeMembershipChange({ type: MembershipChangeType.AddLearner, id: 'd', address: 'addr-d' });
    c.stabilize();
    c.isolate('d');
    for (let i = 0; i < 20; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    expect(() => c.core('a').proposeMembershipChange({ type: MembershipChangeType.PromoteLearner, id: 'd', address: '' })).toThrow(/behind/);
  });

  it('allows at most one change pending at a time', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.stalled.add('b');
    c.stalled.add('c');
    c.core('a').proposeMembershipChange({ type: MembershipChangeType.AddLearner, id: 'd', address: 'addr-d' });
    expect(() => c.core('a').proposeMembershipChange({ type: MembershipChangeType.AddLearner, id: 'e', address: 'addr-e' })).toThrow(/not committed yet/);
  });

  it('a new leader makes no change before an entry of its own term commits (the single-server change bug)', () => {
    const c = new TestCluster(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    c.elect('a');
    // a is elected again in a new term, but no follower's acknowledgement reaches it.
    const term = c.core('a').status().term;
    c.core('a').step({ ...emptyMessage(MessageType.AppResp, 'b', 'a', term + 1) });
    c.core('a').campaign();
    for (let round = 0; round < 10; round++) {
      for (const id of ['a', 'b', 'c']) c.deliver(c.handleReady(id).filter((m) => m.type !== MessageType.AppResp));
    }
    expect(c.core('a').status().role).toBe('leader');
    const attempt = () => c.core('a').proposeMembershipChange({ type: MembershipChangeType.RemoveMember, id: 'c', address: '' });
    expect(attempt).toThrow(ProposalRejectedError);
    expect(attempt).toThrow(/not yet committed an entry of its own term/);
    // Heartbeats reveal the lost acknowledgements; the no-op commits.
    for (let i = 0; i < 3; i++) {
      c.tick('a');
      c.stabilize();
    }
    expect(attempt).not.toThrow();
  });

  it('adds a voter directly; the new member counts toward the quorum once the change commits', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.addBlankNode('d');
    c.core('a').proposeMembershipChange({ type: MembershipChangeType.AddVoter, id: 'd', address: 'addr-d' });
    c.stabilize();
    c.tick('a', 2);
    c.stabilize();
    // With four voters a majority is three: a and one other are not enough.
    c.isolate('c');
    c.isolate('d');
    c.core('a').propose(bytes('needs-three'));
    c.stabilize();
    expect(c.core('a').status().commit).toBeLessThan(c.core('a').status().lastIndex);
    c.heal();
    c.tick('a', 2);
    c.stabilize();
    expect(c.core('a').status().commit).toBe(c.core('a').status().lastIndex);
  });

  it('removing the leader: it steps down once its removal commits, and the rest elect a new leader', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.core('a').proposeMembershipChange({ type: MembershipChangeType.RemoveMember, id: 'a', address: '' });
    c.stabilize();
    expect(c.core('a').status().role).toBe('follower');
    const leader = c.electAmong(['b', 'c']);
    c.core(leader).propose(bytes('after'));
    c.stabilize();
    expect(c.core(leader).status().commit).toBe(c.core(leader).status().lastIndex);
    expect(roles(c, leader)).toEqual({ b: 'voter', c: 'voter' });
  });

  it('refuses to remove the last voter, to add an existing member, or an unknown change', () => {
    const c = new TestCluster(['solo']);
    c.elect('solo');
    expect(() => c.core('solo').proposeMembershipChange({ type: MembershipChangeType.RemoveMember, id: 'solo', address: '' })).toThrow(/last voter/);
    expect(() => c.core('solo').proposeMembershipChange({ type: MembershipChangeType.AddVoter, id: 'solo', address: 'x' })).toThrow(/already in the cluster/);
    expect(() => c.core('solo').proposeMembershipChange({ type: MembershipChangeType.AddVoter, id: 'n', address: '' })).toThrow(/needs an address/);
    expect(() => c.core('solo').proposeMembershipChange({ type: 99 as MembershipChangeType, id: 'n', address: 'x' })).toThrow(/unknown membership change type/);
  });

  it('a removed member that never learned of its removal does not disrupt the cluster', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('c');
    c.core('a').proposeMembershipChange({ type: MembershipChangeType.RemoveMember, id: 'c', address: '' });
    c.stabilize();
    const term = c.core('a').status().term;
    c.heal();
    // c still believes it is a voter and campaigns; a and b hear their leader and refuse it.
    for (let i = 0; i < 50; i++) {
      c.tick('a');
      c.tick('b');
      c.tick('c');
      c.stabilize();
    }
    expect(c.core('a').status().role).toBe('leader');
    expect(c.core('a').status().term).toBe(term);
  });

  it('a forwarded request from a node outside the membership is dropped and counted', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.core('a').step({ ...emptyMessage(MessageType.Prop, 'stranger', 'a', 0), entries: [{ term: 0, index: 0, type: EntryType.Normal, data: bytes('x') }] });
    expect(c.core('a').droppedMessages().unknown_sender).toBe(1);
    expect(c.core('a').status().lastIndex).toBe(c.core('a').status().commit);
  });
});

describe('a member\'s client address (opaque to raft: stored and returned only)', () => {
  it('travels in an add change into the membership, and a change without one encodes as before', () => {
    const change = { type: MembershipChangeType.AddLearner, id: 'm4', address: '127.0.0.1:7004', clientAddress: '127.0.0.1:8004' };
    expect(decodeMembershipChange(encodeMembershipChange(change))).toEqual(change);
    const plain = { type: MembershipChangeType.AddLearner, id: 'm4', address: '127.0.0.1:7004' };
    expect(Buffer.from(encodeMembershipChange(plain)).toString()).toBe('{"type":1,"id":"m4","address":"127.0.0.1:7004"}');
    const before = { members: [{ id: 'm1', address: '127.0.0.1:7001', role: 'voter' as const }] };
    const after = applyMembershipChange(before, change);
    expect(after.members).toEqual([before.members[0], { id: 'm4', address: '127.0.0.1:7004', role: 'learner', clientAddress: '127.0.0.1:8004' }]);
    // Promotion keeps it.
    expect(applyMembershipChange(after, { type: MembershipChangeType.PromoteLearner, id: 'm4', address: '' }).members[1].clientAddress).toBe('127.0.0.1:8004');
    expect(() => decodeMembershipChange(Buffer.from('{"type":1,"id":"m4","address":"a:1","clientAddress":7}'))).toThrow(/malformed/);
  });

  it('is in the founders\' bootstrap entries when their membership has it', () => {
    const founders: Membership = { members: [{ id: 'm1', address: '127.0.0.1:7001', role: 'voter' as const, clientAddress: '127.0.0.1:8001' }, { id: 'm2', address: '127.0.0.1:7002', role: 'voter' as const }] };
    const replayed = bootstrapEntries(founders).reduce((membership, entry) => applyMembershipChange(membership, decodeMembershipChange(entry.data)), { members: [] } as Membership);
    expect(replayed).toEqual(founders);
  });
});
