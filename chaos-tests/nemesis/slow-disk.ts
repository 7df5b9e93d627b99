/**
 * slow-disk: every synced Raft write of the leader waits 100-500 ms (the
 * members' debug-unsafe --debug-fsync-delay-file hook, re-read every second);
 * healing sets it back to 0. The leader keeps leading on a slow disk: commits
 * slow down, nothing may be lost or reordered.
 */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';
import { requireLeader } from './targets';

const DELAY_MIN_MS = 100;
const DELAY_MAX_MS = 500;

export const slowDisk: Nemesis = {
  name: 'slow-disk',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    if (!control.setFsyncDelay) throw new Error('the members run without the fsync-delay hook');
    const leader = await requireLeader(control);
    const delayMs = Math.round(DELAY_MIN_MS + control.random() * (DELAY_MAX_MS - DELAY_MIN_MS));
    const startMs = control.nowMs();
    await control.setFsyncDelay(leader, delayMs);
    return { name: 'slow-disk', targets: [leader], startMs, leaderLoss: false, detail: `fsync +${delayMs} ms` };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    await control.setFsyncDelay!(event.targets[0], 0);
    event.endMs = control.nowMs();
  },
};
