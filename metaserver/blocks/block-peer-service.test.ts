import * as grpc from '@grpc/grpc-js';
import { blockPeerService } from '../../proto/blocks-proto';
import { MAX_BLOCK_BYTES, blockIdOf } from './block-store';
import { TestPeer, startPeer } from './testing';

let client: grpc.Client;
let peer: TestPeer;

function call<Req, Res>(method: grpc.MethodDefinition<Req, Res>, request: Req, timeoutMs = 5_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, { deadline: Date.now() + timeoutMs }, (error, reply) => {
      if (error) reject(error);
      else resolve(reply!);
    });
  });
}

/** Sends raw bytes as the request of a method, as a broken or hostile peer could. */
function callRaw(path: string, bytes: Buffer): Promise<unknown> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, { deadline: Date.now() + 5_000 }, (error, reply) => {
      if (error) reject(error);
      else resolve(reply);
    });
  });
}

async function statusOf(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (error) {
    const e = error as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error('the call succeeded');
}

const bytes = new TextEncoder().encode('a block');
const id = blockIdOf(bytes);

describe('BlockPeer service', () => {
  let appliedIndex = 0;
  const waiters: Array<() => void> = [];
  beforeEach(async () => {
    appliedIndex = 0;
    peer = await startPeer({
      maxWaitMs: 2_000,
      waitApplied: (index, deadlineMs) =>
        new Promise<void>((resolve, reject) => {
          if (appliedIndex >= index) return resolve();
          const timer = setTimeout(() => reject(new Error(`applied index still ${appliedIndex}`)), Math.max(0, deadlineMs - Date.now()));
          waiters.push(() => {
            if (appliedIndex >= index) {
              clearTimeout(timer);
              resolve();
            }
          });
        }),
    });
    client = new grpc.Client(peer.address, grpc.credentials.createInsecure());
  });
  afterEach(() => {
    client.close();
    peer.close();
    waiters.length = 0;
  });

  it('stores a replica durably, then serves it with FetchBlock and HasBlocks', async () => {
    await call(blockPeerService.StoreReplica, { id, bytes, minAppliedIndex: 0 });
    expect(await peer.store.has(id)).toBe(true);
    const fetched = await call(blockPeerService.FetchBlock, { id });
    expect(fetched.found).toBe(true);
    expect(Buffer.from(fetched.bytes).toString()).toBe('a block');
    const other = blockIdOf(new Uint8Array([1]));
    expect((await call(blockPeerService.HasBlocks, { ids: [id, other, id] })).present).toEqual([true, false, true]);
    expect(await call(blockPeerService.FetchBlock, { id: other })).toEqual({ found: false, bytes: expect.any(Uint8Array) });
  });

  it('waits for the applied index before storing, and answers DEADLINE_EXCEEDED if it never comes', async () => {
    const pending = call(blockPeerService.StoreReplica, { id, bytes, minAppliedIndex: 7 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await peer.store.has(id)).toBe(false);
    appliedIndex = 7;
    waiters.forEach((wake) => wake());
    await pending;
    expect(await peer.store.has(id)).toBe(true);

    const other = new TextEncoder().encode('never applied');
    const status = await statusOf(call(blockPeerService.StoreReplica, { id: blockIdOf(other), bytes: other, minAppliedIndex: 100 }, 300));
    expect(status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(await peer.store.has(blockIdOf(other))).toBe(false);
  });

  it('bounds the wait by its own limit when the caller sets a long deadline', async () => {
    const started = Date.now();
    const status = await statusOf(call(blockPeerService.StoreReplica, { id, bytes, minAppliedIndex: 100 }, 30_000));
    expect(status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(status.details).toMatch(/applied index did not reach 100/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('answers INVALID_ARGUMENT naming the field for bad ids, bad hashes, oversized blocks and bad indexes', async () => {
    const bad = await statusOf(call(blockPeerService.StoreReplica, { id: 'not-an-id', bytes, minAppliedIndex: 0 }));
    expect(bad).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('id "not-an-id" is not a block id') });
    const upper = await statusOf(call(blockPeerService.FetchBlock, { id: id.toUpperCase() }));
    expect(upper.code).toBe(grpc.status.INVALID_ARGUMENT);
    const mismatch = await statusOf(call(blockPeerService.StoreReplica, { id: blockIdOf(new Uint8Array([1])), bytes, minAppliedIndex: 0 }));
    expect(mismatch.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(mismatch.details).toContain(id);
    const big = new Uint8Array(MAX_BLOCK_BYTES + 1);
    const oversized = await statusOf(call(blockPeerService.StoreReplica, { id: blockIdOf(big), bytes: big, minAppliedIndex: 0 }));
    expect(oversized).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('1048577 bytes, over the 1048576-byte block limit') });
    const hugeIndex = await statusOf(call(blockPeerService.StoreReplica, { id, bytes, minAppliedIndex: Number.MAX_SAFE_INTEGER * 4 }));
    expect(hugeIndex).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('min_applied_index') });
    const tooMany = await statusOf(call(blockPeerService.HasBlocks, { ids: new Array<string>(1025).fill(id) }));
    expect(tooMany).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('1025 entries, over the limit of 1024') });
    const oneBad = await statusOf(call(blockPeerService.HasBlocks, { ids: [id, id, id, 'zz'] }));
    expect(oneBad).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('ids[3] "zz"') });
    expect(peer.store.stats()).toEqual({ blocks: 0, bytes: 0 });
  });

  it('answers INVALID_ARGUMENT to bytes that are not a request, and keeps serving', async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    for (const method of Object.values(blockPeerService)) {
      const status = await statusOf(callRaw(method.path, garbage));
      expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(status.details).toMatch(/request is not a handlefs\.blocks\./);
    }
    // A field of the wrong wire type (id sent as a varint) decodes to the default: still refused by validation.
    const wrongType = await statusOf(callRaw(blockPeerService.FetchBlock.path, Buffer.from([0x08, 0x05])));
    expect(wrongType.code).toBe(grpc.status.INVALID_ARGUMENT);
    await call(blockPeerService.StoreReplica, { id, bytes, minAppliedIndex: 0 });
    expect((await call(blockPeerService.HasBlocks, { ids: [id] })).present).toEqual([true]);
  });
});
