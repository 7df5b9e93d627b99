/**
 * The byte layouts on their own: every record decodes to what was encoded,
 * keys sort by number, and bad input is refused with the problem named.
 */
import { crc32 } from 'zlib';
import { EntryType } from '../core/types';
import {
  DecodeError,
  decodeChunk,
  decodeEntry,
  decodeHardState,
  decodeLogBounds,
  decodeMembership,
  decodeSnapshotMeta,
  encodeChunk,
  encodeEntry,
  encodeHardState,
  encodeLogBounds,
  encodeMembership,
  encodeSnapshotMeta,
} from './codec';
import { chunkKey, entryKey, parseChunkKey, parseEntryKey } from './keys';
import { THREE_MEMBERS } from './testing';

describe('records', () => {
  it('decode to exactly what was encoded', () => {
    const entry = { index: 2 ** 40 + 5, term: 7, type: EntryType.MembershipChange, data: new Uint8Array([1, 2, 3]) };
    expect(decodeEntry(encodeEntry(entry))).toEqual(entry);
    expect(decodeEntry(encodeEntry({ ...entry, data: new Uint8Array(0) })).data.byteLength).toBe(0);
    expect(decodeHardState(encodeHardState({ term: 3, vote: 'm2', commit: 99 }))).toEqual({ term: 3, vote: 'm2', commit: 99 });
    expect(decodeHardState(encodeHardState({ term: 0, vote: '', commit: 0 }))).toEqual({ term: 0, vote: '', commit: 0 });
    expect(decodeMembership(encodeMembership(THREE_MEMBERS))).toEqual(THREE_MEMBERS);
    expect(decodeMembership(encodeMembership({ members: [] }))).toEqual({ members: [] });
    expect(decodeLogBounds(encodeLogBounds({ firstIndex: 11, lastIndex: 10 }))).toEqual({ firstIndex: 11, lastIndex: 10 });
    const meta = { index: 9, term: 2, membership: THREE_MEMBERS, dataSizeBytes: 5 * 1024 * 1024, chunkCount: 5, dataCrc32: 0xdeadbeef };
    expect(decodeSnapshotMeta(encodeSnapshotMeta(meta))).toEqual(meta);
    expect(decodeChunk(encodeChunk(new Uint8Array([9, 8, 7])))).toEqual(new Uint8Array([9, 8, 7]));
  });

  it('carry a member\'s client address; a membership without any encodes byte for byte as before they existed', () => {
    const withClients = { members: THREE_MEMBERS.members.map((m, i) => (i === 2 ? m : { ...m, clientAddress: `127.0.0.1:800${i + 1}` })) };
    expect(decodeMembership(encodeMembership(withClients))).toEqual(withClients);
    const meta = { index: 9, term: 2, membership: withClients, dataSizeBytes: 5, chunkCount: 1, dataCrc32: 1 };
    expect(decodeSnapshotMeta(encodeSnapshotMeta(meta))).toEqual(meta);
    // The old layout: u16 count, then per member id, address (u16-prefixed strings) and the role byte alone.
    const old = encodeMembership(THREE_MEMBERS);
    const body = THREE_MEMBERS.members.map((m) => Buffer.concat([lengthPrefixed(m.id), lengthPrefixed(m.address), Buffer.from([m.role === 'voter' ? 0 : 1])]));
    expect(old.subarray(5)).toEqual(Buffer.concat([Buffer.from([0, 3]), ...body]));
    expect(encodeMembership(withClients).byteLength).toBe(old.byteLength + 2 * (2 + '127.0.0.1:8001'.length));
    expect(decodeMembership(encodeMembership(withClients)).members[2]).not.toHaveProperty('clientAddress');
  });

  it('cost 22 bytes of framing per log entry', () => {
    expect(encodeEntry({ index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array(100) }).byteLength).toBe(122);
  });

  it('refuse to encode numbers beyond the safe range, duplicate members and unknown entry types', () => {
    expect(() => encodeHardState({ term: 2 ** 53, vote: '', commit: 0 })).toThrow(/hard state term: 9007199254740992 is not a non-negative safe integer/);
    expect(() => encodeMembership({ members: [THREE_MEMBERS.members[0], THREE_MEMBERS.members[0]] })).toThrow(/member m1 appears twice/);
    expect(() => encodeEntry({ index: 1, term: 1, type: 9 as EntryType, data: new Uint8Array(0) })).toThrow(/unknown entry type 9/);
  });

  it('refuse to decode trailing bytes, a short value or an unknown entry type', () => {
    const hardState = encodeHardState({ term: 1, vote: 'm1', commit: 1 });
    const withTrailing = Buffer.concat([hardState, Buffer.from([0])]);
    // Re-seal the CRC so only the trailing byte is wrong.
    withTrailing.writeUInt32BE(crc32(withTrailing.subarray(4)), 0);
    expect(() => decodeHardState(withTrailing)).toThrow(/1 unexpected trailing bytes/);
    expect(() => decodeHardState(new Uint8Array([1, 2]))).toThrow(DecodeError);
    const badType = encodeEntry({ index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array(0) });
    badType[4 + 1 + 16] = 9;
    badType.writeUInt32BE(crc32(badType.subarray(4)), 0);
    expect(() => decodeEntry(badType)).toThrow(/unknown entry type 9/);
  });
});

describe('keys', () => {
  it('sort log entries by index, across the 32-bit boundary', () => {
    const indexes = [1, 2, 255, 256, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1];
    const sorted = indexes.map(entryKey).sort(Buffer.compare).map((key) => parseEntryKey(key));
    expect(sorted).toEqual(indexes);
  });

  it('parse back what they encode and reject foreign keys', () => {
    expect(parseChunkKey(chunkKey(70000))).toBe(70000);
    expect(parseEntryKey(chunkKey(1))).toBeUndefined();
    expect(parseEntryKey(Buffer.from([1, 0, 0]))).toBeUndefined();
    expect(() => entryKey(0)).toThrow(/positive safe integer/);
  });
});

function lengthPrefixed(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.byteLength, 0);
  return Buffer.concat([length, bytes]);
}
