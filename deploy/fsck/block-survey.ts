/**
 * fsck's block side: which members hold each referenced block (BlockPeer
 * HasBlocks on every member, 1,024 ids a call), and the repair of a block a
 * majority lacks but some member holds (FetchBlock from a holder, the bytes
 * checked against the id, StoreReplica on each member lacking it — what the
 * leader's replicator does for a new upload). Owns talking BlockPeer to the
 * members; must never decide what is referenced (the state says, through
 * Admin ReferencedBlocks) or delete anything.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as b from '../../proto/blocks-proto';
import type { ClientSecurity } from '../../proto/tls';

export interface SurveyMember {
  id: string;
  address: string;
}

export interface BlockHolding {
  id: string;
  holders: string[];
  lacking: string[];
  /** Members that could not be asked (down): neither holder nor lacking. */
  unknown: string[];
}

export interface RepairOutcome {
  id: string;
  storedOn: string[];
  failures: string[];
}

const CALL_DEADLINE_MS = 10_000;
type UnaryFn = (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: unknown) => void) => void;

const BlockPeerClient = grpc.makeGenericClientConstructor(b.blockPeerService, 'BlockPeer');

export class BlockSurvey {
  private readonly clients = new Map<string, InstanceType<typeof BlockPeerClient>>();

  /** security: the channel credentials and options of a secured cluster (proto/tls.ts ClientSecurity); plaintext by default. */
  constructor(private readonly members: readonly SurveyMember[], security?: ClientSecurity) {
    for (const member of members) {
      const options = { ...security?.clientOptions, ...b.BLOCK_CHANNEL_OPTIONS };
      this.clients.set(member.id, new BlockPeerClient(member.address, security?.credentials ?? grpc.credentials.createInsecure(), options));
    }
  }

  majority(): number {
    return Math.floor(this.members.length / 2) + 1;
  }

  private call<Res>(memberId: string, method: b.BlockPeerMethod, request: unknown): Promise<Res> {
    const client = this.clients.get(memberId);
    if (!client) throw new Error(`no BlockPeer client for member ${memberId}`);
    const fn = (client as unknown as Record<string, UnaryFn>)[method];
    return new Promise((resolve, reject) => {
      fn.call(client, request, { deadline: Date.now() + CALL_DEADLINE_MS }, (error, reply) => {
        if (error) reject(new Error(`${memberId}: ${error.details || error.message}`));
        else resolve(reply as Res);
      });
    });
  }

  /** Who holds each of `ids` (at most MAX_HAS_BLOCKS_IDS), asking every member at once. */
  async holdings(ids: readonly string[]): Promise<{ holdings: BlockHolding[]; unreachable: Map<string, string> }> {
    if (ids.length > b.MAX_HAS_BLOCKS_IDS) throw new Error(`at most ${b.MAX_HAS_BLOCKS_IDS} ids per survey call, got ${ids.length}`);
    const unreachable = new Map<string, string>();
    const answers = await Promise.all(this.members.map(async (member) => {
      try {
        const reply = await this.call<b.HasBlocksReply>(member.id, 'HasBlocks', { ids });
        if (reply.present.length !== ids.length) throw new Error(`${member.id}: answered ${reply.present.length} of ${ids.length} ids`);
        return reply.present;
      } catch (error) {
        unreachable.set(member.id, (error as Error).message);
        return undefined;
      }
    }));
    const holdings = ids.map((id, i) => {
      const holding: BlockHolding = { id, holders: [], lacking: [], unknown: [] };
      this.members.forEach((member, m) => {
        const present = answers[m];
        if (present === undefined) holding.unknown.push(member.id);
        else if (present[i]) holding.holders.push(member.id);
        else holding.lacking.push(member.id);
      });
      return holding;
    });
    return { holdings, unreachable };
  }

  /** Copies a block from one of its holders to every member lacking it; the bytes must hash to the id. */
  async repair(holding: BlockHolding): Promise<RepairOutcome> {
    const outcome: RepairOutcome = { id: holding.id, storedOn: [], failures: [] };
    let bytes: Uint8Array | undefined;
    for (const holder of holding.holders) {
      try {
        const reply = await this.call<b.FetchBlockReply>(holder, 'FetchBlock', { id: holding.id });
        const actual = createHash('sha256').update(reply.bytes).digest('hex');
        if (!reply.found) throw new Error(`${holder}: no longer holds it`);
        if (actual !== holding.id) throw new Error(`${holder}: answered bytes hashing to ${actual.slice(0, 12)}…`);
        bytes = reply.bytes;
        break;
      } catch (error) {
        outcome.failures.push((error as Error).message);
      }
    }
    if (!bytes) return outcome;
    await Promise.all(holding.lacking.map(async (member) => {
      try {
        // min_applied_index 0: the block is referenced already, the member's state knows why it exists.
        await this.call<b.StoreReplicaReply>(member, 'StoreReplica', { id: holding.id, bytes, minAppliedIndex: 0 });
        outcome.storedOn.push(member);
      } catch (error) {
        outcome.failures.push((error as Error).message);
      }
    }));
    return outcome;
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}
