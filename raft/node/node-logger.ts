/**
 * The node driver's logging seam: a tiny structured logger interface and a
 * stderr implementation. Owns nothing else; must never block the Ready loop
 * (writes are fire-and-forget) nor decide what is logged.
 */

export type LogFields = Record<string, unknown>;

export interface RaftLogger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** Writes one JSON line per record to stderr; `info` only when verbose. */
export function stderrLogger(memberId: string, verbose: boolean): RaftLogger {
  const write = (level: string, message: string, fields?: LogFields): void => {
    const record = { time: new Date().toISOString(), level, member: memberId, message, ...fields };
    process.stderr.write(JSON.stringify(record) + '\n');
  };
  return {
    info: (message, fields) => { if (verbose) write('info', message, fields); },
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
  };
}

export const silentLogger: RaftLogger = { info: () => {}, warn: () => {}, error: () => {} };
