/**
 * Block uploads straight to the members. A block is pinned through the leader
 * (PinBlocks: the pins of blocks uploaded at the same time share one log
 * entry) and then stored by the client itself on every member it knows
 * (BlockPeer.StoreReplica on the members' client ports, the request encoded
 * once), so the leader forwards no bytes: a write's bandwidth and CPU spread
 * over the members, as GFS and MooseFS clients write to chunk servers.
 *
 * An upload returns once a majority of the known members has stored the block
 * durably; the rest finish in the background within STORE_ATTEMPT_MS (a
 * member that misses a block gets it from its repair pass). When no majority
 * can be reached directly (fewer than three members known, members down) the
 * block goes through the leader (PutBlock), which replicates it itself. On
 * either path the leader refuses a commit naming a block no majority holds,
 * so a wrong guess here costs time, never data.
 *
 * Owns the upload protocol and the pin batching; must never decide what a
 * block contains or when a version commits.
 */
import { encodeStoreReplicaRequest, storeReplicaEncoded } from '../../proto/blocks-proto';
import { EAGAIN, MetaError } from './errors';
import type { LeaderChannel } from './leader-channel';

/** Fewer known members than this and blocks go through the leader (one member's copy is no majority of anything). */
export const DIRECT_MEMBERS_MIN = 3;
/** Ids in one PinBlocks call (the server's limit). */
export const PIN_BATCH_IDS_MAX = 64;
/** PinBlocks calls in flight at once: the next batch fills while one is on its way. */
const PINS_IN_FLIGHT_MAX = 2;
/** Uploads waiting for a pin at most; more answer EAGAIN (callers bound their own uploads far below this). */
const PIN_QUEUE_MAX = 4_096;
/**
 * One member's StoreReplica gets at most this long: a stopped member must not
 * hold the upload until the call's deadline, and a store still running after
 * the majority answered (it holds the block's bytes) ends by then.
 */
const STORE_ATTEMPT_MS = 5_000;

export interface UploaderCalls {
  /** Pins ids (PinBlocks, a session mutation); resolves with the applied index every member must reach before storing them. */
  pin(ids: string[], newBytes: number): Promise<number>;
  /** Uploads through the leader (PutBlock with the bytes): it stores them on a majority itself. */
  putViaLeader(data: Uint8Array, id: string): Promise<void>;
}

export interface UploadStats {
  direct: number;
  viaLeader: number;
  pinCalls: number;
  /** StoreReplica calls that failed or ran out of time (a majority may still have answered), and the last reason. */
  storeFailures: number;
  lastStoreFailure: string;
}

interface PinWaiter {
  id: string;
  bytes: number;
  resolve(appliedIndex: number): void;
  reject(error: unknown): void;
}

export class BlockUploader {
  readonly stats: UploadStats = { direct: 0, viaLeader: 0, pinCalls: 0, storeFailures: 0, lastStoreFailure: '' };
  private readonly pinQueue: PinWaiter[] = [];
  private pinsInFlight = 0;

  constructor(private readonly channel: LeaderChannel, private readonly calls: UploaderCalls) {}

  /** Stores a block whose SHA-256 hex is `id` on a majority, pinned; resolves once it is durable there. */
  async upload(data: Uint8Array, id: string, deadlineAt: number): Promise<void> {
    const members = [...this.channel.members];
    if (members.length >= DIRECT_MEMBERS_MIN) {
      const appliedIndex = await this.pin(id, data.byteLength);
      const encoded = encodeStoreReplicaRequest({ id, bytes: data, minAppliedIndex: appliedIndex });
      if (await this.storeOnMajority(members, encoded, deadlineAt)) {
        this.stats.direct++;
        return;
      }
    }
    this.stats.viaLeader++;
    await this.calls.putViaLeader(data, id);
  }

  private pin(id: string, bytes: number): Promise<number> {
    if (this.pinQueue.length >= PIN_QUEUE_MAX) return Promise.reject(new MetaError(EAGAIN, `${this.pinQueue.length} block uploads already wait for their pins`));
    return new Promise<number>((resolve, reject) => {
      this.pinQueue.push({ id, bytes, resolve, reject });
      this.sendPins();
    });
  }

  private sendPins(): void {
    while (this.pinsInFlight < PINS_IN_FLIGHT_MAX && this.pinQueue.length > 0) {
      const batch = this.pinQueue.splice(0, PIN_BATCH_IDS_MAX);
      // The same block uploaded twice at once (a file of repeated content) is pinned, and counted, once.
      const bytesById = new Map(batch.map((w) => [w.id, w.bytes]));
      const ids = [...bytesById.keys()];
      const newBytes = [...bytesById.values()].reduce((sum, bytes) => sum + bytes, 0);
      this.pinsInFlight++;
      this.stats.pinCalls++;
      this.calls.pin(ids, newBytes).then(
        (appliedIndex) => batch.forEach((w) => w.resolve(appliedIndex)),
        (error: unknown) => batch.forEach((w) => w.reject(error)),
      ).finally(() => {
        this.pinsInFlight--;
        this.sendPins();
      });
    }
  }

  /** True once a majority of `members` stored the block; false as soon as too many failed for that. */
  private storeOnMajority(members: string[], encoded: Buffer, deadlineAt: number): Promise<boolean> {
    const needed = Math.floor(members.length / 2) + 1;
    const attemptDeadline = Math.min(deadlineAt, Date.now() + STORE_ATTEMPT_MS);
    return new Promise<boolean>((resolve) => {
      let stored = 0;
      let failed = 0;
      for (const address of members) {
        this.channel.callMember(address, storeReplicaEncoded, encoded, attemptDeadline).then(
          () => {
            stored++;
            if (stored === needed) resolve(true);
          },
          (error: Error) => {
            this.stats.storeFailures++;
            this.stats.lastStoreFailure = `${address}: ${error.message}`;
            failed++;
            if (failed === members.length - needed + 1) resolve(false);
          },
        );
      }
    });
  }
}
