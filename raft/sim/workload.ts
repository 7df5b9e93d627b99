/**
 * The simulated clients: writers that propose unique ops to whoever they
 * think leads and retry on NotLeaderError, rejection, loss or timeout; and
 * linearizable readers using ReadIndex. Records which writes were
 * acknowledged (their ticket's entry was applied) for the final check.
 * Must never touch a node's state except through the core's API.
 */
import { Entry, NotLeaderError, ProposalRejectedError, ReadState } from '../core/types';
import { AcknowledgedWrite, SafetyViolation } from './checker';
import { callCore, SimNode } from './sim-node';
import { encodeOp } from './state-machine';
import type { Simulation } from './simulation';

/** A client gives up waiting on a ticket after this many steps and proposes a fresh op. */
const TICKET_TIMEOUT_STEPS = 400;
const READ_TIMEOUT_STEPS = 400;
/** At most this many reads in flight at once. */
const MAX_PENDING_READS = 64;

interface PendingWrite {
  opId: string;
  ticketIndex: number;
  ticketTerm: number;
  node: string;
  proposedAt: number;
}

interface Client {
  id: string;
  seq: number;
  guess: string;
  backoffUntil: number;
  pending: PendingWrite | null;
  ackedAfterHeal: number;
}

interface PendingRead {
  context: string;
  node: string;
  incarnation: number;
  startedAt: number;
  /** Highest index applied anywhere when the read started: the answer must be at least this. */
  minIndex: number;
  readIndex: number | undefined;
}

export interface WorkloadStats {
  proposed: number;
  acknowledged: number;
  lostOrTimedOut: number;
  notLeader: number;
  rejected: number;
  readsStarted: number;
  readsServed: number;
  readsTimedOut: number;
}

export class Workload {
  private readonly clients: Client[] = [];
  /** Every op that got a ticket, by op id, until it is applied somewhere. */
  private readonly ticketsByOp = new Map<string, PendingWrite>();
  readonly acknowledged: AcknowledgedWrite[] = [];
  private readonly reads = new Map<string, PendingRead>();
  private readSeq = 0;
  private healed = false;
  readonly stats: WorkloadStats = { proposed: 0, acknowledged: 0, lostOrTimedOut: 0, notLeader: 0, rejected: 0, readsStarted: 0, readsServed: 0, readsTimedOut: 0 };

  constructor(private readonly sim: Simulation) {
    for (let i = 1; i <= sim.config.clientCount; i++) {
      this.clients.push({ id: `c${i}`, seq: 0, guess: sim.random.pick(sim.bootstrapIds), backoffUntil: 0, pending: null, ackedAfterHeal: 0 });
    }
  }

  /** From now on every client must get one more write acknowledged before the run may settle. */
  markHealed(): void {
    this.healed = true;
    for (const c of this.clients) c.ackedAfterHeal = 0;
  }

  everyClientAckedAfterHeal(): boolean {
    return this.clients.every((c) => c.ackedAfterHeal > 0);
  }

  step(): void {
    const now = this.sim.now();
    for (const client of this.clients) {
      this.checkPending(client, now);
      if (client.pending === null && now >= client.backoffUntil && (this.healed ? client.ackedAfterHeal === 0 : this.sim.random.chance(this.sim.config.proposeRatePerStep))) {
        this.propose(client, now);
      }
    }
    if (!this.healed && this.reads.size < MAX_PENDING_READS && this.sim.random.chance(this.sim.config.readRatePerStep)) this.startRead(now);
    this.serveReads(now);
  }

  private checkPending(client: Client, now: number): void {
    const p = client.pending;
    if (p === null) return;
    const committedTerm = this.sim.checker.committedTermAt(p.ticketIndex);
    if (committedTerm !== undefined && committedTerm !== p.ticketTerm) {
      // Another entry was committed where ours was: ours is lost for good. A fresh op, not a resend, so no write is applied twice.
      this.stats.lostOrTimedOut++;
      this.trace(`${client.id} write ${p.opId} lost (${p.ticketIndex}@${committedTerm} committed instead of @${p.ticketTerm})`);
      client.pending = null;
    } else if (now - p.proposedAt > TICKET_TIMEOUT_STEPS) {
      this.stats.lostOrTimedOut++;
      this.trace(`${client.id} write ${p.opId} timed out`);
      client.pending = null;
    }
  }

  private propose(client: Client, now: number): void {
    let node = this.sim.nodes.get(client.guess);
    if (node === undefined || !node.isUp()) {
      const up = this.sim.upNodes();
      if (up.length === 0) return;
      node = this.sim.random.pick(up);
      client.guess = node.id;
    }
    const core = node.core;
    if (core === null) return;
    client.seq++;
    const opId = `${client.id}.${client.seq}`;
    const data = encodeOp(opId, this.sim.random.int(0, this.sim.config.paddingBytesMax));
    try {
      const ticket = callCore(node.id, 'propose', () => core.propose(data));
      if (ticket === null) throw new SafetyViolation('core-error', `${node.id}.propose returned null with forwardProposals off`);
      this.stats.proposed++;
      const pending: PendingWrite = { opId, ticketIndex: ticket.index, ticketTerm: ticket.term, node: node.id, proposedAt: now };
      client.pending = pending;
      this.ticketsByOp.set(opId, pending);
      this.trace(`${client.id} proposed ${opId} on ${node.id} -> ${ticket.index}@${ticket.term}`);
    } catch (err) {
      if (err instanceof NotLeaderError) {
        this.stats.notLeader++;
        const hint = err.leaderId;
        client.guess = hint !== '' && this.sim.nodes.has(hint) ? hint : this.sim.random.pick([...this.sim.nodes.keys()]);
        client.backoffUntil = now + this.sim.random.int(1, hint === '' ? 10 : 2);
      } else if (err instanceof ProposalRejectedError) {
        this.stats.rejected++;
        client.backoffUntil = now + this.sim.random.int(5, 20);
      } else {
        throw err;
      }
    }
  }

  /** Called for every entry any node applies. */
  onApplied(node: SimNode, entry: Entry, opId: string | undefined): void {
    if (opId === undefined) return;
    const pending = this.ticketsByOp.get(opId);
    if (pending === undefined) return;
    if (entry.index !== pending.ticketIndex || entry.term !== pending.ticketTerm) {
      throw new SafetyViolation('state-machine-safety', `${node.id} applied write ${opId} at ${entry.index}@${entry.term}, but its ticket said ${pending.ticketIndex}@${pending.ticketTerm}`);
    }
    this.ticketsByOp.delete(opId);
    this.acknowledged.push({ opId, index: entry.index, term: entry.term });
    this.stats.acknowledged++;
    for (const client of this.clients) {
      if (client.pending?.opId === opId) {
        client.pending = null;
        client.ackedAfterHeal++;
      }
    }
  }

  private startRead(now: number): void {
    const up = this.sim.upNodes();
    if (up.length === 0) return;
    const node = this.sim.random.pick(up);
    const core = node.core;
    if (core === null) return;
    const context = `r${++this.readSeq}`;
    try {
      callCore(node.id, 'readIndex', () => core.readIndex(Buffer.from(context, 'utf8')));
    } catch (err) {
      if (err instanceof NotLeaderError) return;
      throw err;
    }
    this.stats.readsStarted++;
    this.reads.set(context, { context, node: node.id, incarnation: node.incarnation, startedAt: now, minIndex: this.sim.checker.maxCommittedIndex(), readIndex: undefined });
    this.trace(`read ${context} started on ${node.id} (must see >= ${this.sim.checker.maxCommittedIndex()})`);
  }

  onReadState(node: SimNode, rs: ReadState): void {
    const context = Buffer.from(rs.context).toString('utf8');
    const read = this.reads.get(context);
    this.trace(`${node.id} read state ${context} index=${rs.index}`);
    if (read === undefined) return;
    if (read.node !== node.id) throw new SafetyViolation('linearizable-read', `read ${context} was asked of ${read.node} but answered on ${node.id}`);
    this.sim.checker.observeReadState(node.id, context, rs.index, read.minIndex);
    if (read.readIndex === undefined) read.readIndex = rs.index;
  }

  private serveReads(now: number): void {
    for (const [context, read] of this.reads) {
      const node = this.sim.nodes.get(read.node);
      if (node === undefined || !node.isUp() || node.incarnation !== read.incarnation || now - read.startedAt > READ_TIMEOUT_STEPS) {
        this.stats.readsTimedOut++;
        this.reads.delete(context);
      } else if (read.readIndex !== undefined && node.sm.applied >= read.readIndex) {
        this.stats.readsServed++;
        this.reads.delete(context);
        this.trace(`read ${context} served on ${node.id} at applied ${node.sm.applied} (read index ${read.readIndex})`);
      }
    }
  }

  private trace(line: string): void {
    if (this.sim.trace.enabled) this.sim.trace.record(this.sim.now(), line);
  }
}
