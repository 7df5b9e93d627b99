/** Leader election (Raft §5.2, §5.4.1), pre-vote and check-quorum (thesis §9.6), as scenarios. */
import { TestCluster, bytes } from './testing/cluster';
import { MessageType, NodeId } from './types';
import { emptyMessage } from './types';

function leaders(c: TestCluster): NodeId[] {
  return [...c.cores.values()].filter((core) => core.status().role === 'leader').map((core) => core.id);
}

describe('leader election', () => {
  it('elects exactly one leader after an election timeout, and everyone follows it', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    for (let i = 0; i < 30 && leaders(c).length === 0; i++) {
      c.tickAll();
      c.stabilize();
    }
    expect(leaders(c)).toHaveLength(1);
    const leader = leaders(c)[0];
    for (const core of c.cores.values()) expect(core.status().leaderId).toBe(leader);
  });

  it('randomizes the election timeout within [electionTicks, 2·electionTicks)', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    const core = c.core('a');
    let ticks = 0;
    while (core.status().role === 'follower' && ticks < 100) {
      core.tick();
      ticks++;
    }
    expect(ticks).toBeGreaterThanOrEqual(10);
    expect(ticks).toBeLessThan(20);
  });

  it('a single-member cluster elects itself at once', () => {
    const c = new TestCluster(['solo']);
    c.elect('solo');
    expect(c.core('solo').status().role).toBe('leader');
  });

  it('persists its term and vote in the same Ready that carries its vote response, and sends it only after persisting', () => {
    const c = new TestCluster(['a', 'b', 'c'], { preVote: false });
    c.core('a').campaign();
    const requests = c.handleReady('a');
    const voteRequest = requests.find((m) => m.type === MessageType.Vote && m.to === 'b')!;
    c.core('b').step(voteRequest);
    const rd = c.core('b').ready();
    expect(rd.hardState).toEqual({ term: 2, vote: 'a', commit: 3 });
    expect(rd.messages.find((m) => m.type === MessageType.VoteResp)).toBeUndefined();
    expect(rd.messagesAfterPersist.find((m) => m.type === MessageType.VoteResp && !m.reject)).toBeDefined();
    c.core('b').advance(rd);
  });

  it('a candidate sends its vote requests only after its own vote is durable', () => {
    const c = new TestCluster(['a', 'b', 'c'], { preVote: false });
    c.core('a').campaign();
    const rd = c.core('a').ready();
    expect(rd.hardState).toEqual({ term: 2, vote: 'a', commit: 3 });
    expect(rd.messages.filter((m) => m.type === MessageType.Vote)).toHaveLength(0);
    expect(rd.messagesAfterPersist.filter((m) => m.type === MessageType.Vote)).toHaveLength(2);
    c.core('a').advance(rd);
  });

  it('grants at most one vote per term (first come, first served)', () => {
    const c = new TestCluster(['a', 'b', 'c'], { preVote: false });
    const voter = c.core('c');
    // Founding members start at term 1 with the bootstrap membership entries 1..3.
    voter.step({ ...emptyMessage(MessageType.Vote, 'a', 'c', 2), index: 3, logTerm: 1 });
    voter.step({ ...emptyMessage(MessageType.Vote, 'b', 'c', 2), index: 3, logTerm: 1 });
    const rd = voter.ready();
    const responses = rd.messagesAfterPersist.filter((m) => m.type === MessageType.VoteResp);
    expect(responses.map((m) => [m.to, m.reject])).toEqual([['a', false], ['b', true]]);
  });

  it('refuses to vote for a candidate whose log is less up to date (§5.4.1)', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.core('a').propose(bytes('x'));
    c.stabilize();
    const voter = c.core('b');
    const term = voter.status().term;
    // A candidate at a higher term but with an older last log term.
    voter.tick(); // leave nothing pending
    c.isolate('a');
    c.tick('b', 30); // lease expires
    c.stabilize();
    voter.step({ ...emptyMessage(MessageType.Vote, 'c', 'b', term + 5), index: 1, logTerm: 1 });
    const rd = voter.ready();
    const resp = rd.messagesAfterPersist.find((m) => m.type === MessageType.VoteResp && m.to === 'c');
    expect(resp?.reject).toBe(true);
  });

  it('a leader steps down when it hears a higher term', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.core('a').status().term;
    c.core('a').step({ ...emptyMessage(MessageType.AppResp, 'b', 'a', term + 1) });
    expect(c.core('a').status().role).toBe('follower');
    expect(c.core('a').status().term).toBe(term + 1);
  });
});

describe('pre-vote', () => {
  it('a partitioned node does not raise its term, so it does not disrupt the leader when it returns', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.core('a').status().term;
    c.isolate('c');
    for (let i = 0; i < 100; i++) {
      c.tick('c');
      c.stabilize();
    }
    expect(c.core('c').status().term).toBe(term);
    c.heal();
    c.tickAll(2);
    c.stabilize();
    expect(c.core('a').status().role).toBe('leader');
    expect(c.core('a').status().term).toBe(term);
  });

  it('without pre-vote the same partition forces a new election on return', () => {
    const c = new TestCluster(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    c.elect('a');
    const term = c.core('a').status().term;
    c.isolate('c');
    for (let i = 0; i < 100; i++) {
      c.tick('c');
      c.stabilize();
    }
    expect(c.core('c').status().term).toBeGreaterThan(term);
    c.heal();
    for (let i = 0; i < 20; i++) {
      c.tick('c');
      c.stabilize();
    }
    expect(c.core('a').status().term).toBeGreaterThan(term);
  });
});

describe('check-quorum', () => {
  it('a leader that cannot hear from a quorum steps down within an election timeout', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('a');
    for (let i = 0; i < 25; i++) {
      c.tick('a');
      c.stabilize();
    }
    expect(c.core('a').status().role).toBe('follower');
  });

  it('a leader that hears from a quorum keeps leading', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('c');
    for (let i = 0; i < 50; i++) {
      c.tick('a');
      c.tick('b');
      c.stabilize();
    }
    expect(c.core('a').status().role).toBe('leader');
  });

  it('a follower that heard from the leader within the election timeout ignores a vote request', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.core('b').status().term;
    c.core('b').step({ ...emptyMessage(MessageType.Vote, 'c', 'b', term + 1), index: 100, logTerm: term });
    expect(c.core('b').status().term).toBe(term);
    expect(c.core('b').droppedMessages().vote_in_lease).toBe(1);
  });

  it('a member that cannot campaign lets a dead leader\'s lease expire and answers candidates again (simulator seed 10271)', () => {
    const c = new TestCluster(['a', 'b', 'c'], {}, ['l']);
    c.elect('a');
    c.isolate('a');
    const learner = c.core('l');
    const term = learner.status().term;
    c.tick('l', 10);
    // From now on every pre-vote must get an answer, whatever the learner's clock says.
    for (let i = 0; i < 40; i++) {
      c.tick('l');
      learner.step({ ...emptyMessage(MessageType.PreVote, 'b', 'l', term + 1), index: 100, logTerm: term });
    }
    expect(learner.droppedMessages().vote_in_lease).toBeUndefined();
  });
});

describe('stale terms', () => {
  it('a member answers a stale leader\'s append with its higher term even without pre-vote or check-quorum (simulator seed 10338)', () => {
    const c = new TestCluster(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    c.elect('a');
    const term = c.core('a').status().term;
    c.core('b').step({ ...emptyMessage(MessageType.Vote, 'c', 'b', term + 5), index: 100, logTerm: term });
    c.handleReady('b');
    c.core('b').step({ ...emptyMessage(MessageType.Heartbeat, 'a', 'b', term) });
    const rd = c.core('b').ready();
    const answer = [...rd.messages, ...rd.messagesAfterPersist].find((m) => m.to === 'a');
    expect(answer?.type).toBe(MessageType.AppResp);
    expect(answer?.term).toBe(term + 5);
  });
});
