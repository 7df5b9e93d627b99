import * as crypto from 'crypto';
import * as grpc from '@grpc/grpc-js';
import { EntryType, Message, MessageType } from '../core/types';
import { RAFT_TRANSPORT_SERVICE } from './service';
import {
  CuttableLink, TestNode, TestNodeOptions, connectAll, counterValue, dropped, freePort, numbered, snapMessage, startNode, waitFor,
} from './test-support';

const started: TestNode[] = [];
async function node(id: string, options: TestNodeOptions = {}): Promise<TestNode> {
  const n = await startNode(id, options);
  started.push(n);
  return n;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.transport.close()));
});

/** A message of `type` with every field away from its zero value. */
function fullMessage(type: MessageType, from: string, to: string): Message {
  return {
    type, from, to, term: 9, logTerm: 8, index: 10, commit: 10, reject: true, rejectHint: 3, logTermHint: 2,
    entries: [{ term: 8, index: 11, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) }, { term: 9, index: 12, type: EntryType.Noop, data: new Uint8Array(0) }],
    context: new Uint8Array([7, 7]),
  };
}

describe('GrpcTransport between members on 127.0.0.1', () => {
  it('delivers a message of every type with all its fields intact', async () => {
    const [a, b] = [await node('a'), await node('b')];
    connectAll([a, b]);
    const types = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number' && v !== MessageType.Hup && v !== MessageType.Snap);
    const sent = types.map((t) => fullMessage(t, 'a', 'b'));
    const snap = snapMessage('a', 'b', new Uint8Array([4, 5, 6]));
    a.transport.send([...sent, snap]);
    await waitFor(() => b.inbox.length === sent.length + 1, 'every message at b');
    expect(b.inbox.filter((m) => m.type !== MessageType.Snap)).toEqual(sent);
    expect(b.inbox.find((m) => m.type === MessageType.Snap)).toEqual(snap);
    expect(await counterValue(b, 'handlefs_raft_transport_messages_received_total')).toBe(sent.length + 1);
    expect(await counterValue(a, 'handlefs_raft_transport_messages_sent_total')).toBe(sent.length + 1);
  });

  it('delivers 10,000 messages to each of two peers, complete and in order per peer', async () => {
    const [a, b, c] = [await node('a'), await node('b'), await node('c')];
    connectAll([a, b, c]);
    const messages: Message[] = [];
    for (let i = 0; i < 10_000; i++) messages.push(numbered('a', 'b', i), numbered('a', 'c', i));
    a.transport.send(messages);
    await waitFor(() => b.inbox.length === 10_000 && c.inbox.length === 10_000, '10,000 messages at b and c', 15_000);
    for (const peer of [b, c]) expect(peer.inbox.map((m) => m.commit)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
    expect(await counterValue(a, 'handlefs_raft_transport_messages_dropped_total')).toBe(0);
  }, 20_000);

  it('reaches a peer that was down at first once it comes up, reporting it unreachable meanwhile, and again after it restarts', async () => {
    const port = await freePort();
    const a = await node('a');
    a.transport.setPeers([{ id: 'b', address: `127.0.0.1:${port}`, role: 'voter' }]);
    a.transport.send([numbered('a', 'b', 0)]);
    await waitFor(() => a.unreachable.includes('b'), 'b reported unreachable');

    let b = await node('b', { listenAddress: `127.0.0.1:${port}` });
    const keepSending = setInterval(() => a.transport.send([numbered('a', 'b', 1)]), 20);
    try {
      await waitFor(() => b.inbox.length > 0, 'a message at b after it came up');
      expect(await counterValue(a, 'handlefs_raft_transport_peer_reconnects_total', { peer: 'b' })).toBeGreaterThanOrEqual(1);

      const unreachableBefore = a.unreachable.length;
      await b.transport.close();
      await waitFor(() => a.unreachable.length > unreachableBefore, 'b reported unreachable after it closed');
      b = await node('b', { listenAddress: `127.0.0.1:${port}` });
      await waitFor(() => b.inbox.length > 0, 'a message at the restarted b');
    } finally {
      clearInterval(keepSending);
    }
  }, 15_000);

  it('streams a 5 MiB snapshot in chunks and delivers it as one Snap message, then reports success', async () => {
    const [a, b] = [await node('a'), await node('b')];
    connectAll([a, b]);
    const data = crypto.randomBytes(5 * 1024 * 1024 + 123);
    const snap = snapMessage('a', 'b', data);
    a.transport.send([snap, snapMessage('a', 'b', new Uint8Array(10))]);
    await waitFor(() => a.snapshotStatus.length === 1, 'the snapshot status at a');
    expect(a.snapshotStatus).toEqual([['b', true]]);
    expect(b.inbox).toHaveLength(1);
    const received = b.inbox[0]!;
    expect({ ...received, snapshot: { ...received.snapshot!, data: undefined } }).toEqual({ ...snap, snapshot: { ...snap.snapshot!, data: undefined } });
    expect(Buffer.compare(Buffer.from(received.snapshot!.data), data)).toBe(0);
    expect(await counterValue(a, 'handlefs_raft_transport_snapshot_bytes_sent_total')).toBe(data.byteLength);
    // The second snapshot was sent while the first was streaming: dropped, the first reports the outcome.
    expect(await dropped(a, 'snapshot_busy')).toBe(1);
  });

  /** A receiver that speaks the protocol: it accepts message streams and hands each snapshot chunk to `onChunk`. */
  async function fakeReceiver(onChunk: (server: grpc.Server) => void): Promise<{ port: number; server: grpc.Server }> {
    const server = new grpc.Server();
    server.addService(RAFT_TRANSPORT_SERVICE, {
      stream: (call: grpc.ServerReadableStream<Buffer, unknown>) => {
        call.sendMetadata(new grpc.Metadata());
        call.on('error', () => {});
      },
      installSnapshot: (call: grpc.ServerReadableStream<Buffer, unknown>) => {
        call.on('error', () => {});
        call.on('data', () => onChunk(server));
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    return { port, server };
  }

  it('reports a failed snapshot when the receiver dies in the middle of the stream', async () => {
    let chunksSeen = 0;
    const receiver = await fakeReceiver((server) => {
      if (++chunksSeen === 1) server.forceShutdown();
    });
    try {
      const a = await node('a');
      a.transport.setPeers([{ id: 'b', address: `127.0.0.1:${receiver.port}`, role: 'voter' }]);
      a.transport.send([snapMessage('a', 'b', crypto.randomBytes(8 * 1024 * 1024))]);
      await waitFor(() => a.snapshotStatus.length === 1, 'the snapshot status at a');
      expect(a.snapshotStatus).toEqual([['b', false]]);
      expect(chunksSeen).toBeGreaterThanOrEqual(1);
    } finally {
      receiver.server.forceShutdown();
    }
  });

  it('reports a failed snapshot when a receiver that never answers outlasts snapshotTimeoutMs, or when the peer is removed', async () => {
    const receiver = await fakeReceiver(() => {});
    try {
      const a = await node('a', { limits: { snapshotTimeoutMs: 300 } });
      a.transport.setPeers([{ id: 'b', address: `127.0.0.1:${receiver.port}`, role: 'voter' }]);
      const startMs = Date.now();
      a.transport.send([snapMessage('a', 'b', new Uint8Array(1000))]);
      await waitFor(() => a.snapshotStatus.length === 1, 'the snapshot status after the deadline');
      expect(a.snapshotStatus).toEqual([['b', false]]);
      expect(Date.now() - startMs).toBeGreaterThanOrEqual(290);

      const c = await node('c', { limits: { snapshotTimeoutMs: 60_000 } });
      c.transport.setPeers([{ id: 'b', address: `127.0.0.1:${receiver.port}`, role: 'voter' }]);
      c.transport.send([snapMessage('c', 'b', new Uint8Array(1000))]);
      await waitFor(() => c.transport.peerStats()[0]?.snapshotInFlight === true, 'the snapshot under way');
      c.transport.setPeers([]);
      await waitFor(() => c.snapshotStatus.length === 1, 'the snapshot status after removing the peer');
      expect(c.snapshotStatus).toEqual([['b', false]]);
    } finally {
      receiver.server.forceShutdown();
    }
  });

  it('lets a fault hook drop and delay messages on the sending side', async () => {
    const b = await node('b');
    const a = await node('a', {
      faultHook: (m) => (m.commit % 2 === 1 ? 'drop' : m.commit === 0 ? { delayMs: 200 } : 'deliver'),
    });
    connectAll([a, b]);
    const sentAtMs = Date.now();
    a.transport.send(Array.from({ length: 10 }, (_, i) => numbered('a', 'b', i)));
    await waitFor(() => b.inbox.length === 5, 'the five delivered messages');
    const delayedArrivalMs = Date.now() - sentAtMs;
    expect(b.inbox.map((m) => m.commit)).toEqual([2, 4, 6, 8, 0]);
    expect(delayedArrivalMs).toBeGreaterThanOrEqual(190);
    expect(await dropped(a, 'fault_injected')).toBe(5);
  });

  it('drops what is sent after close and closes promptly with streams open', async () => {
    const [a, b] = [await node('a'), await node('b')];
    connectAll([a, b]);
    a.transport.send([numbered('a', 'b', 1)]);
    await waitFor(() => b.inbox.length === 1, 'one message at b');
    const startMs = Date.now();
    await Promise.all([a.transport.close(), b.transport.close()]);
    expect(Date.now() - startMs).toBeLessThan(1_000);
    a.transport.send([numbered('a', 'b', 2)]);
    expect(await dropped(a, 'closed')).toBe(1);
  });

  it('notices a silently cut link through keepalive within about one and a half seconds, and recovers once it heals', async () => {
    const b = await node('b');
    const link = new CuttableLink(b.transport.boundPort);
    await link.open();
    try {
      const a = await node('a');
      a.transport.setPeers([{ id: 'b', address: `127.0.0.1:${link.port}`, role: 'voter' }]);
      a.transport.send([numbered('a', 'b', 1)]);
      await waitFor(() => b.inbox.length === 1, 'a message through the link');
      link.cut();
      const cutAtMs = Date.now();
      await waitFor(() => a.unreachable.length > 0, 'b reported unreachable after the cut', 5_000);
      const noticedAfterMs = Date.now() - cutAtMs;
      console.log(`a silently cut link was noticed after ${noticedAfterMs} ms (keepalive ${a.transport.limits.keepaliveTimeMs} + ${a.transport.limits.keepaliveTimeoutMs} ms)`);
      expect(noticedAfterMs).toBeLessThan(3_000);
      link.heal();
      const keepSending = setInterval(() => a.transport.send([numbered('a', 'b', 2)]), 20);
      try {
        await waitFor(() => b.inbox.some((m) => m.commit === 2), 'a message after the link healed', 8_000);
      } finally {
        clearInterval(keepSending);
      }
    } finally {
      await link.close();
    }
  }, 20_000);

  it('measures throughput of small messages through one stream (printed, not asserted)', async () => {
    // Both ends run in this one process, so each number is roughly half of what two processes would see.
    let onMessageAtA: (m: Message) => void = () => {};
    let onMessageAtB: (m: Message) => void = () => {};
    const a = await node('a', { onMessage: (m) => onMessageAtA(m) });
    const b = await node('b', { onMessage: (m) => onMessageAtB(m) });
    connectAll([a, b]);
    a.transport.send([numbered('a', 'b', 0)]);
    await waitFor(() => b.inbox.length === 1, 'the stream is up');
    b.inbox.length = 0;

    // One way, as a leader streams appends: the sender keeps its queue below 8,000.
    const totalMessages = 200_000;
    const startMs = performance.now();
    let sent = 0;
    while (sent < totalMessages) {
      if (a.transport.peerStats()[0]!.queuedMessages < 8_000) {
        const batch: Message[] = [];
        for (let i = 0; i < 1_000; i++) batch.push(numbered('a', 'b', sent++));
        a.transport.send(batch);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => b.inbox.length === totalMessages, 'every message at b', 20_000);
    const oneWayRate = Math.round(totalMessages / ((performance.now() - startMs) / 1000));
    expect(b.inbox.every((m, i) => m.commit === i)).toBe(true);
    b.inbox.length = 0;

    // One message in flight: b answers each message at once, a sends the next on the answer.
    const pingPongMs = 1_000;
    let roundTrips = 0;
    const pingPongStartMs = performance.now();
    await new Promise<void>((resolve) => {
      onMessageAtB = (m) => b.transport.send([numbered('b', 'a', m.commit)]);
      onMessageAtA = () => {
        roundTrips++;
        if (performance.now() - pingPongStartMs >= pingPongMs) return resolve();
        a.transport.send([numbered('a', 'b', roundTrips)]);
      };
      a.transport.send([numbered('a', 'b', 0)]);
    });
    const roundTripRate = Math.round(roundTrips / ((performance.now() - pingPongStartMs) / 1000));
    console.log(
      `throughput, sender and receiver in one process: one way ${oneWayRate} msgs/s (${totalMessages} heartbeats, batched); ` +
      `one in flight ${roundTripRate} round trips/s. machine-facts (two processes, unbatched): bidi ~60,000 msgs/s, unary ~2,300/s at 1 in flight`,
    );
  }, 30_000);
});
