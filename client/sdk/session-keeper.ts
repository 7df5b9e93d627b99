/**
 * The client's session: opens it, keeps it alive (KeepAlive every TTL/3 on the
 * leader), numbers mutations through its Sequencer and sends them exactly
 * once (the same header on every retry, WINDOW_FULL waited out with the same
 * sequence), and replaces the session when the servers say it expired.
 * A namespace mutation is then retried once more under the new session with a
 * new sequence; a call that holds an fh fails with ENOTCONN (its fhs died with
 * the old session). Owns the session lifecycle; must never interpret errnos
 * other than the session layer's.
 */
import * as p from '../../proto/meta-proto';
import { ENOTCONN, ETIMEDOUT, MetaError } from './errors';
import { LeaderChannel, Logger } from './leader-channel';
import { Sequencer } from './sequencer';

export interface SessionOptions {
  ttlMs: number;
  clientName: string;
  minBackoffMs: number;
  maxBackoffMs: number;
  logger?: Logger;
  /** Told after a replacement session opened (the old one's fhs are gone). */
  onSessionReplaced?: (oldSessionId: number, newSessionId: number) => void;
}

/** Sessions opened to replace an expired one within a single mutation (a bound, not an expected count). */
const REOPENS_PER_MUTATION_MAX = 2;
/** Keepalive pauses within these bounds whatever the TTL. */
const KEEPALIVE_MIN_MS = 50;
const CLOSE_DEADLINE_MS = 5_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Session { id: number; ttlMs: number; sequencer: Sequencer; rootHandle: number }

export class SessionKeeper {
  private current: Session | undefined;
  private reopening: Promise<void> | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Sessions opened by this client so far (1 after connect; +1 per replacement). */
  sessionsOpened = 0;
  readonly stats = { keepAlives: 0, keepAliveFailures: 0, windowFullRetries: 0 };

  constructor(private readonly channel: LeaderChannel, private readonly options: SessionOptions) {}

  get sessionId(): number {
    if (!this.current) throw new Error('the session is not open yet');
    return this.current.id;
  }

  get ttlMs(): number {
    return this.current?.ttlMs ?? 0;
  }

  /** The directory the servers let this session reach (a token with subtree=); 0 for the file system root. */
  get rootHandle(): number {
    return this.current?.rootHandle ?? 0;
  }

  async open(deadlineAt: number): Promise<void> {
    const reply = await this.channel.call<p.OpenSessionReply>('OpenSession', { ttlMs: this.options.ttlMs, clientName: this.options.clientName } satisfies p.OpenSessionRequest, deadlineAt);
    if (reply.errno !== 0) throw new MetaError(reply.errno, `OpenSession: ${reply.message}`);
    const previous = this.current;
    this.current = { id: reply.sessionId, ttlMs: reply.ttlMs, sequencer: new Sequencer(reply.sessionId), rootHandle: reply.rootHandle ?? 0 };
    this.sessionsOpened++;
    if (previous) {
      this.options.logger?.warn('session expired; opened a new one', { oldSessionId: previous.id, newSessionId: reply.sessionId });
      this.options.onSessionReplaced?.(previous.id, reply.sessionId);
    }
    this.scheduleKeepAlive(this.keepAliveEveryMs());
  }

  /**
   * Sends a mutation with the next sequence until it is answered; returns the reply whatever
   * its errno, except the session layer's (WINDOW_FULL retried, SESSION_EXPIRED handled).
   */
  async mutate<Res extends p.Reply>(method: p.MetaMethod, body: object, caller: p.Caller, holdsFh: boolean, deadlineAt: number): Promise<Res> {
    for (let reopens = 0; ; reopens++) {
      const session = this.current;
      if (!session) throw new Error(`${method}: the session is not open`);
      const sequence = await session.sequencer.take();
      let reply: Res;
      try {
        for (let windowFull = 0; ; windowFull++) {
          const header: p.Header = { sessionId: session.id, sequence, firstUnacked: session.sequencer.firstUnacked(), caller };
          reply = await this.channel.call<Res>(method, { ...body, header }, deadlineAt);
          if (reply.sessionError !== 'WINDOW_FULL') break;
          // Not applied and not remembered: the same sequence is judged afresh once older answers are acknowledged.
          this.stats.windowFullRetries++;
          const pauseMs = Math.min(this.options.maxBackoffMs, this.options.minBackoffMs * 2 ** Math.min(windowFull, 10));
          if (Date.now() + pauseMs >= deadlineAt) throw new MetaError(ETIMEDOUT, `${method}: session ${session.id}'s dedup window stayed full until the deadline`);
          await sleep(pauseMs);
        }
      } finally {
        session.sequencer.done(sequence);
      }
      if (reply.sessionError !== 'SESSION_EXPIRED') return reply;
      await this.replace(session, deadlineAt);
      if (holdsFh) throw new MetaError(ENOTCONN, `${method}: session ${session.id} expired and its open files with it (new session ${this.current?.id})`, 'SESSION_EXPIRED');
      if (reopens >= REOPENS_PER_MUTATION_MAX) throw new MetaError(ENOTCONN, `${method}: the session expired ${reopens + 1} times in one call`, 'SESSION_EXPIRED');
    }
  }

  /** Closes the session on the servers (an expired one counts as closed) and stops the keepalive. Never throws. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    await this.reopening?.catch(() => {});
    const session = this.current;
    if (!session) return;
    try {
      const sequence = await session.sequencer.take();
      try {
        const header: p.Header = { sessionId: session.id, sequence, caller: { uid: 0, gid: 0, groups: [] } };
        await this.channel.call<p.Reply>('CloseSession', { header } satisfies p.CloseSessionRequest, Date.now() + CLOSE_DEADLINE_MS);
      } finally {
        session.sequencer.done(sequence);
      }
    } catch (error) {
      this.options.logger?.warn('CloseSession failed; the session will expire after its TTL', { sessionId: session.id, error: (error as Error).message });
    }
  }

  /** Opens a replacement for `expired` unless another call did already (one reopen at a time). */
  private async replace(expired: Session, deadlineAt: number): Promise<void> {
    if (this.current !== expired) return;
    if (!this.reopening) {
      this.reopening = this.open(deadlineAt).finally(() => { this.reopening = undefined; });
    }
    await this.reopening;
  }

  private keepAliveEveryMs(): number {
    return Math.max(KEEPALIVE_MIN_MS, Math.floor(this.ttlMs / 3));
  }

  private scheduleKeepAlive(delayMs: number): void {
    if (this.closed) return;
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = setTimeout(() => void this.keepAlive(), delayMs);
    // A forgotten close() must not keep a process alive.
    this.keepAliveTimer.unref();
  }

  private async keepAlive(): Promise<void> {
    const session = this.current;
    if (!session || this.closed) return;
    const everyMs = this.keepAliveEveryMs();
    let nextMs = everyMs;
    try {
      this.stats.keepAlives++;
      const reply = await this.channel.call<p.KeepAliveReply>('KeepAlive', { sessionId: session.id } satisfies p.KeepAliveRequest, Date.now() + everyMs);
      if (reply.sessionError === 'SESSION_EXPIRED') {
        await this.replace(session, Date.now() + Math.max(everyMs, 5_000));
        return; // open() scheduled the next keepalive
      }
      if (reply.errno !== 0) throw new MetaError(reply.errno, `KeepAlive: ${reply.message}`, reply.sessionError);
    } catch (error) {
      if (this.closed) return;
      this.stats.keepAliveFailures++;
      this.options.logger?.warn('keepalive failed; retrying', { sessionId: session.id, error: (error as Error).message });
      nextMs = Math.max(KEEPALIVE_MIN_MS, Math.floor(everyMs / 2));
    }
    if (this.current === session) this.scheduleKeepAlive(nextMs);
  }
}
