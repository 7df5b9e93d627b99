/**
 * The Admin API's fsck calls (proto/admin.proto FsckScan, ReferencedBlocks)
 * on one member: request checks, the scan at an applied index
 * (state/state-scan.ts) turned into a bounded reply, and the gRPC status of
 * each refusal. FsckScan and ReferencedBlocks are answered by whichever member
 * is called (fsck asks every member) and only read a LevelDB snapshot.
 * FsckRepair is the leader's: it turns its own scan's nlink and orphan
 * findings into one repairNamespace command (state/repair-ops.ts re-judges
 * each fix when it applies) and proposes it through Raft — the only way this
 * file changes anything. Owns the mapping; must never write to the state
 * directly.
 */
import * as grpc from '@grpc/grpc-js';
import * as a from '../../proto/admin-proto';
import { FINDING_KINDS, SAMPLES_PER_KIND_MAX } from '../state/fsck-checks';
import { REFERENCED_PAGE_MAX, SCAN_WAIT_MS_MAX, ScanBusyError, ScanPassedError, ScanPoints, ScanTimeoutError } from '../state/state-scan';
import { BLOCK_ID_PATTERN } from '../rules/retention';
import { RaftNode } from '../../raft/node/raft-node';
import { FindingKind, Finding } from '../state/fsck-checks';
import { MAX_REPAIRS_PER_COMMAND, encodeCommand } from '../state/commands';
import type { CommandResult } from '../state/meta-state-machine';
import type { RepairResult } from '../state/repair-ops';

const DEFAULT_SCAN_WAIT_MS = 10_000;
const REPAIR_PROPOSE_TIMEOUT_MS = 10_000;
/** Findings of a kind the leader's scan keeps for one repair (each kind's fixes fit one command). */
const REPAIR_SAMPLES_PER_KIND = Math.min(SAMPLES_PER_KIND_MAX, MAX_REPAIRS_PER_COMMAND);
/** Kinds no repair here changes: their counts are reported back. */
const NOT_REPAIRED: ReadonlyArray<[FindingKind, string]> = [
  ['dangling-entry', 'dangling entries (remove them by hand: unlink fails on a missing handle)'],
  ['dangling-fh', 'open fhs on missing handles (they go when their session ends)'],
  ['stray-record', 'records of missing handles'],
  ['dir-entries', 'wrong directory entry counts'],
  ['block-refs', 'wrong block reference counts'],
  ['counters', 'wrong counters'],
  ['corrupt-record', 'unreadable records'],
];

/** A refusal with its gRPC status (admin-service.ts passes code and message on). */
export class FsckRequestError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

export class FsckAdmin {
  /** node: this member's Raft node, through which FsckRepair proposes (without it FsckRepair is refused). */
  constructor(private readonly scans: ScanPoints, private readonly selfId: string, private readonly node?: RaftNode) {}

  async fsckScan(request: a.FsckScanRequest): Promise<a.FsckScanReply> {
    if (!Number.isSafeInteger(request.index) || request.index < 1) throw new FsckRequestError(grpc.status.INVALID_ARGUMENT, `index ${String(request.index)} must be a positive applied index`);
    const samples = request.samplesPerKind;
    if (!Number.isSafeInteger(samples) || samples < 0 || samples > SAMPLES_PER_KIND_MAX) {
      throw new FsckRequestError(grpc.status.INVALID_ARGUMENT, `samples_per_kind ${String(samples)} is not in 0..${SAMPLES_PER_KIND_MAX}`);
    }
    const waitMs = request.waitMs > 0 ? Math.min(request.waitMs, SCAN_WAIT_MS_MAX) : DEFAULT_SCAN_WAIT_MS;
    let scan;
    try {
      scan = await this.scans.scanAt(request.index, waitMs, samples);
    } catch (error) {
      if (error instanceof ScanPassedError) throw new FsckRequestError(grpc.status.FAILED_PRECONDITION, `${this.selfId}: ${error.message}`);
      if (error instanceof ScanTimeoutError) throw new FsckRequestError(grpc.status.DEADLINE_EXCEEDED, `${this.selfId}: ${error.message}`);
      if (error instanceof ScanBusyError) throw new FsckRequestError(grpc.status.RESOURCE_EXHAUSTED, `${this.selfId}: ${error.message}`);
      throw error;
    }
    const { findings } = scan;
    return {
      id: this.selfId,
      index: scan.index,
      digest: scan.digestHex,
      keys: scan.keys,
      bytes: scan.bytes,
      counts: FINDING_KINDS.map((kind) => ({ kind, count: findings.counts[kind] })).filter((c) => c.count > 0),
      findings: findings.samples.map((f) => ({ kind: f.kind, subject: f.subject, detail: f.detail, handle: f.handle ?? 0, expected: f.expected ?? -1 })),
      incomplete: findings.incomplete,
      inodes: findings.stats.inodes,
      entries: findings.stats.entries,
      fhs: findings.stats.fhs,
      versions: findings.stats.versions,
      conflictCopies: findings.stats.conflictCopies,
      blockRecords: findings.stats.blockRecords,
      referencedBlocks: findings.stats.referencedBlocks,
      durationMs: scan.durationMs,
    };
  }

  async referencedBlocks(request: a.ReferencedBlocksRequest): Promise<a.ReferencedBlocksReply> {
    if (request.afterId !== '' && !BLOCK_ID_PATTERN.test(request.afterId)) {
      throw new FsckRequestError(grpc.status.INVALID_ARGUMENT, `after_id ${JSON.stringify(request.afterId.slice(0, 80))} is not a block id`);
    }
    const limit = request.limit > 0 ? Math.min(request.limit, REFERENCED_PAGE_MAX) : REFERENCED_PAGE_MAX;
    return this.scans.referencedBlocks(request.afterId, limit);
  }

  async fsckRepair(): Promise<a.FsckRepairReply> {
    if (!this.node) throw new FsckRequestError(grpc.status.UNIMPLEMENTED, `${this.selfId}: this server cannot propose repairs`);
    const status = this.node.status();
    if (status.role !== 'leader') {
      throw new FsckRequestError(grpc.status.FAILED_PRECONDITION, `${this.selfId} is not the leader (the leader is ${status.leaderId || 'unknown'}); repairs are proposed by the leader`);
    }
    const scan = await this.scans.scanNow(REPAIR_SAMPLES_PER_KIND);
    const samples = scan.findings.samples;
    const known = (f: Finding): boolean => f.handle !== undefined && f.stored !== undefined && f.generation !== undefined;
    // Nameless, unheld non-directories go whole; their nlink is not worth writing first.
    const orphans = samples.filter((f) => f.kind === 'orphan' && known(f) && f.type !== 'dir' && f.names === 0);
    const collecting = new Set(orphans.map((f) => f.handle));
    const nlink = samples.filter((f) => f.kind === 'nlink' && known(f) && f.expected !== undefined && !collecting.has(f.handle));
    const notRepairable: string[] = [];
    const counts = scan.findings.counts;
    for (const [kind, what] of NOT_REPAIRED) if (counts[kind] > 0) notRepairable.push(`${counts[kind]} ${what}`);
    const orphanDirs = samples.filter((f) => f.kind === 'orphan' && !collecting.has(f.handle)).length;
    if (orphanDirs > 0) notRepairable.push(`${orphanDirs} orphan directories or orphans named from detached directories (not collected: their entries would dangle)`);
    const namedWrong = samples.filter((f) => f.kind === 'nlink' && f.expected === undefined).length;
    if (namedWrong > 0) notRepairable.push(`${namedWrong} directories named by other than one entry`);
    if (counts.nlink > nlink.length + namedWrong + samples.filter((f) => f.kind === 'nlink' && collecting.has(f.handle)).length || counts.orphan > orphans.length + orphanDirs) {
      notRepairable.push(`more nlink or orphan findings than one repair takes (${REPAIR_SAMPLES_PER_KIND} of each kind): run fsck --repair again`);
    }
    const reply: a.FsckRepairReply = { id: this.selfId, index: scan.index, nlinkFixed: [], collected: [], skipped: [], notRepairable };
    if (nlink.length === 0 && orphans.length === 0) return reply;
    const command = encodeCommand({
      op: 'repairNamespace',
      nowMs: Date.now(),
      nlink: nlink.map((f) => ({ handle: f.handle!, generation: f.generation!, fromNlink: f.stored!, toNlink: f.expected! })),
      collect: orphans.map((f) => ({ handle: f.handle!, generation: f.generation!, nlink: f.stored! })),
    });
    const result = (await this.node.propose(command, { timeoutMs: REPAIR_PROPOSE_TIMEOUT_MS })) as CommandResult;
    if (!result.ok) throw new FsckRequestError(grpc.status.INTERNAL, `${this.selfId}: the repair command was refused: ${result.message}`);
    const done = result.value as RepairResult;
    return { ...reply, nlinkFixed: done.nlinkFixed, collected: done.collected, skipped: done.skipped };
  }
}
