/**
 * Mutual TLS on the Raft transport, with certificates from `handlefs certs`:
 * members with the cluster CA's certificates talk; a member whose certificate
 * another CA signed, or a plaintext peer, gets nothing through in either
 * direction. (Here and not in raft/transport: raft/ must not import deploy/.)
 */
import * as grpc from '@grpc/grpc-js';
import { loadTlsMaterial } from '../../proto/tls';
import { encodeBatchFrame, encodeMessage } from '../../raft/transport/codec';
import { STREAM_PATH } from '../../raft/transport/service';
import { TestNode, connectAll, numbered, recordingNode, startNode, waitFor } from '../../raft/transport/test-support';
import { TestPki, makeTestPki } from './testing';

let pki: TestPki;
const started: TestNode[] = [];
beforeAll(() => {
  pki = makeTestPki(['a', 'b', 'rogue'], []);
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.transport.close()));
});
afterAll(() => pki.destroy());

async function member(id: string, which: 'cluster' | 'foreign' | 'plaintext', certName = id): Promise<TestNode> {
  const tls = which === 'plaintext' ? undefined : loadTlsMaterial(pki.files(which, certName));
  const node = await startNode(id, { tls, limits: { reconnectBackoffInitialMs: 20, reconnectBackoffMaxMs: 100, connectTimeoutMs: 500 } });
  started.push(node);
  return node;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the Raft transport with mutual TLS', () => {
  it('carries messages between members holding certificates of the cluster CA', async () => {
    const a = await member('a', 'cluster');
    const b = await member('b', 'cluster');
    connectAll([a, b]);
    a.transport.send([numbered('a', 'b', 1)]);
    b.transport.send([numbered('b', 'a', 2)]);
    await waitFor(() => a.inbox.length === 1 && b.inbox.length === 1, 'a message each way');
    expect(b.inbox[0]!.commit).toBe(1);
    expect(a.inbox[0]!.commit).toBe(2);
    expect(a.logLines.some((line) => line.includes('mutual TLS as "a"'))).toBe(true);
  });

  it('refuses a member whose certificate another CA signed, both ways, while the members keep talking', async () => {
    const a = await member('a', 'cluster');
    const b = await member('b', 'cluster');
    // The rogue trusts the cluster CA (it knows the public CA file) but its own certificate is from the foreign CA.
    const rogueTls = { ...loadTlsMaterial(pki.files('foreign', 'rogue')), ca: loadTlsMaterial({ caFile: pki.ca }).ca };
    const rogue = await startNode('rogue', { tls: rogueTls, limits: { reconnectBackoffInitialMs: 20, reconnectBackoffMaxMs: 100, connectTimeoutMs: 500 } });
    started.push(rogue);
    connectAll([a, b, rogue]);
    for (let i = 1; i <= 20; i++) {
      rogue.transport.send([numbered('rogue', 'a', i)]);
      a.transport.send([numbered('a', 'rogue', i)]);
      b.transport.send([numbered('b', 'a', 100 + i)]);
      await sleep(25);
    }
    await waitFor(() => a.inbox.length > 0, 'b reaching a');
    await waitFor(() => rogue.unreachable.includes('a') && a.unreachable.includes('rogue'), 'both sides giving up on the TLS handshake');
    expect(a.inbox.every((m) => m.from === 'b')).toBe(true);
    expect(rogue.inbox).toEqual([]);
  });

  it('refuses a plaintext peer and a plaintext raw stream', async () => {
    const a = await member('a', 'cluster');
    const plain = await member('plain', 'plaintext');
    connectAll([a, plain]);
    for (let i = 1; i <= 10; i++) {
      plain.transport.send([numbered('plain', 'a', i)]);
      await sleep(20);
    }
    await waitFor(() => plain.unreachable.includes('a'), 'the plaintext peer finding a unreachable');
    const client = new grpc.Client(a.transport.boundAddress, grpc.credentials.createInsecure());
    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = client.makeClientStreamRequest<Buffer, Buffer>(STREAM_PATH, (b) => b, (b) => b, new grpc.Metadata(), { deadline: Date.now() + 2_000 }, (e) => resolve(e));
      call.on('error', () => {});
      call.write(Buffer.from(encodeBatchFrame([encodeMessage(numbered('x', 'a', 1))])));
      call.end();
    });
    client.close();
    expect(error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(a.inbox).toEqual([]);
  });

  it('does not start a member without its own certificate', () => {
    expect(() => recordingNode('c', { tls: loadTlsMaterial({ caFile: pki.ca }) })).toThrow(/a member needs its own certificate and key/);
  });
});
