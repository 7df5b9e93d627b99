/**
 * Everything the transport sends to one peer: one gRPC channel, one
 * long-lived outgoing Stream call fed from a bounded queue in batches, the
 * reconnect loop with exponential backoff and jitter, and at most one
 * snapshot upload at a time. Owns: that peer's queue and stream state.
 * Must never block the caller, never grow the queue past its bounds, and
 * never retry a message itself (Raft retries; a failed stream drops what was queued).
 */
import * as grpc from '@grpc/grpc-js';
import { Message, NodeId } from '../core/types';
import { RaftCodecError, batchFrameOverheadBytes, encodeBatchFrame } from './codec';
import { DropReason, RateLimitedLog, TransportMetrics } from './metrics';
import { TransportLimits, TransportLogger } from './options';
import { STREAM_PATH, StreamAck, channelOptions, clientSerializers } from './service';
import { SnapshotUpload } from './snapshot-stream';
import { ClientSecurity, PLAINTEXT } from '../../proto/tls';

export interface PeerSenderContext {
  localId: NodeId;
  limits: TransportLimits;
  metrics: TransportMetrics;
  logger: TransportLogger;
  log: RateLimitedLog;
  reportUnreachable(peer: NodeId): void;
  reportSnapshotStatus(peer: NodeId, ok: boolean): void;
  /** The channel's credentials (mutual TLS between members when configured); plaintext if absent. */
  security?: ClientSecurity;
}

/**
 * idle → connecting (stream opened, waiting for the peer's response headers)
 *      → streaming (queue flushes into the stream)
 *      → backoff (after a failure; the queue keeps filling, within bounds) → connecting …
 * closed is final.
 */
export type PeerStreamState = 'connecting' | 'streaming' | 'backoff' | 'closed';

export interface PeerStats {
  peer: NodeId;
  address: string;
  state: PeerStreamState;
  queuedMessages: number;
  queuedBytes: number;
  consecutiveFailures: number;
  /** Times the stream said "full" (write() returned false) and the sender waited for 'drain'. */
  streamFullWaits: number;
  snapshotInFlight: boolean;
}

/** Doubling stops here: 2^20 × any initial backoff exceeds every sane max. */
const BACKOFF_EXPONENT_MAX = 20;

/**
 * The wait before reconnect attempt number `consecutiveFailures` (≥ 1):
 * exponential from initialMs, capped at maxMs, with jitter in [½, 1] of the
 * step so that peers cut off together do not retry in lockstep.
 */
export function reconnectDelayMs(consecutiveFailures: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  if (!Number.isInteger(consecutiveFailures) || consecutiveFailures < 1) throw new Error(`reconnectDelayMs: consecutiveFailures must be ≥ 1, got ${consecutiveFailures}`);
  const exponent = Math.min(consecutiveFailures - 1, BACKOFF_EXPONENT_MAX);
  const stepMs = Math.min(maxMs, initialMs * 2 ** exponent);
  return Math.round(stepMs / 2 + random() * (stepMs / 2));
}
/** Compact the queue array once this many consumed slots sit at its head. */
const QUEUE_COMPACT_THRESHOLD = 1024;

export class PeerSender {
  private readonly client: grpc.Client;
  private state: PeerStreamState = 'connecting';
  private call: grpc.ClientWritableStream<Buffer> | null = null;
  /** Encoded messages; queue[queueHead] is the oldest. */
  private queue: Uint8Array[] = [];
  private queueHead = 0;
  private queueBytes = 0;
  private flushScheduled = false;
  private waitingForDrain = false;
  private consecutiveFailures = 0;
  private streamFullWaits = 0;
  private failureReason = '';
  private timer: NodeJS.Timeout | null = null;
  private snapshotUpload: SnapshotUpload | null = null;

  constructor(readonly peer: NodeId, readonly address: string, private readonly ctx: PeerSenderContext) {
    const security = ctx.security ?? PLAINTEXT;
    this.client = new grpc.Client(address, security.credentials, { ...channelOptions(ctx.limits), ...security.clientOptions });
    this.openStream();
  }

  get queuedMessages(): number {
    return this.queue.length - this.queueHead;
  }

  stats(): PeerStats {
    return {
      peer: this.peer, address: this.address, state: this.state, queuedMessages: this.queuedMessages,
      queuedBytes: this.queueBytes, consecutiveFailures: this.consecutiveFailures, streamFullWaits: this.streamFullWaits, snapshotInFlight: this.snapshotUpload !== null,
    };
  }

  /** Queues one encoded message (≤ maxMessageBytes, checked by the caller). */
  enqueue(encoded: Uint8Array): void {
    const limits = this.ctx.limits;
    if (this.state === 'closed') return this.drop('closed', 1, 'the transport is closed');
    if (this.queuedMessages >= limits.maxQueueMessages || this.queueBytes + encoded.byteLength > limits.maxQueueBytes) {
      return this.drop('queue_full', 1, `queue to ${this.peer} is full (${this.queuedMessages} messages, ${this.queueBytes} bytes)`);
    }
    this.queue.push(encoded);
    this.queueBytes += encoded.byteLength;
    this.scheduleFlush();
  }

  /** Starts streaming a Snap message's data; a second one while the first runs is dropped (the first reports the outcome). */
  sendSnapshot(message: Message): void {
    if (this.state === 'closed') return this.drop('closed', 1, 'the transport is closed');
    if (this.snapshotUpload !== null) {
      return this.drop('snapshot_busy', 1, `a snapshot to ${this.peer} is already streaming; dropped another at index ${message.snapshot?.metadata.index}`);
    }
    let upload: SnapshotUpload;
    try {
      upload = new SnapshotUpload(this.client, message, this.ctx.limits, (dataBytes) => this.ctx.metrics.snapshotBytesSent.inc(dataBytes));
    } catch (error) {
      this.drop(error instanceof RaftCodecError ? 'invalid' : 'oversized', 1, `snapshot to ${this.peer} not sent: ${(error as Error).message}`);
      this.ctx.reportSnapshotStatus(this.peer, false);
      return;
    }
    this.snapshotUpload = upload;
    this.ctx.metrics.messagesSent.inc();
    const sizeBytes = message.snapshot!.data.byteLength;
    upload.done.then(
      () => this.finishSnapshot(upload, true, `snapshot of ${sizeBytes} bytes at index ${message.snapshot!.metadata.index} delivered to ${this.peer}`),
      (error: Error) => this.finishSnapshot(upload, false, `snapshot to ${this.peer} failed: ${error.message}`),
    );
  }

  /**
   * Drops what is queued and cancels every call. `reportSnapshotFailure`: a
   * peer removed or readdressed by setPeers reports its cut snapshot as failed
   * (the core must not wait for it); a closing transport reports nothing.
   */
  close(reportSnapshotFailure: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearTimer();
    this.dropQueue('closed', `the stream to ${this.peer} is closed`);
    const call = this.call;
    this.call = null;
    call?.cancel();
    if (this.snapshotUpload !== null) {
      this.snapshotUpload.cancel();
      this.snapshotUpload = null;
      if (reportSnapshotFailure) this.ctx.reportSnapshotStatus(this.peer, false);
    }
    this.client.close();
  }

  private finishSnapshot(upload: SnapshotUpload, ok: boolean, line: string): void {
    if (this.snapshotUpload !== upload) return; // closed meanwhile
    this.snapshotUpload = null;
    if (ok) this.ctx.logger.info(line);
    else this.ctx.log.warn(`snapshot:${this.peer}`, line);
    this.ctx.reportSnapshotStatus(this.peer, ok);
  }

  // ------------------------------------------------------------ the stream

  private openStream(): void {
    this.state = 'connecting';
    this.failureReason = '';
    const call = this.client.makeClientStreamRequest<Buffer, StreamAck>(
      STREAM_PATH, clientSerializers.frame, clientSerializers.streamAck, new grpc.Metadata(), {},
      (error) => this.onStreamEnd(call, error),
    );
    this.call = call;
    // The server answers with headers at once: that is the sign the peer is there and listening.
    call.on('metadata', () => this.onStreamAccepted(call));
    call.on('error', () => { /* reported through the callback */ });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.failStream(call, `no answer within ${this.ctx.limits.connectTimeoutMs} ms`);
    }, this.ctx.limits.connectTimeoutMs);
  }

  private onStreamAccepted(call: grpc.ClientWritableStream<Buffer>): void {
    if (call !== this.call || this.state !== 'connecting') return;
    this.clearTimer();
    if (this.consecutiveFailures > 0) {
      this.ctx.metrics.peerReconnects.inc({ peer: this.peer });
      this.ctx.logger.info(`stream to ${this.peer} at ${this.address} reconnected after ${this.consecutiveFailures} failures`);
    }
    this.consecutiveFailures = 0;
    this.state = 'streaming';
    this.scheduleFlush();
  }

  private failStream(call: grpc.ClientWritableStream<Buffer>, reason: string): void {
    if (call !== this.call) return;
    this.failureReason = reason;
    call.cancel();
  }

  private onStreamEnd(call: grpc.ClientWritableStream<Buffer>, error: grpc.ServiceError | null): void {
    if (call !== this.call || this.state === 'closed') return;
    this.call = null;
    this.clearTimer();
    this.waitingForDrain = false;
    const reason = this.failureReason || (error === null ? 'the peer ended the stream' : `${grpc.status[error.code] ?? error.code}: ${error.details || error.message}`);
    this.consecutiveFailures++;
    this.dropQueue('peer_unreachable', `stream to ${this.peer} failed`);
    const backoffMs = reconnectDelayMs(this.consecutiveFailures, this.ctx.limits.reconnectBackoffInitialMs, this.ctx.limits.reconnectBackoffMaxMs);
    this.ctx.log.warn(`unreachable:${this.peer}`, `stream to ${this.peer} at ${this.address} failed (${reason}); retrying in ${backoffMs} ms`);
    this.state = 'backoff';
    this.timer = setTimeout(() => {
      this.timer = null;
      this.openStream();
    }, backoffMs);
    this.ctx.reportUnreachable(this.peer);
  }

  // ------------------------------------------------------------- the queue

  /** Flushes on the next turn of the event loop, so messages sent in the same turn share a batch. */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.waitingForDrain || this.state !== 'streaming') return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes batches while the stream accepts them; each pass removes at least one message, so the loop ends. */
  private flush(): void {
    const call = this.call;
    const { maxBatchMessages, maxMessageBytes } = this.ctx.limits;
    while (this.state === 'streaming' && call !== null && !this.waitingForDrain && this.queuedMessages > 0) {
      const batch: Uint8Array[] = [];
      let frameBytes = 0;
      while (this.queuedMessages > 0 && batch.length < maxBatchMessages) {
        const next = this.queue[this.queueHead]!;
        const nextFrameBytes = next.byteLength + batchFrameOverheadBytes(next.byteLength);
        if (batch.length > 0 && frameBytes + nextFrameBytes > maxMessageBytes) break;
        batch.push(next);
        frameBytes += nextFrameBytes;
        this.queueHead++;
        this.queueBytes -= next.byteLength;
      }
      this.compactQueue();
      const writable = call.write(encodeBatchFrame(batch));
      this.ctx.metrics.messagesSent.inc(batch.length);
      if (!writable) {
        this.waitingForDrain = true;
        this.streamFullWaits++;
        call.once('drain', () => {
          if (call !== this.call) return;
          this.waitingForDrain = false;
          this.flush();
        });
      }
    }
  }

  private compactQueue(): void {
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead >= QUEUE_COMPACT_THRESHOLD && this.queueHead * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private dropQueue(reason: DropReason, line: string): void {
    const count = this.queuedMessages;
    this.queue = [];
    this.queueHead = 0;
    this.queueBytes = 0;
    if (count > 0) this.drop(reason, count, `${line}: ${count} queued messages dropped`);
  }

  private drop(reason: DropReason, count: number, line: string): void {
    this.ctx.metrics.dropped(reason, count);
    this.ctx.log.warn(`drop:${reason}`, line);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
