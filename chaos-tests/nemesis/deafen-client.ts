/**
 * deafen-client: one client host stops hearing the servers — every member's
 * packets to it are dropped (a blackhole route in each member's host), while
 * its own packets still arrive. The requests it sends are applied and their
 * answers lost, so each retry after the heal must be answered from the
 * session's stored result, never applied again (exactly once): where a lost
 * answer is the rule, not the odd timing of a leader kill.
 */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';
import { pick } from './targets';

export const deafenClient: Nemesis = {
  name: 'deafen-client',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    const client = pick(control, control.clientHosts());
    const members = control.members();
    const startMs = control.nowMs();
    for (const member of members) await control.blackhole(member.host, client.address);
    return { name: 'deafen-client', targets: [client.host, client.address, ...members.map((m) => m.host)], startMs, leaderLoss: false, detail: `${members.map((m) => m.id).join(',')} → ${client.host} dropped` };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    const [, address, ...memberHosts] = event.targets;
    for (const host of memberHosts) await control.unblackhole(host, address);
    event.endMs = control.nowMs();
  },
};
