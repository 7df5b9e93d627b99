/**
 * One chaos client: a process that runs the workload mix (registers, appends,
 * namespace churn) through one Driver — a FUSE mount's files, or the SDK from
 * inside a client host — one operation at a time, and prints each finished
 * operation as a JSON line {"op": {...}} (no id: the runner numbers them in
 * invoke order). Stops after the current operation when stdin says "stop" or
 * closes. Every operation has its own timeout here: a hung mount or a cut
 * host becomes an 'unknown' outcome, never a hung runner.
 * Owns its driver; must never run inside a mount process.
 *
 *   node worker-main.js '<WorkerConfig as JSON>'
 */
import { performance } from 'node:perf_hooks';
import { seededRandom } from '../../raft/core/config';
import type { Operation } from '../history';
import { AppendsWorkload } from './appends';
import { ChurnWorkload } from './churn';
import { Driver, errorCode, outcomeOf } from './driver';
import { FuseDriver } from './fuse-driver';
import { PlannedOp, RegistersWorkload } from './registers';
import { SdkDriver } from './sdk-driver';
import type { ReadFrom } from '../../client/sdk';

export interface WorkerConfig {
  client: string;
  driver: 'fuse' | 'sdk';
  /** fuse: the mount point. */
  mountDir?: string;
  /** sdk: the members' client addresses. */
  servers?: string[];
  /** sdk: where reads go first (client/sdk ReadFrom). */
  readFrom?: ReadFrom;
  seed: number;
  /** The run's clock origin: performance.timeOrigin + performance.now() of the runner at the start. */
  originMs: number;
  opTimeoutMs: number;
  /** Pause between operations (keeps 2 cores usable for the cluster). */
  pauseMs: number;
  sdkDeadlineMs: number;
  registers: string[];
  churnDirs: string[];
  /** Relative weights of the three workloads. */
  mix: { registers: number; appends: number; churn: number };
}

/** Operations whose system call is still stuck after their timeout; beyond this the worker waits instead of piling more up. */
const HUNG_OPS_MAX = 8;
const HUNG_WAIT_MS = 200;

function nowMs(originMs: number): number {
  return performance.timeOrigin + performance.now() - originMs;
}

async function perform(driver: Driver, op: PlannedOp): Promise<string | undefined> {
  const [first, second] = (op.value ?? '').split('\u0000');
  switch (op.kind) {
    case 'write': return void (await driver.write(op.key, op.value!));
    case 'read': return driver.read(op.key);
    case 'append': return void (await driver.append(op.key, op.value! + '\n'));
    case 'read-appends': return driver.read(op.key);
    case 'create': return void (await driver.create(op.key, first));
    case 'rename': return void (await driver.rename(op.key, first, second));
    case 'link': return void (await driver.link(op.key, first, second));
    case 'unlink': return void (await driver.unlink(op.key, first));
    case 'list': return (await driver.list(op.key)).join('\n');
    default: throw new Error(`unknown operation kind ${String(op.kind)}`);
  }
}

async function run(config: WorkerConfig): Promise<void> {
  const random = seededRandom(config.seed);
  const registers = new RegistersWorkload(config.client, config.registers, random);
  const appends = new AppendsWorkload(config.client, random);
  const churn = new ChurnWorkload(config.client, config.churnDirs, random);
  const total = config.mix.registers + config.mix.appends + config.mix.churn;
  if (!(total > 0)) throw new Error('the workload mix needs a positive weight');
  let stopping = false;
  // 'stop': finish the current operation and close; 'abandon': finish it, then hold an fh and wait to be killed (Driver.abandon).
  let abandoning = false;
  process.stdin.setEncoding('utf8').on('data', (s: string) => {
    if (s.includes('stop')) stopping = true;
    if (s.includes('abandon')) stopping = abandoning = true;
  });
  process.stdin.on('end', () => { stopping = true; });

  const driver: Driver = config.driver === 'fuse'
    ? new FuseDriver(config.mountDir!)
    : await SdkDriver.connect(config.servers!, config.client, config.sdkDeadlineMs, config.readFrom ?? 'leader');
  process.stdout.write(JSON.stringify({ event: 'ready' }) + '\n');
  let hung = 0;
  let done = 0;
  while (!stopping) {
    if (hung >= HUNG_OPS_MAX) {
      await new Promise((resolve) => setTimeout(resolve, HUNG_WAIT_MS));
      continue;
    }
    const roll = random() * total;
    const workload = roll < config.mix.registers ? 'registers' : roll < config.mix.registers + config.mix.appends ? 'appends' : 'churn';
    const op = workload === 'registers' ? registers.next() : workload === 'appends' ? appends.next() : churn.next();
    const invokeMs = nowMs(config.originMs);
    const work = perform(driver, op);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), config.opTimeoutMs); });
    const record: Omit<Operation, 'id'> = { client: config.client, kind: op.kind, key: op.key, value: op.value, invokeMs, completeMs: invokeMs, outcome: 'ok' };
    try {
      const result = await Promise.race([work, timedOut]);
      if (result === 'timeout') {
        record.outcome = 'unknown';
        record.error = 'ETIMEDOUT';
        hung++;
        void work.then(() => hung--, () => hung--);
      } else if (result !== undefined) {
        record.result = result;
      }
    } catch (error) {
      const code = errorCode(error);
      record.outcome = outcomeOf(code);
      record.error = code;
    } finally {
      clearTimeout(timer);
    }
    record.completeMs = nowMs(config.originMs);
    if (op.kind === 'create' || op.kind === 'rename' || op.kind === 'link' || op.kind === 'unlink') churn.observe(op, record.outcome);
    process.stdout.write(JSON.stringify({ op: record }) + '\n');
    done++;
    await new Promise((resolve) => setTimeout(resolve, config.pauseMs));
  }
  if (abandoning && driver.abandon) {
    const held = await driver.abandon(config.registers[0]);
    process.stdout.write(JSON.stringify({ event: 'abandoned', ...held, operations: done }) + '\n');
    // Bounded by the runner, which kills this process on the line above (and after its stop limit in any case).
    await new Promise(() => undefined);
  }
  await Promise.race([driver.close(), new Promise((resolve) => setTimeout(resolve, 2_000))]);
  process.stdout.write(JSON.stringify({ event: 'done', operations: done, hung }) + '\n');
}

if (require.main === module) {
  let config: WorkerConfig;
  try {
    config = JSON.parse(process.argv[2] ?? '') as WorkerConfig;
  } catch {
    process.stderr.write('usage: worker-main.js <WorkerConfig JSON>\n');
    process.exit(2);
  }
  run(config).then(
    () => process.exit(0),
    (error: Error) => {
      process.stderr.write(`worker ${config.client}: ${error.stack ?? error.message}\n`);
      process.exit(1);
    },
  );
}
