/**
 * Content digests for comparing entries, snapshots and state machines across
 * nodes without keeping copies: an entry digest, and a chain digest
 * (digest of the previous chain and an entry). Not for security: the
 * simulator only needs accidental collisions to be negligible.
 */
import { createHash } from 'crypto';
import { Entry } from '../core/types';

/** Digest bytes kept, as hex: 64 bits is plenty against accidental collisions in one run. */
const DIGEST_HEX_CHARS = 16;

function header(entry: Entry): string {
  return `${entry.index}/${entry.term}/${entry.type}/${entry.data.byteLength}/`;
}

/** The digest of one entry: index, term, type and data. */
export function entryDigest(entry: Entry): string {
  // Native hashing: a JavaScript byte loop over kilobyte payloads is slow under jest's VM contexts.
  return createHash('sha1').update(header(entry)).update(entry.data).digest('hex').slice(0, DIGEST_HEX_CHARS);
}

/** The state machine's chain before anything is applied. */
export const CHAIN_ORIGIN = '0'.repeat(DIGEST_HEX_CHARS);

export function chainDigest(previousChain: string, entry: Entry): string {
  if (previousChain.length !== DIGEST_HEX_CHARS) throw new Error(`chainDigest: malformed previous chain ${JSON.stringify(previousChain)}`);
  return createHash('sha1').update(previousChain).update(header(entry)).update(entry.data).digest('hex').slice(0, DIGEST_HEX_CHARS);
}
