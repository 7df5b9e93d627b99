/**
 * The BlockPeer gRPC service (proto/blocks.proto) over one member's BlockStore:
 * StoreReplica (wait until the state machine applied the leader's index, then
 * store durably), FetchBlock and HasBlocks. The answer functions are exported
 * so the metadata API can serve clients' GetBlock/HasBlocks from the same
 * store. Owns request validation and the mapping of failures to gRPC status
 * codes; must never store bytes that do not hash to their id, never throw out
 * of a handler (every failure is a status), and never decide whether a block
 * is referenced.
 */
import * as grpc from '@grpc/grpc-js';
import { MalformedRequest, isMalformedRequest } from '../../proto/grpc-method';
import { RaftLogger, silentLogger } from '../../raft/node/node-logger';
import { FetchBlockReply, FetchBlockRequest, HasBlocksReply, HasBlocksRequest, MAX_HAS_BLOCKS_IDS, StoreReplicaReply, StoreReplicaRequest } from '../../proto/blocks-proto';
import { BlockHashMismatchError, BlockStore, BlockTooLargeError, MAX_BLOCK_BYTES, describeId, isBlockId } from './block-store';

/** Resolves once the local state machine applied index; rejects at deadlineMs (a Date.now() time). */
export type WaitApplied = (index: number, deadlineMs: number) => Promise<void>;

/** A request the caller got wrong, or a wait that ran out: carries its gRPC status. */
export class BlockRequestError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
    this.name = 'BlockRequestError';
  }
}

function invalid(message: string): BlockRequestError {
  return new BlockRequestError(grpc.status.INVALID_ARGUMENT, message);
}

function requireRequest(request: unknown, what: string): asserts request is Record<string, unknown> {
  if (typeof request !== 'object' || request === null) throw invalid(`${what} is not a message`);
}

function requireId(value: unknown, field: string): string {
  if (!isBlockId(value)) throw invalid(`${field} ${describeId(value)} is not a block id (64 lowercase hex digits)`);
  return value;
}

function requireBytes(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid(`${field} is not bytes`);
  if (value.length > MAX_BLOCK_BYTES) throw invalid(`${field} has ${value.length} bytes, over the ${MAX_BLOCK_BYTES}-byte block limit`);
  return value;
}

/** Stores a replica once minAppliedIndex is applied here (the leader's state references the block by then). */
export async function answerStoreReplica(store: BlockStore, waitApplied: WaitApplied, request: StoreReplicaRequest, deadlineMs: number): Promise<StoreReplicaReply> {
  requireRequest(request, 'StoreReplica request');
  const id = requireId(request.id, 'id');
  const bytes = requireBytes(request.bytes, 'bytes');
  const index = request.minAppliedIndex;
  if (!Number.isSafeInteger(index) || index < 0) throw invalid(`min_applied_index ${String(index)} is not a non-negative integer`);
  try {
    await waitApplied(index, deadlineMs);
  } catch (error) {
    const code = Date.now() >= deadlineMs ? grpc.status.DEADLINE_EXCEEDED : grpc.status.UNAVAILABLE;
    throw new BlockRequestError(code, `applied index did not reach ${index}: ${(error as Error).message}`);
  }
  try {
    await store.put(id, bytes);
  } catch (error) {
    if (error instanceof BlockHashMismatchError || error instanceof BlockTooLargeError) throw invalid(error.message);
    throw error;
  }
  return {};
}

export async function answerFetchBlock(store: BlockStore, request: FetchBlockRequest): Promise<FetchBlockReply> {
  requireRequest(request, 'FetchBlock request');
  const id = requireId(request.id, 'id');
  const bytes = await store.get(id);
  return bytes === undefined ? { bytes: new Uint8Array(0), found: false } : { bytes, found: true };
}

export async function answerHasBlocks(store: BlockStore, request: HasBlocksRequest): Promise<HasBlocksReply> {
  requireRequest(request, 'HasBlocks request');
  const ids = request.ids;
  if (!Array.isArray(ids)) throw invalid('ids is not a list');
  if (ids.length > MAX_HAS_BLOCKS_IDS) throw invalid(`ids has ${ids.length} entries, over the limit of ${MAX_HAS_BLOCKS_IDS}`);
  ids.forEach((id, i) => requireId(id, `ids[${i}]`));
  return { present: await Promise.all(ids.map((id) => store.has(id))) };
}

export interface BlockPeerServiceOptions {
  store: BlockStore;
  waitApplied: WaitApplied;
  /** The longest a StoreReplica waits for its index when the call has no (or a later) deadline. */
  maxWaitMs?: number;
  logger?: RaftLogger;
}

const DEFAULT_MAX_WAIT_MS = 10_000;

function deadlineMsOf(call: grpc.ServerUnaryCall<unknown, unknown>, maxWaitMs: number): number {
  const bound = Date.now() + maxWaitMs;
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  return Number.isFinite(ms) ? Math.min(ms, bound) : bound;
}

export class BlockPeerService {
  private readonly maxWaitMs: number;
  private readonly logger: RaftLogger;

  constructor(private readonly options: BlockPeerServiceOptions) {
    if (!(options.store instanceof BlockStore)) throw new Error('BlockPeerService needs a BlockStore');
    if (typeof options.waitApplied !== 'function') throw new Error('BlockPeerService needs a waitApplied function');
    this.maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    if (!Number.isSafeInteger(this.maxWaitMs) || this.maxWaitMs <= 0) throw new Error(`maxWaitMs ${String(options.maxWaitMs)} is not a positive integer`);
    this.logger = options.logger ?? silentLogger;
  }

  /** Handlers for server.addService(blockPeerService, ...). */
  implementation(): grpc.UntypedServiceImplementation {
    const { store, waitApplied } = this.options;
    type Handler = (request: unknown, call: grpc.ServerUnaryCall<unknown, unknown>) => Promise<unknown>;
    const handlers: Record<string, Handler> = {
      StoreReplica: (request, call) => answerStoreReplica(store, waitApplied, request as StoreReplicaRequest, deadlineMsOf(call, this.maxWaitMs)),
      FetchBlock: (request) => answerFetchBlock(store, request as FetchBlockRequest),
      HasBlocks: (request) => answerHasBlocks(store, request as HasBlocksRequest),
    };
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(handlers)) {
      implementation[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const request = call.request as unknown | MalformedRequest;
        if (isMalformedRequest(request)) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: request.malformed });
          return;
        }
        let answer: Promise<unknown>;
        try {
          answer = handler(request, call);
        } catch (error) {
          answer = Promise.reject(error);
        }
        answer.then(
          (reply) => callback(null, reply),
          (error: unknown) => callback(this.statusOf(name, error)),
        );
      };
    }
    return implementation;
  }

  private statusOf(method: string, error: unknown): Partial<grpc.StatusObject> {
    if (error instanceof BlockRequestError) return { code: error.code, details: error.message };
    this.logger.error('block peer: request failed', { method, error: String(error) });
    return { code: grpc.status.INTERNAL, details: `${method} failed: ${(error as Error)?.message ?? String(error)}` };
  }
}
