/**
 * One session's mutation sequences (the servers' dedup window): each mutation
 * takes the next sequence when it gets one of the bounded in-flight slots, and
 * `firstUnacked` is the lowest sequence still waiting for its answer, so the
 * servers forget every answer below it. Callers beyond the bound wait in a
 * bounded FIFO. Owns numbering and the slot bound; must never send anything.
 */
import { EAGAIN, MetaError } from './errors';

export const MAX_IN_FLIGHT_MUTATIONS = 200;
/** Mutations waiting for a slot (beyond: EAGAIN at once rather than unbounded memory). */
export const MAX_QUEUED_MUTATIONS = 100_000;

export class Sequencer {
  private next = 1;
  private readonly waiting = new Set<number>();
  private readonly queue: Array<() => void> = [];

  constructor(readonly sessionId: number, private readonly maxInFlight = MAX_IN_FLIGHT_MUTATIONS) {
    if (maxInFlight < 1) throw new Error(`maxInFlight must be ≥ 1, got ${maxInFlight}`);
  }

  get inFlight(): number {
    return this.waiting.size;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** A sequence of this session, once a slot is free; pass it to done() when its answer arrived (or the call gave up). */
  async take(): Promise<number> {
    if (this.waiting.size >= this.maxInFlight || this.queue.length > 0) {
      if (this.queue.length >= MAX_QUEUED_MUTATIONS) throw new MetaError(EAGAIN, `${MAX_QUEUED_MUTATIONS} mutations already wait for one of session ${this.sessionId}'s ${this.maxInFlight} slots`);
      await new Promise<void>((resolve) => this.queue.push(resolve));
    }
    const sequence = this.next++;
    this.waiting.add(sequence);
    return sequence;
  }

  /** The lowest sequence still waiting (the servers keep answers from it on). */
  firstUnacked(): number {
    let lowest = Number.MAX_SAFE_INTEGER;
    for (const sequence of this.waiting) if (sequence < lowest) lowest = sequence;
    if (lowest === Number.MAX_SAFE_INTEGER) throw new Error(`session ${this.sessionId}: firstUnacked asked with no mutation in flight`);
    return lowest;
  }

  done(sequence: number): void {
    if (!this.waiting.delete(sequence)) throw new Error(`session ${this.sessionId}: sequence ${sequence} is not in flight`);
    const wake = this.queue.shift();
    if (wake) wake();
  }
}
