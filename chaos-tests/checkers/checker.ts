/**
 * What a checker is. A checker reads the recorded history (history.ts) and
 * what the cluster holds after healing (FinalState), and reports violations.
 * Checkers are pure: no I/O, no clocks, deterministic for a given input.
 */
import type { History, Operation } from '../history';

/** What the cluster holds once every fault is healed, read by the runner through the SDK. */
export interface FinalState {
  /** Per register/append file path: every kept version's content, oldest first, with its number. */
  versions: Record<string, Array<{ version: number; content: string; conflict: boolean }>>;
  /** Per namespace-workload directory: the names it holds at the end. */
  listings: Record<string, string[]>;
  /** Per member: applied index and state digest after healing (handlefs fsck's scan). */
  digests: Array<{ member: string; appliedIndex: number; digest: string }>;
  /** handlefs fsck's verdict after healing. */
  fsckClean: boolean;
  /** Sessions the run abandoned on purpose (clients killed holding an fh): each must expire, its fhs with it. */
  abandonedSessions: number;
  /** One sentence per session or fh still open on the servers past its expiry (and the leader's grace) after healing: should be none. */
  overdueSessions: string[];
}

export interface Violation {
  checker: string;
  /** One sentence a person can act on. */
  message: string;
  /** The smallest set of operations that shows it (ids in the history). */
  operations: Operation[];
}

export interface CheckResult {
  checker: string;
  ok: boolean;
  violations: Violation[];
  /** Figures for the summary (e.g. states explored, keys checked). */
  stats: Record<string, number>;
  /**
   * What the checker could not decide (e.g. a search budget exceeded on one key), one sentence each.
   * Added by the checkers helper. When present and non-empty, `ok` is false: undecided is never a pass.
   */
  inconclusive?: string[];
}

export interface Checker {
  readonly name: string;
  check(history: History, final: FinalState): CheckResult;
}
