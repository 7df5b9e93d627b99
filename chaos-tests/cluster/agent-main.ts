/**
 * The chaos runner's eyes inside the simulated network: a long-lived process
 * started in the control host (deploy/netns runIn) that answers JSON-line
 * requests on stdin — members' Status, graceful leader transfer, membership
 * changes, creating the workload folders, and reading the final state
 * (versions with contents, listings) — one JSON line each on stdout.
 * Why a process: the runner lives in the root namespace, which may route
 * 127.77.0.0/24 to another bridge when two address plans are up at once
 * (deploy/netns/README.md); from a host the members are always reachable.
 * Owns its two clients only; must never change file contents, and reads only
 * after the runner healed the cluster.
 *
 *   node agent-main.js <client-address,...>
 */
import { MetaClient, MetaError } from '../../client/sdk';
import { AdminClient } from '../../deploy/ops/admin-client';

const STATUS_DEADLINE_MS = 1_000;
const SDK_DEADLINE_MS = 20_000;
const VERSIONS_PER_FILE_MAX = 100_000;

interface Request {
  id: number;
  cmd: string;
  [key: string]: unknown;
}

export interface MemberStatus {
  address: string;
  id: string;
  role: string;
  term: number;
  leaderId: string;
  commitIndex: number;
  appliedIndex: number;
  electionTimeoutMs: number;
  members: string[];
}

export interface FinalRead {
  versions: Record<string, Array<{ version: number; content: string; conflict: boolean }>>;
  listings: Record<string, string[]>;
}

const addresses = (process.argv[2] ?? '').split(',').filter(Boolean);
const admin = new AdminClient(addresses);
let sdk: MetaClient | undefined;

async function client(): Promise<MetaClient> {
  sdk ??= await MetaClient.connect({ servers: addresses, deadlineMs: SDK_DEADLINE_MS, clientName: `chaos agent pid ${process.pid}` });
  return sdk;
}

async function status(): Promise<Array<MemberStatus | null>> {
  return Promise.all(admin.addresses.map(async (address) => {
    const outcome = await admin.call(address, 'Status', {}, STATUS_DEADLINE_MS);
    if (outcome.error) return null;
    const s = outcome.reply;
    return {
      address, id: s.id, role: s.role, term: s.term, leaderId: s.leaderId, commitIndex: s.commitIndex, appliedIndex: s.appliedIndex,
      electionTimeoutMs: s.electionTimeoutMs, members: s.members.map((m) => `${m.id}:${m.role}`),
    };
  }));
}

async function onLeader(method: 'LeaderTransfer' | 'MemberAdd' | 'MemberPromote' | 'MemberRemove', request: Record<string, unknown>, deadlineMs: number): Promise<unknown> {
  const outcome = await admin.onLeader(method, request as never, deadlineMs);
  if (outcome.error) throw outcome.error;
  return outcome.reply;
}

/** Makes the folders, and the files empty (so a register's first value is '', not a creation in progress). */
async function mkdirs(paths: string[], files: string[] = []): Promise<void> {
  const c = await client();
  for (const file of files) {
    const slash = file.lastIndexOf('/');
    if (slash > 0) paths = [...paths, file.slice(0, slash)];
  }
  for (const path of paths) {
    let parent = 1;
    for (const name of path.split('/').filter(Boolean)) {
      try {
        parent = (await c.mkdir(parent, name, 0o777)).handle;
      } catch (error) {
        if (!(error instanceof MetaError && error.code === 'EEXIST')) throw error;
        parent = (await c.lookup(parent, name)).handle;
      }
    }
  }
  for (const file of files) {
    const slash = file.lastIndexOf('/');
    const parent = await c.resolve(file.slice(0, slash) || '/');
    await c.create(parent.handle, file.slice(slash + 1), 0o666, { exclusive: false });
  }
}

async function finalRead(files: string[], dirs: string[]): Promise<FinalRead> {
  const c = await client();
  const result: FinalRead = { versions: {}, listings: {} };
  for (const file of files) {
    let handle: number;
    try {
      handle = (await c.resolve(file)).handle;
    } catch (error) {
      if (error instanceof MetaError && error.code === 'ENOENT') continue;
      throw error;
    }
    const versions: FinalRead['versions'][string] = [];
    for await (const info of c.listVersions(handle)) {
      if (versions.length >= VERSIONS_PER_FILE_MAX) throw new Error(`${file} has more than ${VERSIONS_PER_FILE_MAX} versions`);
      const { content } = await c.getVersion(handle, info.version);
      versions.push({ version: info.version, content: Buffer.from(content).toString('utf8'), conflict: info.conflict });
    }
    versions.sort((a, b) => a.version - b.version);
    result.versions[file] = versions;
  }
  for (const dir of dirs) {
    const names: string[] = [];
    try {
      for await (const entry of c.readdir((await c.resolve(dir)).handle)) if (entry.name !== '.' && entry.name !== '..') names.push(entry.name);
    } catch (error) {
      if (!(error instanceof MetaError && error.code === 'ENOENT')) throw error;
    }
    result.listings[dir] = names.sort();
  }
  return result;
}

async function handle(request: Request): Promise<unknown> {
  switch (request.cmd) {
    case 'status':
      return status();
    case 'transfer':
      return onLeader('LeaderTransfer', { to: String(request.to ?? ''), timeoutMs: Number(request.timeoutMs ?? 5_000) }, Number(request.timeoutMs ?? 5_000) + 2_000);
    case 'member-add':
      return onLeader('MemberAdd', { id: String(request.memberId), peerAddress: String(request.peerAddress), clientAddress: String(request.clientAddress) }, 10_000);
    case 'member-promote':
      return onLeader('MemberPromote', { id: String(request.memberId) }, 10_000);
    case 'member-remove':
      return onLeader('MemberRemove', { id: String(request.memberId) }, 10_000);
    case 'mkdirs':
      return mkdirs(request.paths as string[], (request.files as string[] | undefined) ?? []);
    case 'final':
      return finalRead(request.files as string[], request.dirs as string[]);
    default:
      throw new Error(`unknown agent command ${JSON.stringify(request.cmd)}`);
  }
}

function answer(message: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(message) + '\n');
}

if (require.main === module) {
  if (addresses.length === 0) {
    process.stderr.write('usage: agent-main.js <client-address,...>\n');
    process.exit(2);
  }
  let buffered = '';
  process.stdin.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let request: Request;
      try {
        request = JSON.parse(line) as Request;
      } catch {
        continue;
      }
      handle(request).then(
        (result) => answer({ id: request.id, ok: true, result: result ?? null }),
        (error: Error) => answer({ id: request.id, ok: false, error: error.message }),
      );
    }
  });
  // The runner closing stdin (or dying) ends the agent.
  process.stdin.on('end', () => {
    admin.close();
    void (sdk ? sdk.close() : Promise.resolve()).finally(() => process.exit(0));
  });
}
