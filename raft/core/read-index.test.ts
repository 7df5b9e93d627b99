/** ReadIndex linearizable reads (Raft thesis §6.4). */
import { TestCluster, bytes } from './testing/cluster';
import { MessageType, NotLeaderError } from './types';

const ctx = (s: string) => bytes(s);

describe('ReadIndex', () => {
  it('the leader answers with its commit index after one heartbeat round confirms a quorum', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.core('a').propose(bytes('w'));
    c.stabilize();
    const commit = c.core('a').status().commit;
    const before = c.sent.length;
    c.core('a').readIndex(ctx('r1'));
    c.stabilize();
    const heartbeats = c.sent.slice(before).filter((m) => m.type === MessageType.Heartbeat);
    expect(heartbeats.map((m) => Buffer.from(m.context).toString())).toEqual(['r1', 'r1']);
    expect(c.readStates.get('a')!.map((r) => [r.index, Buffer.from(r.context).toString()])).toEqual([[commit, 'r1']]);
  });

  it('an isolated leader never answers a read (it might have been deposed)', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('a');
    c.core('a').readIndex(ctx('r1'));
    c.stabilize();
    c.tick('a', 3);
    c.stabilize();
    expect(c.readStates.get('a')).toEqual([]);
  });

  it('a new leader waits until an entry of its own term commits before answering', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.stalled.add('b');
    c.stalled.add('c');
    c.core('a').readIndex(ctx('early'));
    c.stabilize();
    expect(c.readStates.get('a')).toEqual([]);
    c.stalled.clear();
    c.stabilize();
    c.tick('a');
    c.stabilize();
    expect(c.readStates.get('a')!.map((r) => Buffer.from(r.context).toString())).toEqual(['early']);
    expect(c.readStates.get('a')![0].index).toBeGreaterThanOrEqual(1);
  });

  it('a follower forwards the request to the leader and gets the read index back', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.core('a').propose(bytes('w'));
    c.stabilize();
    c.core('b').readIndex(ctx('from-b'));
    c.stabilize();
    expect(c.readStates.get('b')!.map((r) => [r.index, Buffer.from(r.context).toString()])).toEqual([[c.core('a').status().commit, 'from-b']]);
  });

  it('a member that knows no leader refuses with NotLeader', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    expect(() => c.core('b').readIndex(ctx('x'))).toThrow(NotLeaderError);
  });

  it('one heartbeat round confirms every read queued before it', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.core('a').readIndex(ctx('r1'));
    c.core('a').readIndex(ctx('r2'));
    c.core('a').readIndex(ctx('r3'));
    c.stabilize();
    expect(c.readStates.get('a')!.map((r) => Buffer.from(r.context).toString())).toEqual(['r1', 'r2', 'r3']);
  });

  it('a single-member cluster answers at once', () => {
    const c = new TestCluster(['solo']);
    c.elect('solo');
    c.core('solo').readIndex(ctx('r'));
    c.stabilize();
    expect(c.readStates.get('solo')).toHaveLength(1);
  });
});
