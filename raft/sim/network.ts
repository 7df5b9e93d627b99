/**
 * The simulated network: per-message delay (hence reordering), loss,
 * duplication, and link cuts (one direction or both). Messages are deep-copied
 * on send so no two nodes ever share an object. Bounded: at most
 * `maxInFlightMessages` wait in the air; the rest are dropped and counted.
 * It never delivers anything itself; the simulation pulls what is due.
 */
import { Message } from '../core/types';
import { SimRandom } from './random';
import { cloneEntry, cloneSnapshot } from './storage';

export interface NetworkFaults {
  /** Probability a message is lost on send. */
  lossRate: number;
  /** Probability a message is delivered twice (the copy with its own delay). */
  duplicateRate: number;
  /** Usual delay range, in steps (≥ 1). */
  minDelaySteps: number;
  maxDelaySteps: number;
  /** Probability a message takes a long path instead, up to longDelayStepsMax steps. */
  longDelayRate: number;
  longDelayStepsMax: number;
  /** Whether messages due in the same step arrive in a random order (else in send order: FIFO per link when delays are equal). */
  reorderWithinStep: boolean;
}

/** A healed network behaves like TCP between two nodes: no loss, no duplicates, one step, in order. */
export const NO_NETWORK_FAULTS: NetworkFaults = { lossRate: 0, duplicateRate: 0, minDelaySteps: 1, maxDelaySteps: 1, longDelayRate: 0, longDelayStepsMax: 1, reorderWithinStep: false };

export interface InFlightMessage {
  message: Message;
  /** The sender's incarnation when it sent, so snapshot reports reach only the core that sent. */
  senderIncarnation: number;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  cutByPartition: number;
  droppedOverflow: number;
}

export function cloneMessage(message: Message): Message {
  return {
    ...message,
    entries: message.entries.map(cloneEntry),
    context: message.context.slice(),
    snapshot: message.snapshot === undefined ? undefined : cloneSnapshot(message.snapshot),
  };
}

export class SimNetwork {
  /** Ring of per-step buckets: bucket (step % length) holds what is due at that step. */
  private readonly buckets: InFlightMessage[][];
  private inFlightCount = 0;
  /** Cut links as "from>to". */
  private readonly cutLinks = new Set<string>();
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, cutByPartition: 0, droppedOverflow: 0 };

  constructor(
    private readonly random: SimRandom,
    public faults: NetworkFaults,
    readonly maxDelayStepsBound: number,
    readonly maxInFlightMessages: number,
  ) {
    if (faults.longDelayStepsMax > maxDelayStepsBound || faults.maxDelaySteps > maxDelayStepsBound) throw new Error('network delays exceed maxDelayStepsBound');
    this.buckets = Array.from({ length: maxDelayStepsBound + 1 }, () => []);
  }

  private drawDelay(): number {
    const f = this.faults;
    if (this.random.chance(f.longDelayRate)) return this.random.int(f.maxDelaySteps, f.longDelayStepsMax);
    return this.random.int(f.minDelaySteps, f.maxDelaySteps);
  }

  /** Queues a copy of the message; returns false if it was lost right away. Extra delay models a big transfer. */
  send(now: number, message: Message, senderIncarnation: number, extraDelaySteps = 0): boolean {
    this.stats.sent++;
    if (this.random.chance(this.faults.lossRate)) {
      this.stats.lost++;
      return false;
    }
    const copies = this.random.chance(this.faults.duplicateRate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      if (this.inFlightCount >= this.maxInFlightMessages) {
        this.stats.droppedOverflow++;
        return i > 0;
      }
      const delay = Math.min(this.maxDelayStepsBound, this.drawDelay() + extraDelaySteps);
      this.buckets[(now + delay) % this.buckets.length].push({ message: cloneMessage(message), senderIncarnation });
      this.inFlightCount++;
    }
    return true;
  }

  /** Everything due at `now`, in a seeded order. Links cut now drop their messages here (counted), not on send. */
  takeDue(now: number): { deliver: InFlightMessage[]; cut: InFlightMessage[] } {
    const index = now % this.buckets.length;
    const due = this.buckets[index];
    this.buckets[index] = [];
    this.inFlightCount -= due.length;
    if (this.faults.reorderWithinStep) this.random.shuffleInPlace(due);
    const deliver: InFlightMessage[] = [];
    const cut: InFlightMessage[] = [];
    for (const item of due) {
      if (this.isCut(item.message.from, item.message.to)) {
        this.stats.cutByPartition++;
        cut.push(item);
      } else {
        this.stats.delivered++;
        deliver.push(item);
      }
    }
    return { deliver, cut };
  }

  isCut(from: string, to: string): boolean {
    return this.cutLinks.has(`${from}>${to}`);
  }

  cut(from: string, to: string): void {
    this.cutLinks.add(`${from}>${to}`);
  }

  /** Cuts both directions between every node of `side` and every node of `rest`. */
  partition(side: readonly string[], rest: readonly string[]): void {
    for (const a of side) {
      for (const b of rest) {
        this.cut(a, b);
        this.cut(b, a);
      }
    }
  }

  hasCuts(): boolean {
    return this.cutLinks.size > 0;
  }

  describeCuts(): string {
    return [...this.cutLinks].sort().join(' ');
  }

  healAll(): void {
    this.cutLinks.clear();
  }

  inFlight(): number {
    return this.inFlightCount;
  }
}
