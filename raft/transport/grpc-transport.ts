/**
 * GrpcTransport: the Raft Transport (raft/node/interfaces.ts) over
 * @grpc/grpc-js. Owns: the server that receives (message streams and
 * snapshot streams), the PeerSender per peer, the fault hook, metrics and the
 * drop log. Must never crash or throw on bad input from the network (drop,
 * count, log), never block send(), and never judge Raft semantics: unknown
 * senders and stale terms are the core's to drop.
 *
 * Why client streaming: Raft traffic is one-way per direction (the replies
 * are messages the other member sends on its own stream, as in etcd's
 * rafthttp), so each member opens one Stream call to each peer and only
 * writes; nothing flows back but the response headers that say "accepted".
 * A bidi stream would add a read side nobody uses; unary calls cap at
 * ~7,600/s here against ~60,000 messages/s on a stream, and batching
 * (one write per turn of the event loop) raises that further.
 */
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { Member, Message, MessageType, NodeId } from '../core/types';
import { Transport } from '../node/interfaces';
import { RaftCodecError, decodeBatchFrame, decodeSnapshotChunk, encodeMessage } from './codec';
import { DropReason, RateLimitedLog, TransportMetrics } from './metrics';
import {
  FaultDecision, FaultHook, GrpcTransportOptions, TransportConfigError, TransportLimits, TransportLogger,
  consoleLogger, parseHostPort, validateLimits, validateNodeId, validatePeers,
} from './options';
import { PeerSender, PeerStats } from './peer-sender';
import { RAFT_TRANSPORT_SERVICE, SnapshotAck, StreamAck, frameSoftLimitBytes, serverOptions } from './service';
import { SnapshotAssembler, SnapshotStreamError } from './snapshot-stream';
import { ClientSecurity, TlsMaterial, clientSecurity, serverCredentials } from '../../proto/tls';

type MessageListener = (message: Message) => void;

/** The fault hook's delays are capped here (a longer one would be a test bug, and timers overflow past 2^31 ms). */
const FAULT_DELAY_MS_MAX = 60_000;

export class GrpcTransport implements Transport {
  readonly localId: NodeId;
  readonly listenAddress: string;
  readonly limits: TransportLimits;
  readonly metrics: TransportMetrics;
  private readonly listenHost: string;
  private readonly logger: TransportLogger;
  private readonly log: RateLimitedLog;
  private readonly faultHook: FaultHook | undefined;
  private readonly tls: TlsMaterial | undefined;
  private readonly security: ClientSecurity;
  private readonly peers = new Map<NodeId, PeerSender>();
  private readonly unreachableListeners: ((peer: NodeId) => void)[] = [];
  private readonly snapshotStatusListeners: ((peer: NodeId, ok: boolean) => void)[] = [];
  private readonly delayTimers = new Set<NodeJS.Timeout>();
  private server: grpc.Server | null = null;
  private onMessage: MessageListener | null = null;
  private port = 0;
  private incomingSnapshots = 0;
  private closed = false;

  constructor(options: GrpcTransportOptions) {
    this.localId = validateNodeId(options?.localId, 'localId');
    try {
      this.listenHost = parseHostPort(options.listenAddress, true).host;
    } catch (error) {
      throw new TransportConfigError(`listenAddress: ${(error as Error).message}`);
    }
    this.listenAddress = options.listenAddress;
    this.limits = validateLimits(options.limits);
    if (options.faultHook !== undefined && typeof options.faultHook !== 'function') throw new TransportConfigError('faultHook must be a function');
    this.faultHook = options.faultHook;
    if (options.tls !== undefined && (options.tls.cert === undefined || options.tls.key === undefined)) {
      throw new TransportConfigError('tls: a member needs its own certificate and key (mutual TLS between members)');
    }
    this.tls = options.tls;
    this.security = clientSecurity(options.tls);
    this.metrics = new TransportMetrics(options.registry ?? new Registry());
    this.logger = options.logger ?? consoleLogger(this.localId);
    this.log = new RateLimitedLog(this.logger, this.limits.logIntervalMs);
  }

  /** The port the server is bound to (the real one when listenAddress asked for port 0). */
  get boundPort(): number {
    if (this.port === 0) throw new Error('raft transport: not listening yet (call start first)');
    return this.port;
  }

  /** "host:boundPort", what peers should be given as this member's address. */
  get boundAddress(): string {
    const host = this.listenHost.includes(':') ? `[${this.listenHost}]` : this.listenHost;
    return `${host}:${this.boundPort}`;
  }

  async start(onMessage: MessageListener): Promise<void> {
    if (this.closed) throw new Error('raft transport: start after close');
    if (this.server !== null) throw new Error('raft transport: already started');
    if (typeof onMessage !== 'function') throw new TransportConfigError('start needs an onMessage function');
    const server = new grpc.Server(serverOptions(this.limits));
    server.addService(RAFT_TRANSPORT_SERVICE, {
      stream: (call: grpc.ServerReadableStream<Buffer, StreamAck>, callback: grpc.sendUnaryData<StreamAck>) => this.serveStream(call, callback),
      installSnapshot: (call: grpc.ServerReadableStream<Buffer, SnapshotAck>, callback: grpc.sendUnaryData<SnapshotAck>) => this.serveSnapshot(call, callback),
    });
    this.server = server;
    this.onMessage = onMessage;
    try {
      this.port = await new Promise<number>((resolve, reject) => {
        server.bindAsync(this.listenAddress, serverCredentials(this.tls, this.tls !== undefined), (error, port) => (error ? reject(error) : resolve(port)));
      });
    } catch (error) {
      this.server = null;
      server.forceShutdown();
      throw new TransportConfigError(`cannot listen on ${this.listenAddress}: ${(error as Error).message}`);
    }
    this.logger.info(`listening on ${this.boundAddress}${this.tls ? ` (mutual TLS as ${JSON.stringify(this.tls.commonName)})` : ''}`);
  }

  setPeers(peers: Member[]): void {
    if (this.closed) throw new Error('raft transport: setPeers after close');
    validatePeers(this.localId, peers);
    const wanted = new Map(peers.map((p) => [p.id, p.address]));
    for (const [id, sender] of this.peers) {
      if (wanted.get(id) !== sender.address) {
        sender.close(true);
        this.peers.delete(id);
      }
    }
    for (const [id, address] of wanted) {
      if (this.peers.has(id)) continue;
      this.peers.set(id, new PeerSender(id, address, {
        localId: this.localId, limits: this.limits, metrics: this.metrics, logger: this.logger, log: this.log,
        reportUnreachable: (peer) => this.reportUnreachable(peer),
        reportSnapshotStatus: (peer, ok) => this.reportSnapshotStatus(peer, ok),
        security: this.security,
      }));
    }
  }

  send(messages: Message[]): void {
    for (const message of messages) {
      if (this.closed) {
        this.drop('closed', 'the transport is closed');
        continue;
      }
      const decision = this.decideFault(message);
      if (decision === 'deliver') {
        this.route(message);
      } else if (decision === 'drop') {
        this.drop('fault_injected', `fault hook dropped a ${MessageType[message.type]} to ${message.to}`);
        if (message.type === MessageType.Snap) this.reportSnapshotStatus(message.to, false);
      } else if (this.delayTimers.size >= this.limits.maxDelayedMessages) {
        this.drop('queue_full', `fault hook delay: ${this.delayTimers.size} messages already delayed`);
        if (message.type === MessageType.Snap) this.reportSnapshotStatus(message.to, false);
      } else {
        const timer = setTimeout(() => {
          this.delayTimers.delete(timer);
          this.route(message);
        }, decision.delayMs);
        this.delayTimers.add(timer);
      }
    }
  }

  onUnreachable(listener: (peer: NodeId) => void): void {
    this.unreachableListeners.push(listener);
  }

  onSnapshotStatus(listener: (peer: NodeId, ok: boolean) => void): void {
    this.snapshotStatusListeners.push(listener);
  }

  peerStats(): PeerStats[] {
    return [...this.peers.values()].map((p) => p.stats());
  }

  /** Stops the server and every channel: in-flight calls get closeGraceMs, then everything is cut; queued sends are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.delayTimers) clearTimeout(timer);
    if (this.delayTimers.size > 0) this.drop('closed', `${this.delayTimers.size} delayed messages dropped on close`, this.delayTimers.size);
    this.delayTimers.clear();
    for (const sender of this.peers.values()) sender.close(false);
    this.peers.clear();
    const server = this.server;
    this.server = null;
    this.onMessage = null;
    if (server === null) return;
    await new Promise<void>((resolve) => {
      const grace = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, this.limits.closeGraceMs);
      server.tryShutdown(() => {
        clearTimeout(grace);
        resolve();
      });
    });
  }

  // ------------------------------------------------------------- sending

  private decideFault(message: Message): FaultDecision {
    if (this.faultHook === undefined) return 'deliver';
    try {
      const decision = this.faultHook(message);
      if (decision === 'deliver' || decision === 'drop') return decision;
      if (typeof decision === 'object' && decision !== null && Number.isFinite(decision.delayMs) && decision.delayMs >= 0) {
        return { delayMs: Math.min(decision.delayMs, FAULT_DELAY_MS_MAX) };
      }
      this.log.warn('fault-hook', `fault hook returned ${JSON.stringify(decision)}; delivering`);
    } catch (error) {
      this.log.warn('fault-hook', `fault hook threw (${(error as Error).message}); delivering`);
    }
    return 'deliver';
  }

  private route(message: Message): void {
    if (this.closed) return this.drop('closed', 'the transport is closed');
    const sender = this.peers.get(message?.to);
    if (sender === undefined) {
      this.drop('unknown_peer', `no peer ${JSON.stringify(message?.to)} (known: ${[...this.peers.keys()].join(', ') || 'none'})`);
      if (message?.type === MessageType.Snap) this.reportSnapshotStatus(message.to, false);
      return;
    }
    if (message.type === MessageType.Snap) {
      if (message.snapshot === undefined) {
        this.drop('invalid', `a Snap message to ${message.to} without its snapshot`);
        this.reportSnapshotStatus(message.to, false);
        return;
      }
      sender.sendSnapshot(message);
      return;
    }
    let encoded: Uint8Array;
    try {
      encoded = encodeMessage(message);
    } catch (error) {
      return this.drop('invalid', `not sending a malformed message to ${message.to}: ${(error as Error).message}`);
    }
    if (encoded.byteLength > this.limits.maxMessageBytes) {
      return this.drop('oversized', `not sending a ${MessageType[message.type]} of ${encoded.byteLength} bytes to ${message.to} (maxMessageBytes ${this.limits.maxMessageBytes})`);
    }
    sender.enqueue(encoded);
  }

  /** Listeners run on a later turn: the core is never re-entered from inside its own send(). */
  private reportUnreachable(peer: NodeId): void {
    setImmediate(() => {
      if (this.closed) return;
      for (const listener of this.unreachableListeners) this.callListener('onUnreachable', () => listener(peer));
    });
  }

  private reportSnapshotStatus(peer: NodeId, ok: boolean): void {
    setImmediate(() => {
      if (this.closed) return;
      for (const listener of this.snapshotStatusListeners) this.callListener('onSnapshotStatus', () => listener(peer, ok));
    });
  }

  private callListener(what: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      this.log.warn(`listener:${what}`, `${what} listener threw: ${(error as Error).stack ?? String(error)}`);
    }
  }

  // ----------------------------------------------------------- receiving

  private serveStream(call: grpc.ServerReadableStream<Buffer, StreamAck>, callback: grpc.sendUnaryData<StreamAck>): void {
    let receivedMessages = 0;
    // Headers at once: the sender treats them as "connected" and starts writing.
    call.sendMetadata(new grpc.Metadata());
    call.on('data', (frame: Buffer) => {
      receivedMessages += this.receiveBatchFrame(frame, call.getPeer());
    });
    call.on('end', () => callback(null, { receivedMessages }));
    // A sender that goes away cancels its stream; it reconnects on its own.
    call.on('error', () => {});
  }

  /** Returns how many messages were handed to onMessage. */
  private receiveBatchFrame(frame: Buffer, remote: string): number {
    if (frame.byteLength > frameSoftLimitBytes(this.limits)) {
      this.drop('oversized', `frame of ${frame.byteLength} bytes from ${remote} exceeds maxMessageBytes ${this.limits.maxMessageBytes}`);
      return 0;
    }
    let batch;
    try {
      batch = decodeBatchFrame(frame);
    } catch (error) {
      this.drop(error instanceof RaftCodecError ? error.kind : 'undecodable', `frame of ${frame.byteLength} bytes from ${remote}: ${(error as Error).message}`);
      return 0;
    }
    for (const error of batch.invalid) this.drop('invalid', `message from ${remote}: ${error.message}`);
    let delivered = 0;
    for (const message of batch.messages) {
      if (message.to !== this.localId) {
        this.drop('wrong_recipient', `${MessageType[message.type]} from ${message.from} at ${remote} is addressed to ${message.to}, not ${this.localId}`);
        continue;
      }
      if (this.deliver(message)) delivered++;
    }
    return delivered;
  }

  private deliver(message: Message): boolean {
    const onMessage = this.onMessage;
    if (onMessage === null) {
      this.drop('closed', 'message after close');
      return false;
    }
    try {
      onMessage(message);
    } catch (error) {
      this.drop('handler_error', `onMessage threw on a ${MessageType[message.type]} from ${message.from}: ${(error as Error).stack ?? String(error)}`);
      return false;
    }
    this.metrics.messagesReceived.inc();
    return true;
  }

  private serveSnapshot(call: grpc.ServerReadableStream<Buffer, SnapshotAck>, callback: grpc.sendUnaryData<SnapshotAck>): void {
    const remote = call.getPeer();
    if (this.incomingSnapshots >= this.limits.maxIncomingSnapshots) {
      this.drop('snapshot_busy', `refused a snapshot stream from ${remote}: ${this.incomingSnapshots} already receiving`);
      callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: `receiver is busy with ${this.incomingSnapshots} snapshots` });
      return;
    }
    this.incomingSnapshots++;
    const assembler = new SnapshotAssembler(this.localId, this.limits.maxSnapshotBytes);
    let finished = false;
    const finish = (): boolean => {
      if (finished) return false;
      finished = true;
      clearTimeout(timer);
      this.incomingSnapshots--;
      return true;
    };
    const fail = (reason: DropReason, problem: string, code = grpc.status.INVALID_ARGUMENT): void => {
      if (!finish()) return;
      this.drop(reason, `snapshot stream from ${remote} dropped: ${problem}`);
      callback({ code, details: problem });
    };
    const timer = setTimeout(() => fail('snapshot_timeout', `not complete within ${this.limits.snapshotTimeoutMs} ms`, grpc.status.DEADLINE_EXCEEDED), this.limits.snapshotTimeoutMs);
    call.on('data', (frame: Buffer) => {
      if (finished) return;
      if (frame.byteLength > frameSoftLimitBytes(this.limits)) {
        return fail('oversized', `chunk frame of ${frame.byteLength} bytes exceeds maxMessageBytes ${this.limits.maxMessageBytes}`, grpc.status.RESOURCE_EXHAUSTED);
      }
      let message: Message | null;
      try {
        message = assembler.add(decodeSnapshotChunk(frame));
      } catch (error) {
        if (error instanceof SnapshotStreamError) return fail(error.reason, error.message);
        if (error instanceof RaftCodecError) return fail(error.kind, error.message);
        return fail('snapshot_invalid', String(error));
      }
      if (message === null) return;
      finish();
      if (this.deliver(message)) {
        callback(null, { receivedBytes: assembler.bytesReceived });
      } else {
        callback({ code: grpc.status.INTERNAL, details: 'the receiving node did not accept the snapshot' });
      }
    });
    call.on('end', () => fail('snapshot_incomplete', `the stream ended after ${assembler.bytesReceived} bytes without its last chunk`));
    call.on('cancelled', () => fail('snapshot_incomplete', `the sender cancelled after ${assembler.bytesReceived} bytes`, grpc.status.CANCELLED));
    call.on('error', () => fail('snapshot_incomplete', `the stream broke after ${assembler.bytesReceived} bytes`, grpc.status.CANCELLED));
  }

  private drop(reason: DropReason, line: string, count = 1): void {
    this.metrics.dropped(reason, count);
    this.log.warn(`drop:${reason}`, line);
  }
}
