/**
 * `handlefs fsck --servers H:P,... [--json] [--repair] [--samples N]`: a
 * file-system check of the metadata cluster, as fsck(8) is for a disk.
 *   1. Status of every member; the leader's membership says who to check.
 *   2. Every member scans its state at ONE applied index (Admin FsckScan: a
 *      digest of the keyspace and the namespace rules, from one LevelDB
 *      snapshot taken exactly at that index); digests are compared, a member
 *      outside the majority is named.
 *   3. Every referenced block is looked for on every member (BlockPeer
 *      HasBlocks); one on fewer than a majority is reported, and with
 *      --repair copied from a holder to the members lacking it.
 * Owns the order of these steps, what it prints (report on stdout, progress
 * and errors on stderr) and exit codes: 0 clean, 1 problems remain, 2 bad
 * usage, 3 the check could not run (no server answered, no leader).
 * --repair copies under-replicated blocks, then asks the leader (Admin
 * FsckRepair) to propose the metadata fixes it can make safely (nlink counts,
 * nameless unheld files), and checks again: the report is what remains.
 */
import * as grpc from '@grpc/grpc-js';
import type * as a from '../../proto/admin-proto';
import { MAX_HAS_BLOCKS_IDS } from '../../proto/blocks-proto';
import { AdminClient, Answer, CallError, UsageError, parseServers, sleep } from '../ops/admin-client';
import { ProgressBar } from '../ops/progress';
import { BlockHolding, BlockSurvey } from './block-survey';
import { FsckReport, MemberResult, renderReport } from './fsck-report';
import { SECURITY_FLAGS, securityFromFlags } from '../certs/security-flags';
import type { ClientSecurity } from '../../proto/tls';

export const FSCK_USAGE = `  fsck --servers H:P,... [--json] [--repair] [--samples 10]
        [--tls-ca F [--tls-cert F --tls-key F]] [--token-file F]
        check the cluster: every member's state digest equal at one applied index, nlink counts, orphan
        handles, dangling entries, block reference counts, every referenced block on a majority;
        --repair copies under-replicated blocks to a majority, fixes nlink counts and collects orphan files;
        exits 0 clean, 1 problems remain, 2 bad usage, 3 could not check (cluster unreachable, no leader)
`;

export const EXIT_CLEAN = 0;
export const EXIT_PROBLEMS = 1;
export const EXIT_USAGE = 2;
export const EXIT_CANNOT_CHECK = 3;

const SAMPLES_DEFAULT = 10;
const SAMPLES_MAX = 1_000;
/** Scan rounds before giving up on finding one index every member can stop at (a busy cluster moves on). */
const SCAN_ATTEMPTS_MAX = 6;
const SCAN_WAIT_MS = 5_000;
/** A scan reads the whole state: on a large one this takes a while. */
const SCAN_DEADLINE_MS = 300_000;
const LIST_DEADLINE_MS = 30_000;
const REPAIR_DEADLINE_MS = 60_000;
/** Blocks repaired in one run at most; run fsck again for more. */
const REPAIRS_PER_RUN_MAX = 10_000;
const BLOCK_SAMPLES_KEPT = 1_000;

interface Options {
  servers: string[];
  security: ClientSecurity;
  json: boolean;
  repair: boolean;
  samples: number;
}

function parseOptions(args: string[]): Options {
  let servers: string | undefined;
  let json = false;
  let repair = false;
  let samples = SAMPLES_DEFAULT;
  const securityValues = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--json') { json = true; continue; }
    if (arg === '--repair') { repair = true; continue; }
    const equals = arg.indexOf('=');
    const flag = equals > 0 ? arg.slice(0, equals) : arg;
    if (flag !== '--servers' && flag !== '--samples' && !SECURITY_FLAGS.includes(flag)) throw new UsageError(arg.startsWith('--') ? `unknown option ${flag}` : `unexpected argument ${JSON.stringify(arg)}`);
    const value = equals > 0 ? arg.slice(equals + 1) : args[++i];
    if (value === undefined || value.startsWith('--')) throw new UsageError(`${flag} needs a value`);
    if (SECURITY_FLAGS.includes(flag)) {
      if (securityValues.has(flag)) throw new UsageError(`${flag} given twice`);
      securityValues.set(flag, value);
    } else if (flag === '--servers') servers = value;
    else {
      samples = Number(value);
      if (!Number.isInteger(samples) || samples < 0 || samples > SAMPLES_MAX) throw new UsageError(`--samples must be an integer in 0..${SAMPLES_MAX}, got ${JSON.stringify(value)}`);
    }
  }
  const parsedServers = parseServers(servers ?? process.env.HANDLEFS_SERVERS);
  return { servers: parsedServers, security: securityFromFlags(securityValues, (message) => new UsageError(message)), json, repair, samples };
}

interface Target {
  id: string;
  address: string;
}

type ScanOutcome = { scans: Map<string, a.FsckScanReply>; errors: Map<string, string>; index: number };

class CannotCheck extends Error {}

/** Finds one index every reachable member stops at, and scans them all there. */
async function scanAll(client: AdminClient, targets: Target[], samples: number, progress: ProgressBar): Promise<ScanOutcome> {
  let marginEntries = 0;
  let last: ScanOutcome | undefined;
  for (let attempt = 0; attempt < SCAN_ATTEMPTS_MAX; attempt++) {
    const leader = AdminClient.leaderOf(await client.sweep());
    if (!leader) throw new CannotCheck('no leader answered while choosing the index to check at');
    const index = Math.max(1, leader.status!.commitIndex + marginEntries);
    let done = 0;
    progress.update(0, targets.length, `scanning at index ${index}`);
    const outcomes = await Promise.all(targets.map(async (target) => {
      const outcome = await client.call(target.address, 'FsckScan', { index, waitMs: SCAN_WAIT_MS, samplesPerKind: samples }, SCAN_DEADLINE_MS);
      progress.update(++done, targets.length, `scanning at index ${index}`);
      return { target, outcome };
    }));
    const scans = new Map<string, a.FsckScanReply>();
    const errors = new Map<string, string>();
    let passed = false;
    let notReached = false;
    for (const { target, outcome } of outcomes) {
      if (outcome.reply && outcome.reply.index === index) {
        scans.set(target.id, outcome.reply);
        continue;
      }
      if (outcome.reply) {
        errors.set(target.id, `${target.id} answered a scan at index ${outcome.reply.index}, not ${index} (an older server?)`);
        continue;
      }
      errors.set(target.id, outcome.error.message);
      if (outcome.error.code === grpc.status.FAILED_PRECONDITION) passed = true;
      else if (outcome.error.code === grpc.status.DEADLINE_EXCEEDED && !outcome.error.unreachable) notReached = true;
    }
    last = { scans, errors, index };
    if (!passed && !notReached) return last;
    // A member moved past the index before it was asked: aim further ahead. One never got there: the cluster went idle, aim at its commit.
    marginEntries = passed ? Math.max(16, marginEntries * 4) : 0;
    await sleep(100);
  }
  return last!;
}

/** The digest most members hold (ties: the leader's); members with another one differ. */
function compareDigests(scans: Map<string, a.FsckScanReply>, leaderId: string): FsckReport['digests'] {
  const groups = new Map<string, string[]>();
  for (const [id, scan] of scans) groups.set(scan.digest, [...(groups.get(scan.digest) ?? []), id]);
  const leaderDigest = scans.get(leaderId)?.digest;
  const ranked = [...groups].sort(([d1, m1], [d2, m2]) => m2.length - m1.length || Number(d2 === leaderDigest) - Number(d1 === leaderDigest));
  const [reference, agreeing] = ranked[0] ?? ['', []];
  const differing = [...scans].filter(([, scan]) => scan.digest !== reference).map(([id, scan]) => ({ id, digest: scan.digest }));
  return { equal: differing.length === 0, reference, agreeing, differing };
}

/** Pages referenced ids from the leader and surveys each page on every member. */
async function surveyBlocks(client: AdminClient, leaderAddress: string, survey: BlockSurvey, total: number, progress: ProgressBar): Promise<{ problems: BlockHolding[]; checked: number; unreachable: Map<string, string> }> {
  const problems: BlockHolding[] = [];
  const unreachable = new Map<string, string>();
  let checked = 0;
  let afterId = '';
  // Bounded: each page moves afterId forward over a finite id range.
  for (;;) {
    const page = await client.call(leaderAddress, 'ReferencedBlocks', { afterId, limit: MAX_HAS_BLOCKS_IDS }, LIST_DEADLINE_MS);
    if (page.error) throw new CannotCheck(`could not list the referenced blocks: ${page.error.message}`);
    const ids = page.reply.ids;
    if (ids.length > 0) {
      const { holdings, unreachable: down } = await survey.holdings(ids);
      for (const [id, why] of down) unreachable.set(id, why);
      for (const holding of holdings) if (holding.holders.length < survey.majority()) problems.push(holding);
      checked += ids.length;
      afterId = ids[ids.length - 1];
      progress.update(checked, Math.max(total, checked), `${checked}/${Math.max(total, checked)} blocks`);
    }
    if (!page.reply.more || ids.length === 0) return { problems, checked, unreachable };
  }
}

interface Check {
  index: number;
  members: MemberResult[];
  digests: FsckReport['digests'];
  referenceId: string;
  reference: a.FsckScanReply;
  counts: Record<string, number>;
  blocks: { problems: BlockHolding[]; checked: number; unreachable: Map<string, string> };
}

/** One whole check: every member scanned at one index, digests compared, every referenced block looked for. */
async function checkOnce(client: AdminClient, leaderId: string, leaderAddress: string, targets: Target[], survey: BlockSurvey, samples: number): Promise<Check> {
  const members: MemberResult[] = targets.map((t) => ({ id: t.id, address: t.address || '(client address unknown)' }));
  const reachable = targets.filter((t) => t.address !== '');
  for (const member of members) if (!reachable.some((t) => t.id === member.id)) member.error = 'its client address is unknown to the leader; give it in --servers';
  const scanBar = new ProgressBar('fsck: scanning state');
  const { scans, errors, index } = await scanAll(client, reachable, samples, scanBar);
  scanBar.finish(`${scans.size}/${targets.length} members scanned at applied index ${index}`);
  for (const member of members) {
    const scan = scans.get(member.id);
    if (scan) Object.assign(member, { digest: scan.digest, keys: scan.keys });
    else member.error ??= errors.get(member.id) ?? 'not scanned';
  }
  if (scans.size === 0) throw new CannotCheck(`no member could be scanned (${[...errors].map(([id, why]) => `${id}: ${why}`).join('; ')})`);
  const digests = compareDigests(scans, leaderId);
  const referenceId = scans.get(leaderId)?.digest === digests.reference ? leaderId : digests.agreeing[0];
  const reference = scans.get(referenceId)!;
  const counts = Object.fromEntries(reference.counts.map((c) => [c.kind, c.count]));
  const blockBar = new ProgressBar('fsck: checking blocks');
  const blocks = await surveyBlocks(client, leaderAddress, survey, reference.referencedBlocks, blockBar);
  blockBar.finish(`${blocks.checked} referenced blocks checked on ${reachable.length} members`);
  return { index, members, digests, referenceId, reference, counts, blocks };
}

const metadataProblemsOf = (check: Check): number => Object.values(check.counts).reduce((n, c) => n + c, 0);

/** --repair: blocks copied to a majority, then the leader's metadata repair; says what it did and did not do. */
async function repairAll(client: AdminClient, leaderAddress: string, survey: BlockSurvey, check: Check): Promise<FsckReport['repair']> {
  const repair: FsckReport['repair'] = { requested: true, blocksRepaired: 0, blocksFailed: 0, failures: [], nlinkFixed: 0, orphansCollected: 0, skipped: [], notRepaired: [] };
  const fixable = check.blocks.problems.filter((h) => h.holders.length > 0).slice(0, REPAIRS_PER_RUN_MAX);
  if (fixable.length > 0) {
    const repairBar = new ProgressBar('fsck: repairing blocks');
    let done = 0;
    for (const holding of fixable) {
      const outcome = await survey.repair(holding);
      if (outcome.failures.length > 0) repair.failures.push(`${holding.id}: ${outcome.failures.join('; ')}`);
      if (outcome.storedOn.length === holding.lacking.length) repair.blocksRepaired++;
      else repair.blocksFailed++;
      repairBar.update(++done, fixable.length, `${done}/${fixable.length} blocks`);
    }
    repairBar.finish(`${repair.blocksRepaired} of ${fixable.length} under-replicated blocks copied to the members lacking them`);
  }
  const lost = check.blocks.problems.filter((h) => h.holders.length === 0).length;
  if (lost > 0) repair.notRepaired.push(`${lost} blocks no member holds: put their files back into a member's DATA/blocks from a backup`);
  if (check.digests.differing.length > 0) {
    const ids = check.digests.differing.map((d) => d.id).join(', ');
    repair.notRepaired.push(`${ids} hold${check.digests.differing.length > 1 ? '' : 's'} another state than the majority: stop it, wipe its data folder and let it catch up from the others (member remove, then add it back)`);
    if (metadataProblemsOf(check) > 0) repair.notRepaired.push('metadata repairs are refused while the members disagree: fix the odd member first');
    return repair;
  }
  if (metadataProblemsOf(check) === 0) return repair;
  const outcome = await client.call(leaderAddress, 'FsckRepair', {}, REPAIR_DEADLINE_MS);
  if (outcome.error) {
    repair.notRepaired.push(`the leader's metadata repair failed: ${outcome.error.message}`);
    return repair;
  }
  repair.nlinkFixed = outcome.reply.nlinkFixed.length;
  repair.orphansCollected = outcome.reply.collected.length;
  repair.skipped = outcome.reply.skipped;
  repair.notRepaired.push(...outcome.reply.notRepairable);
  return repair;
}

async function fsck(options: Options, write: (text: string) => void, warn: (text: string) => void): Promise<number> {
  const client = new AdminClient(options.servers, options.security);
  let survey: BlockSurvey | undefined;
  try {
    const answers = await client.sweep();
    if (answers.every((x) => x.error)) {
      warn(`handlefs fsck: the cluster is unreachable: no server answered (${answers.map((x) => x.error!.message).join('; ')})\n`);
      return EXIT_CANNOT_CHECK;
    }
    const leader = AdminClient.leaderOf(answers);
    if (!leader) {
      warn(`handlefs fsck: no leader: ${answers.map((x) => (x.status ? `${x.status.id} at ${x.address} (${x.status.role})` : x.error!.message)).join('; ')}\n`);
      return EXIT_CANNOT_CHECK;
    }
    const leaderStatus = leader.status!;
    const addressOf = (id: string, fallback: string): string => answers.find((x: Answer) => x.status?.id === id)?.address ?? fallback;
    const targets: Target[] = leaderStatus.members.map((m) => ({ id: m.id, address: addressOf(m.id, m.clientAddress) }));
    survey = new BlockSurvey(targets.filter((t) => t.address !== ''), options.security);

    let check = await checkOnce(client, leaderStatus.id, leader.address, targets, survey, options.samples);
    let repair: FsckReport['repair'] = { requested: false, blocksRepaired: 0, blocksFailed: 0, failures: [], nlinkFixed: 0, orphansCollected: 0, skipped: [], notRepaired: [] };
    if (options.repair) {
      repair = await repairAll(client, leader.address, survey, check);
      // What remains is what a fresh check finds.
      if (repair.blocksRepaired + repair.blocksFailed + repair.nlinkFixed + repair.orphansCollected + repair.skipped.length > 0) {
        check = await checkOnce(client, leaderStatus.id, leader.address, targets, survey, options.samples);
      }
    }

    const { reference, digests } = check;
    const underReplicated = check.blocks.problems.filter((h) => h.holders.length > 0).length;
    const lost = check.blocks.problems.length - underReplicated;
    const notChecked = check.members.filter((m) => m.error).length;
    const problems = metadataProblemsOf(check) + digests.differing.length + underReplicated + lost + notChecked + (reference.incomplete ? 1 : 0);
    const report: FsckReport = {
      clean: problems === 0,
      problems,
      index: check.index,
      leaderId: leaderStatus.id,
      members: check.members,
      digests,
      namespace: {
        fromMember: check.referenceId,
        inodes: reference.inodes, entries: reference.entries, fhs: reference.fhs, versions: reference.versions, conflictCopies: reference.conflictCopies,
        blockRecords: reference.blockRecords, referencedBlocks: reference.referencedBlocks, incomplete: reference.incomplete,
        counts: check.counts, samples: reference.findings,
      },
      blocks: {
        referenced: reference.referencedBlocks,
        checked: check.blocks.checked,
        majority: survey.majority(),
        underReplicated,
        lost,
        samples: check.blocks.problems.slice(0, BLOCK_SAMPLES_KEPT).map((h) => ({ id: h.id, holders: h.holders, lacking: h.lacking })),
        unreachable: [...check.blocks.unreachable.values()],
      },
      repair,
    };
    write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report, options.samples));
    return report.clean ? EXIT_CLEAN : EXIT_PROBLEMS;
  } catch (error) {
    if (error instanceof CannotCheck || error instanceof CallError) {
      warn(`handlefs fsck: ${error.message}\n`);
      return EXIT_CANNOT_CHECK;
    }
    throw error;
  } finally {
    survey?.close();
    client.close();
  }
}

/** `handlefs fsck ...`: the exit code. */
export async function runFsckCommand(args: string[]): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`handlefs fsck: ${error.message}\nusage:\n${FSCK_USAGE}`);
      return EXIT_USAGE;
    }
    throw error;
  }
  return fsck(options, (text) => process.stdout.write(text), (text) => process.stderr.write(text));
}
