/**
 * The RaftTransport gRPC service written by hand (no proto-loader): method
 * paths, serializers and the channel/server options derived from the limits.
 * Owns: how frames cross gRPC. Must never decode inside a deserializer: a
 * deserializer that throws makes grpc-js end the whole stream, so request
 * frames stay raw Buffers and the handlers decode them (and drop a bad one).
 */
import * as grpc from '@grpc/grpc-js';
import { decodeSnapshotAck, decodeStreamAck, encodeSnapshotAck, encodeStreamAck } from './codec';
import { TransportLimits } from './options';

export const STREAM_PATH = '/handlefs.raft.RaftTransport/Stream';
export const INSTALL_SNAPSHOT_PATH = '/handlefs.raft.RaftTransport/InstallSnapshot';

/** Framing beyond the payload limit a valid frame may carry (batch tags and lengths, chunk offset and flags). */
export const FRAME_OVERHEAD_BYTES = 64;

export interface StreamAck { receivedMessages: number }
export interface SnapshotAck { receivedBytes: number }

/** Request frames are built (and, on receipt, decoded) by the transport itself: gRPC passes them through untouched. */
function passThrough(frame: Buffer): Buffer {
  return frame;
}

export const RAFT_TRANSPORT_SERVICE = {
  stream: {
    path: STREAM_PATH,
    requestStream: true,
    responseStream: false,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: (ack: StreamAck) => encodeStreamAck(ack.receivedMessages),
    responseDeserialize: decodeStreamAck,
  },
  installSnapshot: {
    path: INSTALL_SNAPSHOT_PATH,
    requestStream: true,
    responseStream: false,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: (ack: SnapshotAck) => encodeSnapshotAck(ack.receivedBytes),
    responseDeserialize: decodeSnapshotAck,
  },
} satisfies grpc.ServiceDefinition;

export const clientSerializers = {
  frame: passThrough,
  streamAck: decodeStreamAck,
  snapshotAck: decodeSnapshotAck,
};

/** Frames up to this size are read and judged by the transport; a valid frame is at most maxMessageBytes + FRAME_OVERHEAD_BYTES. */
export function frameSoftLimitBytes(limits: TransportLimits): number {
  return limits.maxMessageBytes + FRAME_OVERHEAD_BYTES;
}

/**
 * gRPC's own cap, twice the soft limit: frames between the two are dropped and
 * counted by the transport while the stream lives on; beyond it grpc-js ends
 * the stream with RESOURCE_EXHAUSTED before anything is buffered.
 */
export function frameHardLimitBytes(limits: TransportLimits): number {
  return 2 * frameSoftLimitBytes(limits);
}

function keepaliveOptions(limits: TransportLimits): grpc.ChannelOptions {
  return {
    'grpc.keepalive_time_ms': limits.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': limits.keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_send_message_length': frameHardLimitBytes(limits),
    'grpc.max_receive_message_length': frameHardLimitBytes(limits),
  };
}

export function channelOptions(limits: TransportLimits): grpc.ChannelOptions {
  return {
    ...keepaliveOptions(limits),
    // The subchannel's own reconnect backoff, kept in step with the stream backoff (grpc's default starts at 1 s).
    'grpc.initial_reconnect_backoff_ms': limits.reconnectBackoffInitialMs,
    'grpc.max_reconnect_backoff_ms': limits.reconnectBackoffMaxMs,
    // Retries would buffer stream messages for replay; Raft retries on its own.
    'grpc.enable_retries': 0,
    // One connection per transport and peer, not shared with other transports in the process (tests run several).
    'grpc.use_local_subchannel_pool': 1,
  };
}

/** A legitimate peer holds two streams at most (messages and one snapshot); the cap bounds what a misbehaving client can open. */
const SERVER_STREAMS_PER_CONNECTION_MAX = 16;

export function serverOptions(limits: TransportLimits): grpc.ServerOptions {
  return {
    ...keepaliveOptions(limits),
    'grpc.max_concurrent_streams': SERVER_STREAMS_PER_CONNECTION_MAX,
  };
}
