/**
 * Small process helpers of the chaos runner: abortable sleeps and a JSON-lines
 * request channel to a child process (exits and bounded waits are
 * deploy/netns/host-process.ts).
 * Owns no process: callers start and stop them. Must never wait without a
 * limit.
 */
import { ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';
import { alive, exitOf, withLimit } from '../../deploy/netns/host-process';

/** Sleeps `ms`, or rejects at once with the signal's reason when it aborts (Ctrl-C). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new Error('aborted'));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Calls `fn` for every JSON object line the stream prints (other lines are ignored: logs). */
export function onJsonLines(stream: NodeJS.ReadableStream, fn: (value: Record<string, unknown>) => void): void {
  readline.createInterface({ input: stream }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    fn(value);
  });
}

const PENDING_REQUESTS_MAX = 64;

/**
 * Request/answer over a child's stdin/stdout: `{"id":n,"cmd":...}` out,
 * `{"id":n,"ok":true,"result":...}` or `{"id":n,"ok":false,"error":"..."}` back.
 * Every request has its own limit; a dead child fails every pending one.
 */
export class LineRpc {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(private readonly child: ChildProcess, private readonly name: string, private readonly stderrTail: () => string) {
    onJsonLines(child.stdout!, (message) => {
      const waiter = this.pending.get(message.id as number);
      if (!waiter) return;
      this.pending.delete(message.id as number);
      if (message.ok === true) waiter.resolve(message.result);
      else waiter.reject(new Error(`${name}: ${String(message.error)}`));
    });
    void exitOf(child).then((code) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`${name} exited (${code}); stderr: ${this.stderrTail().slice(-1500)}`));
      this.pending.clear();
    });
  }

  async call<T>(cmd: string, args: Record<string, unknown>, limitMs: number): Promise<T> {
    if (!alive(this.child)) throw new Error(`${this.name} is not running; stderr: ${this.stderrTail().slice(-1500)}`);
    if (this.pending.size >= PENDING_REQUESTS_MAX) throw new Error(`${this.name}: more than ${PENDING_REQUESTS_MAX} requests pending`);
    const id = this.nextId++;
    const answer = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.child.stdin!.write(JSON.stringify({ id, cmd, ...args }) + '\n');
    try {
      return (await withLimit(`${this.name} ${cmd}`, limitMs, answer)) as T;
    } finally {
      this.pending.delete(id);
    }
  }
}
