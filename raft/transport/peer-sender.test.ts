import { reconnectDelayMs } from './peer-sender';
import { TestNode, connectAll, numbered, startNode, waitFor } from './test-support';

describe('the reconnect backoff', () => {
  it('doubles from the initial delay up to the cap, with jitter between half and all of each step', () => {
    const low = (n: number) => reconnectDelayMs(n, 50, 2_000, () => 0);
    const high = (n: number) => reconnectDelayMs(n, 50, 2_000, () => 0.999999);
    expect([1, 2, 3, 4, 5, 6, 7].map(high)).toEqual([50, 100, 200, 400, 800, 1600, 2000]);
    expect([1, 2, 3, 7, 1000].map(low)).toEqual([25, 50, 100, 1000, 1000]);
    expect(() => reconnectDelayMs(0, 50, 2_000)).toThrow(/must be ≥ 1/);
  });
});

describe('a peer sender under backpressure', () => {
  const nodes: TestNode[] = [];
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.transport.close()));
  });

  it('waits for the stream to drain when it is full and still delivers everything in order', async () => {
    const b = await startNode('b');
    const a = await startNode('a', { limits: { maxBatchMessages: 8, maxQueueMessages: 50_000 } });
    nodes.push(a, b);
    connectAll([a, b]);
    a.transport.send(Array.from({ length: 30_000 }, (_, i) => numbered('a', 'b', i)));
    await waitFor(() => b.inbox.length === 30_000, 'all 30,000 messages at b', 15_000);
    expect(b.inbox.every((m, i) => m.commit === i)).toBe(true);
    expect(a.transport.peerStats()[0]!.streamFullWaits).toBeGreaterThan(0);
  }, 20_000);
});
