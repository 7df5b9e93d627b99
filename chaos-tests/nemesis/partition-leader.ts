/**
 * partition-leader: the leader's host is cut from both other members with
 * blackhole routes in both directions; clients still reach it (the classic
 * stale-leader case: it must not answer reads or acknowledge writes alone).
 */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';
import { memberById, requireLeader } from './targets';

export const partitionLeader: Nemesis = {
  name: 'partition-leader',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    const leader = memberById(control, await requireLeader(control));
    const others = control.members().filter((m) => m.id !== leader.id);
    const startMs = control.nowMs();
    for (const other of others) {
      await control.blackhole(leader.host, other.address);
      await control.blackhole(other.host, leader.address);
    }
    return { name: 'partition-leader', targets: [leader.id], startMs, leaderLoss: true, detail: `${leader.id} ⟷ ${others.map((o) => o.id).join(',')} dropped both ways` };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    const leader = memberById(control, event.targets[0]);
    for (const other of control.members().filter((m) => m.id !== leader.id)) {
      await control.unblackhole(leader.host, other.address);
      await control.unblackhole(other.host, leader.address);
    }
    event.endMs = control.nowMs();
  },
};
