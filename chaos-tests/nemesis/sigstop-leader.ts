/**
 * sigstop-leader: SIGSTOP the leader (a process that hangs without dying: its
 * sockets stay open) for longer than the election timeout, then SIGCONT. The
 * old leader wakes up believing it leads; that is the point.
 */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';
import { holdUntil, requireLeader } from './targets';

/** Well past the default election timeout (1-2 s), so the others elect a new leader meanwhile. */
export const SIGSTOP_MIN_HOLD_MS = 4_000;

export const sigstopLeader: Nemesis = {
  name: 'sigstop-leader',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    const leader = await requireLeader(control);
    const startMs = control.nowMs();
    await control.signal(leader, 'SIGSTOP');
    return { name: 'sigstop-leader', targets: [leader], startMs, leaderLoss: true, detail: `SIGSTOP ≥ ${SIGSTOP_MIN_HOLD_MS} ms, then SIGCONT` };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    await holdUntil(control, event.startMs, SIGSTOP_MIN_HOLD_MS);
    await control.signal(event.targets[0], 'SIGCONT');
    event.endMs = control.nowMs();
  },
};
