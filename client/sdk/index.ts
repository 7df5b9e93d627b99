/** The client SDK's public surface (client/sdk). Owns re-exports only. */
export { MetaClient, sha256, READ_CHUNK_BYTES } from './meta-client';
export type {
  MetaClientOptions, ClientStats, CommitContent, CommitOutcome, AttrChanges, OpenFlags, OpenedFh, FileType, TimeChange, Policy,
  Attr, Caller, DirEntry, StatFsReply, VersionInfo,
} from './meta-client';
export { BLOCK_SIZE_BYTES, INLINE_LIMIT_BYTES, MAX_BLOCKS_PER_VERSION, MAX_FILE_SIZE_BYTES, ROOT_HANDLE } from './constants';
export { MetaError, CommitConflictError, errnoOf, codeOf } from './errors';
export type { Logger, ReadFrom } from './leader-channel';
export { READ_FROM_CHOICES } from './leader-channel';
export { MAX_IN_FLIGHT_MUTATIONS } from './sequencer';
export { boundedParallel } from './paths';
