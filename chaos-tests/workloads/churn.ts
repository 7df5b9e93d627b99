/**
 * The namespace-churn workload: create, rename, link and unlink of unique
 * names in a few shared directories, and listings. Each client only renames,
 * links and unlinks names it created (others' names are theirs to change), so
 * every name has one writer and the final listing is decidable from the
 * history. Plans operations and tracks which names it believes exist.
 */
import type { Outcome } from '../history';
import type { PlannedOp } from './registers';

export const CHURN_ROOT = '/ns';
const OWN_NAMES_MAX = 64;

export function churnDirs(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${CHURN_ROOT}/d${i}`);
}

export class ChurnWorkload {
  private counter = 0;
  /** Per directory: names this client made that may exist (ok or unknown outcome). */
  private readonly own = new Map<string, string[]>();

  constructor(private readonly client: string, private readonly dirs: string[], private readonly random: () => number) {
    if (dirs.length === 0) throw new Error('the churn workload needs at least one directory');
    for (const dir of dirs) this.own.set(dir, []);
  }

  private fresh(): string {
    return `${this.client}-n${++this.counter}`;
  }

  private pick(names: string[]): string {
    return names[Math.floor(this.random() * names.length)];
  }

  next(): PlannedOp {
    const dir = this.dirs[Math.floor(this.random() * this.dirs.length)];
    const names = this.own.get(dir)!;
    const roll = this.random();
    if (names.length === 0 || (roll < 0.35 && names.length < OWN_NAMES_MAX)) return { kind: 'create', key: dir, value: this.fresh() };
    if (roll < 0.5) return { kind: 'rename', key: dir, value: `${this.pick(names)}\u0000${this.fresh()}` };
    if (roll < 0.65) return { kind: 'link', key: dir, value: `${this.pick(names)}\u0000${this.fresh()}` };
    if (roll < 0.85) return { kind: 'unlink', key: dir, value: this.pick(names) };
    return { kind: 'list', key: dir };
  }

  /** Keeps the belief of which names exist: a 'fail' changed nothing, 'ok' and 'unknown' (maybe) did. */
  observe(op: PlannedOp, outcome: Outcome): void {
    if (outcome === 'fail' || op.kind === 'list') return;
    const names = this.own.get(op.key);
    if (!names) return;
    const [first, second] = (op.value ?? '').split('\u0000');
    const remove = (name: string): void => {
      const at = names.indexOf(name);
      if (at >= 0) names.splice(at, 1);
    };
    if (op.kind === 'create') names.push(first);
    else if (op.kind === 'rename') {
      remove(first);
      names.push(second);
    } else if (op.kind === 'link') names.push(second);
    else if (op.kind === 'unlink' && outcome === 'ok') remove(first);
  }
}
