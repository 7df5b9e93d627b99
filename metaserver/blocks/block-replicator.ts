/**
 * The leader's side of block replication (issue 3 §4): store a block locally,
 * forward it to every other member with StoreReplica, and acknowledge once a
 * majority of the cluster (self included) holds it durably. Also answers
 * "does a majority hold these blocks?" (before a commit may reference them)
 * and fetches a block from any member holding it (reads, repair).
 * Owns the gRPC clients to the other members' BlockPeer services (created
 * lazily, closed on close() or when a member leaves) and a bounded LRU of
 * which members are known to hold which blocks. Must never acknowledge a
 * block fewer than a majority hold, never return fetched bytes that do not
 * hash to the id, and never decide membership (setPeers is told it).
 *
 * Known holders are a cache: a member that lost its disk since is still
 * counted until the entry is evicted; block repair refills such a member.
 */
import * as grpc from '@grpc/grpc-js';
import { ClientSecurity, PLAINTEXT } from '../../proto/tls';
import { RaftLogger, silentLogger } from '../../raft/node/node-logger';
import { BLOCK_CHANNEL_OPTIONS, FetchBlockReply, HasBlocksReply, MAX_HAS_BLOCKS_IDS, blockPeerService } from '../../proto/blocks-proto';
import { BadBlockIdError, BlockStore, BlockTooLargeError, MAX_BLOCK_BYTES, blockIdOf, isBlockId } from './block-store';

export const DEFAULT_KNOWN_HOLDERS_MAX = 100_000;
/** StoreReplica calls in flight to one member at most; more fail at once for that member (the others may still make a majority). */
export const DEFAULT_SENDS_IN_FLIGHT_PER_PEER_MAX = 64;
/** StoreReplica attempts to an unreachable member per block, and the pause between them: rides out a restart's reconnect backoff. */
export const STORE_ATTEMPTS_MAX = 5;
export const STORE_RETRY_DELAY_MS = 250;
/** majorityHolds asks about at most this many ids a call. */
export const MAJORITY_HOLDS_IDS_MAX = 100_000;

export interface MemberFailure {
  member: string;
  reason: string;
}

export class BlockReplicationError extends Error {
  constructor(readonly id: string, readonly holders: readonly string[], readonly needed: number, readonly failures: readonly MemberFailure[]) {
    super(
      `block ${id} reached ${holders.length} of the ${needed} members a majority needs (held by ${holders.join(', ') || 'none'}); ` +
        (failures.map((f) => `${f.member}: ${f.reason}`).join('; ') || 'no member answered'),
    );
    this.name = 'BlockReplicationError';
  }
}

export class BlockFetchError extends Error {
  constructor(readonly id: string, readonly failures: readonly MemberFailure[]) {
    super(`block ${id} could not be fetched from any member: ${failures.map((f) => `${f.member}: ${f.reason}`).join('; ') || 'no other members'}`);
    this.name = 'BlockFetchError';
  }
}

/** Something that can fetch a block from the other members (BlockRepair's view of a BlockReplicator). */
export interface BlockFetcher {
  fetch(id: string, deadlineMs: number): Promise<Uint8Array>;
}

export interface BlockReplicatorOptions {
  store: BlockStore;
  /** This member's id (it counts towards the majority). */
  selfId: string;
  /** Member id → BlockPeer address (host:port) of every OTHER member. */
  peers: ReadonlyMap<string, string>;
  /** Voting members, self included; defaults to peers.size + 1. */
  clusterSize?: number;
  knownHoldersMax?: number;
  sendsInFlightPerPeerMax?: number;
  logger?: RaftLogger;
  /** Credentials of the channels to the other members (proto/tls.ts: TLS, this member's certificate, the member token); plaintext if absent. */
  security?: ClientSecurity;
}

interface Peer {
  address: string;
  client: grpc.Client | undefined;
  sendsInFlight: number;
}

function errorText(error: unknown): string {
  const e = error as Partial<grpc.ServiceError> | undefined;
  if (e !== undefined && typeof e.code === 'number') return `${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`;
  return (error as Error)?.message ?? String(error);
}

function requireDeadline(deadlineMs: number): void {
  if (!Number.isFinite(deadlineMs)) throw new Error(`deadline ${String(deadlineMs)} is not a Date.now() time`);
}

function requireClusterSize(clusterSize: number, peerCount: number): void {
  if (!Number.isSafeInteger(clusterSize) || clusterSize < 1) throw new Error(`cluster size ${String(clusterSize)} is not a positive integer`);
  if (clusterSize < peerCount + 1) throw new Error(`cluster size ${clusterSize} is smaller than self plus ${peerCount} peers`);
}

export class BlockReplicator implements BlockFetcher {
  private readonly store: BlockStore;
  private readonly selfId: string;
  private readonly peers = new Map<string, Peer>();
  private clusterSize: number;
  private readonly knownHoldersMax: number;
  private readonly sendsInFlightPerPeerMax: number;
  /** id → members known to hold it durably; Map order is recency (oldest first). */
  private readonly knownHolders = new Map<string, Set<string>>();
  private readonly logger: RaftLogger;
  private readonly security: ClientSecurity;
  private closed = false;

  constructor(options: BlockReplicatorOptions) {
    if (!(options.store instanceof BlockStore)) throw new Error('BlockReplicator needs a BlockStore');
    if (typeof options.selfId !== 'string' || options.selfId === '') throw new Error('BlockReplicator needs a self id');
    this.store = options.store;
    this.selfId = options.selfId;
    this.knownHoldersMax = options.knownHoldersMax ?? DEFAULT_KNOWN_HOLDERS_MAX;
    this.sendsInFlightPerPeerMax = options.sendsInFlightPerPeerMax ?? DEFAULT_SENDS_IN_FLIGHT_PER_PEER_MAX;
    if (!Number.isSafeInteger(this.knownHoldersMax) || this.knownHoldersMax < 1) throw new Error(`knownHoldersMax ${String(this.knownHoldersMax)} is not a positive integer`);
    if (!Number.isSafeInteger(this.sendsInFlightPerPeerMax) || this.sendsInFlightPerPeerMax < 1) throw new Error(`sendsInFlightPerPeerMax ${String(this.sendsInFlightPerPeerMax)} is not a positive integer`);
    this.logger = options.logger ?? silentLogger;
    this.security = options.security ?? PLAINTEXT;
    this.clusterSize = options.clusterSize ?? options.peers.size + 1;
    this.setPeers(options.peers, this.clusterSize);
  }

  /** Members a block must reach before it is acknowledged. */
  majority(): number {
    return Math.floor(this.clusterSize / 2) + 1;
  }

  /** The other members changed: clients to departed or moved members are closed; their holder records dropped. */
  setPeers(peers: ReadonlyMap<string, string>, clusterSize = peers.size + 1): void {
    if (!(peers instanceof Map)) throw new Error('peers is not a Map of member id → address');
    if (peers.has(this.selfId)) throw new Error(`peers include this member ${this.selfId}`);
    requireClusterSize(clusterSize, peers.size);
    for (const [member, address] of peers) {
      if (typeof member !== 'string' || member === '' || typeof address !== 'string' || address === '') throw new Error(`peer ${String(member)} has no address`);
    }
    const departed: string[] = [];
    for (const [member, peer] of this.peers) {
      if (peers.get(member) === peer.address) continue;
      peer.client?.close();
      this.peers.delete(member);
      if (!peers.has(member)) departed.push(member);
    }
    for (const [member, address] of peers) {
      if (!this.peers.has(member)) this.peers.set(member, { address, client: undefined, sendsInFlight: 0 });
    }
    this.clusterSize = clusterSize;
    if (departed.length > 0) {
      for (const holders of this.knownHolders.values()) for (const member of departed) holders.delete(member);
    }
  }

  private clientOf(peer: Peer): grpc.Client {
    if (this.closed) throw new Error('block replicator is closed');
    peer.client ??= new grpc.Client(peer.address, this.security.credentials, { ...BLOCK_CHANNEL_OPTIONS, ...this.security.clientOptions });
    return peer.client;
  }

  private call<Req, Res>(peer: Peer, method: grpc.MethodDefinition<Req, Res>, request: Req, deadlineMs: number): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      let client: grpc.Client;
      try {
        client = this.clientOf(peer);
      } catch (error) {
        reject(error);
        return;
      }
      client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, { deadline: deadlineMs }, (error, reply) => {
        if (error !== null || reply === undefined) reject(error ?? new Error('empty reply'));
        else resolve(reply);
      });
    });
  }

  private remember(id: string, member: string): void {
    let holders = this.knownHolders.get(id);
    if (holders !== undefined) this.knownHolders.delete(id);
    else holders = new Set();
    holders.add(member);
    this.knownHolders.set(id, holders);
    while (this.knownHolders.size > this.knownHoldersMax) {
      const oldest = this.knownHolders.keys().next().value as string;
      this.knownHolders.delete(oldest);
    }
  }

  /** Members known to hold id (a copy; empty when unknown). */
  holdersOf(id: string): string[] {
    return [...(this.knownHolders.get(id) ?? [])];
  }

  /**
   * Stores the block here and on the other members; resolves once a majority
   * (self included) holds it durably. Sends still running then continue in the
   * background (each ends by deadlineMs). Rejects with BlockReplicationError
   * naming each member that failed and why when a majority cannot be reached
   * by deadlineMs (a Date.now() time).
   */
  async replicate(id: string, bytes: Uint8Array, minAppliedIndex: number, deadlineMs: number): Promise<void> {
    if (this.closed) throw new Error('block replicator is closed');
    if (!isBlockId(id)) throw new BadBlockIdError(id);
    if (!(bytes instanceof Uint8Array)) throw new Error(`block ${id}: bytes are not a Uint8Array`);
    if (bytes.length > MAX_BLOCK_BYTES) throw new BlockTooLargeError(bytes.length);
    if (!Number.isSafeInteger(minAppliedIndex) || minAppliedIndex < 0) throw new Error(`min applied index ${String(minAppliedIndex)} is not a non-negative integer`);
    requireDeadline(deadlineMs);
    await this.store.put(id, bytes); // throws on a hash mismatch before anything is sent
    this.remember(id, this.selfId);
    const needed = this.majority();
    const holders = [this.selfId];
    if (holders.length >= needed) {
      this.sendToAll(id, bytes, minAppliedIndex, deadlineMs, () => {}, () => {});
      return;
    }
    const failures: MemberFailure[] = [];
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const total = this.peers.size + 1;
      const check = (): void => {
        if (settled) return;
        if (holders.length >= needed) {
          settled = true;
          resolve();
        } else if (total - failures.length < needed) {
          settled = true;
          reject(new BlockReplicationError(id, [...holders], needed, [...failures]));
        }
      };
      this.sendToAll(
        id, bytes, minAppliedIndex, deadlineMs,
        (member) => {
          holders.push(member);
          check();
        },
        (member, reason) => {
          failures.push({ member, reason });
          check();
        },
      );
      check(); // too few members to ever reach a majority
    });
  }

  private sendToAll(id: string, bytes: Uint8Array, minAppliedIndex: number, deadlineMs: number, stored: (member: string) => void, failed: (member: string, reason: string) => void): void {
    for (const [member, peer] of this.peers) {
      if (peer.sendsInFlight >= this.sendsInFlightPerPeerMax) {
        failed(member, `${peer.sendsInFlight} sends already in flight to ${peer.address}`);
        continue;
      }
      peer.sendsInFlight++;
      this.storeOn(peer, id, bytes, minAppliedIndex, deadlineMs)
        .then(
          () => {
            this.remember(id, member);
            stored(member);
          },
          (error: unknown) => {
            this.logger.warn('block replicate: a member did not store the block', { id, member, error: errorText(error) });
            failed(member, errorText(error));
          },
        )
        .finally(() => {
          peer.sendsInFlight--;
        });
    }
  }

  /**
   * StoreReplica to one member; a member that cannot be reached (UNAVAILABLE:
   * down, or its channel still backing off after a restart) is tried again
   * STORE_ATTEMPTS_MAX times at most, STORE_RETRY_DELAY_MS apart, within the deadline.
   */
  private async storeOn(peer: Peer, id: string, bytes: Uint8Array, minAppliedIndex: number, deadlineMs: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.call(peer, blockPeerService.StoreReplica, { id, bytes, minAppliedIndex }, deadlineMs);
        return;
      } catch (error) {
        const unavailable = (error as Partial<grpc.ServiceError>)?.code === grpc.status.UNAVAILABLE;
        if (!unavailable || attempt >= STORE_ATTEMPTS_MAX || this.closed || Date.now() + STORE_RETRY_DELAY_MS >= deadlineMs) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, STORE_RETRY_DELAY_MS));
    }
  }

  /**
   * For each id, whether a majority is known to hold it: known holders first,
   * then this store, then HasBlocks to every other member for the rest.
   * A member that does not answer by deadlineMs counts as not holding.
   */
  async majorityHolds(ids: readonly string[], deadlineMs: number): Promise<boolean[]> {
    if (this.closed) throw new Error('block replicator is closed');
    if (!Array.isArray(ids)) throw new Error('ids is not a list');
    if (ids.length > MAJORITY_HOLDS_IDS_MAX) throw new Error(`${ids.length} ids exceed the ${MAJORITY_HOLDS_IDS_MAX} a call may ask about`);
    ids.forEach((id) => {
      if (!isBlockId(id)) throw new BadBlockIdError(id);
    });
    requireDeadline(deadlineMs);
    const needed = this.majority();
    const enough = (id: string): boolean => (this.knownHolders.get(id)?.size ?? 0) >= needed;
    const unsure = [...new Set(ids.filter((id) => !enough(id)))];
    for (const id of unsure) if (await this.store.has(id)) this.remember(id, this.selfId);
    const ask = unsure.filter((id) => !enough(id));
    if (ask.length > 0) {
      await Promise.all(
        [...this.peers].map(async ([member, peer]) => {
          for (let at = 0; at < ask.length; at += MAX_HAS_BLOCKS_IDS) {
            const chunk = ask.slice(at, at + MAX_HAS_BLOCKS_IDS);
            let reply: HasBlocksReply;
            try {
              reply = await this.call(peer, blockPeerService.HasBlocks, { ids: chunk }, deadlineMs);
            } catch (error) {
              this.logger.warn('block majority check: a member did not answer', { member, error: errorText(error) });
              return;
            }
            if (!Array.isArray(reply.present) || reply.present.length !== chunk.length) {
              this.logger.warn('block majority check: a member answered the wrong number of ids', { member, asked: chunk.length, answered: reply.present?.length });
              return;
            }
            chunk.forEach((id, i) => {
              if (reply.present[i] === true) this.remember(id, member);
            });
          }
        }),
      );
    }
    return ids.map((id) => enough(id));
  }

  /**
   * The block's bytes from another member: known holders first, then the rest,
   * one at a time. Rejects with BlockFetchError (each member's answer) when no
   * member returned bytes that hash to id by deadlineMs.
   */
  async fetch(id: string, deadlineMs: number): Promise<Uint8Array> {
    if (this.closed) throw new Error('block replicator is closed');
    if (!isBlockId(id)) throw new BadBlockIdError(id);
    requireDeadline(deadlineMs);
    const known = this.knownHolders.get(id) ?? new Set<string>();
    const order = [...this.peers].sort(([a], [b]) => Number(known.has(b)) - Number(known.has(a)));
    const failures: MemberFailure[] = [];
    for (const [member, peer] of order) {
      if (Date.now() >= deadlineMs) {
        failures.push({ member, reason: 'deadline passed before asking' });
        continue;
      }
      let reply: FetchBlockReply;
      try {
        reply = await this.call(peer, blockPeerService.FetchBlock, { id }, deadlineMs);
      } catch (error) {
        failures.push({ member, reason: errorText(error) });
        continue;
      }
      if (!reply.found) {
        known.delete(member);
        failures.push({ member, reason: 'does not hold it' });
        continue;
      }
      const bytes = reply.bytes instanceof Uint8Array ? reply.bytes : new Uint8Array(0);
      const actual = blockIdOf(bytes);
      if (actual !== id) {
        failures.push({ member, reason: `sent bytes that hash to ${actual}` });
        continue;
      }
      this.remember(id, member);
      return bytes;
    }
    throw new BlockFetchError(id, failures);
  }

  /** Closes every client; calls after this reject. */
  close(): void {
    this.closed = true;
    for (const peer of this.peers.values()) {
      peer.client?.close();
      peer.client = undefined;
    }
  }
}
