/**
 * What a nemesis is and what it may touch. A nemesis injects one kind of
 * fault into a running chaos cluster and undoes it; the runner picks nemeses
 * by name, schedules them, and records each as a FaultEvent. Owns only these
 * shapes: the cluster control lives in the runner (run-context.ts), the
 * faults in one file per nemesis.
 */
import type { FaultEvent } from '../history';

/** A metadata server of the chaos cluster. */
export interface ChaosMember {
  id: string;
  /** The simulated host (network namespace) it runs in, e.g. 'hfs1'. */
  host: string;
  /** Its host address in 127.77.0.0/24. */
  address: string;
  clientAddress: string;
  peerAddress: string;
  /** The live process id, or undefined while it is down. */
  pid: number | undefined;
}

/** A client host (FUSE mounts and SDK clients run there). */
export interface ChaosClientHost {
  host: string;
  address: string;
}

/** What the runner lets a nemesis do. Every method is bounded in time and throws with a clear message on failure. */
export interface ChaosControl {
  members(): ChaosMember[];
  clientHosts(): ChaosClientHost[];
  /** The current leader's id, asking the members (undefined if none answers as leader within timeoutMs). */
  leader(timeoutMs?: number): Promise<string | undefined>;
  kill9(memberId: string): Promise<void>;
  /** Starts a killed member again on its data folder and waits until it serves. */
  restart(memberId: string): Promise<void>;
  signal(memberId: string, signal: 'SIGSTOP' | 'SIGCONT' | 'SIGTERM'): Promise<void>;
  /** Cuts a host off the network (its veth down) / brings it back (deploy/netns/faults.ts). */
  cutHost(host: string): Promise<void>;
  healHost(host: string): Promise<void>;
  /** Drops traffic from `fromHost` to `toAddress` (one direction) / undoes it. */
  blackhole(fromHost: string, toAddress: string): Promise<void>;
  unblackhole(fromHost: string, toAddress: string): Promise<void>;
  /** Graceful leadership transfer (handlefs leader transfer), optionally to a member. */
  transferLeader(toMemberId?: string): Promise<void>;
  /**
   * Membership (optional: a control without a spare host has none): adds a new,
   * empty member as a learner (`member add`, then the server started with
   * --join on a spare host), promotes it to voter once it caught up, and
   * returns its id.
   */
  addMember?(): Promise<string>;
  /** Removes a member added by addMember (`member remove`) and stops it. */
  removeMember?(memberId: string): Promise<void>;
  /**
   * Slow disk (optional: only when the run started its members with the
   * debug-unsafe fsync-delay hook): every synced Raft write of the member waits
   * `delayMs` first (0 = off); takes effect within about a second.
   */
  setFsyncDelay?(memberId: string, delayMs: number): Promise<void>;
  /** The seeded random source of the run: nemeses must use it, never Math.random. */
  random(): number;
  /** Milliseconds since the run started (the history's clock). */
  nowMs(): number;
  log(line: string): void;
}

export interface Nemesis {
  /** The name used on the command line (--nemesis kill-leader,partition-leader,...). */
  readonly name: string;
  /** Injects the fault; returns the event to record (endMs unset). */
  inject(control: ChaosControl): Promise<FaultEvent>;
  /** Undoes what inject did (restart, SIGCONT, heal); sets event.endMs. Must be safe to call once after inject. */
  heal(control: ChaosControl, event: FaultEvent): Promise<void>;
}
