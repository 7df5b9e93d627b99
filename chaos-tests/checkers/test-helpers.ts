/**
 * Builders for crafted histories in the checkers' tests. Test-only: no
 * checker may import this module.
 */
import type { History, Operation } from '../history';
import type { FinalState } from './checker';

/** A history under construction; ids follow call order, so write operations in invoke order. */
export class HistoryBuilder {
  readonly operations: Operation[] = [];

  add(op: Omit<Operation, 'id'>): Operation {
    const full: Operation = { id: this.operations.length, ...op };
    this.operations.push(full);
    return full;
  }

  write(client: string, key: string, value: string, invokeMs: number, completeMs: number, outcome: Operation['outcome'] = 'ok', error?: string): Operation {
    return this.add({ client, kind: 'write', key, value, invokeMs, completeMs, outcome, ...(error !== undefined ? { error } : outcome === 'ok' ? {} : { error: 'ETIMEDOUT' }) });
  }

  /** result undefined = the file was missing. */
  read(client: string, key: string, result: string | undefined, invokeMs: number, completeMs: number): Operation {
    return this.add({ client, kind: 'read', key, invokeMs, completeMs, outcome: 'ok', ...(result !== undefined ? { result } : {}) });
  }

  history(): History {
    return { operations: [...this.operations].sort((a, b) => a.id - b.id), faults: [] };
  }
}

export function emptyFinal(overrides: Partial<FinalState> = {}): FinalState {
  return { versions: {}, listings: {}, digests: [], fsckClean: true, abandonedSessions: 0, overdueSessions: [], ...overrides };
}

/** Versions 1..n holding `contents` in order. */
export function versionsOf(...contents: string[]): FinalState['versions'][string] {
  return contents.map((content, index) => ({ version: index + 1, content, conflict: false }));
}

/** A small deterministic PRNG (mulberry32) so a failing seed replays exactly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RandomHistory {
  operations: Operation[];
  /** Contents of the writes that took effect, in effect order (what the versions would hold). */
  effectOrder: string[];
}

/**
 * A history produced by a sequential register with random concurrency: every
 * client runs one operation at a time, each takes effect at a random point
 * inside its [invoke, complete] window; unknown writes may take effect late
 * (after the client gave up) or never; failed writes never do.
 */
export function randomRegisterHistory(seed: number, clients: number, opsTotal: number): RandomHistory {
  const random = seededRandom(seed);
  type Draft = Omit<Operation, 'id'> & { effectMs: number; happens: boolean };
  const drafts: Draft[] = [];
  const cursorMs = new Array<number>(clients).fill(0);
  for (let i = 0; i < opsTotal; i++) {
    const c = i % clients;
    const invokeMs = cursorMs[c] + random() * 2;
    let effectMs = invokeMs + random() * 5;
    let completeMs = effectMs + random() * 5;
    const isWrite = random() < 0.5;
    let outcome: Operation['outcome'] = 'ok';
    let happens = true;
    const roll = random();
    if (isWrite && roll < 0.1) {
      outcome = 'unknown';
      happens = random() < 0.6;
      effectMs = invokeMs + random() * 40; // may land long after the client gave up
      completeMs = invokeMs + random() * 3;
    } else if (isWrite && roll < 0.15) {
      outcome = 'fail';
      happens = false;
    } else if (!isWrite && roll < 0.05) {
      outcome = 'unknown';
    }
    cursorMs[c] = completeMs;
    const base = { client: `c${c}`, key: '/r', invokeMs, completeMs, outcome, effectMs, happens };
    if (isWrite) drafts.push({ ...base, kind: 'write', value: `v${i}`, ...(outcome === 'ok' ? {} : { error: outcome === 'fail' ? 'EBUSY' : 'ETIMEDOUT' }) });
    else drafts.push({ ...base, kind: 'read', ...(outcome === 'unknown' ? { error: 'ETIMEDOUT' } : {}) });
  }
  let current: string | undefined;
  const effectOrder: string[] = [];
  for (const draft of [...drafts].sort((a, b) => a.effectMs - b.effectMs)) {
    if (draft.kind === 'write' && draft.happens) {
      current = draft.value;
      effectOrder.push(draft.value!);
    } else if (draft.kind === 'read' && draft.outcome === 'ok' && current !== undefined) {
      draft.result = current;
    }
  }
  const operations = drafts
    .sort((a, b) => a.invokeMs - b.invokeMs)
    .map(({ effectMs: _e, happens: _h, ...op }, id) => ({ id, ...op }) as Operation);
  return { operations, effectOrder };
}

/** Makes one ok read return the value of a write that an acknowledged later write overwrote before the read began. */
export function injectStaleRead(operations: Operation[], seed: number): Operation | undefined {
  const random = seededRandom(seed ^ 0x5eed);
  const okWrites = operations.filter((op) => op.kind === 'write' && op.outcome === 'ok');
  const reads = operations.filter((op) => op.kind === 'read' && op.outcome === 'ok');
  const start = Math.floor(random() * reads.length);
  for (let k = 0; k < reads.length; k++) {
    const read = reads[(start + k) % reads.length];
    const newer = okWrites.find((w2) => w2.completeMs < read.invokeMs && okWrites.some((w1) => w1.completeMs < w2.invokeMs));
    if (!newer) continue;
    const older = okWrites.filter((w1) => w1.completeMs < newer.invokeMs);
    read.result = older[Math.floor(random() * older.length)].value;
    return read;
  }
  return undefined;
}

/** Namespace churn from a sequential directory with random concurrency; ops whose name is gone when they take effect fail with ENOENT. */
export function randomNamespaceHistory(seed: number, clients: number, opsTotal: number, dir = '/ns'): { operations: Operation[]; finalNames: string[] } {
  const random = seededRandom(seed);
  type Draft = Omit<Operation, 'id'> & { effectMs: number; happens: boolean; needs?: string; adds?: string; removes?: string };
  const drafts: Draft[] = [];
  const cursorMs = new Array<number>(clients).fill(0);
  const everNamed: string[] = [];
  for (let i = 0; i < opsTotal; i++) {
    const c = i % clients;
    const invokeMs = cursorMs[c] + random() * 2;
    let effectMs = invokeMs + random() * 4;
    let completeMs = effectMs + random() * 4;
    const pick = () => everNamed[Math.floor(random() * everNamed.length)];
    const roll = random();
    const fresh = `n${i}`;
    let draft: Draft;
    const base = { client: `c${c}`, key: dir, invokeMs, completeMs, outcome: 'ok' as Operation['outcome'], effectMs, happens: true };
    if (everNamed.length === 0 || roll < 0.3) draft = { ...base, kind: 'create', value: fresh, adds: fresh };
    else if (roll < 0.45) {
      const from = pick();
      draft = { ...base, kind: 'rename', value: `${from}\u0000${fresh}`, needs: from, removes: from, adds: fresh };
    } else if (roll < 0.55) {
      const from = pick();
      draft = { ...base, kind: 'link', value: `${from}\u0000${fresh}`, needs: from, adds: fresh };
    } else if (roll < 0.75) {
      const name = pick();
      draft = { ...base, kind: 'unlink', value: name, needs: name, removes: name };
    } else draft = { ...base, kind: 'list' };
    if (draft.adds) everNamed.push(draft.adds);
    if (draft.kind !== 'list' && random() < 0.1) {
      draft.outcome = 'unknown';
      draft.error = 'ETIMEDOUT';
      draft.happens = random() < 0.5;
      effectMs = invokeMs + random() * 30;
      completeMs = invokeMs + random() * 2;
      draft.effectMs = effectMs;
      draft.completeMs = completeMs;
    }
    cursorMs[c] = completeMs;
    drafts.push(draft);
  }
  const names = new Set<string>();
  for (const draft of [...drafts].sort((a, b) => a.effectMs - b.effectMs)) {
    if (draft.kind === 'list') {
      draft.result = [...names].sort().join('\n');
      continue;
    }
    if (draft.needs !== undefined && !names.has(draft.needs)) {
      if (draft.outcome === 'ok') {
        draft.outcome = 'fail';
        draft.error = 'ENOENT';
      }
      continue;
    }
    if (!draft.happens) continue;
    if (draft.removes) names.delete(draft.removes);
    if (draft.adds) names.add(draft.adds);
  }
  const operations = drafts
    .sort((a, b) => a.invokeMs - b.invokeMs)
    .map(({ effectMs: _e, happens: _h, needs: _n, adds: _a, removes: _r, ...rest }, id) => ({ id, ...rest }) as Operation);
  return { operations, finalNames: [...names].sort() };
}
