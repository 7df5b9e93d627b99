/**
 * The checkers must fail on broken histories: each scenario hand-makes a
 * history that breaks one Raft property and expects the matching violation,
 * and a sound history passes.
 */
import { Entry, EntryType } from '../core/types';
import { SafetyChecker, SafetyViolation } from './checker';
import { CHAIN_ORIGIN, chainDigest } from './digest';
import { SimStateMachine, encodeOp } from './state-machine';
import { SimDurableStore } from './storage';

const MEMBERSHIP = { members: ['n1', 'n2', 'n3'].map((id) => ({ id, address: `a-${id}`, role: 'voter' as const })) };

function entry(index: number, term: number, text = `op:w${index}.${term}`): Entry {
  return { index, term, type: EntryType.Normal, data: Buffer.from(text, 'utf8') };
}

/** Applies entries on a node the way the simulator does: through a state machine, reporting each to the checker. */
function applyAll(checker: SafetyChecker, sm: SimStateMachine, entries: Entry[], applierTerm: number): void {
  for (const e of entries) {
    sm.apply(e);
    checker.observeApply(sm.nodeId, e, sm.chain, applierTerm);
  }
}

function storeWith(nodeId: string, entries: Entry[], term: number): SimDurableStore {
  const store = new SimDurableStore(nodeId, MEMBERSHIP);
  store.persist({ entries, hardState: { term, vote: '', commit: 0 } });
  return store;
}

function violationOf(run: () => void): SafetyViolation {
  try {
    run();
  } catch (err) {
    if (err instanceof SafetyViolation) return err;
    throw err;
  }
  throw new Error('expected a SafetyViolation, but the history passed');
}

describe('the safety checker', () => {
  it('accepts a sound history: one leader per term, matching logs, the same entries applied everywhere', () => {
    const checker = new SafetyChecker();
    checker.observeLeader('n1', 1);
    checker.observeLeader('n1', 1);
    const log = [entry(1, 1), entry(2, 1), entry(3, 2)];
    checker.observeLeader('n2', 2);
    for (const id of ['n1', 'n2', 'n3']) checker.observeDurableEntries(id, log, storeWith(id, log, 2));
    const machines = ['n1', 'n2', 'n3'].map((id) => new SimStateMachine(id, MEMBERSHIP));
    for (const sm of machines) applyAll(checker, sm, log, 2);
    checker.observeReadState('n1', 'r1', 3, 3);
    checker.finalCheck({
      leaderId: 'n2',
      liveMembers: machines.map((sm) => ({ id: sm.nodeId, applied: sm.applied, ops: sm.ops })),
      acknowledged: [{ opId: 'w3.2', index: 3, term: 2 }],
      logs: ['n1', 'n2'].map((id) => ({ id, log: storeWith(id, log, 2) })),
    });
  });

  it('catches two leaders in one term', () => {
    const checker = new SafetyChecker();
    checker.observeLeader('n1', 4);
    expect(violationOf(() => checker.observeLeader('n2', 4)).property).toBe('election-safety');
  });

  it('catches two nodes applying different entries at the same index', () => {
    const checker = new SafetyChecker();
    applyAll(checker, new SimStateMachine('n1', MEMBERSHIP), [entry(1, 1, 'op:a')], 1);
    const v = violationOf(() => applyAll(checker, new SimStateMachine('n2', MEMBERSHIP), [entry(1, 1, 'op:b')], 1));
    expect(v.property).toBe('state-machine-safety');
  });

  it('catches a node applying an entry of another term at an applied index', () => {
    const checker = new SafetyChecker();
    applyAll(checker, new SimStateMachine('n1', MEMBERSHIP), [entry(1, 1), entry(2, 1)], 1);
    const v = violationOf(() => applyAll(checker, new SimStateMachine('n2', MEMBERSHIP), [entry(1, 1), entry(2, 2)], 2));
    expect(v.property).toBe('state-machine-safety');
  });

  it('catches a node skipping an index or applying one twice', () => {
    const checker = new SafetyChecker();
    checker.observeApply('n1', entry(1, 1), chainDigest(CHAIN_ORIGIN, entry(1, 1)), 1);
    expect(violationOf(() => checker.observeApply('n1', entry(3, 1), 'ffffffffffffffff', 1)).property).toBe('state-machine-safety');
    expect(violationOf(() => checker.observeApply('n1', entry(1, 1), 'ffffffffffffffff', 1)).property).toBe('state-machine-safety');
  });

  it('catches a snapshot whose state differs from what was applied up to its index', () => {
    const checker = new SafetyChecker();
    applyAll(checker, new SimStateMachine('n1', MEMBERSHIP), [entry(1, 1), entry(2, 1)], 1);
    expect(violationOf(() => checker.observeSnapshotRestore('n2', 2, 1, 'ffffffffffffffff', 1)).property).toBe('state-machine-safety');
  });

  it('catches a write applied twice by one state machine', () => {
    const sm = new SimStateMachine('n1', MEMBERSHIP);
    sm.apply({ index: 1, term: 1, type: EntryType.Normal, data: encodeOp('c1.1', 0) });
    const v = violationOf(() => sm.apply({ index: 2, term: 1, type: EntryType.Normal, data: encodeOp('c1.1', 5) }));
    expect(v.property).toBe('exactly-once');
  });

  it('catches two durable logs with different data under the same index and term', () => {
    const checker = new SafetyChecker();
    checker.observeDurableEntries('n1', [entry(1, 1, 'op:x')], storeWith('n1', [entry(1, 1, 'op:x')], 1));
    const v = violationOf(() => checker.observeDurableEntries('n2', [entry(1, 1, 'op:y')], storeWith('n2', [entry(1, 1, 'op:y')], 1)));
    expect(v.property).toBe('log-matching');
  });

  it('catches two durable logs that agree at an index but not before it', () => {
    const checker = new SafetyChecker();
    const left = [entry(1, 1), entry(2, 3)];
    const right = [entry(1, 2), entry(2, 3)];
    checker.observeDurableEntries('n1', left, storeWith('n1', left, 3));
    expect(violationOf(() => checker.observeDurableEntries('n2', right, storeWith('n2', right, 3))).property).toBe('log-matching');
    const final = violationOf(() => new SafetyChecker().finalCheck({ leaderId: 'n1', liveMembers: [], acknowledged: [], logs: [{ id: 'n1', log: storeWith('n1', left, 3) }, { id: 'n2', log: storeWith('n2', right, 3) }] }));
    expect(final.property).toBe('log-matching');
  });

  it('catches a leader whose log lacks an entry committed in an earlier term', () => {
    const checker = new SafetyChecker();
    applyAll(checker, new SimStateMachine('n1', MEMBERSHIP), [entry(1, 1), entry(2, 1)], 1);
    checker.observeLeader('n3', 2);
    // n3 leads term 2 holding only index 1: its first own entry lands at 2, over the committed 2@1.
    const n3Log = [entry(1, 1), entry(2, 2)];
    const v = violationOf(() => checker.observeDurableEntries('n3', n3Log, storeWith('n3', n3Log, 2)));
    expect(v.property).toBe('leader-completeness');
  });

  it('catches a read that misses a write applied before the read started', () => {
    const checker = new SafetyChecker();
    expect(violationOf(() => checker.observeReadState('n2', 'r7', 4, 5)).property).toBe('linearizable-read');
  });

  it('catches an acknowledged write lost on a live member after healing', () => {
    const checker = new SafetyChecker();
    const n1 = new SimStateMachine('n1', MEMBERSHIP);
    const n2 = new SimStateMachine('n2', MEMBERSHIP);
    const acked = { index: 1, term: 1, type: EntryType.Normal, data: encodeOp('c1.1', 0) };
    applyAll(checker, n1, [acked], 1);
    // n2 restored some snapshot that claims index 1 but never saw the write: its ops lack it.
    n2.applied = 1;
    const v = violationOf(() =>
      checker.finalCheck({
        leaderId: 'n1',
        liveMembers: [{ id: 'n1', applied: 1, ops: n1.ops }, { id: 'n2', applied: 1, ops: n2.ops }],
        acknowledged: [{ opId: 'c1.1', index: 1, term: 1 }],
        logs: [],
      }),
    );
    expect(v.property).toBe('liveness');
    expect(v.message).toContain('c1.1');
  });

  it('catches a live member that never caught up, and a cluster without a leader', () => {
    const checker = new SafetyChecker();
    applyAll(checker, new SimStateMachine('n1', MEMBERSHIP), [entry(1, 1), entry(2, 1)], 1);
    const behind = { id: 'n2', applied: 1, ops: new Map<string, number>() };
    expect(violationOf(() => checker.finalCheck({ leaderId: 'n1', liveMembers: [behind], acknowledged: [], logs: [] })).property).toBe('liveness');
    expect(violationOf(() => checker.finalCheck({ leaderId: '', liveMembers: [], acknowledged: [], logs: [] })).message).toContain('no leader');
  });
});

describe('the fake durable store', () => {
  it('refuses a vote changed within a term (double voting)', () => {
    const store = new SimDurableStore('n1', MEMBERSHIP);
    store.persist({ entries: [], hardState: { term: 3, vote: 'n2', commit: 0 } });
    expect(violationOf(() => store.persist({ entries: [], hardState: { term: 3, vote: 'n3', commit: 0 } })).property).toBe('storage-contract');
  });

  it('refuses entries that leave a gap, and a commit beyond the durable log', () => {
    const store = storeWith('n1', [entry(1, 1)], 1);
    expect(violationOf(() => store.persist({ entries: [entry(3, 1)] })).property).toBe('storage-contract');
    expect(violationOf(() => store.persist({ entries: [], hardState: { term: 1, vote: '', commit: 2 } })).property).toBe('storage-contract');
  });

  it('overwrites from the first given entry and reports where', () => {
    const store = storeWith('n1', [entry(1, 1), entry(2, 1), entry(3, 1)], 1);
    expect(store.persist({ entries: [entry(2, 2)] }).overwrittenFrom).toBe(2);
    expect([store.termAt(1), store.termAt(2), store.termAt(3), store.lastIndex()]).toEqual([1, 2, undefined, 2]);
  });
});
