/** transfer-leader: a graceful leadership transfer to a random follower (handlefs leader transfer); nothing to heal. */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';
import { pick, requireLeader } from './targets';

export const transferLeader: Nemesis = {
  name: 'transfer-leader',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    const leader = await requireLeader(control);
    const to = pick(control, control.members().filter((m) => m.id !== leader && m.pid !== undefined)).id;
    const startMs = control.nowMs();
    await control.transferLeader(to);
    return { name: 'transfer-leader', targets: [leader, to], startMs, endMs: control.nowMs(), leaderLoss: true, detail: `${leader} → ${to}` };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    event.endMs ??= control.nowMs();
  },
};
