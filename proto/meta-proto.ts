/**
 * The gRPC service definition of proto/metaserver.proto (package handlefs.meta)
 * and the TypeScript shapes of its messages as protobufjs decodes them
 * (uint64 as number, absent sub-messages as null, absent `optional` scalars
 * as undefined). Shared by the server and its clients. Owns the schema
 * binding only; must never carry server logic.
 */
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { MalformedRequest, unaryMethod } from './grpc-method';
import { protoPath } from './proto-path';

/** Trailing metadata of a FAILED_PRECONDITION (not the leader). */
export const LEADER_ID_METADATA = 'handlefs-leader-id';
/** The leader's client API address (not its Raft address). */
export const LEADER_ADDRESS_METADATA = 'handlefs-leader-address';

export interface Caller { uid: number; gid: number; groups: number[] }
export interface Header { sessionId: number; sequence: number; firstUnacked?: number; caller: Caller | null }
export interface Attr {
  handle: number; generation: number; type: string; mode: number; uid: number; gid: number; nlink: number;
  sizeBytes: number; atimeMs: number; mtimeMs: number; ctimeMs: number; rdev: number;
  /** Regular files: the newest version (0 otherwise). */
  headVersion?: number;
}
export interface ErrnoFields { errno: number; message: string }
export interface Reply extends ErrnoFields { sessionError: string }
export interface AttrReply extends Reply { attr?: Attr | null }
export interface OpenedFh { fh: number; version: number; sizeBytes: number }
export interface OpenFlags { read: boolean; write: boolean; append: boolean }
export interface EntryReply extends AttrReply { created: boolean; opened?: OpenedFh | null }
export interface OpenSessionRequest { ttlMs: number; clientName: string }
export interface OpenSessionReply extends ErrnoFields {
  sessionId: number; ttlMs: number;
  /** A subtree token's root directory (0: the file system root); servers without subtree tokens leave it out. */
  rootHandle?: number; rootGeneration?: number;
}
export interface KeepAliveRequest { sessionId: number }
export interface KeepAliveReply extends Reply { ttlMs: number }
export interface CloseSessionRequest { header: Header | null }
export interface LookupRequest { caller: Caller | null; parent: number; name: string }
export interface GetAttrRequest { handle: number; generation: number }
export interface GetAttrsRequest { items: GetAttrRequest[] }
export interface GetAttrsReply { items: AttrReply[] }
export interface ReadLinkRequest { handle: number }
export interface ReadLinkReply extends ErrnoFields { target: string }
export interface ReadDirRequest { caller: Caller | null; parent: number; cookie: string; limit: number }
export interface DirEntry { name: string; handle: number; type: string }
export interface ReadDirReply extends ErrnoFields { entries: DirEntry[]; cookie: string }
export interface GetXattrRequest { caller: Caller | null; handle: number; name: string }
export interface GetXattrReply extends ErrnoFields { value: Uint8Array }
export interface ListXattrRequest { caller: Caller | null; handle: number }
export interface ListXattrReply extends ErrnoFields { names: string[] }
export type StatFsRequest = Record<string, never>;
export interface StatFsReply extends ErrnoFields {
  inodesInUse: number; nextHandle: number; sessionsOpen: number; maxInodes: number; blockBytesStored: number; maxBlockBytes: number; diskFreeBytes: number; readOnly: boolean;
}
export interface TimeSpec { now: boolean; ms: number }
export interface SetAttrRequest {
  header: Header | null; handle: number; mode?: number; uid?: number; gid?: number; sizeBytes?: number;
  atime: TimeSpec | null; mtime: TimeSpec | null;
}
export interface MkdirRequest { header: Header | null; parent: number; name: string; mode: number; umask?: number }
export interface CreateRequest extends MkdirRequest { exclusive: boolean; open?: OpenFlags | null }
export interface MknodRequest extends MkdirRequest { fileType: string; rdev: number }
export interface SymlinkRequest { header: Header | null; parent: number; name: string; target: string }
export interface LinkRequest { header: Header | null; handle: number; newParent: number; newName: string }
export interface UnlinkRequest { header: Header | null; parent: number; name: string }
export type RmdirRequest = UnlinkRequest;
export interface RenameRequest { header: Header | null; fromParent: number; fromName: string; toParent: number; toName: string; noReplace: boolean }
export interface SetXattrRequest { header: Header | null; handle: number; name: string; value: Uint8Array; flags: number }
export interface RemoveXattrRequest { header: Header | null; handle: number; name: string }
export interface OpenRequest { header: Header | null; handle: number; read: boolean; write: boolean; append: boolean }
export interface OpenReply extends Reply { fh: number; version: number; sizeBytes: number; attr?: Attr | null }
export interface ReleaseRequest { header: Header | null; fh: number }
export interface WrittenRange { offset: number; data: Uint8Array }
/** proto enum ConflictPolicy (protobufjs decodes enums as their numbers). */
export const ConflictPolicy = { LWW: 0, REJECT: 1 } as const;
export interface CommitVersionRequest {
  header: Header | null; fh: number; baseVersion: number; written: WrittenRange[]; newSize: number; policy: number;
  release?: boolean; blockForm?: boolean; blocks?: string[]; writtenExtents?: Extent[]; truncated?: boolean; truncatedTo?: number;
}
export interface RestoreVersionRequest { header: Header | null; handle: number; version: number }
export interface RestoreVersionReply extends Reply { version: number; sizeBytes: number }
export interface PutBlockRequest { header: Header | null; data: Uint8Array; id: string }
export interface PutBlockReply extends Reply { id: string }
export interface PinBlocksRequest { header: Header | null; ids: string[]; newBytes: number }
export interface PinBlocksReply extends Reply { appliedIndex: number }
export interface GetBlockRequest { id: string }
export interface GetBlockReply extends ErrnoFields { data: Uint8Array }
export interface HasBlocksRequest { ids: string[] }
export interface HasBlocksReply { present: boolean[] }
export interface CommitVersionReply extends Reply {
  kind: string; version: number; sizeBytes: number; conflictVersion: number; conflictCopy: number; headVersion: number;
}
export interface ReadFhRequest { fh: number; offset: number; length: number; sessionId: number }
export interface ReadFhReply extends ErrnoFields { data: Uint8Array; version: number; sizeBytes: number }
export interface Extent { offset: number; length: number }
export interface VersionInfo {
  version: number; sizeBytes: number; kind: string; baseVersion: number; sessionId: number; fh: number; commitTimeMs: number; mtimeMs: number;
  changedExtents: Extent[]; conflict: boolean; lostToVersion: number; overwroteVersion: number;
  blocks: string[]; blockSizeBytes: number; restoredFrom: number;
}
export interface ConflictCopyInfo {
  copy: number; baseVersion: number; lostToVersion: number; sizeBytes: number; sessionId: number; fh: number; commitTimeMs: number; changedExtents: Extent[];
  blocks: string[]; blockSizeBytes: number;
}
export interface GetVersionRequest { caller: Caller | null; handle: number; version: number }
export interface GetVersionReply extends ErrnoFields { info?: VersionInfo | null; content: Uint8Array }
export interface ListVersionsRequest { caller: Caller | null; handle: number; fromVersion: number; limit: number }
export interface ListVersionsReply extends ErrnoFields { versions: VersionInfo[]; nextFromVersion: number }
export interface GetConflictCopyRequest { caller: Caller | null; handle: number; copy: number }
export interface GetConflictCopyReply extends ErrnoFields { info?: ConflictCopyInfo | null; content: Uint8Array }

const root = protobuf.loadSync(protoPath('metaserver.proto'));

function method<Req, Res>(name: string, requestType: string, responseType: string): grpc.MethodDefinition<Req | MalformedRequest, Res> {
  return unaryMethod<Req, Res>(root, 'handlefs.meta', 'Meta', name, requestType, responseType);
}

export const metaService = {
  OpenSession: method<OpenSessionRequest, OpenSessionReply>('OpenSession', 'OpenSessionRequest', 'OpenSessionReply'),
  KeepAlive: method<KeepAliveRequest, KeepAliveReply>('KeepAlive', 'KeepAliveRequest', 'KeepAliveReply'),
  CloseSession: method<CloseSessionRequest, Reply>('CloseSession', 'CloseSessionRequest', 'Reply'),
  Lookup: method<LookupRequest, AttrReply>('Lookup', 'LookupRequest', 'AttrReply'),
  GetAttr: method<GetAttrRequest, AttrReply>('GetAttr', 'GetAttrRequest', 'AttrReply'),
  GetAttrs: method<GetAttrsRequest, GetAttrsReply>('GetAttrs', 'GetAttrsRequest', 'GetAttrsReply'),
  ReadLink: method<ReadLinkRequest, ReadLinkReply>('ReadLink', 'ReadLinkRequest', 'ReadLinkReply'),
  ReadDir: method<ReadDirRequest, ReadDirReply>('ReadDir', 'ReadDirRequest', 'ReadDirReply'),
  GetXattr: method<GetXattrRequest, GetXattrReply>('GetXattr', 'GetXattrRequest', 'GetXattrReply'),
  ListXattr: method<ListXattrRequest, ListXattrReply>('ListXattr', 'ListXattrRequest', 'ListXattrReply'),
  StatFs: method<StatFsRequest, StatFsReply>('StatFs', 'StatFsRequest', 'StatFsReply'),
  SetAttr: method<SetAttrRequest, AttrReply>('SetAttr', 'SetAttrRequest', 'AttrReply'),
  Mkdir: method<MkdirRequest, EntryReply>('Mkdir', 'MkdirRequest', 'EntryReply'),
  Create: method<CreateRequest, EntryReply>('Create', 'CreateRequest', 'EntryReply'),
  Mknod: method<MknodRequest, EntryReply>('Mknod', 'MknodRequest', 'EntryReply'),
  Symlink: method<SymlinkRequest, EntryReply>('Symlink', 'SymlinkRequest', 'EntryReply'),
  Link: method<LinkRequest, EntryReply>('Link', 'LinkRequest', 'EntryReply'),
  Unlink: method<UnlinkRequest, Reply>('Unlink', 'UnlinkRequest', 'Reply'),
  Rmdir: method<RmdirRequest, Reply>('Rmdir', 'RmdirRequest', 'Reply'),
  Rename: method<RenameRequest, Reply>('Rename', 'RenameRequest', 'Reply'),
  SetXattr: method<SetXattrRequest, Reply>('SetXattr', 'SetXattrRequest', 'Reply'),
  RemoveXattr: method<RemoveXattrRequest, Reply>('RemoveXattr', 'RemoveXattrRequest', 'Reply'),
  ReadFh: method<ReadFhRequest, ReadFhReply>('ReadFh', 'ReadFhRequest', 'ReadFhReply'),
  GetVersion: method<GetVersionRequest, GetVersionReply>('GetVersion', 'GetVersionRequest', 'GetVersionReply'),
  ListVersions: method<ListVersionsRequest, ListVersionsReply>('ListVersions', 'ListVersionsRequest', 'ListVersionsReply'),
  GetConflictCopy: method<GetConflictCopyRequest, GetConflictCopyReply>('GetConflictCopy', 'GetConflictCopyRequest', 'GetConflictCopyReply'),
  Open: method<OpenRequest, OpenReply>('Open', 'OpenRequest', 'OpenReply'),
  Release: method<ReleaseRequest, Reply>('Release', 'ReleaseRequest', 'Reply'),
  CommitVersion: method<CommitVersionRequest, CommitVersionReply>('CommitVersion', 'CommitVersionRequest', 'CommitVersionReply'),
  RestoreVersion: method<RestoreVersionRequest, RestoreVersionReply>('RestoreVersion', 'RestoreVersionRequest', 'RestoreVersionReply'),
  PutBlock: method<PutBlockRequest, PutBlockReply>('PutBlock', 'PutBlockRequest', 'PutBlockReply'),
  PinBlocks: method<PinBlocksRequest, PinBlocksReply>('PinBlocks', 'PinBlocksRequest', 'PinBlocksReply'),
  GetBlock: method<GetBlockRequest, GetBlockReply>('GetBlock', 'GetBlockRequest', 'GetBlockReply'),
  HasBlocks: method<HasBlocksRequest, HasBlocksReply>('HasBlocks', 'HasBlocksRequest', 'HasBlocksReply'),
} satisfies grpc.ServiceDefinition;

export type MetaMethod = keyof typeof metaService;

/** The untyped client constructor grpc-js builds from the definition. */
export const MetaGrpcClient = grpc.makeGenericClientConstructor(metaService, 'Meta');
