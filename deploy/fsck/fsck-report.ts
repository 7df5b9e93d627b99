/**
 * What `handlefs fsck` found, as one JSON-able record, and its human form:
 * sections (digests, namespace rules, blocks, repair), a count per kind of
 * problem with its first findings, and "clean" when there is nothing. Owns the
 * report's shape and wording; must never talk to servers.
 */
import type * as a from '../../proto/admin-proto';

export const FINDING_KIND_TITLES: Record<string, string> = {
  'nlink': 'wrong nlink',
  'orphan': 'orphan handles',
  'dangling-entry': 'dangling entries',
  'dangling-fh': 'open fhs on missing handles',
  'stray-record': 'records of missing handles',
  'dir-entries': 'wrong directory entry counts',
  'block-refs': 'wrong block reference counts',
  'counters': 'wrong counters',
  'corrupt-record': 'unreadable records',
};

export interface MemberResult {
  id: string;
  address: string;
  digest?: string;
  keys?: number;
  /** Why this member was not checked (down, refused, timed out). */
  error?: string;
}

export interface BlockProblem {
  id: string;
  holders: string[];
  lacking: string[];
}

export interface FsckReport {
  clean: boolean;
  /** Problems that remain after any repair (members not checked count one each). */
  problems: number;
  index: number;
  leaderId: string;
  members: MemberResult[];
  digests: { equal: boolean; reference: string; agreeing: string[]; differing: Array<{ id: string; digest: string }> };
  namespace: {
    fromMember: string;
    inodes: number; entries: number; fhs: number; versions: number; conflictCopies: number; blockRecords: number; referencedBlocks: number;
    incomplete: boolean;
    counts: Record<string, number>;
    samples: a.FsckFinding[];
  };
  blocks: {
    referenced: number;
    checked: number;
    majority: number;
    underReplicated: number;
    lost: number;
    samples: BlockProblem[];
    /** Members that could not be asked about blocks. */
    unreachable: string[];
  };
  repair: {
    requested: boolean;
    blocksRepaired: number;
    blocksFailed: number;
    failures: string[];
    nlinkFixed: number;
    orphansCollected: number;
    /** Metadata fixes the leader proposed but did not make (the record moved on since its scan), "handle N: why". */
    skipped: string[];
    /** What --repair does not change (metadata problems), with why. */
    notRepaired: string[];
  };
}

const short = (digest: string): string => `${digest.slice(0, 16)}…`;

export function renderReport(report: FsckReport, samplesShown: number): string {
  const lines: string[] = [];
  const checked = report.members.filter((m) => !m.error);
  lines.push(`fsck of ${report.members.length} members at applied index ${report.index} (leader ${report.leaderId})`);
  lines.push('');
  lines.push('members and state digests:');
  for (const member of report.members) {
    if (member.error) lines.push(`  ${member.id} at ${member.address}: NOT CHECKED: ${member.error}`);
    else {
      const odd = report.digests.differing.some((d) => d.id === member.id);
      lines.push(`  ${member.id} at ${member.address}: ${short(member.digest!)} (${member.keys} keys)${odd ? '  DIFFERS from the majority' : ''}`);
    }
  }
  if (report.digests.equal && checked.length === report.members.length) lines.push(`  digests equal on all ${checked.length} members`);
  else if (report.digests.differing.length > 0) {
    lines.push(`  DIGESTS DIFFER: ${report.digests.differing.map((d) => d.id).join(', ')} ${report.digests.differing.length === 1 ? 'differs' : 'differ'} from ${report.digests.agreeing.join(', ')} at index ${report.index}`);
  }
  const ns = report.namespace;
  lines.push('');
  lines.push(`namespace (as ${ns.fromMember} holds it): ${ns.inodes} handles, ${ns.entries} entries, ${ns.fhs} open fhs, ${ns.versions} versions, ${ns.conflictCopies} conflict copies, ${ns.blockRecords} block records`);
  if (ns.incomplete) lines.push('  INCOMPLETE: the state is larger than the check tracks; some rules were not checked');
  const kinds = Object.entries(ns.counts).filter(([, count]) => count > 0);
  if (kinds.length === 0) lines.push('  nlink, orphans, dangling entries, block reference counts: ok');
  for (const [kind, count] of kinds) {
    lines.push(`  ${FINDING_KIND_TITLES[kind] ?? kind}: ${count}`);
    for (const finding of ns.samples.filter((f) => f.kind === kind).slice(0, samplesShown)) lines.push(`    ${finding.subject}: ${finding.detail}`);
    if (count > samplesShown) lines.push(`    … ${count - Math.min(samplesShown, count)} more (--json, --samples N)`);
  }
  const blocks = report.blocks;
  lines.push('');
  lines.push(`blocks: ${blocks.referenced} referenced, ${blocks.checked} checked, a majority is ${blocks.majority}`);
  if (blocks.underReplicated === 0 && blocks.lost === 0) lines.push(`  every checked block is on a majority`);
  if (blocks.underReplicated > 0) lines.push(`  on fewer than a majority: ${blocks.underReplicated}`);
  if (blocks.lost > 0) lines.push(`  on no member at all (LOST): ${blocks.lost}`);
  for (const problem of blocks.samples.slice(0, samplesShown)) {
    lines.push(`    ${problem.id}: held by ${problem.holders.join(', ') || 'nobody'}, missing on ${problem.lacking.join(', ')}`);
  }
  if (blocks.unreachable.length > 0) lines.push(`  not asked: ${blocks.unreachable.join('; ')}`);
  if (report.repair.requested) {
    lines.push('');
    lines.push(`repair: ${report.repair.blocksRepaired} block${report.repair.blocksRepaired === 1 ? '' : 's'} copied to a majority, ${report.repair.blocksFailed} could not be`);
    for (const failure of report.repair.failures.slice(0, samplesShown)) lines.push(`    ${failure}`);
    lines.push(`  nlink counts fixed: ${report.repair.nlinkFixed}, orphan files collected: ${report.repair.orphansCollected}`);
    for (const skipped of report.repair.skipped.slice(0, samplesShown)) lines.push(`    skipped ${skipped}`);
    for (const note of report.repair.notRepaired) lines.push(`  not repaired: ${note}`);
  }
  lines.push('');
  lines.push(report.clean ? 'result: clean' : `result: ${report.problems} problem${report.problems === 1 ? '' : 's'} remain${report.problems === 1 ? 's' : ''}`);
  return `${lines.join('\n')}\n`;
}
