/** kill-leader: kill -9 the leader; healing restarts it on its data folder. Must never touch another member. */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';
import { requireLeader } from './targets';

export const killLeader: Nemesis = {
  name: 'kill-leader',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    const leader = await requireLeader(control);
    const startMs = control.nowMs();
    await control.kill9(leader);
    return { name: 'kill-leader', targets: [leader], startMs, leaderLoss: true, detail: 'SIGKILL' };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    await control.restart(event.targets[0]);
    event.endMs = control.nowMs();
  },
};
