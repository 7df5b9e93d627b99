/**
 * When faults happen: quiet, inject, hold, heal — again until the run's fault
 * phase ends. Nemeses are taken in a seeded shuffled order, cycling, so every
 * chosen nemesis strikes before any strikes twice. Each injected fault is
 * recorded at once (a failed heal still leaves its event); a heal always
 * follows an inject, also when the run is aborted mid-hold.
 * Owns the timing only; must never undo a fault itself (nemeses do, and the
 * runner's healAll catches whatever is left).
 */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';

export interface ScheduleOptions {
  /** Run-clock time after which no new fault starts; holds end by then. */
  untilMs: number;
  quietMinMs: number;
  quietMaxMs: number;
  holdMinMs: number;
  holdMaxMs: number;
}

const FAULTS_MAX = 100_000;

function between(control: ChaosControl, min: number, max: number): number {
  return Math.round(min + control.random() * Math.max(0, max - min));
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function runSchedule(control: ChaosControl, nemeses: readonly Nemesis[], options: ScheduleOptions, signal: AbortSignal, record: (event: FaultEvent) => void): Promise<void> {
  if (nemeses.length === 0) return;
  let order: Nemesis[] = [];
  for (let count = 0; count < FAULTS_MAX && !signal.aborted; count++) {
    await abortableSleep(between(control, options.quietMinMs, options.quietMaxMs), signal);
    if (signal.aborted || control.nowMs() + options.holdMinMs > options.untilMs) return;
    if (order.length === 0) {
      order = [...nemeses];
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(control.random() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
    }
    const nemesis = order.shift()!;
    let event: FaultEvent;
    try {
      event = await nemesis.inject(control);
    } catch (error) {
      control.log(`nemesis ${nemesis.name}: not injected: ${(error as Error).message}`);
      continue;
    }
    record(event);
    control.log(`fault ${event.name} on ${event.targets.join(',')} at ${(event.startMs / 1000).toFixed(1)} s${event.detail ? ` (${event.detail})` : ''}`);
    const holdMs = Math.min(between(control, options.holdMinMs, options.holdMaxMs), Math.max(0, options.untilMs - control.nowMs()));
    await abortableSleep(holdMs, signal);
    try {
      await nemesis.heal(control, event);
      control.log(`healed ${event.name} at ${((event.endMs ?? control.nowMs()) / 1000).toFixed(1)} s`);
    } catch (error) {
      control.log(`nemesis ${nemesis.name}: heal failed (healAll will retry): ${(error as Error).message}`);
    }
  }
}
