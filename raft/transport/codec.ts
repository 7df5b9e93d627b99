/**
 * The Raft transport's codec: proto/raft.proto loaded at runtime with
 * protobufjs, and the validated mapping between the wire and the core's
 * Message (raft/core/types.ts). Owns: every check a received byte string must
 * pass before it becomes a Message (known enum values, ids of 1..64 chars,
 * safe integers, well-formed entries). Throws RaftCodecError, never anything
 * else, on bad input. Must never do I/O beyond reading the .proto file once,
 * and never hand out memory shared with a receive buffer (decoded bytes are copied).
 */
import * as protobuf from 'protobufjs';
import { protoPath } from '../../proto/proto-path';
import { Entry, EntryType, Member, MemberRole, Membership, Message, MessageType, Snapshot, SnapshotMetadata } from '../core/types';

export class RaftCodecError extends Error {
  readonly code = 'RAFT_CODEC';
  /** 'undecodable': the bytes are not the protobuf message at all; 'invalid': they decode but break a rule. */
  constructor(problem: string, readonly kind: 'undecodable' | 'invalid' = 'invalid') {
    super(`raft codec: ${problem}`);
    this.name = 'RaftCodecError';
  }
}

export const NODE_ID_LENGTH_MAX = 64;
export const MEMBER_ADDRESS_LENGTH_MAX = 256;
interface Schema {
  message: protobuf.Type;
  batch: protobuf.Type;
  streamAck: protobuf.Type;
  snapshotChunk: protobuf.Type;
  snapshotAck: protobuf.Type;
}

let loadedSchema: Schema | undefined;

function schema(): Schema {
  if (loadedSchema === undefined) {
    const root = protobuf.loadSync(protoPath('raft.proto'));
    loadedSchema = {
      message: root.lookupType('handlefs.raft.Message'),
      batch: root.lookupType('handlefs.raft.MessageBatch'),
      streamAck: root.lookupType('handlefs.raft.StreamAck'),
      snapshotChunk: root.lookupType('handlefs.raft.SnapshotChunk'),
      snapshotAck: root.lookupType('handlefs.raft.SnapshotAck'),
    };
  }
  return loadedSchema;
}

// ---------------------------------------------------------------- wire shapes

/** protobufjs decodes uint64 as a Long when the `long` package is installed (it is, via grpc), else as a number. */
type WireUint64 = number | { high: number; low: number; toNumber(): number };

interface WireEntry { term: WireUint64; index: WireUint64; type: number; data: Uint8Array }
interface WireMember { id: string; address: string; role: number; clientAddress?: string }
interface WireSnapshot {
  metadata?: { index: WireUint64; term: WireUint64; membership?: { members: WireMember[] } | null } | null;
  data: Uint8Array;
}
interface WireMessage {
  type: number; from: string; to: string; term: WireUint64; logTerm: WireUint64; index: WireUint64;
  entries: WireEntry[]; commit: WireUint64; reject: boolean; rejectHint: WireUint64; logTermHint: WireUint64;
  snapshot?: WireSnapshot | null; context: Uint8Array;
}
interface WireSnapshotChunk { header?: WireMessage | null; offset: WireUint64; data: Uint8Array; last: boolean }

// ----------------------------------------------------------------- validation

const MESSAGE_TYPE_MAX = MessageType.TransferLeader;
const ENTRY_TYPE_MAX = EntryType.MembershipChange;

function uint64(value: WireUint64 | undefined | null, field: string): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RaftCodecError(`${field} must be a non-negative safe integer, got ${value}`);
    return value;
  }
  if (value !== null && typeof value === 'object' && typeof value.toNumber === 'function') {
    // A safe integer fits in 53 bits: the high word must stay below 2^21.
    if ((value.high >>> 0) > 0x1fffff) throw new RaftCodecError(`${field} exceeds Number.MAX_SAFE_INTEGER`);
    return value.toNumber();
  }
  throw new RaftCodecError(`${field} must be an integer, got ${typeof value}`);
}

function nodeId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > NODE_ID_LENGTH_MAX) {
    throw new RaftCodecError(`${field} must be a node id of 1..${NODE_ID_LENGTH_MAX} characters, got ${JSON.stringify(typeof value === 'string' ? value.slice(0, 80) : value)}`);
  }
  return value;
}

function enumValue(value: unknown, max: number, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new RaftCodecError(`${field} has unknown value ${String(value)}`);
  }
  return value;
}

const EMPTY = new Uint8Array(0);

function bytes(value: unknown, field: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  // protobufjs leaves an absent bytes field at its default, an empty plain array.
  if (Array.isArray(value) && value.length === 0) return EMPTY;
  throw new RaftCodecError(`${field} must be bytes`);
}

/** Copies decoded bytes out of the receive buffer, so a retained entry does not pin a whole batch in memory. */
function ownedCopy(value: Uint8Array): Uint8Array {
  if (value.byteLength === 0) return new Uint8Array(0);
  const copy = new Uint8Array(value.byteLength);
  copy.set(value);
  return copy;
}

/** Checks entry shape; App entries must also follow prevLogIndex contiguously with non-decreasing terms ≤ the message term. */
function checkEntries(type: MessageType, messageTerm: number, prevIndex: number, entries: readonly { term: number; index: number }[]): void {
  if (type !== MessageType.App) return;
  let previousTerm = 0;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (entry.index !== prevIndex + 1 + i) throw new RaftCodecError(`App entries[${i}].index is ${entry.index}, expected ${prevIndex + 1 + i} (contiguous after index ${prevIndex})`);
    if (entry.term < previousTerm) throw new RaftCodecError(`App entries[${i}].term ${entry.term} is lower than the previous entry's ${previousTerm}`);
    if (entry.term > messageTerm) throw new RaftCodecError(`App entries[${i}].term ${entry.term} is above the message term ${messageTerm}`);
    previousTerm = entry.term;
  }
}

const ROLE_TO_WIRE: Record<MemberRole, number> = { voter: 0, learner: 1 };
const WIRE_TO_ROLE: readonly MemberRole[] = ['voter', 'learner'];

function memberFromWire(wire: WireMember, field: string): Member {
  const id = nodeId(wire.id, `${field}.id`);
  if (typeof wire.address !== 'string' || wire.address.length > MEMBER_ADDRESS_LENGTH_MAX) {
    throw new RaftCodecError(`${field}.address must be a string of at most ${MEMBER_ADDRESS_LENGTH_MAX} characters`);
  }
  const role = WIRE_TO_ROLE[enumValue(wire.role, WIRE_TO_ROLE.length - 1, `${field}.role`)]!;
  // proto3: an absent client_address decodes as '' (a sender that predates it, or a member added without one).
  const clientAddress = wire.clientAddress ?? '';
  if (typeof clientAddress !== 'string' || clientAddress.length > MEMBER_ADDRESS_LENGTH_MAX) {
    throw new RaftCodecError(`${field}.clientAddress must be a string of at most ${MEMBER_ADDRESS_LENGTH_MAX} characters`);
  }
  return clientAddress ? { id, address: wire.address, role, clientAddress } : { id, address: wire.address, role };
}

function snapshotFromWire(wire: WireSnapshot, copyBytes: boolean): Snapshot {
  const metadataWire = wire.metadata;
  if (metadataWire === null || metadataWire === undefined) throw new RaftCodecError('snapshot.metadata is missing');
  const members = (metadataWire.membership?.members ?? []).map((m, i) => memberFromWire(m, `snapshot.metadata.membership.members[${i}]`));
  const metadata: SnapshotMetadata = {
    index: uint64(metadataWire.index, 'snapshot.metadata.index'),
    term: uint64(metadataWire.term, 'snapshot.metadata.term'),
    membership: { members },
  };
  const data = bytes(wire.data, 'snapshot.data');
  return { metadata, data: copyBytes ? ownedCopy(data) : data };
}

/** `copyBytes` false only validates outgoing messages, where copying would be wasted work. */
function messageFromWire(wire: WireMessage, copyBytes: boolean): Message {
  const own = copyBytes ? ownedCopy : (value: Uint8Array) => value;
  const type = enumValue(wire.type, MESSAGE_TYPE_MAX, 'type') as MessageType;
  if (type === MessageType.Hup) throw new RaftCodecError('type Hup is local only and never travels');
  const term = uint64(wire.term, 'term');
  const index = uint64(wire.index, 'index');
  if (!Array.isArray(wire.entries)) throw new RaftCodecError('entries must be a list');
  const entries: Entry[] = wire.entries.map((e, i) => ({
    term: uint64(e.term, `entries[${i}].term`),
    index: uint64(e.index, `entries[${i}].index`),
    type: enumValue(e.type, ENTRY_TYPE_MAX, `entries[${i}].type`) as EntryType,
    data: own(bytes(e.data, `entries[${i}].data`)),
  }));
  checkEntries(type, term, index, entries);
  if (typeof wire.reject !== 'boolean') throw new RaftCodecError('reject must be a boolean');
  const message: Message = {
    type,
    from: nodeId(wire.from, 'from'),
    to: nodeId(wire.to, 'to'),
    term,
    logTerm: uint64(wire.logTerm, 'logTerm'),
    index,
    entries,
    commit: uint64(wire.commit, 'commit'),
    reject: wire.reject,
    rejectHint: uint64(wire.rejectHint, 'rejectHint'),
    logTermHint: uint64(wire.logTermHint, 'logTermHint'),
    context: own(bytes(wire.context, 'context')),
  };
  const hasSnapshot = wire.snapshot !== null && wire.snapshot !== undefined;
  if (type === MessageType.Snap) {
    if (!hasSnapshot) throw new RaftCodecError('a Snap message must carry snapshot metadata');
    message.snapshot = snapshotFromWire(wire.snapshot!, copyBytes);
  } else if (hasSnapshot) {
    throw new RaftCodecError(`only Snap messages carry a snapshot, got one on type ${MessageType[type]}`);
  }
  return message;
}

function membershipToWire(membership: Membership): { members: WireMember[] } {
  if (!Array.isArray(membership?.members)) throw new RaftCodecError('snapshot.metadata.membership.members must be a list');
  return {
    members: membership.members.map((m, i) => {
      const role = ROLE_TO_WIRE[m.role];
      if (role === undefined) throw new RaftCodecError(`snapshot.metadata.membership.members[${i}].role has unknown value ${String(m.role)}`);
      return m.clientAddress ? { id: m.id, address: m.address, role, clientAddress: m.clientAddress } : { id: m.id, address: m.address, role };
    }),
  };
}

/** The wire object for `message`; `withSnapshotData` false leaves snapshot.data empty (the chunks carry it). */
function messageToWire(message: Message, withSnapshotData: boolean): WireMessage {
  const snapshot = message.snapshot;
  return {
    type: message.type, from: message.from, to: message.to, term: message.term, logTerm: message.logTerm,
    index: message.index, entries: message.entries, commit: message.commit, reject: message.reject,
    rejectHint: message.rejectHint, logTermHint: message.logTermHint, context: message.context,
    snapshot: snapshot === undefined ? null : {
      metadata: { index: snapshot.metadata.index, term: snapshot.metadata.term, membership: membershipToWire(snapshot.metadata.membership) },
      data: withSnapshotData ? snapshot.data : new Uint8Array(0),
    },
  };
}

function wrapDecode<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (error instanceof RaftCodecError) throw error;
    throw new RaftCodecError(`${what} is not decodable: ${(error as Error).message}`, 'undecodable');
  }
}

/**
 * Validates an outgoing message by the same rules a receiver applies: the
 * encoder refuses what the decoder would refuse, so a bad message is caught at its source.
 */
function validateOutgoing(wire: WireMessage): void {
  messageFromWire(wire, false);
}

// --------------------------------------------------------------------- public

/** Encodes one Message (snapshot data included when present). Throws RaftCodecError on a message the receiver would reject. */
export function encodeMessage(message: Message): Uint8Array {
  return encodeMessageWith(message, true);
}

function encodeMessageWith(message: Message, withSnapshotData: boolean): Uint8Array {
  if (message === null || typeof message !== 'object') throw new RaftCodecError('message must be an object');
  let wire: WireMessage;
  try {
    wire = messageToWire(message, withSnapshotData);
  } catch (error) {
    if (error instanceof RaftCodecError) throw error;
    throw new RaftCodecError(`message is malformed: ${(error as Error).message}`);
  }
  validateOutgoing(wire);
  return schema().message.encode(wire).finish();
}

/** Decodes and validates one Message. Throws RaftCodecError on anything malformed. */
export function decodeMessage(encoded: Uint8Array): Message {
  const wire = wrapDecode('message', () => schema().message.decode(encoded) as unknown as WireMessage);
  return messageFromWire(wire, true);
}

/**
 * Frames messages already encoded by encodeMessage as one MessageBatch: a
 * repeated embedded message is, on the wire, a repeated length-delimited
 * field 1, so the bytes are copied once and never re-encoded.
 */
export function encodeBatchFrame(encodedMessages: readonly Uint8Array[]): Buffer {
  const writer = protobuf.Writer.create();
  for (const encoded of encodedMessages) writer.uint32((1 << 3) | 2).bytes(encoded);
  return toBuffer(writer.finish());
}

/** Bytes one message adds to a batch frame: tag, length varint, body. */
export function batchFrameOverheadBytes(encodedLengthBytes: number): number {
  let varintBytes = 1;
  for (let v = encodedLengthBytes; v >= 0x80; v >>>= 7) varintBytes++;
  return 1 + varintBytes;
}

export interface DecodedBatch {
  messages: Message[];
  /** One error per message that decoded but failed validation; the others in the batch are kept. */
  invalid: RaftCodecError[];
}

/** Decodes a MessageBatch frame. Throws RaftCodecError if the frame itself is not decodable. */
export function decodeBatchFrame(frame: Uint8Array): DecodedBatch {
  const wire = wrapDecode('message batch', () => schema().batch.decode(frame) as unknown as { messages: WireMessage[] });
  const result: DecodedBatch = { messages: [], invalid: [] };
  for (const wireMessage of wire.messages) {
    try {
      result.messages.push(messageFromWire(wireMessage, true));
    } catch (error) {
      result.invalid.push(error instanceof RaftCodecError ? error : new RaftCodecError(String(error)));
    }
  }
  return result;
}

export interface SnapshotChunk {
  /** The Snap message without its data; only on the first chunk. */
  header?: Message;
  offsetBytes: number;
  data: Uint8Array;
  last: boolean;
}

export function encodeSnapshotChunk(chunk: SnapshotChunk): Buffer {
  let header: WireMessage | null = null;
  if (chunk.header !== undefined) {
    if (chunk.header.type !== MessageType.Snap) throw new RaftCodecError(`a snapshot chunk header must be a Snap message, got ${MessageType[chunk.header.type]}`);
    header = messageToWire(chunk.header, false);
    validateOutgoing(header);
  }
  const wire = { header, offset: chunk.offsetBytes, data: chunk.data, last: chunk.last };
  return toBuffer(schema().snapshotChunk.encode(wire).finish());
}

/** Decodes a chunk; its data stays a view of `frame` (the assembler copies it into the final buffer). */
export function decodeSnapshotChunk(frame: Uint8Array): SnapshotChunk {
  const wire = wrapDecode('snapshot chunk', () => schema().snapshotChunk.decode(frame) as unknown as WireSnapshotChunk);
  const chunk: SnapshotChunk = {
    offsetBytes: uint64(wire.offset, 'chunk.offset'),
    data: bytes(wire.data, 'chunk.data'),
    last: wire.last === true,
  };
  if (wire.header !== null && wire.header !== undefined) {
    const header = messageFromWire(wire.header, true);
    if (header.type !== MessageType.Snap) throw new RaftCodecError(`a snapshot chunk header must be a Snap message, got ${MessageType[header.type]}`);
    if (header.snapshot!.data.byteLength !== 0) throw new RaftCodecError('a snapshot chunk header must not carry data itself');
    chunk.header = header;
  }
  return chunk;
}

export function encodeStreamAck(receivedMessages: number): Buffer {
  return toBuffer(schema().streamAck.encode({ receivedMessages }).finish());
}

export function decodeStreamAck(frame: Uint8Array): { receivedMessages: number } {
  const wire = wrapDecode('stream ack', () => schema().streamAck.decode(frame) as unknown as { receivedMessages: WireUint64 });
  return { receivedMessages: uint64(wire.receivedMessages, 'receivedMessages') };
}

export function encodeSnapshotAck(receivedBytes: number): Buffer {
  return toBuffer(schema().snapshotAck.encode({ receivedBytes }).finish());
}

export function decodeSnapshotAck(frame: Uint8Array): { receivedBytes: number } {
  const wire = wrapDecode('snapshot ack', () => schema().snapshotAck.decode(frame) as unknown as { receivedBytes: WireUint64 });
  return { receivedBytes: uint64(wire.receivedBytes, 'receivedBytes') };
}

function toBuffer(bytesValue: Uint8Array): Buffer {
  return Buffer.isBuffer(bytesValue) ? bytesValue : Buffer.from(bytesValue.buffer, bytesValue.byteOffset, bytesValue.byteLength);
}
