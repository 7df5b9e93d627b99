/**
 * `handlefs local`: a cluster of real member processes on 127.0.0.1 with kept
 * data folders, for trying handlefs on one machine. Until metaserver/ lands
 * the members run raft/'s key-value demo machine. Owns option parsing, the
 * status table and a clean stop; must never leave a member running.
 */
import * as path from 'node:path';
import { KvTestClient } from '../raft/node/kvtest-client';
import { ProcessCluster } from '../raft/node/process-cluster';

const STATUS_INTERVAL_MS = 5_000;
const LEADER_TIMEOUT_MS = 15_000;
const MEMBERS_MAX = 7;

interface LocalOptions {
  dataRoot: string;
  basePort: number;
  members: number;
}

function parseLocalOptions(args: string[]): LocalOptions {
  const options: LocalOptions = { dataRoot: path.resolve('.handlefs-local'), basePort: 7400, members: 3 };
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i];
    const value = args[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    switch (flag) {
      case '--data':
        options.dataRoot = path.resolve(value);
        break;
      case '--base-port': {
        const port = Number(value);
        if (!Number.isInteger(port) || port < 1024 || port > 65_000) throw new Error(`--base-port must be an integer in 1024..65000, got ${value}`);
        options.basePort = port;
        break;
      }
      case '--members': {
        const count = Number(value);
        if (!Number.isInteger(count) || count < 1 || count > MEMBERS_MAX || count % 2 === 0) throw new Error(`--members must be an odd number from 1 to ${MEMBERS_MAX}, got ${value}`);
        options.members = count;
        break;
      }
      default:
        throw new Error(`unknown option ${flag}`);
    }
  }
  return options;
}

async function printStatus(cluster: ProcessCluster): Promise<void> {
  const rows = await Promise.all(cluster.members.map(async (member) => {
    const client = new KvTestClient(member.clientAddress);
    try {
      const st = await client.status(1_000);
      return `${member.id.padEnd(4)} ${member.raftAddress.padEnd(18)} ${st.role.padEnd(13)} term ${String(st.term).padEnd(4)} commit ${String(st.commitIndex).padEnd(8)} applied ${st.appliedIndex}`;
    } catch {
      return `${member.id.padEnd(4)} ${member.raftAddress.padEnd(18)} (no answer)`;
    } finally {
      client.close();
    }
  }));
  process.stdout.write(`${new Date().toISOString()}\n${rows.join('\n')}\n\n`);
}

export async function runLocalCluster(args: string[]): Promise<number> {
  let options: LocalOptions;
  try {
    options = parseLocalOptions(args);
  } catch (error) {
    process.stderr.write(`handlefs local: ${(error as Error).message}\n`);
    return 2;
  }
  const cluster = await ProcessCluster.create({ size: options.members, tickMs: 50, electionTicks: 10, dataRoot: options.dataRoot, basePort: options.basePort });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('stopping: each member hands over leadership and exits\n');
    await cluster.stopAll();
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  try {
    await cluster.startAll();
    const leader = await cluster.waitForLeader(LEADER_TIMEOUT_MS);
    const kv = cluster.client();
    const key = `hello-${Date.now()}`;
    const put = await kv.put(key, Buffer.from('handlefs'), 5_000);
    process.stdout.write(`cluster up in ${options.dataRoot}: leader ${leader.id}; wrote ${key} at log index ${put.index}\n`);
    process.stdout.write(`client API (proto/kvtest.proto) at ${cluster.members.map((m) => m.clientAddress).join(', ')}; Ctrl-C stops\n\n`);
    kv.close();
    while (!stopping) {
      await printStatus(cluster);
      await new Promise((resolve) => setTimeout(resolve, STATUS_INTERVAL_MS));
    }
    return 0;
  } catch (error) {
    process.stderr.write(`handlefs local: ${(error as Error).message}\n${cluster.stderrReport()}\n`);
    return 1;
  } finally {
    await cluster.killAll();
  }
}
