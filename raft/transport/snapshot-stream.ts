/**
 * Snapshot streaming over InstallSnapshot: the sending side (chunks written
 * with backpressure, one stream, one deadline, one outcome) and the receiving
 * side's assembler (contiguous offsets, a total-size limit, one Snap message
 * out). Owns: the chunk protocol. Must never hold more than maxSnapshotBytes
 * of a received snapshot, and never report an outcome twice.
 */
import * as grpc from '@grpc/grpc-js';
import { Message, MessageType, NodeId } from '../core/types';
import { encodeMessage, encodeSnapshotChunk, SnapshotChunk } from './codec';
import { DropReason } from './metrics';
import { INSTALL_SNAPSHOT_PATH, SnapshotAck, clientSerializers } from './service';

export interface SnapshotUploadLimits {
  chunkSizeBytes: number;
  maxMessageBytes: number;
  snapshotTimeoutMs: number;
}

/**
 * Streams one Snap message's data to a peer. `done` resolves when the
 * receiver acknowledges every byte and rejects on any failure (stream error,
 * deadline, short acknowledgement, cancel()).
 */
export class SnapshotUpload {
  readonly done: Promise<void>;
  private readonly call: grpc.ClientWritableStream<Buffer>;
  private readonly data: Uint8Array;
  private readonly header: Message;
  private readonly firstChunkDataBytes: number;
  private offsetBytes = 0;
  private headerSent = false;
  private settled = false;
  private resolveDone!: () => void;
  private rejectDone!: (error: Error) => void;

  constructor(
    client: grpc.Client,
    message: Message,
    private readonly limits: SnapshotUploadLimits,
    private readonly onChunkWritten: (dataBytes: number) => void,
  ) {
    if (message.type !== MessageType.Snap || message.snapshot === undefined) throw new Error('SnapshotUpload needs a Snap message with a snapshot');
    this.data = message.snapshot.data;
    this.header = { ...message, snapshot: { metadata: message.snapshot.metadata, data: new Uint8Array(0) } };
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // The first chunk carries the header too: its data shrinks so the frame stays within chunkSizeBytes + FRAME_OVERHEAD_BYTES.
    const headerBytes = encodeMessage(this.header).byteLength;
    if (headerBytes > limits.maxMessageBytes) throw new Error(`snapshot header of ${headerBytes} bytes exceeds maxMessageBytes ${limits.maxMessageBytes}`);
    this.firstChunkDataBytes = Math.max(0, limits.chunkSizeBytes - headerBytes);
    const deadline = Date.now() + limits.snapshotTimeoutMs;
    this.call = client.makeClientStreamRequest<Buffer, SnapshotAck>(
      INSTALL_SNAPSHOT_PATH, clientSerializers.frame, clientSerializers.snapshotAck, new grpc.Metadata(), { deadline },
      (error, ack) => this.onCallEnd(error, ack),
    );
    this.call.on('error', () => { /* reported through the callback */ });
    this.writeMore();
  }

  cancel(): void {
    if (this.settled) return;
    this.call.cancel();
  }

  /** Writes chunks until the stream asks to wait; 'drain' resumes. Each pass writes at least one chunk, so the loop is bounded by the chunk count. */
  private writeMore(): void {
    while (!this.settled) {
      const dataBytes = this.headerSent ? this.limits.chunkSizeBytes : this.firstChunkDataBytes;
      const end = Math.min(this.data.byteLength, this.offsetBytes + dataBytes);
      const chunk: SnapshotChunk = {
        header: this.headerSent ? undefined : this.header,
        offsetBytes: this.offsetBytes,
        data: this.data.subarray(this.offsetBytes, end),
        last: end === this.data.byteLength,
      };
      const frame = encodeSnapshotChunk(chunk);
      this.headerSent = true;
      const writtenBytes = end - this.offsetBytes;
      this.offsetBytes = end;
      const writable = this.call.write(frame);
      this.onChunkWritten(writtenBytes);
      if (chunk.last) {
        this.call.end();
        return;
      }
      if (!writable) {
        this.call.once('drain', () => this.writeMore());
        return;
      }
    }
  }

  private onCallEnd(error: grpc.ServiceError | null, ack: SnapshotAck | undefined): void {
    if (this.settled) return;
    this.settled = true;
    if (error !== null) {
      this.rejectDone(new Error(`snapshot stream failed: ${error.code} ${error.details || error.message}`));
    } else if (ack === undefined || ack.receivedBytes !== this.data.byteLength) {
      this.rejectDone(new Error(`snapshot acknowledged ${ack?.receivedBytes ?? 'no'} bytes of ${this.data.byteLength}`));
    } else {
      this.resolveDone();
    }
  }
}

export class SnapshotStreamError extends Error {
  constructor(readonly reason: DropReason, problem: string) {
    super(problem);
    this.name = 'SnapshotStreamError';
  }
}

/** Reassembles one InstallSnapshot stream; add() returns the complete Snap message on the last chunk. */
export class SnapshotAssembler {
  private header: Message | undefined;
  private readonly chunks: Uint8Array[] = [];
  private receivedBytes = 0;
  private complete = false;

  constructor(private readonly localId: NodeId, private readonly maxSnapshotBytes: number) {}

  get bytesReceived(): number {
    return this.receivedBytes;
  }

  add(chunk: SnapshotChunk): Message | null {
    if (this.complete) throw new SnapshotStreamError('snapshot_invalid', 'chunk after the last one');
    if (this.header === undefined) {
      if (chunk.header === undefined) throw new SnapshotStreamError('snapshot_invalid', 'the first chunk has no header');
      if (chunk.header.to !== this.localId) {
        throw new SnapshotStreamError('wrong_recipient', `snapshot from ${chunk.header.from} is addressed to ${chunk.header.to}, not ${this.localId}`);
      }
      this.header = chunk.header;
    } else {
      if (chunk.header !== undefined) throw new SnapshotStreamError('snapshot_invalid', 'a header on a chunk other than the first');
      if (chunk.data.byteLength === 0 && !chunk.last) throw new SnapshotStreamError('snapshot_invalid', `an empty chunk at offset ${chunk.offsetBytes} that is not the last`);
    }
    if (chunk.offsetBytes !== this.receivedBytes) {
      throw new SnapshotStreamError('snapshot_invalid', `chunk at offset ${chunk.offsetBytes}, expected ${this.receivedBytes} (offsets must be contiguous)`);
    }
    if (this.receivedBytes + chunk.data.byteLength > this.maxSnapshotBytes) {
      throw new SnapshotStreamError('snapshot_too_large', `snapshot from ${this.header.from} exceeds maxSnapshotBytes ${this.maxSnapshotBytes}`);
    }
    if (chunk.data.byteLength > 0) this.chunks.push(chunk.data);
    this.receivedBytes += chunk.data.byteLength;
    if (!chunk.last) return null;
    this.complete = true;
    const data = new Uint8Array(this.receivedBytes);
    let offset = 0;
    for (const piece of this.chunks) {
      data.set(piece, offset);
      offset += piece.byteLength;
    }
    this.chunks.length = 0;
    return { ...this.header, snapshot: { metadata: this.header.snapshot!.metadata, data } };
  }
}
