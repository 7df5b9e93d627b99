/**
 * The recorded history of a chaos run: every client operation with its invoke
 * and complete times and its outcome, and every fault the nemesis injected.
 * Workloads append to it; checkers read it. Pure data: this module owns the
 * shapes, their JSON-lines file form and their validation, and must never run
 * a workload or judge a history.
 *
 * Outcomes (as Jepsen's): 'ok' — the operation happened and its result is
 * known; 'fail' — it certainly did not happen (an errno that guarantees
 * nothing changed, e.g. EEXIST, ENOENT, EBUSY under reject); 'unknown' — it
 * may or may not have happened (timed out, connection lost, the mount died).
 */

export type Outcome = 'ok' | 'fail' | 'unknown';

/** What a client asked for. Keys name the shared object: a file path for files, a directory for namespace ops. */
export type OpKind =
  | 'write' // whole-file register write: value = the bytes written (open O_TRUNC, write, close)
  | 'read' // whole-file register read: result = what was read ('' for an empty file; absent if the file is missing)
  | 'append' // one O_APPEND record: value = the record (a unique line without '\n')
  | 'read-appends' // the whole append file: result = its content
  | 'create' // value = the new name under key (a directory)
  | 'rename' // value = `${from}\u0000${to}` (names under key)
  | 'link' // value = `${existing}\u0000${newName}`
  | 'unlink' // value = the name
  | 'list'; // result = the sorted names joined by '\n'

export interface Operation {
  /** Unique in the run, increasing in invoke order. */
  id: number;
  /** The client that ran it, e.g. 'mount-h4-0' or 'sdk-2'; one operation at a time per client. */
  client: string;
  kind: OpKind;
  key: string;
  value?: string;
  /** Milliseconds since the run started (performance.now() based, one clock for the whole run). */
  invokeMs: number;
  completeMs: number;
  outcome: Outcome;
  /** For 'read', 'read-appends' and 'list' that completed ok. */
  result?: string;
  /** The errno name for 'fail' and 'unknown' (ETIMEDOUT, EIO, ...), or a short reason. */
  error?: string;
}

export interface FaultEvent {
  /** e.g. 'kill-leader', 'partition-leader', 'sigstop-leader', 'heal', 'restart'. */
  name: string;
  /** Which members or hosts it hit. */
  targets: string[];
  startMs: number;
  /** When it was undone (healed, restarted, continued); undefined until then. */
  endMs?: number;
  detail?: string;
  /** True when the fault cost the cluster its leader (kill/stop/partition/transfer of the leader): the summary measures the client-visible stall after it. */
  leaderLoss?: boolean;
}

export interface History {
  operations: Operation[];
  faults: FaultEvent[];
}

const KINDS = new Set<OpKind>(['write', 'read', 'append', 'read-appends', 'create', 'rename', 'link', 'unlink', 'list']);
const OUTCOMES = new Set<Outcome>(['ok', 'fail', 'unknown']);

/** Throws an Error naming the first thing wrong with `op` (a checker must never judge a malformed history). */
export function assertOperation(op: Operation): void {
  const where = `operation ${JSON.stringify(op?.id)}`;
  if (!Number.isSafeInteger(op.id) || op.id < 0) throw new Error(`${where}: id must be a non-negative integer`);
  if (typeof op.client !== 'string' || op.client === '') throw new Error(`${where}: client must be a name`);
  if (!KINDS.has(op.kind)) throw new Error(`${where}: unknown kind ${JSON.stringify(op.kind)}`);
  if (typeof op.key !== 'string') throw new Error(`${where}: key must be a string`);
  if (!OUTCOMES.has(op.outcome)) throw new Error(`${where}: unknown outcome ${JSON.stringify(op.outcome)}`);
  if (!(Number.isFinite(op.invokeMs) && Number.isFinite(op.completeMs) && op.completeMs >= op.invokeMs)) {
    throw new Error(`${where}: needs invokeMs <= completeMs, got ${op.invokeMs} and ${op.completeMs}`);
  }
}

/** One JSON object per line: {"op": Operation} or {"fault": FaultEvent}. */
export function historyToLines(history: History): string {
  const lines = [...history.operations.map((op) => JSON.stringify({ op })), ...history.faults.map((fault) => JSON.stringify({ fault }))];
  return lines.join('\n') + (lines.length > 0 ? '\n' : '');
}

export function historyFromLines(text: string): History {
  const history: History = { operations: [], faults: [] };
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let parsed: { op?: Operation; fault?: FaultEvent };
    try {
      parsed = JSON.parse(line) as { op?: Operation; fault?: FaultEvent };
    } catch (error) {
      throw new Error(`history line ${index + 1} is not JSON: ${(error as Error).message}`);
    }
    if (parsed.op) {
      assertOperation(parsed.op);
      history.operations.push(parsed.op);
    } else if (parsed.fault) {
      history.faults.push(parsed.fault);
    } else {
      throw new Error(`history line ${index + 1} holds neither "op" nor "fault"`);
    }
  }
  history.operations.sort((a, b) => a.id - b.id);
  return history;
}
