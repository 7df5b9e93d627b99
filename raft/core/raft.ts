/**
 * RaftCore: the whole Raft protocol as one deterministic state machine.
 * Owns: roles, terms, votes, the in-memory log, replication progress,
 * commit, ReadIndex, leadership transfer, membership, snapshots.
 * Never: timers, sockets, disk, Math.random, Date. Time is tick(); I/O is the Ready batch.
 *
 * The structure follows etcd-io/raft's raft.go: `step` handles terms and
 * votes for every role, then dispatches to stepLeader / stepCandidate /
 * stepFollower; `tick` drives elections or heartbeats by role.
 *
 * Why one file of this size: every handler reads and writes the same private
 * state (term, vote, role, log, progress), and the protocol is easiest to
 * check when it reads top to bottom in one place. What does not need that
 * state lives beside it: log.ts, progress.ts, quorum.ts, membership.ts,
 * read-only.ts, validate.ts.
 */
import { RaftConfig, validateRaftConfig } from './config';
import { FollowerProgress, InitialState, ProposalTicket, RaftStatus } from './api';
import { RaftLog } from './log';
import { applyMembershipChange, bootstrapEntries, decodeMembershipChange, encodeMembershipChange, findMember, isVoter, membershipChangeProblem, voters } from './membership';
import { Progress } from './progress';
import { committedIndexOf, majority, voteOutcome } from './quorum';
import { ReadOnlyQueue } from './read-only';
import {
  EMPTY_BYTES, Entry, EntryType, HardState, Membership, MembershipChange, MembershipChangeType, Message, MessageType, NodeId,
  NotLeaderError, ProposalRejectedError, ReadState, Ready, Role, Snapshot, SnapshotMetadata, SoftState, emptyMessage, entriesSizeBytes,
} from './types';
import { messageProblem } from './validate';

/** Marks a vote request forced by TimeoutNow: it bypasses other members' leader lease. */
const CAMPAIGN_TRANSFER = Buffer.from('transfer');
/** At most this many committed entries are handed out in one Ready. */
const MAX_COMMITTED_ENTRIES_PER_READY = 4096;
/** At most this many ReadIndex requests wait on the leader. */
const MAX_PENDING_READS = 4096;

type CampaignKind = 'pre-election' | 'election' | 'transfer';

/** Messages that promise something about durable state leave only after the Ready's write (Figure 2: respond after persisting). */
const SENT_AFTER_PERSIST = new Set<MessageType>([MessageType.Vote, MessageType.VoteResp, MessageType.AppResp, MessageType.HeartbeatResp]);

/**
 * Requests only a member may make. Messages from a leader are legitimate by
 * their term alone: a member whose committed membership lags (one replaying
 * the log after being added) must still accept the leader that added it.
 * Votes are granted by term and log alone too (thesis §4.2.3): a voter cannot
 * know whether its own membership is current, and refusing a real voter it
 * does not know yet can leave the cluster without a leader. Pre-vote and the
 * leader lease keep removed members from disrupting.
 */
const REQUESTS_FROM_MEMBERS_ONLY = new Set<MessageType>([MessageType.Prop, MessageType.ReadIndex, MessageType.TransferLeader]);

/** Forwarded requests are served by whoever leads now, whatever term the sender saw. */
const TERMLESS = new Set<MessageType>([MessageType.Prop, MessageType.ReadIndex, MessageType.ReadIndexResp, MessageType.TransferLeader]);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export class RaftCore {
  readonly id: NodeId;
  private readonly config: RaftConfig;
  private term: number;
  private vote: NodeId;
  private leaderId: NodeId = '';
  private role: Role = 'follower';
  private readonly log: RaftLog;
  private membership!: Membership;
  /** The voters of `membership`, kept beside it because every commit and vote counts them. */
  private voterIds: NodeId[] = [];
  private membershipChanged = false;
  /** Leader only: one entry per other member. */
  private readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee: NodeId = '';
  /** The index of the newest membership change in the log; one is pending while it is > commit. */
  private pendingMembershipIndex = 0;
  private readonly readOnly = new ReadOnlyQueue(MAX_PENDING_READS);
  /** Leader only: reads that wait for the first commit of the term (thesis §6.4 step 1). */
  private readsBeforeFirstCommit: { context: Uint8Array; requester: NodeId }[] = [];
  private commitBroadcastNeeded = false;
  /** Leader only: entries were appended since the last ready(). */
  private appendsToFlush = false;
  private snapshotToPersist: Snapshot | undefined;
  private messages: Message[] = [];
  private messagesAfterPersist: Message[] = [];
  private readStates: ReadState[] = [];
  private persistedHardState: HardState;
  private reportedSoftState: SoftState;
  private outstanding: Ready | undefined;
  private readonly dropped: Record<string, number> = {};

  constructor(config: RaftConfig, initial: InitialState) {
    validateRaftConfig(config);
    this.config = config;
    this.id = config.id;
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.setMembership(initial.membership);
    this.log = new RaftLog(initial.snapshot, initial.entries, initial.hardState.commit, initial.applied);
    this.persistedHardState = { ...initial.hardState, commit: this.log.committed };
    this.reportedSoftState = { leaderId: '', role: 'follower', term: this.term };
    this.becomeFollower(this.term, '');
    if (this.isFreshBootstrap(initial)) this.appendBootstrapEntries();
  }

  private isFreshBootstrap(initial: InitialState): boolean {
    return initial.hardState.term === 0 && initial.entries.length === 0 && initial.snapshot.index === 0 && initial.membership.members.length > 0;
  }

  /**
   * A brand-new cluster writes its initial membership into the log as
   * committed changes at term 1, identical on every founding member, so a
   * member added later learns the whole membership by replaying the log.
   * They ride the first Ready; a crash before it persists just bootstraps again.
   */
  private appendBootstrapEntries(): void {
    const entries = bootstrapEntries(this.membership);
    this.log.append(entries);
    this.term = 1;
    this.log.commitTo(entries.length);
    this.membershipChanged = true;
  }

  // ---------------------------------------------------------------- public API

  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  step(m: Message): void {
    const problem = messageProblem(m);
    if (problem !== undefined) return this.drop('malformed');
    if (m.to !== this.id) return this.drop('wrong_recipient');
    if (m.from === this.id) return this.drop('from_self');
    if (REQUESTS_FROM_MEMBERS_ONLY.has(m.type) && this.membership.members.length > 0 && findMember(this.membership, m.from) === undefined) {
      return this.drop('unknown_sender');
    }
    if (!TERMLESS.has(m.type) && !this.stepTerm(m)) return;
    switch (m.type) {
      case MessageType.PreVote:
      case MessageType.Vote:
        return this.handleVoteRequest(m);
    }
    if (this.role === 'leader') this.stepLeader(m);
    else if (this.role === 'follower') this.stepFollower(m);
    else this.stepCandidate(m);
  }

  propose(data: Uint8Array): ProposalTicket | null {
    if (this.role !== 'leader') {
      if (this.config.forwardProposals && this.leaderId !== '') {
        this.send({ ...emptyMessage(MessageType.Prop, this.id, this.leaderId, this.term), entries: [{ term: 0, index: 0, type: EntryType.Normal, data }] });
        return null;
      }
      throw this.notLeader();
    }
    this.checkCanAppend();
    return this.appendEntry(EntryType.Normal, data);
  }

  proposeMembershipChange(change: MembershipChange): ProposalTicket | null {
    if (this.role !== 'leader') throw this.notLeader();
    this.checkCanAppend();
    if (this.log.term(this.log.committed) !== this.term) {
      throw new ProposalRejectedError('membership change refused: the leader has not yet committed an entry of its own term');
    }
    if (this.pendingMembershipIndex > this.log.committed) {
      throw new ProposalRejectedError(`membership change refused: the change at index ${this.pendingMembershipIndex} is not committed yet`);
    }
    const problem = membershipChangeProblem(this.membership, change);
    if (problem !== undefined) throw new ProposalRejectedError(`membership change refused: ${problem}`);
    if (change.type === MembershipChangeType.PromoteLearner) {
      const match = this.progress.get(change.id)?.match ?? 0;
      const lagEntries = this.log.lastIndex() - match;
      if (lagEntries > this.config.learnerCatchUpLagEntries) {
        throw new ProposalRejectedError(`membership change refused: learner ${change.id} is ${lagEntries} entries behind (at most ${this.config.learnerCatchUpLagEntries} allowed)`);
      }
    }
    const ticket = this.appendEntry(EntryType.MembershipChange, encodeMembershipChange(change));
    this.pendingMembershipIndex = ticket.index;
    return ticket;
  }

  readIndex(context: Uint8Array): void {
    if (this.role === 'leader') return this.handleReadIndex(context, this.id);
    if (this.leaderId === '') throw this.notLeader();
    this.send({ ...emptyMessage(MessageType.ReadIndex, this.id, this.leaderId, this.term), context });
  }

  transferLeadership(to: NodeId): void {
    if (this.role !== 'leader') {
      if (this.leaderId === '') throw this.notLeader();
      this.send({ ...emptyMessage(MessageType.TransferLeader, this.id, this.leaderId, this.term), context: Buffer.from(to, 'utf8') });
      return;
    }
    const problem = this.transferProblem(to);
    if (problem !== undefined) throw new ProposalRejectedError(`leadership transfer refused: ${problem}`);
    this.startTransfer(to);
  }

  campaign(): void {
    this.hup(this.config.preVote ? 'pre-election' : 'election');
  }

  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    if (this.messages.length > 0 || this.messagesAfterPersist.length > 0 || this.readStates.length > 0) return true;
    if (this.log.hasUnpersisted() || this.snapshotToPersist !== undefined || this.log.hasCommittedToApply()) return true;
    if (this.membershipChanged || this.hardStateChanged() || this.softStateChanged()) return true;
    return this.role === 'leader' && (this.commitBroadcastNeeded || this.appendsToFlush);
  }

  ready(): Ready {
    if (this.outstanding !== undefined) throw new Error('invariant: ready() called before advance() of the previous Ready');
    if (this.role === 'leader') this.flushAppends();
    const rd: Ready = {
      entries: this.log.takeUnpersisted(),
      committedEntries: this.log.takeCommittedToApply(MAX_COMMITTED_ENTRIES_PER_READY),
      messages: this.messages,
      messagesAfterPersist: this.messagesAfterPersist,
      readStates: this.readStates,
    };
    if (this.softStateChanged()) {
      this.reportedSoftState = this.softState();
      rd.softState = this.reportedSoftState;
    }
    if (this.hardStateChanged()) {
      this.persistedHardState = this.hardState();
      rd.hardState = this.persistedHardState;
    }
    if (this.snapshotToPersist !== undefined) {
      rd.snapshot = this.snapshotToPersist;
      this.snapshotToPersist = undefined;
    }
    if (this.membershipChanged) {
      rd.membership = this.membership;
      this.membershipChanged = false;
    }
    this.messages = [];
    this.messagesAfterPersist = [];
    this.readStates = [];
    this.outstanding = rd;
    return rd;
  }

  advance(rd: Ready): void {
    if (rd !== this.outstanding) throw new Error('invariant: advance() must be given the Ready last returned by ready()');
    this.outstanding = undefined;
    if (rd.snapshot !== undefined) this.log.snapshotPersisted(rd.snapshot.metadata);
    if (rd.entries.length > 0) this.log.persisted(rd.entries);
    // The leader counts itself toward the quorum only once its own write is durable.
    if (this.role === 'leader') this.maybeCommit();
  }

  compact(metadata: SnapshotMetadata, compactIndex: number): void {
    this.log.compact(metadata, compactIndex);
  }

  reportUnreachable(peer: NodeId): void {
    const pr = this.progress.get(peer);
    if (this.role !== 'leader' || pr === undefined) return;
    if (pr.state === 'replicate') pr.becomeProbe();
  }

  reportSnapshot(peer: NodeId, ok: boolean): void {
    const pr = this.progress.get(peer);
    if (this.role !== 'leader' || pr === undefined || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshotIndex = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or a heartbeat response) before probing again.
    pr.probeSent = true;
  }

  status(): RaftStatus {
    const progress: FollowerProgress[] = [];
    if (this.role === 'leader') {
      for (const pr of this.progress.values()) {
        progress.push({ id: pr.id, match: pr.match, next: pr.next, state: pr.state, inflightAppends: pr.inflights.count, recentActive: pr.recentActive, isLearner: pr.isLearner });
      }
    }
    return {
      id: this.id, role: this.role, term: this.term, vote: this.vote, leaderId: this.leaderId,
      commit: this.log.committed, applied: this.log.applied, firstIndex: this.log.firstIndex(), lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.latestSnapshot.index, membership: this.membership, progress, transferee: this.leadTransferee,
    };
  }

  droppedMessages(): Record<string, number> {
    return { ...this.dropped };
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, leaderId: NodeId): void {
    this.reset(term);
    this.role = 'follower';
    this.leaderId = leaderId;
  }

  private becomePreCandidate(): void {
    if (this.role === 'leader') throw new Error('invariant: a leader cannot become a pre-candidate');
    // Pre-vote changes neither term nor vote: a failed pre-election leaves no trace.
    this.votes.clear();
    this.role = 'pre-candidate';
    this.leaderId = '';
  }

  private becomeCandidate(): void {
    if (this.role === 'leader') throw new Error('invariant: a leader cannot become a candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    if (this.role !== 'candidate') throw new Error(`invariant: only a candidate becomes leader (was ${this.role})`);
    this.reset(this.term);
    this.role = 'leader';
    this.leaderId = this.id;
    for (const member of this.membership.members) {
      if (member.id === this.id) continue;
      this.progress.set(member.id, this.newProgress(member.id, member.role === 'learner'));
    }
    // A membership change left uncommitted by an earlier leader still counts as pending.
    for (const e of this.log.entriesAfter(this.log.committed, this.log.lastIndex() - this.log.committed)) {
      if (e.type === EntryType.MembershipChange) this.pendingMembershipIndex = e.index;
    }
    // The no-op commits everything before it (§5.4.2) and opens ReadIndex (§6.4).
    this.appendEntry(EntryType.Noop, EMPTY_BYTES);
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = '';
    }
    this.leaderId = '';
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.config.electionTicks + Math.floor(this.config.random() * this.config.electionTicks);
    this.leadTransferee = '';
    this.votes.clear();
    this.progress.clear();
    this.readOnly.clear();
    this.readsBeforeFirstCommit = [];
    this.commitBroadcastNeeded = false;
    this.appendsToFlush = false;
  }

  private newProgress(id: NodeId, isLearner: boolean): Progress {
    return new Progress(id, this.log.lastIndex() + 1, isLearner, this.config.maxInflightAppends, this.config.maxInflightBytes);
  }

  // ---------------------------------------------------------------- time

  private tickElection(): void {
    // Capped, so it never overflows; past electionTicks the lease of a leader we stopped hearing from has expired.
    this.electionElapsed = Math.min(this.electionElapsed + 1, 2 * this.config.electionTicks + this.randomizedElectionTimeout);
    // Only a member that can campaign restarts its clock: one that cannot (a learner, or a voter whose committed
    // membership lags) must let a dead leader's lease run out, or it would refuse every candidate's vote forever.
    if (this.electionElapsed >= this.randomizedElectionTimeout && isVoter(this.membership, this.id)) {
      this.electionElapsed = 0;
      this.hup(this.config.preVote ? 'pre-election' : 'election');
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, '');
        return;
      }
      // A transfer that has not finished within an election timeout is abandoned.
      this.leadTransferee = '';
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat(EMPTY_BYTES);
    }
  }

  /** Check-quorum: has a majority of voters been heard from since the last check? Resets the marks. */
  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voterIds) {
      if (id === this.id || this.progress.get(id)?.recentActive) active++;
    }
    for (const pr of this.progress.values()) pr.recentActive = false;
    return active >= majority(this.voterIds.length);
  }

  // ---------------------------------------------------------------- elections

  private hup(kind: CampaignKind): void {
    if (this.role === 'leader') return;
    if (!isVoter(this.membership, this.id)) return;
    this.startElection(kind);
  }

  private startElection(kind: CampaignKind): void {
    let voteTerm: number;
    if (kind === 'pre-election') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    this.votes.set(this.id, true);
    if (this.tallyVotes()) return;
    const type = kind === 'pre-election' ? MessageType.PreVote : MessageType.Vote;
    for (const id of this.voterIds) {
      if (id === this.id) continue;
      this.send({
        ...emptyMessage(type, this.id, id, voteTerm),
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        context: kind === 'transfer' ? CAMPAIGN_TRANSFER : EMPTY_BYTES,
      });
    }
  }

  /** Counts votes; moves on if the election is decided. Returns true if it was. */
  private tallyVotes(): boolean {
    const outcome = voteOutcome(this.voterIds, this.votes);
    if (outcome === 'pending') return false;
    if (outcome === 'lost') {
      this.becomeFollower(this.term, '');
    } else if (this.role === 'pre-candidate') {
      this.startElection('election');
    } else {
      this.becomeLeader();
    }
    return true;
  }

  /**
   * The term rules every role shares (Figure 2, "All servers"). Returns false if
   * the message must go no further.
   */
  private stepTerm(m: Message): boolean {
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const forced = sameBytes(m.context, CAMPAIGN_TRANSFER);
        const inLease = this.config.checkQuorum && this.leaderId !== '' && this.electionElapsed < this.config.electionTicks;
        if (!forced && inLease) {
          // We heard from a live leader within the election timeout: this candidate would only disrupt it.
          this.drop('vote_in_lease');
          return false;
        }
      }
      if (m.type === MessageType.PreVote) return true; // a pre-vote never changes our term
      if (m.type === MessageType.PreVoteResp && !m.reject) return true; // a grant at the term we would campaign in
      const fromLeader = m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
      this.becomeFollower(m.term, fromLeader ? m.from : '');
      return true;
    }
    if (m.term < this.term) {
      if (m.type === MessageType.App || m.type === MessageType.Heartbeat) {
        // A deposed leader learns our term and steps down. Staying silent could leave us behind for good:
        // a leader that never hears of a higher term keeps sending what we keep dropping.
        this.send(emptyMessage(MessageType.AppResp, this.id, m.from, this.term));
      } else if (m.type === MessageType.PreVote) {
        this.send({ ...emptyMessage(MessageType.PreVoteResp, this.id, m.from, this.term), reject: true });
      }
      this.drop('stale_term');
      return false;
    }
    return true;
  }

  private handleVoteRequest(m: Message): void {
    const isPreVote = m.type === MessageType.PreVote;
    const canVote = this.vote === m.from || (this.vote === '' && this.leaderId === '') || (isPreVote && m.term > this.term);
    const responseType = isPreVote ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // A pre-vote grant answers at the candidate's future term so the candidate does not discard it.
      this.send(emptyMessage(responseType, this.id, m.from, m.term));
      if (!isPreVote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ ...emptyMessage(responseType, this.id, m.from, this.term), reject: true });
    }
  }

  // ---------------------------------------------------------------- per-role steps

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.leadTransferee !== '' || this.log.lastIndex() - this.log.committed >= this.config.maxUncommittedEntries) return this.drop('proposal_refused');
        for (const e of m.entries) {
          if (e.type !== EntryType.Normal) return this.drop('malformed');
          this.appendEntry(EntryType.Normal, e.data);
        }
        return;
      case MessageType.ReadIndex:
        return this.handleReadIndex(m.context, m.from);
      case MessageType.TransferLeader: {
        const target = Buffer.from(m.context).toString('utf8');
        if (this.transferProblem(target) !== undefined) return this.drop('transfer_refused');
        return this.startTransfer(target);
      }
      case MessageType.AppResp:
        return this.handleAppendResponse(m);
      case MessageType.HeartbeatResp:
        return this.handleHeartbeatResponse(m);
      default:
        return this.drop('unexpected_for_leader');
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        return this.handleAppend(m);
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        return this.handleHeartbeat(m);
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        return this.handleSnapshot(m);
      case MessageType.PreVoteResp:
      case MessageType.VoteResp: {
        const expected = this.role === 'pre-candidate' ? MessageType.PreVoteResp : MessageType.VoteResp;
        if (m.type !== expected) return this.drop('stale_vote_response');
        this.votes.set(m.from, !m.reject);
        this.tallyVotes();
        return;
      }
      default:
        return this.drop('unexpected_for_candidate');
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.leaderId = m.from;
        return this.handleAppend(m);
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leaderId = m.from;
        return this.handleHeartbeat(m);
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.leaderId = m.from;
        return this.handleSnapshot(m);
      case MessageType.TimeoutNow:
        // The leader hands us leadership: campaign at once, skipping pre-vote and the others' lease.
        return this.hup('transfer');
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context });
        return;
      case MessageType.Prop:
        if (!this.config.forwardProposals || this.leaderId === '') return this.drop('proposal_refused');
        this.send({ ...m, from: this.id, to: this.leaderId });
        return;
      case MessageType.TransferLeader:
        if (this.leaderId === '') return this.drop('transfer_refused');
        this.send({ ...m, from: this.id, to: this.leaderId });
        return;
      default:
        return this.drop('unexpected_for_follower');
    }
  }

  // ---------------------------------------------------------------- replication, follower side

  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit index already matches the leader (Log Matching): say so.
      this.send({ ...emptyMessage(MessageType.AppResp, this.id, m.from, this.term), index: this.log.committed });
      return;
    }
    if (this.log.matchTerm(m.index, m.logTerm)) {
      const lastNewIndex = this.log.appendFromLeader(m.index, m.entries);
      this.commitTo(Math.min(m.commit, lastNewIndex));
      this.send({ ...emptyMessage(MessageType.AppResp, this.id, m.from, this.term), index: lastNewIndex });
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send({ ...emptyMessage(MessageType.AppResp, this.id, m.from, this.term), index: m.index, reject: true, rejectHint: hint.index, logTermHint: hint.term });
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(our match, its commit), so this never reaches past what matches.
    this.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ ...emptyMessage(MessageType.HeartbeatResp, this.id, m.from, this.term), context: m.context });
  }

  private handleSnapshot(m: Message): void {
    const snapshot = m.snapshot;
    if (snapshot === undefined) return this.drop('malformed');
    const { index, term } = snapshot.metadata;
    if (index <= this.log.committed) {
      this.send({ ...emptyMessage(MessageType.AppResp, this.id, m.from, this.term), index: this.log.committed });
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // Our log already holds the snapshot's last entry: keep the log and just commit up to it.
      this.commitTo(index);
    } else {
      this.log.restore(snapshot);
      this.snapshotToPersist = snapshot;
      this.setMembership(snapshot.metadata.membership);
      this.membershipChanged = true;
      this.pendingMembershipIndex = 0;
    }
    this.send({ ...emptyMessage(MessageType.AppResp, this.id, m.from, this.term), index: this.log.lastIndex() });
  }

  /** Advances the commit index and applies the membership changes it commits. */
  private commitTo(index: number): void {
    const previous = this.log.committed;
    if (!this.log.commitTo(index)) return;
    for (let i = previous + 1; i <= index; i++) {
      const entry = this.log.entryAt(i);
      if (entry.type === EntryType.MembershipChange) this.applyCommittedMembershipChange(entry);
    }
  }

  private applyCommittedMembershipChange(entry: Entry): void {
    let change: MembershipChange;
    try {
      change = decodeMembershipChange(entry.data);
    } catch (err) {
      throw new Error(`invariant: committed membership entry ${entry.index} does not decode: ${(err as Error).message}`);
    }
    this.setMembership(applyMembershipChange(this.membership, change));
    this.membershipChanged = true;
    if (this.role !== 'leader') return;
    if (!isVoter(this.membership, this.id)) {
      // The leader was removed: its removal is committed, so it steps aside. It first tells everyone the new
      // commit index, or they would keep counting it as a voter, and it holds the longest log.
      for (const pr of this.progress.values()) {
        this.send({ ...emptyMessage(MessageType.Heartbeat, this.id, pr.id, this.term), commit: Math.min(pr.match, this.log.committed) });
      }
      this.becomeFollower(this.term, '');
      return;
    }
    for (const member of this.membership.members) {
      if (member.id === this.id) continue;
      const pr = this.progress.get(member.id);
      if (pr === undefined) this.progress.set(member.id, this.newProgress(member.id, member.role === 'learner'));
      else pr.isLearner = member.role === 'learner';
    }
    for (const id of [...this.progress.keys()]) {
      if (findMember(this.membership, id) === undefined) this.progress.delete(id);
    }
    if (this.leadTransferee !== '' && !isVoter(this.membership, this.leadTransferee)) this.leadTransferee = '';
  }

  // ---------------------------------------------------------------- replication, leader side

  private checkCanAppend(): void {
    if (this.leadTransferee !== '') throw new ProposalRejectedError(`leadership transfer to ${this.leadTransferee} in progress`);
    const uncommitted = this.log.lastIndex() - this.log.committed;
    if (uncommitted >= this.config.maxUncommittedEntries) {
      throw new ProposalRejectedError(`too many uncommitted entries (${uncommitted}, limit ${this.config.maxUncommittedEntries})`);
    }
  }

  private appendEntry(type: EntryType, data: Uint8Array): ProposalTicket {
    const entry: Entry = { term: this.term, index: this.log.lastIndex() + 1, type, data };
    this.log.append([entry]);
    this.appendsToFlush = true;
    // Appends go out in ready(): everything proposed between two Readies travels in one message per follower.
    return { index: entry.index, term: entry.term };
  }

  /** Leader: commits the highest index a majority holds durably, if it is of this term (§5.4.2). */
  private maybeCommit(): void {
    const index = committedIndexOf(this.voterIds, (id) => (id === this.id ? this.log.persistedIndex : this.progress.get(id)?.match ?? 0));
    if (index <= this.log.committed || this.log.term(index) !== this.term) return;
    const firstCommitOfTerm = this.log.term(this.log.committed) !== this.term;
    this.commitTo(index);
    if (this.role !== 'leader') return; // committing our own removal stepped us down
    this.commitBroadcastNeeded = true;
    if (firstCommitOfTerm) {
      const waiting = this.readsBeforeFirstCommit;
      this.readsBeforeFirstCommit = [];
      for (const read of waiting) this.handleReadIndex(read.context, read.requester);
    }
  }

  private handleAppendResponse(m: Message): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return this.drop('unknown_follower');
    pr.recentActive = true;
    if (m.reject) {
      // Skip every entry of a term the follower does not have, in one round trip.
      const matchHint = this.log.findConflictByTerm(m.rejectHint, m.logTermHint).index;
      if (pr.maybeDecreaseTo(m.index, matchHint + 1)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(pr, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshotIndex) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeUpTo(m.index);
    }
    this.maybeCommit();
    if (this.role !== 'leader') return;
    if (wasPaused) this.sendAppendsUntilPaused(pr);
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResponse(m: Message): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return this.drop('unknown_follower');
    pr.recentActive = true;
    const behind = pr.match < this.log.lastIndex();
    // Appends in flight were lost if a whole heartbeat interval brought no progress: fall back to probing from match.
    if (pr.state === 'replicate' && behind && pr.match === pr.matchAtLastHeartbeat) pr.becomeProbe();
    pr.matchAtLastHeartbeat = pr.match;
    pr.probeSent = false;
    if (behind) this.sendAppend(pr, false);
    if (m.context.byteLength === 0 || pr.isLearner) return;
    if (this.readOnly.ack(m.context, m.from) < majority(this.voterIds.length)) return;
    for (const read of this.readOnly.releaseThrough(m.context)) this.respondToRead(read.requester, read.index, read.context);
  }

  /** Sends what the follower lacks: entries, or a snapshot once they are compacted. Returns true if a message went out. */
  private sendAppend(pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) return this.sendSnapshot(pr);
    const entries = pr.next <= this.log.lastIndex() ? this.log.slice(pr.next, this.log.lastIndex(), this.config.maxEntriesPerAppend, this.config.maxBytesPerAppend) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ ...emptyMessage(MessageType.App, this.id, pr.id, this.term), index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed });
    if (entries.length > 0) pr.sentEntries(entries[entries.length - 1].index, entriesSizeBytes(entries));
    else if (pr.state === 'probe') pr.probeSent = true;
    return true;
  }

  private sendAppendsUntilPaused(pr: Progress): boolean {
    let sent = false;
    for (let i = 0; i < this.config.maxInflightAppends && pr.next <= this.log.lastIndex(); i++) {
      if (!this.sendAppend(pr, false)) break;
      sent = true;
    }
    return sent;
  }

  private sendSnapshot(pr: Progress): boolean {
    // A follower we have not heard from lately is probably down: do not stream a snapshot into the void.
    if (!pr.recentActive) return false;
    const metadata = this.log.latestSnapshot;
    if (metadata.index === 0) throw new Error(`invariant: follower ${pr.id} needs entries before ${this.log.firstIndex()} but there is no snapshot`);
    this.send({ ...emptyMessage(MessageType.Snap, this.id, pr.id, this.term), snapshot: { metadata, data: EMPTY_BYTES } });
    pr.becomeSnapshot(metadata.index);
    return true;
  }

  /** Called from ready(): sends new entries, and the new commit index to followers that would not otherwise learn it soon. */
  private flushAppends(): void {
    for (const pr of this.progress.values()) {
      const sent = this.sendAppendsUntilPaused(pr);
      if (!sent && this.commitBroadcastNeeded) this.sendAppend(pr, true);
    }
    this.commitBroadcastNeeded = false;
    this.appendsToFlush = false;
  }

  private broadcastHeartbeat(context: Uint8Array): void {
    for (const pr of this.progress.values()) {
      this.send({ ...emptyMessage(MessageType.Heartbeat, this.id, pr.id, this.term), commit: Math.min(pr.match, this.log.committed), context });
    }
  }

  // ---------------------------------------------------------------- ReadIndex

  private handleReadIndex(context: Uint8Array, requester: NodeId): void {
    if (this.log.term(this.log.committed) !== this.term) {
      if (this.readsBeforeFirstCommit.length >= MAX_PENDING_READS) return this.drop('read_queue_full');
      this.readsBeforeFirstCommit.push({ context, requester });
      return;
    }
    if (this.voterIds.length === 1) return this.respondToRead(requester, this.log.committed, context);
    if (!this.readOnly.add({ index: this.log.committed, context, requester, acks: new Set([this.id]) })) return this.drop('read_queue_full');
    this.broadcastHeartbeat(context);
  }

  private respondToRead(requester: NodeId, index: number, context: Uint8Array): void {
    if (requester === this.id) {
      this.readStates.push({ index, context });
    } else {
      this.send({ ...emptyMessage(MessageType.ReadIndexResp, this.id, requester, this.term), index, context });
    }
  }

  // ---------------------------------------------------------------- leadership transfer

  private transferProblem(target: NodeId): string | undefined {
    if (target === this.id) return `${target} is already the leader`;
    if (!isVoter(this.membership, target)) return `${target} is not a voting member`;
    return undefined;
  }

  private startTransfer(target: NodeId): void {
    if (this.leadTransferee === target) return;
    this.leadTransferee = target;
    // The transfer must finish within one election timeout or it is abandoned (tickLeader).
    this.electionElapsed = 0;
    const pr = this.progress.get(target);
    if (pr === undefined) throw new Error(`invariant: voter ${target} has no progress on the leader`);
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.sendAppend(pr, true);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(emptyMessage(MessageType.TimeoutNow, this.id, to, this.term));
  }

  // ---------------------------------------------------------------- helpers

  private setMembership(membership: Membership): void {
    this.membership = membership;
    this.voterIds = voters(membership);
  }

  private send(m: Message): void {
    if (SENT_AFTER_PERSIST.has(m.type)) this.messagesAfterPersist.push(m);
    else this.messages.push(m);
  }

  private drop(reason: string): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1;
  }

  private notLeader(): NotLeaderError {
    const leader = this.leaderId === '' ? undefined : findMember(this.membership, this.leaderId);
    return new NotLeaderError(this.leaderId, leader?.address ?? '');
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private hardStateChanged(): boolean {
    const p = this.persistedHardState;
    return p.term !== this.term || p.vote !== this.vote || p.commit !== this.log.committed;
  }

  private softState(): SoftState {
    return { leaderId: this.leaderId, role: this.role, term: this.term };
  }

  private softStateChanged(): boolean {
    const s = this.reportedSoftState;
    return s.leaderId !== this.leaderId || s.role !== this.role || s.term !== this.term;
  }
}
