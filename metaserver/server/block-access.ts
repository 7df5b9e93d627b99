/**
 * One member's block side, wired for the metadata server: its block store
 * (DATA/blocks), the BlockPeer service it serves beside the client API, the
 * replicator a leader uploads through, the repair loop every member runs, and
 * the reads and assembly the API handlers need. Owns the translation between
 * the state's content records and block bytes. Must never decide what a
 * version holds (the state machine does) and never delete a block the state
 * has not collected.
 */
import * as grpc from '@grpc/grpc-js';
import type { ClientSecurity } from '../../proto/tls';
import { Registry } from 'prom-client';
import { RaftLogger } from '../../raft/node/node-logger';
import { assembleBlocks } from '../blocks/assemble';
import { blockPeerService } from '../../proto/blocks-proto';
import { BlockPeerService } from '../blocks/block-peer-service';
import { BlockRepair } from '../blocks/block-repair';
import { BlockReplicator } from '../blocks/block-replicator';
import { BlockStore } from '../blocks/block-store';
import { MetaStateMachine } from '../state/meta-state-machine';
import { StoredContent } from '../state/records';
import { AssemblyNeeded, BLOCK_SIZE_BYTES } from '../state/version-content';

/** How often a waiting StoreReplica looks at the applied index. */
const APPLIED_POLL_MS = 5;
/**
 * A stored block the state has no record of, older than this, is an orphan
 * (its collection applied but the member stopped before deleting the file, or
 * it came in a snapshot's gap, or a commit it was assembled for failed).
 * Uploads are pinned before they are stored, and assembled blocks are
 * committed within the request deadline (≤ 2 min), so nothing in flight is
 * this old.
 */
export const ORPHAN_AGE_MS = 10 * 60 * 1000;
const ORPHAN_SWEEP_INTERVAL_MS = 10 * 60 * 1000;
/** Blocks one sweep looks at, at most. */
const MAX_BLOCKS_PER_SWEEP = 1_000_000;

export interface BlockAccessOptions {
  /** Opened with the state machine (openStoreFor), before the node applies anything. */
  store: BlockStore;
  selfId: string;
  /** Every other member's client API address (BlockPeer is served there). */
  peers: ReadonlyMap<string, string>;
  machine: MetaStateMachine;
  logger: RaftLogger;
  registry: Registry;
  /** How often the repair loop runs a pass (BlockRepair's default when absent). */
  repairIntervalMs?: number;
  /** The credentials of this member's BlockPeer calls to the others (proto/tls.ts); plaintext if absent. */
  security?: ClientSecurity;
}

export class BlockAccess {
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;

  private constructor(
    readonly store: BlockStore,
    readonly replicator: BlockReplicator,
    private readonly repair: BlockRepair,
    private readonly peerService: BlockPeerService,
    private readonly machine: MetaStateMachine,
    private readonly logger: RaftLogger,
  ) {}

  /**
   * The member's block store, opened beside its state machine and hooked to
   * it before the node applies anything: collected blocks' bytes go once the
   * collecting batch is durable, before any later entry applies (so a later
   * pin's upload is never deleted by an earlier collection).
   */
  static async openStoreFor(machine: MetaStateMachine, dir: string): Promise<BlockStore> {
    const store = await BlockStore.open(dir);
    machine.onBlocksCollected = async (ids) => {
      for (const id of ids) await store.delete(id);
    };
    return store;
  }

  static create(options: BlockAccessOptions): BlockAccess {
    const store = options.store;
    const replicator = new BlockReplicator({ store, selfId: options.selfId, peers: options.peers, logger: options.logger, security: options.security });
    const machine = options.machine;
    const waitApplied = async (index: number, deadlineMs: number): Promise<void> => {
      // Bounded by the caller's deadline: one look every APPLIED_POLL_MS.
      while ((await machine.appliedIndex()) < index) {
        if (Date.now() >= deadlineMs) throw new Error(`applied index ${await machine.appliedIndex()} did not reach ${index} before the deadline`);
        await new Promise((resolve) => setTimeout(resolve, APPLIED_POLL_MS));
      }
    };
    const peerService = new BlockPeerService({ store, waitApplied, logger: options.logger });
    const repair = new BlockRepair({
      store, fetcher: replicator, referencedIds: () => machine.query.referencedBlockIds(), logger: options.logger, registry: options.registry, minPassIntervalMs: options.repairIntervalMs,
    });
    // A snapshot from the leader brings references to blocks this member never saw: look for them now, not at the next pass.
    machine.onRestored = () => {
      void repair.runOnce().catch((error: Error) => options.logger.warn('block repair after a snapshot failed', { error: error.message }));
    };
    return new BlockAccess(store, replicator, repair, peerService, machine, options.logger);
  }

  /** Serves BlockPeer on the member's gRPC server. */
  addTo(server: grpc.Server): void {
    server.addService(blockPeerService, this.peerService.implementation());
  }

  start(): void {
    this.repair.start();
    this.sweepTimer = setInterval(() => void this.sweepOrphans().catch((error: Error) => this.logger.warn('orphan block sweep failed', { error: error.message })), ORPHAN_SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.sweeping?.catch(() => 0);
    await this.repair.stop();
    this.replicator.close();
  }

  /** Deletes stored blocks the state has no record of and that are older than ageMs; returns how many. One sweep at a time. */
  sweepOrphans(ageMs = ORPHAN_AGE_MS): Promise<number> {
    this.sweeping ??= (async () => {
      let deleted = 0;
      let looked = 0;
      for await (const id of this.store.list()) {
        if (++looked > MAX_BLOCKS_PER_SWEEP) break;
        if (await this.machine.query.hasBlockRecord(id)) continue;
        const age = await this.store.ageMs(id);
        if (age === undefined || age < ageMs) continue;
        await this.store.delete(id);
        deleted += 1;
      }
      if (deleted > 0) this.logger.info('orphan blocks deleted', { deleted, looked });
      return deleted;
    })().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /** A block's bytes: this member's copy, else a peer's (checked against the id either way). */
  async read(id: string, deadlineMs: number): Promise<Uint8Array> {
    const local = await this.store.get(id);
    if (local) return local;
    const fetched = await this.replicator.fetch(id, deadlineMs);
    await this.store.put(id, fetched);
    return fetched;
  }

  /** Bytes [offset, offset + length) of a stored content, cut at its end. */
  async readRange(content: StoredContent, offset: number, length: number, deadlineMs: number): Promise<Uint8Array> {
    const end = Math.min(content.sizeBytes, offset + length);
    if (offset >= end) return new Uint8Array();
    if (!content.blocks) return Buffer.from(content.inlineBase64, 'base64').subarray(offset, end);
    const out = new Uint8Array(end - offset);
    const blockSize = content.blockSizeBytes ?? BLOCK_SIZE_BYTES;
    for (let index = Math.floor(offset / blockSize); index * blockSize < end; index++) {
      const start = index * blockSize;
      const id = content.blocks[index];
      if (id === undefined) throw new Error(`content of ${content.sizeBytes} bytes lists no block ${index}`);
      if (id === '') continue; // a hole: already zeros
      const bytes = await this.read(id, deadlineMs);
      const from = Math.max(offset, start);
      const to = Math.min(end, start + bytes.length);
      out.set(bytes.subarray(from - start, to - start), from - offset);
    }
    return out;
  }

  /**
   * Builds the blocks a commit's apply asked for, stores each on a majority,
   * and returns them as the command's `assembled` field. They need no pin:
   * apply trusts ids the leader names for the head version they were built for.
   */
  async assemble(needed: AssemblyNeeded, deadlineMs: number): Promise<{ forHead: number; ids: Array<[number, string]> }> {
    const built = await assembleBlocks({
      blocks: needed.blocks, sizeBytes: needed.sizeBytes, blockSizeBytes: BLOCK_SIZE_BYTES, head: needed.head, fh: needed.fh,
      readBlock: (id) => this.read(id, deadlineMs),
    });
    for (const block of built) {
      if (block.id !== '') await this.replicator.replicate(block.id, block.bytes, 0, deadlineMs);
    }
    return { forHead: needed.headVersion, ids: built.map((block) => [block.index, block.id]) };
  }
}
