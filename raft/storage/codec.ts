/**
 * The binary encoding of every value the LevelDB raft storage writes.
 * Every value is framed as [crc32 u32 BE][record tag u8][payload]; the CRC
 * covers tag and payload, so a flipped bit or a value written under the wrong
 * kind of key is caught on read. Numbers are u64 big-endian limited to safe
 * integers, strings are u16-length-prefixed UTF-8.
 * Owns: byte layouts, framing, structural checks while decoding.
 * Never: I/O, and no judgement about whether decoded Raft state is
 * consistent (recovery.ts does that).
 */
import { crc32 } from 'zlib';
import { Entry, EntryType, HardState, Member, Membership } from '../core/types';

/** Bump when any layout in this file or in keys.ts changes. */
export const FORMAT_VERSION = 1;

export enum RecordTag {
  FormatVersion = 1,
  HardState = 2,
  Membership = 3,
  LogBounds = 4,
  SnapshotMeta = 5,
  Entry = 6,
  SnapshotChunk = 7,
}

/** Where the stored log starts and ends. An empty log has lastIndex = firstIndex - 1. */
export interface LogBounds {
  firstIndex: number;
  lastIndex: number;
}

/** Snapshot metadata plus what is needed to reassemble and verify its data from chunks. */
export interface StoredSnapshotMeta {
  index: number;
  term: number;
  membership: Membership;
  dataSizeBytes: number;
  chunkCount: number;
  /** CRC32 of the whole data, so chunks from two different snapshots can never be mixed unnoticed. */
  dataCrc32: number;
}

/** A value that does not decode: its message names what is wrong, the caller names which key. */
export class DecodeError extends Error {}

const FRAME_HEADER_BYTES = 5;
const U64_BYTES = 8;
const TWO_POW_32 = 0x1_0000_0000;
const STRING_BYTES_MAX = 0xffff;
const MEMBERS_MAX = 0xffff;
/** An entry larger than this is a caller bug, not a log entry. */
export const ENTRY_DATA_BYTES_MAX = 64 * 1024 * 1024;

const ROLE_CODES: Record<Member['role'], number> = { voter: 0, learner: 1 };
const ROLES_BY_CODE: Member['role'][] = ['voter', 'learner'];
/**
 * Set in a member's role byte when its client address follows (a string).
 * Additive: a member without one encodes byte for byte as before the flag
 * existed, so FORMAT_VERSION 1 folders still open and read the same.
 */
const ROLE_FLAG_CLIENT_ADDRESS = 0x80;

class Writer {
  private pos = FRAME_HEADER_BYTES;
  readonly buf: Buffer;

  constructor(tag: RecordTag, payloadBytes: number) {
    this.buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes);
    this.buf[4] = tag;
  }

  u8(value: number): void {
    this.buf[this.pos] = value;
    this.pos += 1;
  }

  u16(value: number): void {
    this.buf.writeUInt16BE(value, this.pos);
    this.pos += 2;
  }

  u32(value: number): void {
    this.buf.writeUInt32BE(value, this.pos);
    this.pos += 4;
  }

  u64(value: number, what: string): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`cannot encode ${what}: ${value} is not a non-negative safe integer`);
    this.buf.writeUInt32BE(Math.floor(value / TWO_POW_32), this.pos);
    this.buf.writeUInt32BE(value >>> 0, this.pos + 4);
    this.pos += U64_BYTES;
  }

  str(encoded: Buffer): void {
    this.u16(encoded.byteLength);
    encoded.copy(this.buf, this.pos);
    this.pos += encoded.byteLength;
  }

  bytes(data: Uint8Array): void {
    this.buf.set(data, this.pos);
    this.pos += data.byteLength;
  }

  /** Seals the frame with its CRC; asserts the size computed up front was exact. */
  finish(): Buffer {
    if (this.pos !== this.buf.byteLength) throw new Error(`codec bug: wrote ${this.pos} bytes into a ${this.buf.byteLength}-byte value`);
    this.buf.writeUInt32BE(crc32(this.buf.subarray(4)), 0);
    return this.buf;
  }
}

class Reader {
  private pos = FRAME_HEADER_BYTES;

  constructor(private readonly buf: Buffer) {}

  private need(bytes: number, what: string): void {
    if (this.pos + bytes > this.buf.byteLength) {
      throw new DecodeError(`truncated: ${what} needs ${bytes} bytes at offset ${this.pos} of a ${this.buf.byteLength}-byte value`);
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  u16(what: string): number {
    this.need(2, what);
    const value = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return value;
  }

  u32(what: string): number {
    this.need(4, what);
    const value = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return value;
  }

  u64(what: string): number {
    this.need(U64_BYTES, what);
    const value = this.buf.readUInt32BE(this.pos) * TWO_POW_32 + this.buf.readUInt32BE(this.pos + 4);
    this.pos += U64_BYTES;
    if (!Number.isSafeInteger(value)) throw new DecodeError(`${what} ${value} is beyond the safe integer range`);
    return value;
  }

  str(what: string): string {
    const length = this.u16(`${what} length`);
    this.need(length, what);
    const value = this.buf.toString('utf8', this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  /** The remaining bytes as a view (no copy). */
  rest(): Uint8Array {
    const view = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, this.buf.byteLength - this.pos);
    this.pos = this.buf.byteLength;
    return view;
  }

  end(): void {
    if (this.pos !== this.buf.byteLength) throw new DecodeError(`${this.buf.byteLength - this.pos} unexpected trailing bytes`);
  }
}

const RECORD_NAMES: Record<RecordTag, string> = {
  [RecordTag.FormatVersion]: 'format-version',
  [RecordTag.HardState]: 'hard-state',
  [RecordTag.Membership]: 'membership',
  [RecordTag.LogBounds]: 'log-bounds',
  [RecordTag.SnapshotMeta]: 'snapshot-metadata',
  [RecordTag.Entry]: 'log-entry',
  [RecordTag.SnapshotChunk]: 'snapshot-chunk',
};

function open(value: Uint8Array, expected: RecordTag): Reader {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (buf.byteLength < FRAME_HEADER_BYTES) throw new DecodeError(`value of ${buf.byteLength} bytes is shorter than the ${FRAME_HEADER_BYTES}-byte frame header`);
  const storedCrc = buf.readUInt32BE(0);
  const computedCrc = crc32(buf.subarray(4));
  if (storedCrc !== computedCrc) {
    throw new DecodeError(`CRC mismatch (stored 0x${storedCrc.toString(16).padStart(8, '0')}, computed 0x${computedCrc.toString(16).padStart(8, '0')})`);
  }
  const tag = buf[4] as RecordTag;
  if (tag !== expected) {
    const found = RECORD_NAMES[tag] ?? `unknown record tag ${tag}`;
    throw new DecodeError(`holds a ${found} record where a ${RECORD_NAMES[expected]} record belongs`);
  }
  return new Reader(buf);
}

function utf8(value: string, what: string): Buffer {
  const encoded = Buffer.from(value, 'utf8');
  if (encoded.byteLength > STRING_BYTES_MAX) throw new Error(`cannot encode ${what}: ${encoded.byteLength} bytes exceeds ${STRING_BYTES_MAX}`);
  return encoded;
}

// --- format version ---

export function encodeFormatVersion(version: number): Buffer {
  const w = new Writer(RecordTag.FormatVersion, 4);
  w.u32(version);
  return w.finish();
}

export function decodeFormatVersion(value: Uint8Array): number {
  const r = open(value, RecordTag.FormatVersion);
  const version = r.u32('format version');
  r.end();
  return version;
}

// --- hard state ---

export function encodeHardState(hardState: HardState): Buffer {
  const vote = utf8(hardState.vote, 'hard state vote');
  const w = new Writer(RecordTag.HardState, U64_BYTES + 2 + vote.byteLength + U64_BYTES);
  w.u64(hardState.term, 'hard state term');
  w.str(vote);
  w.u64(hardState.commit, 'hard state commit');
  return w.finish();
}

export function decodeHardState(value: Uint8Array): HardState {
  const r = open(value, RecordTag.HardState);
  const term = r.u64('term');
  const vote = r.str('vote');
  const commit = r.u64('commit');
  r.end();
  return { term, vote, commit };
}

// --- membership (its own record, and embedded in snapshot metadata) ---

interface EncodedMember {
  id: Buffer;
  address: Buffer;
  role: number;
  clientAddress?: Buffer;
}

function prepareMembership(membership: Membership): { members: EncodedMember[]; bytes: number } {
  if (membership.members.length > MEMBERS_MAX) throw new Error(`cannot encode membership: ${membership.members.length} members exceeds ${MEMBERS_MAX}`);
  const seen = new Set<string>();
  let bytes = 2;
  const members = membership.members.map((m) => {
    if (m.id.length === 0) throw new Error('cannot encode membership: a member has an empty id');
    if (seen.has(m.id)) throw new Error(`cannot encode membership: member ${m.id} appears twice`);
    seen.add(m.id);
    const role = ROLE_CODES[m.role];
    if (role === undefined) throw new Error(`cannot encode membership: member ${m.id} has unknown role ${String(m.role)}`);
    const encoded: EncodedMember = { id: utf8(m.id, 'member id'), address: utf8(m.address, 'member address'), role };
    if (m.clientAddress) encoded.clientAddress = utf8(m.clientAddress, 'member client address');
    bytes += 2 + encoded.id.byteLength + 2 + encoded.address.byteLength + 1 + (encoded.clientAddress ? 2 + encoded.clientAddress.byteLength : 0);
    return encoded;
  });
  return { members, bytes };
}

function writeMembership(w: Writer, prepared: { members: EncodedMember[] }): void {
  w.u16(prepared.members.length);
  for (const m of prepared.members) {
    w.str(m.id);
    w.str(m.address);
    w.u8(m.clientAddress ? m.role | ROLE_FLAG_CLIENT_ADDRESS : m.role);
    if (m.clientAddress) w.str(m.clientAddress);
  }
}

function readMembership(r: Reader): Membership {
  const count = r.u16('member count');
  const members: Member[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const id = r.str(`member ${i} id`);
    const address = r.str(`member ${i} address`);
    const roleByte = r.u8(`member ${i} role`);
    const roleCode = roleByte & ~ROLE_FLAG_CLIENT_ADDRESS;
    const role = ROLES_BY_CODE[roleCode];
    if (role === undefined) throw new DecodeError(`member ${id} has unknown role code ${roleCode}`);
    if (id.length === 0) throw new DecodeError(`member ${i} has an empty id`);
    if (seen.has(id)) throw new DecodeError(`member ${id} appears twice`);
    seen.add(id);
    if (roleByte & ROLE_FLAG_CLIENT_ADDRESS) {
      const clientAddress = r.str(`member ${id} client address`);
      if (clientAddress.length === 0) throw new DecodeError(`member ${id} is flagged with a client address but it is empty`);
      members.push({ id, address, role, clientAddress });
    } else {
      members.push({ id, address, role });
    }
  }
  return { members };
}

export function encodeMembership(membership: Membership): Buffer {
  const prepared = prepareMembership(membership);
  const w = new Writer(RecordTag.Membership, prepared.bytes);
  writeMembership(w, prepared);
  return w.finish();
}

export function decodeMembership(value: Uint8Array): Membership {
  const r = open(value, RecordTag.Membership);
  const membership = readMembership(r);
  r.end();
  return membership;
}

// --- log bounds ---

export function encodeLogBounds(bounds: LogBounds): Buffer {
  const w = new Writer(RecordTag.LogBounds, 2 * U64_BYTES);
  w.u64(bounds.firstIndex, 'first log index');
  w.u64(bounds.lastIndex, 'last log index');
  return w.finish();
}

export function decodeLogBounds(value: Uint8Array): LogBounds {
  const r = open(value, RecordTag.LogBounds);
  const firstIndex = r.u64('first index');
  const lastIndex = r.u64('last index');
  r.end();
  return { firstIndex, lastIndex };
}

// --- snapshot metadata ---

export function encodeSnapshotMeta(meta: StoredSnapshotMeta): Buffer {
  const prepared = prepareMembership(meta.membership);
  const w = new Writer(RecordTag.SnapshotMeta, 3 * U64_BYTES + 4 + 4 + prepared.bytes);
  w.u64(meta.index, 'snapshot index');
  w.u64(meta.term, 'snapshot term');
  w.u64(meta.dataSizeBytes, 'snapshot size');
  w.u32(meta.chunkCount);
  w.u32(meta.dataCrc32);
  writeMembership(w, prepared);
  return w.finish();
}

export function decodeSnapshotMeta(value: Uint8Array): StoredSnapshotMeta {
  const r = open(value, RecordTag.SnapshotMeta);
  const index = r.u64('index');
  const term = r.u64('term');
  const dataSizeBytes = r.u64('data size');
  const chunkCount = r.u32('chunk count');
  const dataCrc32 = r.u32('data CRC');
  const membership = readMembership(r);
  r.end();
  return { index, term, membership, dataSizeBytes, chunkCount, dataCrc32 };
}

// --- log entries (the hot path: 5 + 17 bytes of overhead per entry) ---

const ENTRY_HEADER_BYTES = 2 * U64_BYTES + 1;

export function encodeEntry(entry: Entry): Buffer {
  if (entry.type !== EntryType.Normal && entry.type !== EntryType.Noop && entry.type !== EntryType.MembershipChange) {
    throw new Error(`cannot encode log entry ${entry.index}: unknown entry type ${String(entry.type)}`);
  }
  if (entry.data.byteLength > ENTRY_DATA_BYTES_MAX) {
    throw new Error(`cannot encode log entry ${entry.index}: ${entry.data.byteLength} data bytes exceeds ${ENTRY_DATA_BYTES_MAX}`);
  }
  const w = new Writer(RecordTag.Entry, ENTRY_HEADER_BYTES + entry.data.byteLength);
  w.u64(entry.index, 'entry index');
  w.u64(entry.term, 'entry term');
  w.u8(entry.type);
  w.bytes(entry.data);
  return w.finish();
}

export function decodeEntry(value: Uint8Array): Entry {
  const r = open(value, RecordTag.Entry);
  const index = r.u64('index');
  const term = r.u64('term');
  const type = r.u8('type');
  if (type !== EntryType.Normal && type !== EntryType.Noop && type !== EntryType.MembershipChange) {
    throw new DecodeError(`unknown entry type ${type}`);
  }
  return { index, term, type, data: r.rest() };
}

// --- snapshot data chunks ---

export function encodeChunk(data: Uint8Array): Buffer {
  const w = new Writer(RecordTag.SnapshotChunk, data.byteLength);
  w.bytes(data);
  return w.finish();
}

export function decodeChunk(value: Uint8Array): Uint8Array {
  return open(value, RecordTag.SnapshotChunk).rest();
}

export function dataCrc32(data: Uint8Array): number {
  return crc32(data);
}
