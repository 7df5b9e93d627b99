/** crash-all: kill -9 every member at once (power loss); healing restarts them all. Only fsynced state may survive. */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';

export const crashAll: Nemesis = {
  name: 'crash-all',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    const targets = control.members().filter((m) => m.pid !== undefined).map((m) => m.id);
    const startMs = control.nowMs();
    await Promise.all(targets.map((id) => control.kill9(id)));
    return { name: 'crash-all', targets, startMs, leaderLoss: true, detail: 'SIGKILL all' };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    await Promise.all(event.targets.map((id) => control.restart(id)));
    event.endMs = control.nowMs();
  },
};
