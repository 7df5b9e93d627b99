/** Sizes the servers define (proto/metaserver.proto) and the SDK relies on. Owns numbers only. */
export const BLOCK_SIZE_BYTES = 1 << 20;
export const INLINE_LIMIT_BYTES = 4096;
export const ROOT_HANDLE = 1;
/** A version's block list holds at most this many blocks (the servers' limit: one log entry carries it). */
export const MAX_BLOCKS_PER_VERSION = 15_000;
/** The largest file a client can write: MAX_BLOCKS_PER_VERSION whole blocks (~14.6 GiB); beyond is EFBIG. */
export const MAX_FILE_SIZE_BYTES = MAX_BLOCKS_PER_VERSION * BLOCK_SIZE_BYTES;
