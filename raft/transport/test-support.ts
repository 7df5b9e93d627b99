/**
 * Test support for the transport's tests: real GrpcTransport instances on
 * 127.0.0.1 with their inboxes, listener calls and log lines recorded, and a
 * bounded polling wait. Must never be imported by production code.
 */
import * as net from 'net';
import { EntryType, Message, MessageType, NodeId, emptyMessage } from '../core/types';
import { GrpcTransport } from './grpc-transport';
import { DropReason } from './metrics';
import { GrpcTransportOptions } from './options';

export interface TestNode {
  id: NodeId;
  transport: GrpcTransport;
  inbox: Message[];
  unreachable: NodeId[];
  snapshotStatus: [NodeId, boolean][];
  logLines: string[];
}

export type TestNodeOptions = Partial<Omit<GrpcTransportOptions, 'localId'>> & { onMessage?: (message: Message) => void };

export function recordingNode(id: NodeId, options: TestNodeOptions = {}): TestNode {
  const node: TestNode = { id, inbox: [], unreachable: [], snapshotStatus: [], logLines: [], transport: undefined! };
  node.transport = new GrpcTransport({
    localId: id,
    listenAddress: options.listenAddress ?? '127.0.0.1:0',
    limits: options.limits,
    faultHook: options.faultHook,
    registry: options.registry,
    tls: options.tls,
    logger: { info: (line) => node.logLines.push(`info ${line}`), warn: (line) => node.logLines.push(`warn ${line}`) },
  });
  node.transport.onUnreachable((peer) => node.unreachable.push(peer));
  node.transport.onSnapshotStatus((peer, ok) => node.snapshotStatus.push([peer, ok]));
  return node;
}

export async function startNode(id: NodeId, options: TestNodeOptions = {}): Promise<TestNode> {
  const node = recordingNode(id, options);
  await node.transport.start((message) => {
    node.inbox.push(message);
    options.onMessage?.(message);
  });
  return node;
}

/** Tells every node about every other one. */
export function connectAll(nodes: readonly TestNode[]): void {
  for (const node of nodes) {
    node.transport.setPeers(nodes.filter((n) => n !== node).map((n) => ({ id: n.id, address: n.transport.boundAddress, role: 'voter' as const })));
  }
}

/** Polls `condition` every 5 ms; fails with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A port that was free a moment ago (bound, read, released). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A TCP relay in front of a transport whose link the test can cut silently:
 * cut() stops relaying without closing any socket (as a pulled cable or a
 * blackhole route would), so only keepalive can notice; heal() relays again.
 */
export class CuttableLink {
  private server: net.Server | undefined;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private cut_ = false;
  port = 0;

  constructor(private readonly targetPort: number) {}

  async open(): Promise<void> {
    this.server = net.createServer((inbound) => {
      const outbound = net.connect(this.targetPort, '127.0.0.1');
      const pair: [net.Socket, net.Socket] = [inbound, outbound];
      this.pairs.add(pair);
      const forget = () => {
        this.pairs.delete(pair);
        inbound.destroy();
        outbound.destroy();
      };
      for (const socket of pair) socket.on('error', forget).on('close', forget);
      if (this.cut_) this.freeze(pair);
      else this.relay(pair);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server!.address() as net.AddressInfo).port;
  }

  cut(): void {
    this.cut_ = true;
    for (const pair of this.pairs) this.freeze(pair);
  }

  heal(): void {
    this.cut_ = false;
    for (const pair of this.pairs) this.relay(pair);
  }

  async close(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private relay([a, b]: [net.Socket, net.Socket]): void {
    a.pipe(b);
    b.pipe(a);
  }

  private freeze([a, b]: [net.Socket, net.Socket]): void {
    a.unpipe(b);
    b.unpipe(a);
    a.pause();
    b.pause();
  }
}

export function dropped(node: TestNode, reason: DropReason): Promise<number> {
  return node.transport.metrics.droppedCount(reason);
}

export async function counterValue(node: TestNode, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await node.transport.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
}

/** A heartbeat whose commit field numbers it, so order can be checked at the receiver. */
export function numbered(from: NodeId, to: NodeId, n: number): Message {
  return { ...emptyMessage(MessageType.Heartbeat, from, to, 1), commit: n };
}

export function appendWith(from: NodeId, to: NodeId, dataBytes: number): Message {
  return { ...emptyMessage(MessageType.App, from, to, 2), index: 0, entries: [{ term: 2, index: 1, type: EntryType.Normal, data: new Uint8Array(dataBytes) }] };
}

export function snapMessage(from: NodeId, to: NodeId, data: Uint8Array): Message {
  return {
    ...emptyMessage(MessageType.Snap, from, to, 3),
    snapshot: { metadata: { index: 500, term: 3, membership: { members: [{ id: from, address: '127.0.0.1:1', role: 'voter' }, { id: to, address: '127.0.0.1:2', role: 'voter' }] } }, data },
  };
}
