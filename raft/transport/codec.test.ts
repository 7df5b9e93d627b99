import * as path from 'path';
import * as protobuf from 'protobufjs';
import { protoPath } from '../../proto/proto-path';
import { EntryType, Message, MessageType, emptyMessage } from '../core/types';
import {
  RaftCodecError, decodeBatchFrame, decodeMessage, decodeSnapshotChunk, encodeBatchFrame, encodeMessage,
  encodeSnapshotChunk,
} from './codec';

const bytesOf = (...values: number[]) => new Uint8Array(values);

/** A message of `type` with every field away from its zero value. */
function fullMessage(type: MessageType): Message {
  const m: Message = {
    type, from: 'm1', to: 'm2', term: 7, logTerm: 6, index: 41, commit: 40, reject: true, rejectHint: 39, logTermHint: 5,
    entries: [
      { term: 6, index: 42, type: EntryType.Normal, data: bytesOf(1, 2, 3) },
      { term: 7, index: 43, type: EntryType.Noop, data: new Uint8Array(0) },
      { term: 7, index: 44, type: EntryType.MembershipChange, data: bytesOf(9) },
    ],
    context: bytesOf(0xca, 0xfe),
  };
  if (type === MessageType.Snap) {
    m.snapshot = {
      metadata: { index: 100, term: 6, membership: { members: [{ id: 'm1', address: '127.0.0.1:7001', role: 'voter' }, { id: 'm4', address: '[::1]:7004', role: 'learner' }] } },
      data: bytesOf(5, 6, 7, 8),
    };
  }
  return m;
}

/** The raw protobufjs type, to put on the wire what encodeMessage would refuse to. */
const rawMessageType = protobuf.loadSync(protoPath('raft.proto')).lookupType('handlefs.raft.Message');
const rawEncode = (object: Record<string, unknown>) => rawMessageType.encode(rawMessageType.fromObject(object)).finish();

function expectCodecError(action: () => unknown, pattern: RegExp, kind: 'undecodable' | 'invalid' = 'invalid'): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(RaftCodecError);
  expect((caught as RaftCodecError).kind).toBe(kind);
  expect((caught as Error).message).toMatch(pattern);
}

describe('the Raft message codec', () => {
  const sendableTypes = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number' && v !== MessageType.Hup);

  it.each(sendableTypes.map((t) => [MessageType[t], t]))('round-trips a %s message with every field set', (_name, type) => {
    const message = fullMessage(type as MessageType);
    expect(decodeMessage(encodeMessage(message))).toEqual(message);
  });

  it('carries a snapshot member\'s client address, and leaves it out for members without one (as older senders do)', () => {
    const message = fullMessage(MessageType.Snap);
    message.snapshot!.metadata.membership.members[1] = { id: 'm4', address: '[::1]:7004', role: 'learner', clientAddress: '[::1]:8004' };
    const decoded = decodeMessage(encodeMessage(message));
    expect(decoded).toEqual(message);
    expect(decoded.snapshot!.metadata.membership.members.map((m) => 'clientAddress' in m)).toEqual([false, true]);
    expectCodecError(() => {
      const tooLong = fullMessage(MessageType.Snap);
      tooLong.snapshot!.metadata.membership.members[0].clientAddress = 'x'.repeat(10_000);
      decodeMessage(encodeMessage(tooLong));
    }, /members\[0\]\.clientAddress must be a string of at most/);
  });

  it('round-trips a message with every field at its zero value', () => {
    const message = emptyMessage(MessageType.Heartbeat, 'a', 'b', 0);
    expect(decodeMessage(encodeMessage(message))).toEqual(message);
  });

  it('decodes uint64 fields as numbers up to Number.MAX_SAFE_INTEGER and refuses anything above', () => {
    const message = { ...emptyMessage(MessageType.HeartbeatResp, 'a', 'b', Number.MAX_SAFE_INTEGER), commit: Number.MAX_SAFE_INTEGER };
    const decoded = decodeMessage(encodeMessage(message));
    expect(decoded.term).toBe(Number.MAX_SAFE_INTEGER);
    expect(typeof decoded.commit).toBe('number');
    expectCodecError(() => decodeMessage(rawEncode({ type: MessageType.Heartbeat, from: 'a', to: 'b', term: '9007199254740993' })), /term exceeds Number.MAX_SAFE_INTEGER/);
  });

  it('hands out bytes that do not share memory with the received buffer', () => {
    const encoded = encodeMessage(fullMessage(MessageType.App));
    const decoded = decodeMessage(encoded);
    encoded.fill(0);
    expect(decoded.entries[0]!.data).toEqual(bytesOf(1, 2, 3));
    expect(decoded.context).toEqual(bytesOf(0xca, 0xfe));
  });

  describe('refuses bad input with a RaftCodecError naming the problem', () => {
    it('an unknown message type, and Hup, which never travels', () => {
      expectCodecError(() => decodeMessage(rawEncode({ type: 99, from: 'a', to: 'b' })), /type has unknown value 99/);
      expectCodecError(() => decodeMessage(rawEncode({ type: 0, from: 'a', to: 'b' })), /Hup is local only/);
      expectCodecError(() => encodeMessage({ ...emptyMessage(MessageType.Vote, 'a', 'b', 1), type: 42 as MessageType }), /type has unknown value 42/);
    });

    it('an empty or over-long node id', () => {
      expectCodecError(() => decodeMessage(rawEncode({ type: MessageType.Vote, from: '', to: 'b' })), /from must be a node id/);
      expectCodecError(() => decodeMessage(rawEncode({ type: MessageType.Vote, from: 'a', to: 'x'.repeat(65) })), /to must be a node id of 1..64/);
      expectCodecError(() => encodeMessage(emptyMessage(MessageType.Vote, 'a', '', 1)), /to must be a node id/);
    });

    it('an unknown entry type', () => {
      expectCodecError(() => decodeMessage(rawEncode({ type: MessageType.Prop, from: 'a', to: 'b', entries: [{ type: 7 }] })), /entries\[0\].type has unknown value 7/);
    });

    it('App entries that do not follow prevLogIndex contiguously, go back in term, or outrun the message term', () => {
      const app = fullMessage(MessageType.App);
      expectCodecError(() => encodeMessage({ ...app, index: 40 }), /entries\[0\].index is 42, expected 41/);
      expectCodecError(() => encodeMessage({ ...app, entries: [{ ...app.entries[1]!, index: 42 }, { ...app.entries[0]!, index: 43 }] }), /term 6 is lower than the previous entry's 7/);
      expectCodecError(() => encodeMessage({ ...app, term: 6 }), /term 7 is above the message term 6/);
    });

    it('a snapshot on anything but Snap, and a Snap without one', () => {
      expectCodecError(() => encodeMessage({ ...fullMessage(MessageType.App), snapshot: fullMessage(MessageType.Snap).snapshot }), /only Snap messages carry a snapshot/);
      expectCodecError(() => encodeMessage({ ...fullMessage(MessageType.Snap), snapshot: undefined }), /must carry snapshot metadata/);
    });

    it('negative, fractional or non-numeric integers on encode', () => {
      const base = emptyMessage(MessageType.Heartbeat, 'a', 'b', 1);
      expectCodecError(() => encodeMessage({ ...base, term: -1 }), /term must be a non-negative safe integer/);
      expectCodecError(() => encodeMessage({ ...base, commit: 1.5 }), /commit must be a non-negative safe integer/);
      expectCodecError(() => encodeMessage({ ...base, index: NaN }), /index must be a non-negative safe integer/);
      expectCodecError(() => encodeMessage({ ...base, logTerm: '3' as unknown as number }), /logTerm must be an integer/);
      expectCodecError(() => encodeMessage(null as unknown as Message), /message must be an object/);
    });

    it('bytes that are not a message at all', () => {
      expectCodecError(() => decodeMessage(bytesOf(0xff, 0xff, 0xff, 0xff)), /not decodable/, 'undecodable');
      const truncated = encodeMessage(fullMessage(MessageType.App)).subarray(0, 20);
      expectCodecError(() => decodeMessage(truncated), /not decodable/, 'undecodable');
    });
  });

  it('never throws anything but a RaftCodecError on corrupted input (5,000 seeded mutations)', () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const valid = sendableTypes.map((t) => encodeMessage(fullMessage(t)));
    let decodedCount = 0;
    for (let i = 0; i < 5000; i++) {
      const source = valid[Math.floor(random() * valid.length)]!;
      const mutated = new Uint8Array(i % 5 === 0 ? source.subarray(0, Math.floor(random() * source.length)) : source);
      const flips = 1 + Math.floor(random() * 4);
      for (let f = 0; f < flips && mutated.length > 0; f++) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
      try {
        decodeMessage(mutated);
        decodedCount++;
      } catch (error) {
        if (!(error instanceof RaftCodecError)) throw error;
      }
    }
    expect(decodedCount).toBeGreaterThan(0);
  });

  it('frames encoded messages as one batch and keeps the valid ones when one is bad', () => {
    const good = [fullMessage(MessageType.App), emptyMessage(MessageType.Heartbeat, 'm1', 'm2', 7)];
    const bad = rawEncode({ type: 77, from: 'm1', to: 'm2' });
    const frame = encodeBatchFrame([encodeMessage(good[0]!), bad, encodeMessage(good[1]!)]);
    const batch = decodeBatchFrame(frame);
    expect(batch.messages).toEqual(good);
    expect(batch.invalid).toHaveLength(1);
    expect(batch.invalid[0]!.message).toMatch(/unknown value 77/);
    expectCodecError(() => decodeBatchFrame(bytesOf(0x0a, 0x7f, 1)), /message batch is not decodable/, 'undecodable');
  });

  it('round-trips snapshot chunks, the header on the first only and without data', () => {
    const snap = fullMessage(MessageType.Snap);
    const first = decodeSnapshotChunk(encodeSnapshotChunk({ header: snap, offsetBytes: 0, data: bytesOf(1, 2), last: false }));
    expect(first.header).toEqual({ ...snap, snapshot: { metadata: snap.snapshot!.metadata, data: new Uint8Array(0) } });
    expect(first).toMatchObject({ offsetBytes: 0, last: false });
    expect(Array.from(first.data)).toEqual([1, 2]);
    const last = decodeSnapshotChunk(encodeSnapshotChunk({ offsetBytes: 2, data: bytesOf(3), last: true }));
    expect(last.header).toBeUndefined();
    expect(last).toMatchObject({ offsetBytes: 2, last: true });
    expectCodecError(() => encodeSnapshotChunk({ header: fullMessage(MessageType.App), offsetBytes: 0, data: bytesOf(), last: true }), /header must be a Snap message/);
  });

  it('finds proto/raft.proto, and names the file it cannot find', () => {
    expect(protoPath('raft.proto')).toBe(path.resolve(__dirname, '..', '..', 'proto', 'raft.proto'));
    expect(() => protoPath('no-such.proto')).toThrow(/cannot find proto\/no-such.proto/);
  });
});
