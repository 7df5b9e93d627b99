/** Leadership transfer with TimeoutNow (Raft thesis §3.10). */
import { TestCluster, bytes } from './testing/cluster';
import { MessageType, ProposalRejectedError } from './types';

describe('leadership transfer', () => {
  it('hands leadership to an up-to-date follower at once', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.core('a').status().term;
    c.core('a').transferLeadership('b');
    c.stabilize();
    expect(c.core('b').status().role).toBe('leader');
    expect(c.core('b').status().term).toBe(term + 1);
    expect(c.core('a').status().role).toBe('follower');
  });

  it('first brings a lagging target up to date, then sends TimeoutNow', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('c');
    for (let i = 0; i < 20; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    c.heal();
    const before = c.sent.length;
    c.core('a').transferLeadership('c');
    c.stabilize();
    const kinds = c.sent.slice(before).filter((m) => m.to === 'c' && m.from === 'a').map((m) => m.type);
    expect(kinds.indexOf(MessageType.App)).toBeLessThan(kinds.indexOf(MessageType.TimeoutNow));
    expect(c.core('c').status().role).toBe('leader');
    expect(c.core('c').status().lastIndex).toBeGreaterThanOrEqual(21);
  });

  it('refuses proposals while a transfer is in progress', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('b');
    c.core('a').transferLeadership('b');
    expect(() => c.core('a').propose(bytes('x'))).toThrow(ProposalRejectedError);
  });

  it('abandons a transfer that does not finish within an election timeout', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('b');
    c.core('a').transferLeadership('b');
    for (let i = 0; i < 10; i++) {
      c.tick('a');
      c.tick('c');
      c.stabilize();
    }
    expect(c.core('a').status().role).toBe('leader');
    expect(c.core('a').status().transferee).toBe('');
    expect(() => c.core('a').propose(bytes('x'))).not.toThrow();
  });

  it('a follower forwards a transfer request to the leader', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.core('c').transferLeadership('c');
    c.stabilize();
    expect(c.core('c').status().role).toBe('leader');
  });

  it('refuses a target that is not a voter', () => {
    const c = new TestCluster(['a', 'b', 'c'], {}, ['l']);
    c.elect('a');
    expect(() => c.core('a').transferLeadership('l')).toThrow(/not a voting member/);
    expect(() => c.core('a').transferLeadership('nobody')).toThrow(/not a voting member/);
  });

  it('the target campaigns even inside the others\' leader lease', () => {
    const c = new TestCluster(['a', 'b', 'c'], { checkQuorum: true, preVote: true });
    c.elect('a');
    c.core('a').transferLeadership('c');
    c.stabilize();
    expect(c.core('c').status().role).toBe('leader');
  });
});
