/** Sizes the servers define (proto/metaserver.proto) and the SDK relies on. Owns numbers only. */
export const BLOCK_SIZE_BYTES = 1 << 20;
export const INLINE_LIMIT_BYTES = 4096;
export const ROOT_HANDLE = 1;
