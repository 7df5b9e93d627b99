/** Log replication and commit (Raft §5.3, §5.4.2, Figure 2 AppendEntries rules, thesis §10.2.1). */
import { RaftCore } from './raft';
import { TestCluster, bytes } from './testing/cluster';
import { EntryType, MessageType, NotLeaderError, emptyMessage } from './types';

function appliedNormal(c: TestCluster, id: string): string[] {
  return c.applied.get(id)!.filter((e) => e.type === EntryType.Normal).map((e) => Buffer.from(e.data).toString());
}

describe('log replication', () => {
  it('a new leader appends a no-op of its term first', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    const first = c.applied.get('b')!.find((e) => e.type !== EntryType.MembershipChange)!;
    expect(first.type).toBe(EntryType.Noop);
    expect(first.term).toBe(c.core('a').status().term);
  });

  it('commits a proposal once a majority holds it, and every member applies it in order', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    for (const v of ['x', 'y', 'z']) c.core('a').propose(bytes(v));
    c.stabilize();
    for (const id of ['a', 'b', 'c']) expect(appliedNormal(c, id)).toEqual(['x', 'y', 'z']);
  });

  it('commits with one follower down, but not with two', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('c');
    c.core('a').propose(bytes('with-b'));
    c.stabilize();
    expect(appliedNormal(c, 'a')).toEqual(['with-b']);
    c.isolate('b');
    c.core('a').propose(bytes('alone'));
    c.stabilize();
    expect(appliedNormal(c, 'a')).toEqual(['with-b']);
  });

  it('the leader sends entries before its own write completes but counts itself only after it (thesis §10.2.1)', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    const leader = c.core('a');
    leader.propose(bytes('p'));
    const rd = leader.ready();
    expect(rd.entries).toHaveLength(1);
    const appends = rd.messages.filter((m) => m.type === MessageType.App && m.entries.length === 1);
    expect(appends).toHaveLength(2);
    // Only b answers; the leader's own write is still in flight: no majority yet.
    c.cutLink('c', 'a');
    c.cutLink('a', 'c');
    c.deliver(appends);
    c.deliver(c.handleReady('b'));
    const before = leader.status().commit;
    expect(before).toBeLessThan(rd.entries[0].index);
    leader.advance(rd);
    expect(leader.status().commit).toBe(rd.entries[0].index);
  });

  it('commits only entries of the current term by counting replicas (§5.4.2, Figure 8)', () => {
    const c = new TestCluster(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    c.elect('a');
    // a appends an entry in term 1 that nobody else receives, then loses leadership.
    c.isolate('a');
    c.core('a').propose(bytes('old-term'));
    c.stabilize();
    const oldIndex = c.core('a').status().lastIndex;
    const term = c.core('a').status().term;
    c.core('a').step({ ...emptyMessage(MessageType.AppResp, 'b', 'a', term + 1) });
    // a is elected again in a later term; its no-op follows the old entry.
    c.heal();
    c.core('a').campaign();
    c.stalled.add('b');
    c.stalled.add('c');
    for (let i = 0; i < 10; i++) {
      c.deliver(c.handleReady('a'));
      for (const id of ['b', 'c']) {
        const core = c.core(id);
        while (core.hasReady()) {
          const rd = core.ready();
          core.advance(rd);
          c.deliver([...rd.messages, ...rd.messagesAfterPersist].filter((m) => m.type !== MessageType.AppResp));
        }
      }
    }
    const leader = c.core('a');
    expect(leader.status().role).toBe('leader');
    const newTerm = leader.status().term;
    // b acknowledges the old entry only: it now sits on a majority (a, b) but is of an older term.
    leader.step({ ...emptyMessage(MessageType.AppResp, 'b', 'a', newTerm), index: oldIndex });
    expect(leader.status().commit).toBeLessThan(oldIndex);
    // Once b holds the no-op of the new term, both commit.
    leader.step({ ...emptyMessage(MessageType.AppResp, 'b', 'a', newTerm), index: oldIndex + 1 });
    expect(leader.status().commit).toBe(oldIndex + 1);
  });

  it('overwrites a follower\'s conflicting uncommitted entries with the leader\'s (§5.3)', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('a');
    c.core('a').propose(bytes('lost-1'));
    c.core('a').propose(bytes('lost-2'));
    c.stabilize();
    const newLeader = c.electAmong(['b', 'c']);
    c.core(newLeader).propose(bytes('kept'));
    c.stabilize();
    c.heal();
    for (let i = 0; i < 3; i++) {
      c.tick(newLeader);
      c.stabilize();
    }
    for (const id of ['a', 'b', 'c']) expect(appliedNormal(c, id)).toEqual(['kept']);
    const aLog = c.durable.get('a')!.entries.map((e) => Buffer.from(e.data).toString());
    expect(aLog).not.toContain('lost-1');
  });

  it('a follower rejects an append whose previous entry does not match, and hints where to resume', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    const follower = c.core('b');
    const term = follower.status().term;
    follower.step({ ...emptyMessage(MessageType.App, 'a', 'b', term), index: 50, logTerm: term, entries: [] });
    const rd = follower.ready();
    const resp = rd.messagesAfterPersist.find((m) => m.type === MessageType.AppResp)!;
    expect(resp.reject).toBe(true);
    expect(resp.index).toBe(50);
    expect(resp.rejectHint).toBe(follower.status().lastIndex);
  });

  it('a follower that missed many entries catches up in few round trips', () => {
    const c = new TestCluster(['a', 'b', 'c'], { maxEntriesPerAppend: 100 });
    c.elect('a');
    c.isolate('c');
    for (let i = 0; i < 1000; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    const sentBefore = c.sent.length;
    c.heal();
    // The first heartbeat answer shows no progress since the last; the second confirms it and the leader probes.
    for (let i = 0; i < 2; i++) {
      c.tick('a');
      c.stabilize();
    }
    expect(appliedNormal(c, 'c')).toHaveLength(1000);
    const appendsToC = c.sent.slice(sentBefore).filter((m) => m.type === MessageType.App && m.to === 'c');
    expect(appendsToC.length).toBeLessThan(30);
  });

  it('limits unacknowledged appends per follower by count (pipelining window)', () => {
    const c = new TestCluster(['a', 'b', 'c'], { maxInflightAppends: 3, maxEntriesPerAppend: 1 });
    c.elect('a');
    c.stalled.add('b');
    c.stalled.add('c');
    const before = c.sent.length;
    for (let i = 0; i < 10; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    const toB = c.sent.slice(before).filter((m) => m.type === MessageType.App && m.to === 'b' && m.entries.length > 0);
    expect(toB).toHaveLength(3);
  });

  it('limits unacknowledged appends per follower by bytes, and each message by bytes', () => {
    const c = new TestCluster(['a', 'b', 'c'], { maxBytesPerAppend: 1000, maxInflightBytes: 3000 });
    c.elect('a');
    c.stalled.add('b');
    c.stalled.add('c');
    const before = c.sent.length;
    for (let i = 0; i < 20; i++) c.core('a').propose(new Uint8Array(400));
    c.stabilize();
    const toB = c.sent.slice(before).filter((m) => m.type === MessageType.App && m.to === 'b' && m.entries.length > 0);
    for (const m of toB) expect(m.entries.length).toBeLessThanOrEqual(2);
    const bytesSent = toB.reduce((sum, m) => sum + m.entries.length * 400, 0);
    expect(bytesSent).toBeLessThanOrEqual(3000 + 800);
    expect(bytesSent).toBeLessThan(20 * 400);
  });

  it('batches everything proposed between two Readies into one append per follower', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    const before = c.sent.length;
    for (let i = 0; i < 50; i++) c.core('a').propose(bytes(`v${i}`));
    c.handleReady('a');
    const toB = c.sent.slice(before).filter((m) => m.type === MessageType.App && m.to === 'b');
    expect(toB).toHaveLength(1);
    expect(toB[0].entries).toHaveLength(50);
  });

  it('a follower refuses proposals with NotLeader naming the leader and its address', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    let error: unknown;
    try {
      c.core('b').propose(bytes('x'));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(NotLeaderError);
    expect((error as NotLeaderError).leaderId).toBe('a');
    expect((error as NotLeaderError).leaderAddress).toBe('addr-a');
  });

  it('with forwardProposals a follower forwards the proposal and the leader commits it', () => {
    const c = new TestCluster(['a', 'b', 'c'], { forwardProposals: true });
    c.elect('a');
    expect(c.core('b').propose(bytes('via-b'))).toBeNull();
    c.stabilize();
    expect(appliedNormal(c, 'c')).toEqual(['via-b']);
  });

  it('refuses proposals beyond the uncommitted-entry limit', () => {
    const c = new TestCluster(['a', 'b', 'c'], { maxUncommittedEntries: 5 });
    c.elect('a');
    c.isolate('a');
    for (let i = 0; i < 5; i++) c.core('a').propose(bytes(`v${i}`));
    expect(() => c.core('a').propose(bytes('too-many'))).toThrow(/too many uncommitted entries/);
  });

  it('a restarted member recovers term, vote and log from its durable state and applies nothing twice', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    for (let i = 0; i < 5; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    const before = c.core('b').status();
    const restarted: RaftCore = c.restart('b');
    expect(restarted.status().term).toBe(before.term);
    expect(restarted.status().lastIndex).toBe(before.lastIndex);
    c.core('a').propose(bytes('after'));
    c.tick('a');
    c.stabilize();
    expect(appliedNormal(c, 'b')).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'after']);
  });
});
