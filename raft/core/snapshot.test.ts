/** Snapshots, log compaction and InstallSnapshot (Raft §7). */
import { TestCluster, bytes } from './testing/cluster';
import { MessageType } from './types';

describe('snapshots and log compaction', () => {
  it('a follower behind the leader\'s compacted log receives a snapshot, then the entries after it', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('c');
    for (let i = 0; i < 30; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    c.snapshotAndCompact('a');
    expect(c.core('a').status().firstIndex).toBe(c.core('a').status().snapshotIndex + 1);
    c.core('a').propose(bytes('after-snapshot'));
    c.stabilize();
    const before = c.sent.length;
    c.heal();
    for (let i = 0; i < 3; i++) {
      c.tick('a');
      c.stabilize();
    }
    expect(c.sent.slice(before).some((m) => m.type === MessageType.Snap && m.to === 'c')).toBe(true);
    // c got no report of success yet: the leader waits; report it.
    c.core('a').reportSnapshot('c', true);
    c.tick('a');
    c.stabilize();
    expect(c.appliedData('c')).toEqual([...Array.from({ length: 30 }, (_, i) => `v${i}`), 'after-snapshot']);
    expect(c.durable.get('c')!.snapshot?.metadata.index).toBe(c.core('a').status().snapshotIndex);
  });

  it('a follower whose log conflicts with the snapshot discards its log and takes the snapshot', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('a');
    c.core('a').propose(bytes('divergent-1'));
    c.core('a').propose(bytes('divergent-2'));
    c.stabilize();
    const leader = c.electAmong(['b', 'c']);
    for (let i = 0; i < 10; i++) c.core(leader).propose(bytes(`v${i}`));
    c.stabilize();
    c.snapshotAndCompact(leader);
    c.heal();
    for (let i = 0; i < 4; i++) {
      c.tick(leader);
      c.stabilize();
      c.core(leader).reportSnapshot('a', true);
    }
    c.tick(leader);
    c.stabilize();
    expect(c.appliedData('a')).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`));
    const logTexts = c.durable.get('a')!.entries.map((e) => Buffer.from(e.data).toString());
    expect(logTexts).not.toContain('divergent-1');
  });

  it('a follower that already holds the snapshot\'s last entry keeps its log and only advances its commit', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    for (let i = 0; i < 5; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    const snap = c.snapshotAndCompact('a');
    const follower = c.core('b');
    const lastBefore = follower.status().lastIndex;
    follower.step({ type: MessageType.Snap, from: 'a', to: 'b', term: follower.status().term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, logTermHint: 0, context: new Uint8Array(), snapshot: snap });
    const rd = follower.ready();
    expect(rd.snapshot).toBeUndefined();
    expect(follower.status().lastIndex).toBe(lastBefore);
    follower.advance(rd);
  });

  it('a failed snapshot send makes the leader retry later', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    c.isolate('c');
    for (let i = 0; i < 5; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    c.snapshotAndCompact('a');
    c.heal();
    c.cutLink('a', 'c');
    for (let i = 0; i < 3; i++) {
      c.tick('a');
      c.stabilize();
    }
    c.core('a').reportSnapshot('c', false);
    c.heal();
    const before = c.sent.length;
    for (let i = 0; i < 3; i++) {
      c.tick('a');
      c.stabilize();
    }
    c.core('a').reportSnapshot('c', true);
    c.tick('a');
    c.stabilize();
    expect(c.sent.slice(before).some((m) => m.type === MessageType.Snap && m.to === 'c')).toBe(true);
    expect(c.appliedData('c')).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
  });

  it('a restarted leader with trailing entries kept behind its snapshot restarts cleanly', () => {
    const c = new TestCluster(['a', 'b', 'c']);
    c.elect('a');
    for (let i = 0; i < 20; i++) c.core('a').propose(bytes(`v${i}`));
    c.stabilize();
    c.snapshotAndCompact('a', 10);
    c.restart('a');
    expect(c.core('a').status().firstIndex).toBe(c.core('a').status().snapshotIndex + 1);
    const leader = c.electAmong(['a', 'b', 'c']);
    c.core(leader).propose(bytes('later'));
    c.stabilize();
    expect(c.appliedData('a').slice(-1)).toEqual(['later']);
  });
});
