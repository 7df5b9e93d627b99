/**
 * The nemeses by name, as --nemesis takes them ('all' = every one here).
 * slow-disk needs the members' debug-unsafe fsync-delay hook: the runner
 * turns it on only when slow-disk is chosen.
 */
import { asymmetric } from './asymmetric';
import { crashAll } from './crash-all';
import { deafenClient } from './deafen-client';
import { isolateClient } from './isolate-client';
import { killLeader } from './kill-leader';
import { killRandom } from './kill-random';
import { membership } from './membership';
import type { Nemesis } from './nemesis';
import { partitionLeader } from './partition-leader';
import { sigstopLeader } from './sigstop-leader';
import { slowDisk } from './slow-disk';
import { transferLeader } from './transfer-leader';

export const NEMESES: readonly Nemesis[] = [killLeader, killRandom, sigstopLeader, partitionLeader, asymmetric, isolateClient, deafenClient, crashAll, transferLeader, membership, slowDisk];

/** 'all' or a comma-separated list of names; throws naming an unknown one. */
export function nemesesByName(list: string): Nemesis[] {
  if (list.trim() === 'all') return [...NEMESES];
  const chosen: Nemesis[] = [];
  for (const name of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const nemesis = NEMESES.find((n) => n.name === name);
    if (!nemesis) throw new Error(`unknown nemesis ${JSON.stringify(name)} (have: ${NEMESES.map((n) => n.name).join(', ')}, all)`);
    if (!chosen.includes(nemesis)) chosen.push(nemesis);
  }
  if (chosen.length === 0) throw new Error('--nemesis needs at least one name');
  return chosen;
}
