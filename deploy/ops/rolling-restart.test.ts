/**
 * A rolling restart (issue 5 §5): each member of a real three-member cluster
 * in turn is stopped with SIGTERM (a leader hands leadership over first),
 * started again on its data folder and waited for until it has caught up,
 * while three SDK clients keep writing files of unique values. No client
 * operation may fail, and afterwards every acknowledged value reads back.
 * Real processes; run `npx tsc -p .` first.
 */
import { randomBytes } from 'node:crypto';
import { MetaClient } from '../../client/sdk';
import { MetaTestCluster } from '../../metaserver/server/testing';

const WRITERS = 3;
/** Writes each writer must get acknowledged between two restarts (the load really runs through every step). */
const WRITES_BETWEEN_RESTARTS = 5;
const WRITES_PER_WRITER_MAX = 100_000;
const FAILURES_KEPT_MAX = 100;
const PROGRESS_TIMEOUT_MS = 15_000;

/** One client writing `/w<n>-<i>` files of unique values, one after another, until stopped. */
class Writer {
  /** Path → the value the cluster acknowledged. */
  readonly acknowledged = new Map<string, string>();
  readonly failures: string[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(private readonly client: MetaClient, private readonly name: string) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    for (let i = 0; this.running && i < WRITES_PER_WRITER_MAX; i++) {
      const path = `/${this.name}-${i}`;
      const value = `${this.name} ${i} ${randomBytes(8).toString('hex')}`;
      try {
        await this.client.writeFile(path, Buffer.from(value));
        this.acknowledged.set(path, value);
      } catch (error) {
        if (this.failures.length < FAILURES_KEPT_MAX) this.failures.push(`${path}: ${(error as Error).message}`);
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.client.close();
  }
}

async function writesProgress(writers: Writer[], count: number, what: string): Promise<void> {
  const targets = writers.map((w) => w.acknowledged.size + count);
  const deadline = Date.now() + PROGRESS_TIMEOUT_MS;
  while (writers.some((w, i) => w.acknowledged.size < targets[i]) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const short = writers.filter((w, i) => w.acknowledged.size < targets[i]);
  if (short.length > 0) throw new Error(`writes stalled ${what}: ${writers.map((w) => w.acknowledged.size).join('/')} of ${targets.join('/')}; failures: ${writers.flatMap((w) => w.failures).join('; ')}`);
}

describe('a rolling restart of all three members during writes', () => {
  let cluster: MetaTestCluster;
  let writers: Writer[] = [];

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
  }, 30_000);

  afterAll(async () => {
    await Promise.all(writers.map((w) => w.stop().catch(() => {})));
    await cluster?.destroy();
  });

  it('fails no client operation and loses no acknowledged write', async () => {
    const servers = cluster.members.map((m) => m.clientAddress);
    writers = await Promise.all(Array.from({ length: WRITERS }, async (_, n) => new Writer(await MetaClient.connect({ servers, deadlineMs: 20_000 }), `w${n}`)));
    await writesProgress(writers, WRITES_BETWEEN_RESTARTS, 'before the first restart');

    const leaderAtStart = (await cluster.leader()).id;
    // Followers first and the leader last, as an operator would: one leadership change only.
    const order = [...cluster.members].sort((a, b) => Number(a.id === leaderAtStart) - Number(b.id === leaderAtStart));
    for (const member of order) {
      expect(await cluster.terminate(member)).toBe(0);
      await writesProgress(writers, WRITES_BETWEEN_RESTARTS, `while ${member.id} was down`);
      await cluster.restart(member);
      await cluster.caughtUp(member);
      await writesProgress(writers, WRITES_BETWEEN_RESTARTS, `after ${member.id} came back`);
    }
    expect((await cluster.leader()).id).not.toBe(leaderAtStart);

    const stopping = writers;
    writers = [];
    await Promise.all(stopping.map((w) => w.stop()));
    expect(stopping.flatMap((w) => w.failures)).toEqual([]);
    const acknowledged = new Map(stopping.flatMap((w) => [...w.acknowledged]));
    expect(acknowledged.size).toBeGreaterThanOrEqual(WRITERS * WRITES_BETWEEN_RESTARTS * 7);

    // Every acknowledged value reads back, through a client that starts from a member restarted last.
    const reader = await MetaClient.connect({ servers: [order[order.length - 1].clientAddress, ...servers], deadlineMs: 20_000 });
    try {
      const wrong: string[] = [];
      for (const [path, value] of acknowledged) {
        const read = Buffer.from(await reader.readFile(path)).toString();
        if (read !== value) wrong.push(`${path}: wrote ${JSON.stringify(value)}, read ${JSON.stringify(read)}`);
      }
      expect(wrong).toEqual([]);
    } finally {
      await reader.close();
    }
  }, 55_000);
});
