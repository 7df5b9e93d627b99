/**
 * Test helpers for the metadata state machine: a machine on a temp folder fed
 * log entries directly (a stand-in for the Raft node's apply order), and a
 * client session that numbers its own sequences, and a three-member Raft
 * cluster in one process that replicates the machine. Tests only; never imported
 * by production code.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { Entry, EntryType, Member } from '../../raft/core/types';
import { freePort } from '../../raft/node/process-cluster';
import { RaftNode } from '../../raft/node/raft-node';
import { LevelRaftStorage } from '../../raft/storage/level-storage';
import { GrpcTransport } from '../../raft/transport/grpc-transport';
import { Caller } from '../rules/permissions';
import { Command, MutationBody, encodeCommand } from './commands';
import { CommandResult, MetaStateMachine, OpenSessionResult } from './meta-state-machine';

export const ROOT: Caller = { uid: 0, gid: 0, groups: [] };
export const ALICE: Caller = { uid: 1000, gid: 1000, groups: [] };
export const BOB: Caller = { uid: 1001, gid: 1001, groups: [] };

/** Start of every test clock: an arbitrary fixed time, so results are reproducible. */
export const T0_MS = 1_700_000_000_000;

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `metastate-${prefix}-`));
}

/** A machine fed entries one index after another, as the Raft node would. */
export class Harness {
  nowMs = T0_MS;

  private constructor(public machine: MetaStateMachine, readonly dir: string) {}

  static async open(dir = tempDir('machine')): Promise<Harness> {
    return new Harness(await MetaStateMachine.open(path.join(dir, 'state')), dir);
  }

  /** Applies commands (or raw entry data) as one batch of consecutive Normal entries. */
  async applyBatch(items: Array<Command | Uint8Array>): Promise<CommandResult[]> {
    let index = await this.machine.appliedIndex();
    const entries: Entry[] = items.map((item) => ({
      term: 1,
      index: ++index,
      type: EntryType.Normal,
      data: item instanceof Uint8Array ? item : encodeCommand(item),
    }));
    return (await this.machine.apply(entries)) as CommandResult[];
  }

  async apply(item: Command | Uint8Array): Promise<CommandResult> {
    return (await this.applyBatch([item]))[0];
  }

  async noop(): Promise<void> {
    const index = (await this.machine.appliedIndex()) + 1;
    await this.machine.apply([{ term: 1, index, type: EntryType.Noop, data: new Uint8Array(0) }]);
  }

  async openSession(caller: Caller = ROOT, ttlMs = 10_000): Promise<TestSession> {
    const result = await this.apply({ op: 'openSession', ttlMs, clientName: 'test', nowMs: this.nowMs });
    if (!result.ok) throw new Error(`openSession failed: ${result.message}`);
    return new TestSession(this, (result.value as OpenSessionResult).sessionId, caller);
  }

  async reopen(): Promise<void> {
    await this.machine.close();
    this.machine = await MetaStateMachine.open(path.join(this.dir, 'state'));
  }

  async destroy(): Promise<void> {
    await this.machine.close().catch(() => {});
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A client session: each call takes the next sequence unless one is given (to replay a retry). */
export class TestSession {
  sequence = 0;

  constructor(
    readonly harness: Harness,
    readonly id: number,
    public caller: Caller,
  ) {}

  command(body: MutationBody, sequence = ++this.sequence, caller = this.caller): Command {
    return { ...body, sessionId: this.id, sequence, caller, nowMs: this.harness.nowMs } as Command;
  }

  run(body: MutationBody, sequence?: number): Promise<CommandResult> {
    return this.harness.apply(this.command(body, sequence));
  }

  /** Runs as someone else within the same session (the caller travels per command). */
  runAs(caller: Caller, body: MutationBody): Promise<CommandResult> {
    return this.harness.apply(this.command(body, ++this.sequence, caller));
  }

  /** Runs and returns the value, throwing on a failure (for set-up steps). */
  async must<T = { attrs: { handle: number } }>(body: MutationBody): Promise<T> {
    const result = await this.run(body);
    if (!result.ok) throw new Error(`${body.op} failed: ${result.message}`);
    return result.value as T;
  }
}

/**
 * Three (or N) RaftNodes in this process with the real pieces — LevelRaftStorage,
 * GrpcTransport on loopback ports — each driving its own MetaStateMachine.
 */
export class MetaCluster {
  readonly nodes = new Map<string, { node: RaftNode; machine: MetaStateMachine }>();
  private readonly root = tempDir('cluster');

  static async start(ids: string[], tickIntervalMs = 20): Promise<MetaCluster> {
    const cluster = new MetaCluster();
    try {
      const members: Member[] = [];
      for (const id of ids) members.push({ id, address: `127.0.0.1:${await freePort()}`, role: 'voter' });
      for (const member of members) {
        const dir = path.join(cluster.root, member.id);
        const storage = await LevelRaftStorage.open(path.join(dir, 'raft'));
        const machine = await MetaStateMachine.open(path.join(dir, 'state'));
        const transport = new GrpcTransport({ localId: member.id, listenAddress: member.address, logger: { info: () => {}, warn: () => {} } });
        const node = await RaftNode.start({
          config: { id: member.id, electionTicks: 10 },
          tickIntervalMs,
          storage,
          transport,
          stateMachine: machine,
          bootstrapMembership: { members },
          registry: new Registry(),
          logger: { info: () => {}, warn: () => {}, error: () => {} },
        });
        cluster.nodes.set(member.id, { node, machine });
      }
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  async leader(timeoutMs = 5_000): Promise<RaftNode> {
    return waitFor('a leader', () => [...this.nodes.values()].find((m) => m.node.status().role === 'leader')?.node, timeoutMs);
  }

  async destroy(): Promise<void> {
    for (const { node, machine } of this.nodes.values()) {
      await node.stop().catch(() => {});
      await machine.close().catch(() => {});
    }
    this.nodes.clear();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
