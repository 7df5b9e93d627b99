/**
 * HTTP/2 flow-control windows for every gRPC server and channel of handlefs.
 *
 * Why: HTTP/2 starts each stream (and the connection) with a 64 KiB receive
 * window, and grpc-js keeps that default on servers. A 1 MiB block then
 * crosses in ~16 window round trips between two busy Node processes: a
 * PutBlock measured 35 ms at one in flight on this machine, 27 blocks/s. With
 * windows of several blocks the sender never waits for WINDOW_UPDATE.
 * Memory stays bounded by the callers' own in-flight limits (uploads per fh,
 * StoreReplica calls per peer), not by the window.
 *
 * Owns the window sizes and the one place they are applied; must never hold
 * anything else about a service.
 */
import type * as grpc from '@grpc/grpc-js';

/** A stream's receive window: four whole 1 MiB blocks plus framing. */
export const STREAM_WINDOW_BYTES = 4 * 1024 * 1024 + 64 * 1024;
/** The connection's receive window, shared by every stream on it. */
export const CONNECTION_WINDOW_BYTES = 32 * 1024 * 1024;

/** Channel options that widen a client's receive windows (downloads: GetBlock, FetchBlock). */
export const CLIENT_FLOW_OPTIONS: grpc.ChannelOptions = { 'grpc-node.flow_control_window': CONNECTION_WINDOW_BYTES };

/** The HTTP/2 settings slot grpc-js's Server hands to http2.createServer (not public API in grpc-js 1.14). */
interface ServerWithHttp2Options {
  commonServerOptions?: { settings?: Record<string, unknown> };
}

/**
 * Widens the receive windows of a server's future connections (uploads:
 * PutBlock, StoreReplica, Raft appends). Must run before bindAsync. Throws if
 * grpc-js no longer has the slot, so an upgrade that drops it is noticed by
 * the tests instead of silently slowing every upload 10×.
 */
export function widenServerFlowWindows(server: grpc.Server): void {
  const slot = (server as unknown as ServerWithHttp2Options).commonServerOptions;
  if (slot === undefined || typeof slot !== 'object') throw new Error('grpc-js Server has no commonServerOptions: the flow-control widening in proto/flow-control.ts needs updating for this grpc-js version');
  slot.settings = { ...slot.settings, initialWindowSize: STREAM_WINDOW_BYTES };
}
