/**
 * The simulator's only source of randomness: one seeded stream (the core's
 * mulberry32 `seededRandom`) plus the draws fault injection needs.
 * Must never call Math.random or read a clock: a seed must replay exactly.
 */
import { seededRandom } from '../core/config';

export class SimRandom {
  private readonly nextFloat: () => number;

  constructor(readonly seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`sim seed must be an integer in [0, 2^32), got ${seed}`);
    this.nextFloat = seededRandom(seed);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.nextFloat();
  }

  /** An integer in [minInclusive, maxInclusive]. */
  int(minInclusive: number, maxInclusive: number): number {
    if (maxInclusive < minInclusive) throw new Error(`SimRandom.int: empty range [${minInclusive}, ${maxInclusive}]`);
    return minInclusive + Math.floor(this.nextFloat() * (maxInclusive - minInclusive + 1));
  }

  chance(probability: number): boolean {
    return probability > 0 && this.nextFloat() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('SimRandom.pick: no items');
    return items[this.int(0, items.length - 1)];
  }

  shuffleInPlace<T>(items: T[]): void {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const held = items[i];
      items[i] = items[j];
      items[j] = held;
    }
  }

  /** A fresh seed for an independent sub-stream (each node incarnation's core gets one). */
  deriveSeed(): number {
    return Math.floor(this.nextFloat() * 0x100000000) >>> 0;
  }
}
