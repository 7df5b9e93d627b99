/**
 * membership: a fourth member joins during the run — added as a learner,
 * started empty with --join on the spare host, promoted to voter once caught
 * up — and is removed again at heal (the cluster is back to its three
 * founders). Faults never overlap, so the change itself is the disturbance.
 */
import type { FaultEvent } from '../history';
import type { ChaosControl, Nemesis } from './nemesis';

export const membership: Nemesis = {
  name: 'membership',
  async inject(control: ChaosControl): Promise<FaultEvent> {
    if (!control.addMember || !control.removeMember) throw new Error('this cluster has no spare host for membership changes');
    const startMs = control.nowMs();
    const id = await control.addMember();
    return { name: 'membership', targets: [id], startMs, leaderLoss: false, detail: `${id} added as learner, promoted; removed at heal` };
  },
  async heal(control: ChaosControl, event: FaultEvent): Promise<void> {
    await control.removeMember!(event.targets[0]);
    event.endMs = control.nowMs();
  },
};
