/** kill-random: kill -9 one member chosen at random (the leader or not); healing restarts it. */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';
import { pick } from './targets';

export const killRandom: Nemesis = {
  name: 'kill-random',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    const running = control.members().filter((m) => m.pid !== undefined);
    const target = pick(control, running).id;
    const leader = await control.leader(2_000);
    const startMs = control.nowMs();
    await control.kill9(target);
    return { name: 'kill-random', targets: [target], startMs, leaderLoss: target === leader, detail: target === leader ? 'SIGKILL (the leader)' : 'SIGKILL (a follower)' };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    await control.restart(event.targets[0]);
    event.endMs = control.nowMs();
  },
};
