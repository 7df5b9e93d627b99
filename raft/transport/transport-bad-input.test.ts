import * as grpc from '@grpc/grpc-js';
import { Message, MessageType, emptyMessage } from '../core/types';
import { encodeBatchFrame, encodeMessage, encodeSnapshotChunk } from './codec';
import { GrpcTransport } from './grpc-transport';
import { TransportConfigError } from './options';
import { INSTALL_SNAPSHOT_PATH, STREAM_PATH } from './service';
import {
  TestNode, TestNodeOptions, appendWith, counterValue, dropped, numbered, recordingNode, snapMessage, startNode, waitFor,
} from './test-support';
import * as protobuf from 'protobufjs';
import { protoPath } from '../../proto/proto-path';

const started: TestNode[] = [];
const clients: grpc.Client[] = [];
async function node(id: string, options: TestNodeOptions = {}): Promise<TestNode> {
  const n = await startNode(id, options);
  started.push(n);
  return n;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(started.splice(0).map((n) => n.transport.close()));
});

const identity = (b: Buffer) => b;

/** A raw gRPC client stream to `target`, writing whatever bytes the test gives it. */
function rawStream(target: TestNode, path: string) {
  const client = new grpc.Client(target.transport.boundAddress, grpc.credentials.createInsecure());
  clients.push(client);
  let outcome: { error: grpc.ServiceError | null } | undefined;
  const call = client.makeClientStreamRequest<Buffer, Buffer>(path, identity, identity, (error) => {
    outcome = { error };
  });
  call.on('error', () => {});
  return {
    write: (frame: Uint8Array) => call.write(Buffer.from(frame)),
    end: () => call.end(),
    outcome: () => outcome,
  };
}

const frameOf = (...messages: Message[]) => encodeBatchFrame(messages.map(encodeMessage));
const rawMessageType = protobuf.loadSync(protoPath('raft.proto')).lookupType('handlefs.raft.Message');

const SMALL_LIMITS = { maxMessageBytes: 64 * 1024, chunkSizeBytes: 16 * 1024, maxSnapshotBytes: 100 * 1024 };

describe('GrpcTransport facing bad input from the network', () => {
  it('drops and counts undecodable, invalid, misaddressed and oversized frames, and keeps serving the same stream', async () => {
    const b = await node('b', { limits: SMALL_LIMITS });
    const stream = rawStream(b, STREAM_PATH);
    stream.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01]));
    stream.write(encodeBatchFrame([rawMessageType.encode({ type: 99, from: 'a', to: 'b' }).finish()]));
    stream.write(frameOf(numbered('a', 'someone-else', 1)));
    stream.write(frameOf(appendWith('a', 'b', 100 * 1024))); // above maxMessageBytes, below gRPC's own cap
    stream.write(frameOf(numbered('a', 'b', 42)));
    await waitFor(() => b.inbox.length === 1, 'the one good message');
    expect(b.inbox[0]!.commit).toBe(42);
    expect(await dropped(b, 'undecodable')).toBe(1);
    expect(await dropped(b, 'invalid')).toBe(1);
    expect(await dropped(b, 'wrong_recipient')).toBe(1);
    expect(await dropped(b, 'oversized')).toBe(1);
    expect(stream.outcome()).toBeUndefined();
    expect(b.logLines.some((l) => /undecodable|not decodable/.test(l))).toBe(true);
  });

  it('survives a frame above gRPC\'s own cap: that stream ends, the server keeps serving others', async () => {
    const b = await node('b', { limits: SMALL_LIMITS });
    const bad = rawStream(b, STREAM_PATH);
    bad.write(frameOf(appendWith('a', 'b', 300 * 1024)));
    await waitFor(() => bad.outcome() !== undefined, 'the oversized stream to end');
    expect(bad.outcome()!.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const good = rawStream(b, STREAM_PATH);
    good.write(frameOf(numbered('a', 'b', 7)));
    await waitFor(() => b.inbox.length === 1, 'a message on a new stream');
  });

  it('keeps the stream alive when onMessage throws, counting the message as a handler error', async () => {
    const b = await node('b', { onMessage: (m) => { if (m.commit === 1) throw new Error('core exploded'); } });
    const stream = rawStream(b, STREAM_PATH);
    stream.write(frameOf(numbered('a', 'b', 1), numbered('a', 'b', 2)));
    await waitFor(() => b.inbox.length === 2, 'both messages reached onMessage');
    expect(await dropped(b, 'handler_error')).toBe(1);
    expect(await counterValue(b, 'handlefs_raft_transport_messages_received_total')).toBe(1);
  });

  it('logs a flood of bad frames at most once per interval per reason', async () => {
    const b = await node('b');
    const stream = rawStream(b, STREAM_PATH);
    for (let i = 0; i < 200; i++) stream.write(Buffer.from([0xff, 0xff, 0xff]));
    stream.write(frameOf(numbered('a', 'b', 1)));
    await waitFor(() => b.inbox.length === 1, 'the good message after the flood');
    expect(await dropped(b, 'undecodable')).toBe(200);
    expect(b.logLines.filter((l) => /not decodable/.test(l)).length).toBeLessThanOrEqual(2);
  });

  describe('refuses broken snapshot streams, answering the sender with an error', () => {
    const header = (to = 'b') => snapMessage('a', to, new Uint8Array(0));

    async function expectRefused(chunks: Parameters<typeof encodeSnapshotChunk>[0][], reason: Parameters<typeof dropped>[1], end = false) {
      const b = await node('b', { limits: SMALL_LIMITS });
      const stream = rawStream(b, INSTALL_SNAPSHOT_PATH);
      for (const chunk of chunks) stream.write(encodeSnapshotChunk(chunk));
      if (end) stream.end();
      await waitFor(() => stream.outcome() !== undefined, 'the snapshot stream to be answered');
      expect(stream.outcome()!.error).not.toBeNull();
      expect(await dropped(b, reason)).toBe(1);
      expect(b.inbox).toHaveLength(0);
    }

    it('offsets that are not contiguous', () =>
      expectRefused([{ header: header(), offsetBytes: 0, data: new Uint8Array(10), last: false }, { offsetBytes: 20, data: new Uint8Array(10), last: true }], 'snapshot_invalid'));

    it('a first chunk without its header', () => expectRefused([{ offsetBytes: 0, data: new Uint8Array(10), last: true }], 'snapshot_invalid'));

    it('more data than maxSnapshotBytes', () =>
      expectRefused(Array.from({ length: 8 }, (_, i) => ({ header: i === 0 ? header() : undefined, offsetBytes: i * 16 * 1024, data: new Uint8Array(16 * 1024), last: i === 7 })), 'snapshot_too_large'));

    it('a snapshot addressed to another member', () => expectRefused([{ header: header('c'), offsetBytes: 0, data: new Uint8Array(1), last: true }], 'wrong_recipient'));

    it('a stream that ends before its last chunk', () => expectRefused([{ header: header(), offsetBytes: 0, data: new Uint8Array(10), last: false }], 'snapshot_incomplete', true));

    it('bytes that are not a chunk', async () => {
      const b = await node('b');
      const stream = rawStream(b, INSTALL_SNAPSHOT_PATH);
      stream.write(Buffer.from([0xff, 0xff, 0xff]));
      await waitFor(() => stream.outcome() !== undefined, 'the snapshot stream to be answered');
      expect(await dropped(b, 'undecodable')).toBe(1);
    });
  });
});

describe('GrpcTransport facing bad input from its own side', () => {
  it('drops and counts a message to an unknown peer, a malformed one and an oversized one; a Snap nobody can take reports failure', async () => {
    const a = await node('a', { limits: SMALL_LIMITS });
    a.transport.setPeers([{ id: 'b', address: '127.0.0.1:1', role: 'voter' }]);
    a.transport.send([
      numbered('a', 'nobody', 1),
      snapMessage('a', 'nobody', new Uint8Array(4)),
      { ...emptyMessage(MessageType.Vote, 'a', 'b', 1), term: -5 },
      appendWith('a', 'b', 100 * 1024),
    ]);
    expect(await dropped(a, 'unknown_peer')).toBe(2);
    expect(await dropped(a, 'invalid')).toBe(1);
    expect(await dropped(a, 'oversized')).toBe(1);
    await waitFor(() => a.snapshotStatus.length === 1, 'the snapshot status');
    expect(a.snapshotStatus).toEqual([['nobody', false]]);
  });

  it('bounds the queue to a peer that does not answer, dropping the excess', async () => {
    const a = await node('a', { limits: { maxQueueMessages: 10 } });
    // Port 1 on loopback refuses connections: the stream never gets going.
    a.transport.setPeers([{ id: 'b', address: '127.0.0.1:1', role: 'voter' }]);
    a.transport.send(Array.from({ length: 25 }, (_, i) => numbered('a', 'b', i)));
    expect(await dropped(a, 'queue_full')).toBe(15);
    expect(a.transport.peerStats()[0]!.queuedMessages).toBe(10);
    await waitFor(() => a.unreachable.length > 0, 'b reported unreachable');
    expect(a.unreachable[0]).toBe('b');
  });
});

describe('GrpcTransport configuration errors', () => {
  const transport = () => {
    const n = recordingNode('a');
    started.push(n);
    return n.transport;
  };

  it('refuses duplicate ids, the local id as a peer and malformed ids, naming the peer', () => {
    const t = transport();
    expect(() => t.setPeers([{ id: 'b', address: '127.0.0.1:7001', role: 'voter' }, { id: 'b', address: '127.0.0.1:7002', role: 'voter' }])).toThrow(/peer "b" is listed twice/);
    expect(() => t.setPeers([{ id: 'a', address: '127.0.0.1:7001', role: 'voter' }])).toThrow(/peer "a" is the local member/);
    expect(() => t.setPeers([{ id: '', address: '127.0.0.1:7001', role: 'voter' }])).toThrow(TransportConfigError);
  });

  it.each([
    ['localhost', /is not "host:port"/],
    ['127.0.0.1:0', /port 0 outside 1..65535/],
    ['127.0.0.1:70000', /port 70000 outside 1..65535/],
    [':7001', /is not "host:port"/],
    ['bad host:7001', /is not "host:port"/],
    ['-x:7001', /malformed host/],
    [42, /must be a "host:port" string/],
  ])('refuses the peer address %p with an error naming the peer', (address, problem) => {
    const t = transport();
    let caught: unknown;
    try {
      t.setPeers([{ id: 'c', address: address as string, role: 'voter' }]);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TransportConfigError);
    expect((caught as Error).message).toMatch(/peer "c": /);
    expect((caught as Error).message).toMatch(problem);
  });

  it('accepts IPv6 and host names, and leaves the peers untouched when a new list is refused', () => {
    const t = transport();
    t.setPeers([{ id: 'b', address: '[::1]:7001', role: 'voter' }, { id: 'c', address: 'meta-2.internal:7002', role: 'learner' }]);
    expect(() => t.setPeers([{ id: 'b', address: 'nope', role: 'voter' }])).toThrow(/peer "b"/);
    expect(t.peerStats().map((p) => p.peer).sort()).toEqual(['b', 'c']);
  });

  it('refuses a bad local id, listen address or limit at construction', () => {
    expect(() => new GrpcTransport({ localId: '', listenAddress: '127.0.0.1:0' })).toThrow(/localId must be a node id/);
    expect(() => new GrpcTransport({ localId: 'a', listenAddress: '127.0.0.1' })).toThrow(/listenAddress: address "127.0.0.1" is not "host:port"/);
    expect(() => new GrpcTransport({ localId: 'a', listenAddress: '127.0.0.1:0', limits: { chunkSizeBytes: 8 << 20 } })).toThrow(/chunkSizeBytes .* must not exceed limits.maxMessageBytes/);
    expect(() => new GrpcTransport({ localId: 'a', listenAddress: '127.0.0.1:0', limits: { maxQueueMessages: 0 } })).toThrow(/limits.maxQueueMessages must be a positive integer/);
  });

  it('names the address when it cannot listen', async () => {
    const first = await node('a');
    const taken = first.transport.boundAddress;
    const second = recordingNode('b', { listenAddress: taken });
    started.push(second);
    await expect(second.transport.start(() => {})).rejects.toThrow(new RegExp(`cannot listen on ${taken.replace(/\./g, '\\.')}`));
  });
});
