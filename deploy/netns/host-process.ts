/**
 * Waiting on child processes started in simulated hosts (exec.ts runIn):
 * their exit, whether they still run, a time limit on any wait, and a
 * server's ready line. Shared by the multi-host test harness and the chaos
 * runner. Owns no process (callers start and stop them) and must never wait
 * without a limit.
 */
import { ChildProcess } from 'node:child_process';

/** A server's stdout is kept to this many trailing bytes while its ready line is awaited. */
const READY_OUTPUT_TAIL_BYTES = 64 * 1024;
/** How much of the server's stderr an error about a failed start quotes. */
const START_ERROR_STDERR_BYTES = 2_000;

export function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

export function alive(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

export async function withLimit<T>(what: string, limitMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${limitMs} ms`)), limitMs);
  });
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves once a server started with stdout piped prints its {"event":"ready"} line (the
 * metaserver's announceReady); rejects if it exits first (quoting `stderrTail()`) or after limitMs.
 */
export function readyLine(child: ChildProcess, what: string, limitMs: number, stderrTail: () => string): Promise<void> {
  let stdout = '';
  return withLimit(`${what} ready`, limitMs, new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      stdout = (stdout + s).slice(-READY_OUTPUT_TAIL_BYTES);
      if (stdout.includes('"event":"ready"')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`${what} exited (${code ?? signal}) before it was ready: ${stderrTail().slice(-START_ERROR_STDERR_BYTES)}`)));
  }));
}
