/**
 * The appends workload: unique O_APPEND records to shared files, and reads of
 * whole append files. Files rotate every RECORDS_PER_GENERATION records of a
 * client, so each stays small (an SDK append commits inline, ≤ 4,096 B).
 * Plans operations only.
 */
import type { PlannedOp } from './registers';

export const APPEND_DIR = '/app';
const RECORDS_PER_GENERATION = 12;
const FILES_PER_GENERATION = 2;

export class AppendsWorkload {
  private appended = 0;

  constructor(private readonly client: string, private readonly random: () => number) {}

  private keyFor(generation: number): string {
    return `${APPEND_DIR}/g${generation}-${Math.floor(this.random() * FILES_PER_GENERATION)}`;
  }

  next(): PlannedOp {
    const generation = Math.floor(this.appended / RECORDS_PER_GENERATION);
    if (this.appended > 0 && this.random() < 0.25) return { kind: 'read-appends', key: this.keyFor(generation) };
    this.appended++;
    // A record is one line; value excludes the '\n' the driver writes after it.
    return { kind: 'append', key: this.keyFor(generation), value: `${this.client}:a${this.appended}` };
  }

  /** Every append file this client may have touched (for the final read). */
  static keysUpTo(maxAppendsPerClient: number): string[] {
    const keys: string[] = [];
    const generations = Math.ceil(maxAppendsPerClient / RECORDS_PER_GENERATION) + 1;
    for (let g = 0; g < generations; g++) for (let f = 0; f < FILES_PER_GENERATION; f++) keys.push(`${APPEND_DIR}/g${g}-${f}`);
    return keys;
  }
}
