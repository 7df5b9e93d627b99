/**
 * The gRPC service definition of proto/admin.proto (package handlefs.admin,
 * the operator API) and the TypeScript shapes of its messages as protobufjs
 * decodes them (camelCase fields, uint64 as number). Shared by the server's
 * admin service and the operator commands (deploy/ops). Owns the schema
 * binding only; must never carry server logic.
 */
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { MalformedRequest, unaryMethod } from './grpc-method';
import { protoPath } from './proto-path';

export { LEADER_ADDRESS_METADATA, LEADER_ID_METADATA } from './meta-proto';

export type StatusRequest = Record<string, never>;
export interface AdminMember { id: string; peerAddress: string; role: string; clientAddress: string }
export interface AdminProgress { id: string; matchIndex: number; nextIndex: number; state: string; learner: boolean; lagEntries: number; lastContactMs: number }
export interface StatusReply {
  id: string; role: string; term: number; leaderId: string; leaderClientAddress: string;
  commitIndex: number; appliedIndex: number; firstIndex: number; lastIndex: number; snapshotIndex: number;
  members: AdminMember[]; progress: AdminProgress[]; clientAddress: string; peerAddress: string; version: string; pid: number;
  electionTimeoutMs: number; transferee: string; catchUpLagEntries: number; leaderContactMs: number;
}
export interface MemberAddRequest { id: string; peerAddress: string; clientAddress: string }
export interface MemberIdRequest { id: string }
export interface MemberReply { members: AdminMember[]; leaderId: string }
export interface LeaderTransferRequest { to: string; timeoutMs: number }
export interface LeaderTransferReply { leaderId: string; leaderClientAddress: string }
export type SnapshotRequest = Record<string, never>;
export interface SnapshotReply { id: string; index: number; term: number; compactIndex: number; taken: boolean; durationMs: number }

export interface FsckScanRequest { index: number; waitMs: number; samplesPerKind: number }
export interface FsckFinding { kind: string; subject: string; detail: string; handle: number; expected: number }
export interface FsckCount { kind: string; count: number }
export interface FsckScanReply {
  id: string; index: number; digest: string; keys: number; bytes: number; counts: FsckCount[]; findings: FsckFinding[]; incomplete: boolean;
  inodes: number; entries: number; fhs: number; versions: number; conflictCopies: number; blockRecords: number; referencedBlocks: number; durationMs: number;
}
export interface ReferencedBlocksRequest { afterId: string; limit: number }
export interface ReferencedBlocksReply { ids: string[]; more: boolean }
export type FsckRepairRequest = Record<string, never>;
export interface FsckRepairReply { id: string; index: number; nlinkFixed: number[]; collected: number[]; skipped: string[]; notRepairable: string[] }
export interface SessionsRequest { limit: number }
export interface SessionInfo {
  id: number; clientName: string; ttlMs: number; createdAtMs: number; fhs: number; tracked: boolean; sinceKeepAliveMs: number; expiresInMs: number;
}
export interface SessionsReply {
  id: string; term: number; appliedIndex: number; wallClockMs: number; expiryIntervalMs: number; maxExpiriesPerRound: number;
  sessions: SessionInfo[]; truncated: boolean; total: number; untracked: number; overdue: number;
}

const root = protobuf.loadSync(protoPath('admin.proto'));

function method<Req, Res>(name: string, requestType: string, responseType: string): grpc.MethodDefinition<Req | MalformedRequest, Res> {
  return unaryMethod<Req, Res>(root, 'handlefs.admin', 'Admin', name, requestType, responseType);
}

export const adminService = {
  Status: method<StatusRequest, StatusReply>('Status', 'StatusRequest', 'StatusReply'),
  MemberAdd: method<MemberAddRequest, MemberReply>('MemberAdd', 'MemberAddRequest', 'MemberReply'),
  MemberPromote: method<MemberIdRequest, MemberReply>('MemberPromote', 'MemberIdRequest', 'MemberReply'),
  MemberRemove: method<MemberIdRequest, MemberReply>('MemberRemove', 'MemberIdRequest', 'MemberReply'),
  LeaderTransfer: method<LeaderTransferRequest, LeaderTransferReply>('LeaderTransfer', 'LeaderTransferRequest', 'LeaderTransferReply'),
  Snapshot: method<SnapshotRequest, SnapshotReply>('Snapshot', 'SnapshotRequest', 'SnapshotReply'),
  FsckScan: method<FsckScanRequest, FsckScanReply>('FsckScan', 'FsckScanRequest', 'FsckScanReply'),
  ReferencedBlocks: method<ReferencedBlocksRequest, ReferencedBlocksReply>('ReferencedBlocks', 'ReferencedBlocksRequest', 'ReferencedBlocksReply'),
  FsckRepair: method<FsckRepairRequest, FsckRepairReply>('FsckRepair', 'FsckRepairRequest', 'FsckRepairReply'),
  Sessions: method<SessionsRequest, SessionsReply>('Sessions', 'SessionsRequest', 'SessionsReply'),
} satisfies grpc.ServiceDefinition;

export type AdminMethod = keyof typeof adminService;

/** The untyped client constructor; deploy/ops/admin-client.ts wraps it. */
export const AdminGrpcClient = grpc.makeGenericClientConstructor(adminService, 'Admin');
