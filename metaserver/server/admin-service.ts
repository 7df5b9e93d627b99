/**
 * The operator API (proto/admin.proto) of one metadata server: its status
 * (with each follower's progress and last contact on the leader), membership
 * changes (learner first, promotion only once caught up, removal of the leader
 * after handing leadership over), leadership transfer and a snapshot now.
 * Registered on the client port beside Meta, as etcd serves Cluster and
 * Maintenance on its client URL; fsck's calls are fsck-admin.ts's (read-only
 * scans of the state, and the leader's repair proposal), the leader's session
 * listing is sessions-admin.ts's. Owns request checks and the refusals that
 * protect a quorum; the Raft rules themselves stay in raft/ (the core refuses
 * what it must refuse). Must never change anything when it answers an error,
 * and never touch the metadata state machine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Member, NotLeaderError, ProposalRejectedError } from '../../raft/core/types';
import { RAFT_CONFIG_DEFAULTS } from '../../raft/core/config';
import { RaftLogger } from '../../raft/node/node-logger';
import { NodeOverloadedError, NodeStoppedError, ProposalDroppedError, RaftTimeoutError } from '../../raft/node/pending';
import { RaftNode, RaftNodeStatus } from '../../raft/node/raft-node';
import { memberClientAddress } from './service-context';
import { parseHostPort } from '../../raft/transport/options';
import { isMalformedRequest } from '../../proto/grpc-method';
import * as a from '../../proto/admin-proto';
import { FsckAdmin, FsckRequestError } from './fsck-admin';
import { SessionsAdmin, SessionsRequestError } from './sessions-admin';

/** Member ids as --peers accepts them (raft/node/server-config.ts). */
const MEMBER_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const TRANSFER_TIMEOUT_MS_MAX = 60_000;
/** A follower not heard from within this many election timeouts counts as unreachable for the quorum checks. */
const ACTIVE_WITHIN_ELECTION_TIMEOUTS = 2;
const PACKAGE_SEARCH_LEVELS = 5;
/** The core's refusals (raft/core/raft.ts) that pass by themselves within an election timeout or so. */
const TRANSIENT_REFUSALS = [/has not yet committed an entry of its own term/, /is not committed yet/, /leadership transfer to \S+ in progress/, /too many uncommitted entries/];

export interface AdminServiceOptions {
  /**
   * Member id → client API address from this server's configuration
   * (--clients): the fallback for members whose replicated membership entry
   * carries none (founders of a cluster bootstrapped before client addresses
   * were replicated). MemberAdd replicates the new member's in the membership.
   */
  clientAddresses: ReadonlyMap<string, string>;
  /** How long a membership change may take to apply before DEADLINE_EXCEEDED. */
  requestTimeoutMs: number;
  logger: RaftLogger;
  /** The version reported by Status (default: the package.json's). */
  version?: string;
  /** fsck's read-only scans of the state (fsck-admin.ts); without it FsckScan and ReferencedBlocks answer UNIMPLEMENTED. */
  fsck?: FsckAdmin;
  /** The leader's session listing (sessions-admin.ts); without it Sessions answers UNIMPLEMENTED. */
  sessions?: SessionsAdmin;
}

class AdminError extends Error {
  constructor(readonly code: grpc.status, message: string, readonly metadata?: grpc.Metadata) {
    super(message);
  }
}

/** The "version" of the handlefs package.json above this file (from sources or dist/), or 'unknown'. */
export function packageVersion(): string {
  let dir = __dirname;
  for (let level = 0; level < PACKAGE_SEARCH_LEVELS; level++) {
    try {
      const parsed = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (parsed.name === 'handlefs' && typeof parsed.version === 'string') return parsed.version;
    } catch {
      // No package.json here: look one level up.
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

function checkId(field: string, id: unknown): string {
  if (typeof id !== 'string' || !MEMBER_ID_PATTERN.test(id)) {
    throw new AdminError(grpc.status.INVALID_ARGUMENT, `${field} ${JSON.stringify(id)} must be 1..64 letters, digits, '.', '_' or '-'`);
  }
  return id;
}

function checkAddress(field: string, address: unknown): string {
  try {
    parseHostPort(address, false);
  } catch (error) {
    throw new AdminError(grpc.status.INVALID_ARGUMENT, `${field}: ${(error as Error).message}`);
  }
  return address as string;
}

function quorumOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

export class AdminService {
  private readonly version: string;

  constructor(private readonly node: RaftNode, private readonly options: AdminServiceOptions) {
    this.version = options.version ?? packageVersion();
  }

  /** The grpc-js implementation to add beside Meta: server.addService(adminService, admin.implementation()). */
  implementation(): grpc.UntypedServiceImplementation {
    const handlers: Record<a.AdminMethod, (request: never) => Promise<unknown>> = {
      Status: async () => this.statusReply(),
      MemberAdd: (request: a.MemberAddRequest) => this.memberAdd(request),
      MemberPromote: (request: a.MemberIdRequest) => this.memberPromote(request),
      MemberRemove: (request: a.MemberIdRequest) => this.memberRemove(request),
      LeaderTransfer: (request: a.LeaderTransferRequest) => this.leaderTransfer(request),
      Snapshot: async () => this.snapshot(),
      FsckScan: (request: a.FsckScanRequest) => this.fsck().fsckScan(request),
      ReferencedBlocks: (request: a.ReferencedBlocksRequest) => this.fsck().referencedBlocks(request),
      FsckRepair: () => this.fsck().fsckRepair(),
      Sessions: (request: a.SessionsRequest) => this.sessions(request),
    };
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(handlers) as Array<[string, (request: unknown) => Promise<unknown>]>) {
      implementation[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (isMalformedRequest(call.request)) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: call.request.malformed });
          return;
        }
        let answer: Promise<unknown>;
        try {
          answer = handler(call.request);
        } catch (error) {
          answer = Promise.reject(error);
        }
        answer.then((reply) => callback(null, reply), (error: unknown) => callback(this.statusOf(name, error)));
      };
    }
    return implementation;
  }

  // ---- status ------------------------------------------------------------------

  statusReply(): a.StatusReply {
    const status = this.node.status();
    const contacts = new Map(this.node.peerContacts().map((c) => [c.id, c.lastContactAgoMs]));
    const self = status.membership.members.find((m) => m.id === status.id);
    const isLeader = status.role === 'leader';
    const leaderContact = !isLeader && status.leaderId ? contacts.get(status.leaderId) : undefined;
    return {
      id: status.id,
      role: isLeader ? 'leader' : self?.role === 'learner' ? 'learner' : status.role,
      term: status.term,
      leaderId: status.leaderId,
      leaderClientAddress: this.clientAddressOf(status.leaderId, status),
      commitIndex: status.commit,
      appliedIndex: status.appliedIndex,
      firstIndex: status.firstIndex,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      members: status.membership.members.map((m) => this.memberOf(m)),
      progress: isLeader ? status.progress.map((p) => {
        const contact = contacts.get(p.id);
        return {
          id: p.id, matchIndex: p.match, nextIndex: p.next, state: p.state, learner: p.isLearner,
          lagEntries: Math.max(0, status.lastIndex - p.match), lastContactMs: contact ?? -1,
        };
      }) : [],
      // Its own listen address is what this server knows best.
      clientAddress: this.options.clientAddresses.get(status.id) || this.clientAddressOf(status.id, status),
      peerAddress: self?.address ?? '',
      version: this.version,
      pid: process.pid,
      electionTimeoutMs: status.electionTimeoutMs,
      transferee: status.transferee,
      catchUpLagEntries: RAFT_CONFIG_DEFAULTS.learnerCatchUpLagEntries,
      leaderContactMs: leaderContact ?? -1,
    };
  }

  private memberOf(member: Member): a.AdminMember {
    return { id: member.id, peerAddress: member.address, role: member.role, clientAddress: member.clientAddress || this.options.clientAddresses.get(member.id) || '' };
  }

  /** A member's client address: the replicated membership's, else this server's configuration's, else ''. */
  private clientAddressOf(id: string, status: RaftNodeStatus = this.node.status()): string {
    return memberClientAddress(id, status.membership.members, this.options.clientAddresses);
  }

  private memberReply(): a.MemberReply {
    const status = this.node.status();
    return { members: status.membership.members.map((m) => this.memberOf(m)), leaderId: status.leaderId };
  }

  // ---- membership ----------------------------------------------------------------

  private async memberAdd(request: a.MemberAddRequest): Promise<a.MemberReply> {
    const id = checkId('id', request.id);
    const peerAddress = checkAddress('peer address', request.peerAddress);
    const clientAddress = request.clientAddress === '' ? '' : checkAddress('client address', request.clientAddress);
    const status = this.leaderStatus();
    const members = status.membership.members;
    const existing = members.find((m) => m.id === id);
    if (existing) throw new AdminError(grpc.status.ALREADY_EXISTS, `member ${id} is already in the cluster (a ${existing.role} at ${existing.address}); nothing changed`);
    const sameAddress = members.find((m) => m.address === peerAddress);
    if (sameAddress) throw new AdminError(grpc.status.ALREADY_EXISTS, `peer address ${peerAddress} is already member ${sameAddress.id}'s; nothing changed`);
    const sameClient = members.find((m) => this.clientAddressOf(m.id, status) === clientAddress);
    if (clientAddress && sameClient) throw new AdminError(grpc.status.ALREADY_EXISTS, `client address ${clientAddress} is already member ${sameClient.id}'s; nothing changed`);
    // Replicated with the membership: every member can then hint clients to it.
    await this.node.addLearner(id, peerAddress, { timeoutMs: this.options.requestTimeoutMs, clientAddress });
    this.options.logger.info('admin: learner added', { id, peerAddress, clientAddress });
    return this.memberReply();
  }

  private async memberPromote(request: a.MemberIdRequest): Promise<a.MemberReply> {
    const id = checkId('id', request.id);
    const status = this.leaderStatus();
    const member = this.knownMember(status, id);
    if (member.role === 'voter') throw new AdminError(grpc.status.FAILED_PRECONDITION, `member ${id} is already a voter; nothing changed`);
    const progress = status.progress.find((p) => p.id === id);
    const contact = this.node.peerContacts().find((c) => c.id === id)?.lastContactAgoMs;
    const activeWithinMs = ACTIVE_WITHIN_ELECTION_TIMEOUTS * status.electionTimeoutMs;
    if (!progress || contact === undefined || contact > activeWithinMs) {
      const heard = contact === undefined ? 'the leader has never heard from it' : `the leader last heard from it ${contact} ms ago`;
      throw new AdminError(grpc.status.FAILED_PRECONDITION, `learner ${id} is not caught up: ${heard} (is it running with --join and reachable at ${member.address}?); nothing changed`);
    }
    const lagEntries = Math.max(0, status.lastIndex - progress.match);
    const allowed = RAFT_CONFIG_DEFAULTS.learnerCatchUpLagEntries;
    if (lagEntries > allowed) {
      throw new AdminError(grpc.status.FAILED_PRECONDITION, `learner ${id} is not caught up: ${lagEntries} entries behind the leader (at most ${allowed} allowed); nothing changed`);
    }
    this.checkQuorumAfter(status, status.membership.members.filter((m) => m.role === 'voter').length + 1, id, `promoting ${id}`);
    await this.node.promoteLearner(id, { timeoutMs: this.options.requestTimeoutMs });
    this.options.logger.info('admin: learner promoted', { id });
    return this.memberReply();
  }

  private async memberRemove(request: a.MemberIdRequest): Promise<a.MemberReply> {
    const id = checkId('id', request.id);
    const status = this.leaderStatus();
    const member = this.knownMember(status, id);
    const voters = status.membership.members.filter((m) => m.role === 'voter');
    if (member.role === 'voter') {
      if (voters.length === 1) throw new AdminError(grpc.status.FAILED_PRECONDITION, `member ${id} is the last voter: removing it would leave no cluster; nothing changed`);
      this.checkQuorumAfter(status, voters.length - 1, undefined, `removing ${id}`, id);
    }
    if (id === status.id) {
      // The leader leaves gracefully: leadership first goes to the most caught-up voter, which then removes this member.
      const newLeader = await this.node.transferLeadership(undefined, { timeoutMs: 2 * status.electionTimeoutMs });
      this.options.logger.info('admin: leadership handed over before removing this member', { newLeader });
      throw this.notLeader(newLeader, `member ${id} leads: leadership moved to ${newLeader} first; send the removal there`);
    }
    await this.node.removeMember(id, { timeoutMs: this.options.requestTimeoutMs });
    this.options.logger.info('admin: member removed', { id });
    return this.memberReply();
  }

  // ---- leadership and snapshots ----------------------------------------------------

  private async leaderTransfer(request: a.LeaderTransferRequest): Promise<a.LeaderTransferReply> {
    const status = this.node.status();
    const to = request.to === '' ? undefined : checkId('to', request.to);
    if (to !== undefined) {
      const member = this.knownMember(status, to);
      if (member.role !== 'voter') throw new AdminError(grpc.status.FAILED_PRECONDITION, `member ${to} is a learner and cannot lead; promote it first; nothing changed`);
    } else if (status.role !== 'leader') {
      throw this.notLeader(status.leaderId, 'not the leader');
    }
    const timeoutMs = Math.min(TRANSFER_TIMEOUT_MS_MAX, request.timeoutMs > 0 ? request.timeoutMs : 2 * status.electionTimeoutMs);
    const leaderId = await this.node.transferLeadership(to, { timeoutMs });
    this.options.logger.info('admin: leadership transferred', { from: status.leaderId, to: leaderId });
    return { leaderId, leaderClientAddress: this.clientAddressOf(leaderId) };
  }

  private async snapshot(): Promise<a.SnapshotReply> {
    const startedAtMs = Date.now();
    const taken = await this.node.snapshotNow();
    const durationMs = Date.now() - startedAtMs;
    this.options.logger.info('admin: snapshot on request', { ...taken, durationMs });
    return { id: this.node.status().id, index: taken.index, term: taken.term, compactIndex: taken.compactIndex, taken: taken.taken, durationMs };
  }

  private fsck(): FsckAdmin {
    if (!this.options.fsck) throw new AdminError(grpc.status.UNIMPLEMENTED, 'this server was started without fsck scans');
    return this.options.fsck;
  }

  private async sessions(request: a.SessionsRequest): Promise<a.SessionsReply> {
    if (!this.options.sessions) throw new AdminError(grpc.status.UNIMPLEMENTED, 'this server was started without the session listing');
    const status = this.node.status();
    if (status.role !== 'leader') throw this.notLeader(status.leaderId, 'sessions are listed by the leader');
    return this.options.sessions.sessions(request);
  }

  // ---- checks --------------------------------------------------------------------

  private leaderStatus(): RaftNodeStatus {
    const status = this.node.status();
    if (status.role !== 'leader') throw this.notLeader(status.leaderId, 'membership changes are made on the leader');
    return status;
  }

  private knownMember(status: RaftNodeStatus, id: string): Member {
    const member = status.membership.members.find((m) => m.id === id);
    if (!member) throw new AdminError(grpc.status.NOT_FOUND, `member ${id} is not in the cluster (members: ${status.membership.members.map((m) => m.id).join(', ')}); nothing changed`);
    return member;
  }

  /**
   * As etcd's strict reconfiguration check: refuse a change after which the
   * voters the leader hears from (itself included) would be short of a quorum.
   */
  private checkQuorumAfter(status: RaftNodeStatus, votersAfter: number, added: string | undefined, what: string, removed?: string): void {
    const contacts = new Map(this.node.peerContacts().map((c) => [c.id, c.lastContactAgoMs]));
    const activeWithinMs = ACTIVE_WITHIN_ELECTION_TIMEOUTS * status.electionTimeoutMs;
    const active = status.membership.members.filter((m) => {
      const voterAfter = (m.role === 'voter' && m.id !== removed) || m.id === added;
      if (!voterAfter) return false;
      if (m.id === status.id) return true;
      const ago = contacts.get(m.id);
      return ago !== undefined && ago <= activeWithinMs;
    }).length;
    const needed = quorumOf(votersAfter);
    if (active < needed) {
      throw new AdminError(grpc.status.FAILED_PRECONDITION, `${what} would leave ${active} of ${votersAfter} voters reachable, short of a quorum of ${needed}; bring the unreachable members back first; nothing changed`);
    }
  }

  private notLeader(leaderId: string, why: string): AdminError {
    if (!leaderId || leaderId === this.node.status().id) return new AdminError(grpc.status.UNAVAILABLE, `${why}; no leader is known, retry shortly`);
    const address = this.clientAddressOf(leaderId);
    const metadata = new grpc.Metadata();
    metadata.set(a.LEADER_ID_METADATA, leaderId);
    metadata.set(a.LEADER_ADDRESS_METADATA, address);
    return new AdminError(grpc.status.FAILED_PRECONDITION, `${why}; the leader is ${leaderId}${address ? ` at ${address}` : ' (client address unknown here)'}`, metadata);
  }

  private statusOf(method: string, error: unknown): Partial<grpc.StatusObject> {
    if (error instanceof AdminError) return { code: error.code, details: error.message, metadata: error.metadata };
    if (error instanceof FsckRequestError || error instanceof SessionsRequestError) return { code: error.code, details: error.message };
    if (error instanceof NotLeaderError) {
      const notLeader = this.notLeader(error.leaderId, 'not the leader');
      return { code: notLeader.code, details: notLeader.message, metadata: notLeader.metadata };
    }
    if (error instanceof ProposalRejectedError) {
      // A leader that just took over, a change still committing, a transfer under way: the same request succeeds shortly.
      const passing = TRANSIENT_REFUSALS.some((pattern) => pattern.test(error.message));
      return { code: passing ? grpc.status.UNAVAILABLE : grpc.status.FAILED_PRECONDITION, details: `${error.message}; nothing changed${passing ? ', retry shortly' : ''}` };
    }
    if (error instanceof RaftTimeoutError) return { code: grpc.status.DEADLINE_EXCEEDED, details: `${error.message}; the outcome is unknown: look with \`handlefs status\`` };
    if (error instanceof NodeOverloadedError || error instanceof NodeStoppedError || error instanceof ProposalDroppedError) return { code: grpc.status.UNAVAILABLE, details: error.message };
    // TransferWaiters: another member won an election while the transfer ran.
    if (error instanceof Error && /leadership transfer to \S+ was overtaken/.test(error.message)) return { code: grpc.status.ABORTED, details: error.message };
    this.options.logger.error('admin request failed', { method, error: error instanceof Error ? error.stack : String(error) });
    return { code: grpc.status.INTERNAL, details: error instanceof Error ? error.message : String(error) };
  }
}
