/**
 * Runs one system tool (ip, nsenter) for deploy/netns with an argument array
 * and a deadline. Owns the error text: every failure names the full command
 * line and the tool's stderr. Must never go through a shell (names come from
 * callers) and never wait without a timeout.
 */
import { execFile } from 'node:child_process';

const DEFAULT_TIMEOUT_MS = 10_000;
/** ip's JSON for a handful of links is a few KiB; anything near this means something is wrong. */
const OUTPUT_MAX_BYTES = 4 * 1024 * 1024;

export interface ToolResult {
  stdout: string;
  stderr: string;
}

export class ToolError extends Error {
  constructor(
    readonly commandLine: string,
    readonly stderr: string,
    readonly exitCode: number | string | null,
  ) {
    super(`\`${commandLine}\` failed (exit ${exitCode ?? 'signal'}): ${stderr.trim() || '(no stderr)'}`);
  }
}

export function runTool(command: string, args: readonly string[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ToolResult> {
  const commandLine = [command, ...args].join(' ');
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: OUTPUT_MAX_BYTES, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) {
        const timedOut = error.killed === true || error.signal === 'SIGTERM';
        const why = timedOut ? `timed out after ${timeoutMs} ms. ${stderr}` : stderr || error.message;
        reject(new ToolError(commandLine, why, typeof error.code === 'number' || typeof error.code === 'string' ? error.code : null));
        return;
      }
      resolve({ stdout, stderr });
    });
  });
}

/** Parses `ip -j ...` output; an empty answer (no objects) is an empty list. */
export function parseIpJson<T>(stdout: string, commandLine: string): T[] {
  const text = stdout.trim();
  if (text === '') return [];
  try {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) throw new Error('not a JSON array');
    return parsed as T[];
  } catch (error) {
    throw new Error(`\`${commandLine}\` printed output that is not ip's JSON list: ${(error as Error).message}`);
  }
}
