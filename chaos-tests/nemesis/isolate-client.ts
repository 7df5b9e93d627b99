/** isolate-client: one client host cut off the network (its veth down); its operations must end unknown or failed, never wrong. */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';
import { pick } from './targets';

export const isolateClient: Nemesis = {
  name: 'isolate-client',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    const target = pick(control, control.clientHosts()).host;
    const startMs = control.nowMs();
    await control.cutHost(target);
    return { name: 'isolate-client', targets: [target], startMs, leaderLoss: false, detail: 'veth down' };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    await control.healHost(event.targets[0]);
    event.endMs = control.nowMs();
  },
};
