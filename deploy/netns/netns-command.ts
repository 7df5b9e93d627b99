/**
 * `handlefs hosts up [--count 5] | down | status [--json]` (each also takes
 * --prefix and --bridge): the command-line face of hosts.ts. Owns option
 * parsing, output and exit codes only (0 ok, 1 failure, 2 usage).
 * Must never do anything hosts.ts does not: no names or addresses of its own.
 */
import { DEFAULT_BRIDGE, DEFAULT_PREFIX, HOSTS_MAX, hostsDown, hostsStatus, hostsUp } from './hosts';

const DEFAULT_COUNT = 5;

class UsageError extends Error {}

interface HostsCommandOptions {
  count?: number;
  prefix: string;
  bridge: string;
  json: boolean;
}

function parseOptions(args: string[]): HostsCommandOptions {
  const options: HostsCommandOptions = { prefix: DEFAULT_PREFIX, bridge: DEFAULT_BRIDGE, json: false };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (flag === '--json') {
      options.json = true;
      continue;
    }
    const value = args[++i];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    switch (flag) {
      case '--count': {
        const count = Number(value);
        if (!Number.isInteger(count) || count < 1 || count > HOSTS_MAX) throw new UsageError(`--count must be an integer in 1..${HOSTS_MAX}, got ${value}`);
        options.count = count;
        break;
      }
      case '--prefix':
        options.prefix = value;
        break;
      case '--bridge':
        options.bridge = value;
        break;
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  return options;
}

async function up(options: HostsCommandOptions): Promise<number> {
  const hosts = await hostsUp({ count: options.count ?? DEFAULT_COUNT, prefix: options.prefix, bridge: options.bridge });
  for (const host of hosts) process.stdout.write(`${host.name}\t${host.address}\n`);
  process.stdout.write(`${hosts.length} hosts up on bridge ${options.bridge}; run a command in one with: nsenter --net=/run/netns/${hosts[0]!.name} <command>\n`);
  return 0;
}

async function down(options: HostsCommandOptions): Promise<number> {
  const report = await hostsDown({ prefix: options.prefix, bridge: options.bridge });
  const removed = report.removedNamespaces.length + report.removedLinks.length + (report.removedBridge ? 1 : 0);
  if (removed === 0) process.stdout.write(`no hosts with prefix ${options.prefix} and no bridge ${options.bridge}: already down\n`);
  else process.stdout.write(`removed ${report.removedNamespaces.length} namespaces, ${report.removedLinks.length} links${report.removedBridge ? `, bridge ${options.bridge}` : ''}\n`);
  for (const { name, pids } of report.busy) {
    process.stderr.write(`warning: processes ${pids.join(', ')} were still inside ${name}; they keep running, cut off from every network, until they exit\n`);
  }
  return 0;
}

async function status(options: HostsCommandOptions): Promise<number> {
  const result = await hostsStatus({ prefix: options.prefix, bridge: options.bridge });
  if (options.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } else if (result.hosts.length === 0 && !result.bridge.present) {
    process.stdout.write(`no hosts with prefix ${options.prefix} (bridge ${options.bridge} absent)\n`);
  } else {
    const rows = [['HOST', 'ADDRESS', 'LINK', 'PROCESSES'], ...result.hosts.map((h) => [h.name, h.address ?? '-', h.link, String(h.pids.length)])];
    const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
    for (const row of rows) process.stdout.write(row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd() + '\n');
    process.stdout.write(`bridge ${result.bridge.name}: ${result.bridge.present ? (result.bridge.up ? 'up' : 'down') : 'absent'}\n`);
  }
  // Healthy means: the bridge is up and every host has its address and link up.
  const healthy = result.bridge.up && result.hosts.length > 0 && result.hosts.every((h) => h.address !== null && h.link === 'up');
  return healthy ? 0 : 1;
}

export async function runHostsCommand(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  try {
    const options = parseOptions(rest);
    if (options.json && action !== 'status') throw new UsageError('--json is for `hosts status` only');
    if (options.count !== undefined && action !== 'up') throw new UsageError('--count is for `hosts up` only');
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      process.stderr.write('handlefs hosts: network namespaces need root (run as root)\n');
      return 1;
    }
    switch (action) {
      case 'up':
        return await up(options);
      case 'down':
        return await down(options);
      case 'status':
        return await status(options);
      default:
        throw new UsageError(`hosts needs up, down or status, got ${JSON.stringify(action ?? '')}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`handlefs hosts: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`handlefs hosts ${action}: ${(error as Error).message}\n`);
    return 1;
  }
}
