import { MessageType } from '../core/types';
import { SnapshotAssembler, SnapshotStreamError } from './snapshot-stream';
import { snapMessage } from './test-support';

describe('the snapshot assembler on the receiving side', () => {
  const header = snapMessage('a', 'b', new Uint8Array(0));
  const bytes = (...values: number[]) => new Uint8Array(values);

  it('joins contiguous chunks into one Snap message carrying all the data', () => {
    const assembler = new SnapshotAssembler('b', 100);
    expect(assembler.add({ header, offsetBytes: 0, data: bytes(1, 2), last: false })).toBeNull();
    expect(assembler.add({ offsetBytes: 2, data: bytes(3), last: false })).toBeNull();
    const message = assembler.add({ offsetBytes: 3, data: bytes(4, 5), last: true })!;
    expect(message.type).toBe(MessageType.Snap);
    expect(message.snapshot!.metadata).toEqual(header.snapshot!.metadata);
    expect(Array.from(message.snapshot!.data)).toEqual([1, 2, 3, 4, 5]);
    expect(assembler.bytesReceived).toBe(5);
  });

  it('accepts an empty snapshot in a single chunk and a header-only first chunk', () => {
    expect(new SnapshotAssembler('b', 100).add({ header, offsetBytes: 0, data: bytes(), last: true })!.snapshot!.data).toHaveLength(0);
    const assembler = new SnapshotAssembler('b', 100);
    expect(assembler.add({ header, offsetBytes: 0, data: bytes(), last: false })).toBeNull();
    expect(Array.from(assembler.add({ offsetBytes: 0, data: bytes(9), last: true })!.snapshot!.data)).toEqual([9]);
  });

  it.each([
    ['an empty chunk in the middle', [{ header, offsetBytes: 0, data: bytes(1), last: false }, { offsetBytes: 1, data: bytes(), last: false }], 'snapshot_invalid', /empty chunk at offset 1/],
    ['a second header', [{ header, offsetBytes: 0, data: bytes(1), last: false }, { header, offsetBytes: 1, data: bytes(1), last: true }], 'snapshot_invalid', /header on a chunk other than the first/],
    ['a gap in the offsets', [{ header, offsetBytes: 0, data: bytes(1), last: false }, { offsetBytes: 5, data: bytes(1), last: true }], 'snapshot_invalid', /offset 5, expected 1/],
    ['a chunk after the last', [{ header, offsetBytes: 0, data: bytes(1), last: true }, { offsetBytes: 1, data: bytes(1), last: true }], 'snapshot_invalid', /after the last/],
    ['more than maxSnapshotBytes', [{ header, offsetBytes: 0, data: new Uint8Array(60), last: false }, { offsetBytes: 60, data: new Uint8Array(60), last: true }], 'snapshot_too_large', /exceeds maxSnapshotBytes 100/],
    ['another recipient', [{ header: { ...header, to: 'c' }, offsetBytes: 0, data: bytes(1), last: true }], 'wrong_recipient', /addressed to c, not b/],
  ])('refuses %s', (_what, chunks, reason, problem) => {
    const assembler = new SnapshotAssembler('b', 100);
    let caught: unknown;
    try {
      for (const chunk of chunks) assembler.add(chunk);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SnapshotStreamError);
    expect((caught as SnapshotStreamError).reason).toBe(reason);
    expect((caught as Error).message).toMatch(problem);
  });
});
