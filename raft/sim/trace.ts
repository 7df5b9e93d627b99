/**
 * The run's event trace: the last `capacityLines` events as text plus a
 * running digest of every event, so a failing seed can be read and two runs of
 * one seed compared. Off by default (formatting costs time); a failing seed is
 * re-run with it on. Never influences the run.
 */
import { Entry, Message, MessageType } from '../core/types';

const FNV_PRIME = 0x01000193;

export class SimTrace {
  private readonly ring: string[] = [];
  private ringNext = 0;
  private digestA = 0x811c9dc5;
  private digestB = 0x2f3a1b7d;
  private eventCount = 0;

  constructor(readonly enabled: boolean, readonly capacityLines = 200) {
    if (!Number.isInteger(capacityLines) || capacityLines <= 0) throw new Error(`trace capacityLines must be a positive integer, got ${capacityLines}`);
  }

  /** Callers check `enabled` first so a disabled trace costs no formatting. */
  record(step: number, line: string): void {
    if (!this.enabled) return;
    const text = `${String(step).padStart(6)} ${line}`;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      this.digestA = Math.imul(this.digestA ^ c, FNV_PRIME) >>> 0;
      this.digestB = Math.imul(this.digestB ^ (c + 7), FNV_PRIME) >>> 0;
    }
    this.eventCount++;
    if (this.ring.length < this.capacityLines) this.ring.push(text);
    else this.ring[this.ringNext] = text;
    this.ringNext = (this.ringNext + 1) % this.capacityLines;
  }

  /** The retained lines, oldest first. */
  lastLines(): string[] {
    if (this.ring.length < this.capacityLines) return this.ring.slice();
    return this.ring.slice(this.ringNext).concat(this.ring.slice(0, this.ringNext));
  }

  /** Digest of every event ever recorded, with the count: equal for two identical runs. */
  fingerprint(): string {
    return `${this.eventCount}:${this.digestA.toString(16)}${this.digestB.toString(16)}`;
  }
}

function entriesText(entries: readonly Entry[]): string {
  if (entries.length === 0) return '';
  const first = entries[0];
  const last = entries[entries.length - 1];
  return ` ents=[${first.index}@${first.term}..${last.index}@${last.term}](${entries.length})`;
}

/** One line per message, the fields that matter for its type. */
export function formatMessage(message: Message): string {
  const head = `${MessageType[message.type] ?? message.type} ${message.from}->${message.to} t=${message.term}`;
  switch (message.type) {
    case MessageType.App:
      return `${head} prev=${message.index}@${message.logTerm} commit=${message.commit}${entriesText(message.entries)}`;
    case MessageType.AppResp:
      return `${head} idx=${message.index}${message.reject ? ` REJECT hint=${message.rejectHint}@${message.logTermHint}` : ''}`;
    case MessageType.Vote:
    case MessageType.PreVote:
      return `${head} last=${message.index}@${message.logTerm}${message.context.byteLength ? ' transfer' : ''}`;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      return `${head}${message.reject ? ' REJECT' : ' GRANT'}`;
    case MessageType.Heartbeat:
      return `${head} commit=${message.commit}${message.context.byteLength ? ` ctx=${Buffer.from(message.context).toString()}` : ''}`;
    case MessageType.HeartbeatResp:
      return `${head}${message.context.byteLength ? ` ctx=${Buffer.from(message.context).toString()}` : ''}`;
    case MessageType.Snap: {
      const meta = message.snapshot?.metadata;
      return `${head} snap=${meta ? `${meta.index}@${meta.term}` : 'none'} bytes=${message.snapshot?.data.byteLength ?? 0}`;
    }
    case MessageType.ReadIndex:
    case MessageType.ReadIndexResp:
      return `${head} idx=${message.index} ctx=${Buffer.from(message.context).toString()}`;
    default:
      return `${head} idx=${message.index} commit=${message.commit}${entriesText(message.entries)}`;
  }
}
