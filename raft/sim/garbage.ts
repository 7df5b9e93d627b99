/**
 * Malformed copies of real messages, for checking that the core drops bad
 * input instead of crashing or trusting it. Every corruption here makes the
 * message structurally invalid (wrong type, negative or fractional numbers,
 * broken entry runs); it never forges a well-formed lie, which Raft does not
 * defend against.
 */
import { Message, MessageType } from '../core/types';
import { SimRandom } from './random';

type Corruption = (m: Message, r: SimRandom) => void;

const BAD_NUMBERS: unknown[] = [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '7', null, undefined, 2 ** 60];

function setField(target: object, field: string, value: unknown): void {
  (target as Record<string, unknown>)[field] = value;
}

const CORRUPTIONS: Corruption[] = [
  (m, r) => setField(m, r.pick(['term', 'logTerm', 'index', 'commit', 'rejectHint', 'logTermHint']), r.pick(BAD_NUMBERS)),
  (m, r) => setField(m, 'type', r.pick([-1, 99, MessageType.Hup, 'App', null])),
  (m, r) => setField(m, r.pick(['from', 'to']), r.pick(['', 42, null, 'x'.repeat(65)])),
  (m, r) => setField(m, 'entries', r.pick([null, 'entries', {}, undefined])),
  (m, r) => setField(m, 'context', r.pick(['ctx', null, [1, 2, 3], undefined])),
  (m, r) => {
    if (m.entries.length === 0) return setField(m, 'entries', [{ term: 1, index: 'one', type: 0, data: new Uint8Array(0) }]);
    const e = r.pick(m.entries);
    // Only values no valid entry can hold: 99 is a fine term or index (a forged, well-formed lie), but no entry type.
    const field = r.pick(['term', 'index', 'type', 'data']);
    setField(e, field, r.pick(field === 'type' ? [...BAD_NUMBERS, 'bytes', 99] : [...BAD_NUMBERS, 'bytes']));
  },
  (m) => {
    // An App whose entries skip an index.
    if (m.type !== MessageType.App || m.entries.length === 0) return setField(m, 'index', -5);
    m.entries[m.entries.length - 1].index += 2;
  },
  (m, r) => {
    if (m.snapshot === undefined) return setField(m, 'snapshot', r.pick([null, 'snap']));
    setField(m.snapshot.metadata, r.pick(['index', 'term', 'membership']), r.pick([...BAD_NUMBERS, 'x']));
  },
];

/** Damages a copy of the message in place (the caller passes a copy). */
export function corruptMessage(copy: Message, random: SimRandom): Message {
  random.pick(CORRUPTIONS)(copy, random);
  return copy;
}
