/**
 * How checkers quote operations and values in violation messages, so every
 * checker prints them the same way. Pure formatting: must never judge.
 */
import type { Operation } from '../history';

/** Values longer than this are cut in messages (the history file keeps them whole). */
export const QUOTED_VALUE_CHARS_MAX = 60;

export function quote(value: string | undefined): string {
  if (value === undefined) return '(missing)';
  const json = JSON.stringify(value);
  return json.length > QUOTED_VALUE_CHARS_MAX ? `${json.slice(0, QUOTED_VALUE_CHARS_MAX - 4)}…"` : json;
}

export function timeMs(value: number): string {
  return Number.isFinite(value) ? `${Math.round(value * 10) / 10}` : '∞';
}

/** `#12 sdk-1 write /r/0 "v3" ok [105.2–131 ms]`, with the result of reads and the error of failures. */
export function describeOperation(op: Operation): string {
  let text = `#${op.id} ${op.client} ${op.kind} ${op.key}`;
  if (op.value !== undefined) text += ` ${quote(op.value.replace('\u0000', ' → '))}`;
  if (op.kind === 'read' || op.kind === 'read-appends' || op.kind === 'list') {
    if (op.outcome === 'ok') text += ` → ${quote(op.result)}`;
  }
  text += ` ${op.outcome}`;
  if (op.error !== undefined && op.outcome !== 'ok') text += ` (${op.error})`;
  text += ` [${timeMs(op.invokeMs)}–${timeMs(op.completeMs)} ms]`;
  return text;
}

/** Operations sorted by invoke time (then id), one per line, indented. */
export function describeOperations(ops: readonly Operation[], indent = '    '): string {
  return [...ops]
    .sort((a, b) => a.invokeMs - b.invokeMs || a.id - b.id)
    .map((op) => indent + describeOperation(op))
    .join('\n');
}
