/**
 * How nemeses pick what to hit: the leader (throwing when there is none, so
 * the scheduler skips the fault), members and hosts chosen with the run's
 * seeded random source. Owns no fault; must never use Math.random.
 */
import type { ChaosControl, ChaosMember } from './nemesis';

const LEADER_WAIT_MS = 10_000;

export async function requireLeader(control: ChaosControl): Promise<string> {
  const leader = await control.leader(LEADER_WAIT_MS);
  if (leader === undefined) throw new Error(`no leader within ${LEADER_WAIT_MS} ms: nothing to hit`);
  return leader;
}

export function pick<T>(control: ChaosControl, items: readonly T[]): T {
  if (items.length === 0) throw new Error('nothing to pick from');
  return items[Math.floor(control.random() * items.length)];
}

export function memberById(control: ChaosControl, id: string): ChaosMember {
  const member = control.members().find((m) => m.id === id);
  if (!member) throw new Error(`no member ${id}`);
  return member;
}

/** Waits until `ms` passed since `startMs` on the run clock (a nemesis that must hold at least that long). */
export async function holdUntil(control: ChaosControl, startMs: number, ms: number): Promise<void> {
  const left = startMs + ms - control.nowMs();
  if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
}
