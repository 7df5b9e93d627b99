/**
 * Structural checks on a message from the network before the core looks at
 * it. A message that fails is dropped and counted, never trusted.
 */
import { EntryType, Message, MessageType } from './types';

const MAX_ID_LENGTH = 64;

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Returns what is wrong with the message, or undefined if it is well formed. */
export function messageProblem(m: Message): string | undefined {
  if (!(m.type in MessageType) || m.type === MessageType.Hup) return `unknown message type ${String(m.type)}`;
  if (typeof m.from !== 'string' || m.from.length === 0 || m.from.length > MAX_ID_LENGTH) return 'bad sender id';
  if (typeof m.to !== 'string' || m.to.length === 0 || m.to.length > MAX_ID_LENGTH) return 'bad recipient id';
  for (const field of ['term', 'logTerm', 'index', 'commit', 'rejectHint', 'logTermHint'] as const) {
    if (!isIndex(m[field])) return `${field} is not a non-negative integer`;
  }
  if (!Array.isArray(m.entries)) return 'entries is not a list';
  if (!(m.context instanceof Uint8Array)) return 'context is not bytes';
  let previousTerm = m.type === MessageType.App ? m.logTerm : 0;
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i];
    if (!isIndex(e.term) || !isIndex(e.index) || !(e.type in EntryType) || !(e.data instanceof Uint8Array)) return `entry ${i} is malformed`;
    if (m.type === MessageType.App) {
      if (e.index !== m.index + 1 + i) return `entry ${i} has index ${e.index}, expected ${m.index + 1 + i}`;
      if (e.term < previousTerm || e.term > m.term) return `entry ${e.index} has term ${e.term} out of order`;
      previousTerm = e.term;
    }
  }
  if (m.type === MessageType.Snap) {
    const s = m.snapshot;
    if (s === undefined || !isIndex(s.metadata.index) || !isIndex(s.metadata.term) || s.metadata.index === 0) return 'snapshot metadata missing or malformed';
    if (!(s.data instanceof Uint8Array)) return 'snapshot data is not bytes';
    if (!Array.isArray(s.metadata.membership?.members)) return 'snapshot membership missing';
  }
  return undefined;
}
