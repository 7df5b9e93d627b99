/**
 * The registers workload: whole-file writes of unique values and whole-file
 * reads, on a small set of files every client shares. Plans operations only;
 * must never perform them (the worker does, through a Driver).
 */
import type { OpKind } from '../history';

export interface PlannedOp {
  kind: OpKind;
  key: string;
  value?: string;
}

export const REGISTER_DIR = '/reg';

export function registerKeys(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${REGISTER_DIR}/r${i}`);
}

export class RegistersWorkload {
  private written = 0;

  constructor(private readonly client: string, private readonly keys: string[], private readonly random: () => number) {
    if (keys.length === 0) throw new Error('the registers workload needs at least one file');
  }

  next(): PlannedOp {
    const key = this.keys[Math.floor(this.random() * this.keys.length)];
    if (this.random() < 0.5) return { kind: 'read', key };
    // Unique in the run: the client name is unique, the counter never repeats.
    return { kind: 'write', key, value: `${this.client}:w${++this.written}` };
  }
}
