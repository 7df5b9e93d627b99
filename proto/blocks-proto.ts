/**
 * The gRPC definition of proto/blocks.proto (package handlefs.blocks, service
 * BlockPeer) and the TypeScript shapes of its messages as protobufjs decodes
 * them (uint64 as number, bytes as Uint8Array). Shared by the peer service and
 * the replicator's clients. Owns the schema binding only; must never carry
 * server or client logic.
 */
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { MalformedRequest, asBuffer, unaryMethod } from './grpc-method';
import { protoPath } from './proto-path';

/** HasBlocks asks about at most this many ids a call. */
export const MAX_HAS_BLOCKS_IDS = 1024;

export interface StoreReplicaRequest { id: string; bytes: Uint8Array; minAppliedIndex: number }
export type StoreReplicaReply = Record<string, never>;
export interface FetchBlockRequest { id: string }
export interface FetchBlockReply { bytes: Uint8Array; found: boolean }
export interface HasBlocksRequest { ids: string[] }
export interface HasBlocksReply { present: boolean[] }

const root = protobuf.loadSync(protoPath('blocks.proto'));

function method<Req, Res>(name: string, requestType: string, responseType: string): grpc.MethodDefinition<Req | MalformedRequest, Res> {
  return unaryMethod<Req, Res>(root, 'handlefs.blocks', 'BlockPeer', name, requestType, responseType);
}

export const blockPeerService = {
  StoreReplica: method<StoreReplicaRequest, StoreReplicaReply>('StoreReplica', 'StoreReplicaRequest', 'StoreReplicaReply'),
  FetchBlock: method<FetchBlockRequest, FetchBlockReply>('FetchBlock', 'FetchBlockRequest', 'FetchBlockReply'),
  HasBlocks: method<HasBlocksRequest, HasBlocksReply>('HasBlocks', 'HasBlocksRequest', 'HasBlocksReply'),
};

export type BlockPeerMethod = keyof typeof blockPeerService;

const storeReplicaRequestType = root.lookupType('handlefs.blocks.StoreReplicaRequest');

/**
 * A StoreReplica request encoded once, for a sender that stores the same block
 * on several members: each send then hands grpc-js the same bytes instead of
 * encoding (and allocating) the 1 MiB again.
 */
export function encodeStoreReplicaRequest(request: StoreReplicaRequest): Buffer {
  return asBuffer(storeReplicaRequestType.encode(request).finish());
}

/** StoreReplica taking a request encoded by encodeStoreReplicaRequest (the wire is the same as blockPeerService.StoreReplica's). */
export const storeReplicaEncoded: grpc.MethodDefinition<Buffer, StoreReplicaReply> = {
  ...blockPeerService.StoreReplica,
  requestSerialize: (encoded: Buffer) => encoded,
  requestDeserialize: (bytes: Buffer) => bytes,
} as grpc.MethodDefinition<Buffer, StoreReplicaReply>;

/**
 * gRPC channel options for block traffic: a 1 MiB block plus framing must
 * fit (grpc-js allows 4 MiB by default; said here so nobody lowers it), and a
 * restarted member is reached again within a second (grpc's reconnect backoff
 * otherwise grows to two minutes).
 */
export const BLOCK_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
  'grpc.max_send_message_length': 4 * 1024 * 1024,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
  // One connection per replicator and member, not shared with other clients in the process.
  'grpc.use_local_subchannel_pool': 1,
};
