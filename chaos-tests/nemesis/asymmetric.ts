/**
 * asymmetric: packets from the leader's host to the other members are
 * dropped (one blackhole route per follower, inside the leader's host only);
 * the followers' packets still reach the leader. With TCP the replies the
 * leader sends are dropped too, so the followers' connections to it stall
 * rather than fail (deploy/netns/faults.ts).
 */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';
import { memberById, requireLeader } from './targets';

export const asymmetric: Nemesis = {
  name: 'asymmetric',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    const leader = memberById(control, await requireLeader(control));
    const others = control.members().filter((m) => m.id !== leader.id);
    const startMs = control.nowMs();
    for (const other of others) await control.blackhole(leader.host, other.address);
    return { name: 'asymmetric', targets: [leader.id], startMs, leaderLoss: true, detail: `${leader.id} → ${others.map((o) => o.id).join(',')} dropped` };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    const leader = memberById(control, event.targets[0]);
    for (const other of control.members().filter((m) => m.id !== leader.id)) await control.unblackhole(leader.host, other.address);
    event.endMs = control.nowMs();
  },
};
