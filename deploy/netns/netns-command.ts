/**
 * `handlefs hosts up [--count 5] | down | status [--json]` (each also takes
 * --prefix and --bridge): the command-line face of hosts.ts; and
 * `handlefs hosts proxy --listen A --target B [--delay-ms N] [--jitter-ms N]
 * [--bandwidth-bytes-per-s N]`, the fault proxy (fault-proxy.ts) in the
 * foreground, its faults changed by lines on stdin. Owns option
 * parsing, output and exit codes only (0 ok, 1 failure, 2 usage).
 * Must never do anything hosts.ts does not: no names or addresses of its own.
 */
import * as readline from 'node:readline';
import { DEFAULT_BRIDGE, DEFAULT_PREFIX, HOSTS_MAX, hostsDown, hostsStatus, hostsUp } from './hosts';
import { FaultProxy, PROXY_CONSOLE_HELP, applyProxyCommand } from './fault-proxy';

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

const PROXY_USAGE = 'hosts proxy --listen HOST:PORT --target HOST:PORT [--delay-ms N] [--jitter-ms N] [--bandwidth-bytes-per-s N] [--buffer-limit-bytes N]';

/** `hosts proxy`: runs the fault proxy until SIGINT/SIGTERM; stdin lines change its faults. Needs no root. */
async function proxy(args: string[]): Promise<number> {
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i]!;
    if (!['--listen', '--target', '--delay-ms', '--jitter-ms', '--bandwidth-bytes-per-s', '--buffer-limit-bytes'].includes(flag)) throw new UsageError(`unknown option ${flag}; usage: ${PROXY_USAGE}`);
    const value = args[i + 1];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    values.set(flag, value);
  }
  const listen = values.get('--listen');
  const target = values.get('--target');
  if (listen === undefined || target === undefined) throw new UsageError(`--listen and --target are required; usage: ${PROXY_USAGE}`);
  const number = (flag: string): number | undefined => {
    const value = values.get(flag);
    if (value === undefined) return undefined;
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`${flag} needs a non-negative number, got ${JSON.stringify(value)}`);
    return n;
  };
  let started: FaultProxy;
  try {
    started = await FaultProxy.start({
      listen, target, bufferLimitBytes: number('--buffer-limit-bytes'),
      faults: { delayMs: number('--delay-ms') ?? 0, jitterMs: number('--jitter-ms') ?? 0, bandwidthBytesPerS: number('--bandwidth-bytes-per-s') ?? 0 },
    });
  } catch (error) {
    if (/must be HOST:PORT|fault /.test((error as Error).message)) throw new UsageError((error as Error).message);
    throw error;
  }
  process.stdout.write(`proxy listening on ${started.address}, forwarding to ${target}\n${PROXY_CONSOLE_HELP}\n`);
  return new Promise<number>((resolve) => {
    const lines = readline.createInterface({ input: process.stdin });
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      lines.close();
      void started.close().then(() => resolve(0));
    };
    lines.on('line', (line) => {
      if (line.trim() === '') return;
      try {
        process.stdout.write(applyProxyCommand(started, line) + '\n');
      } catch (error) {
        process.stderr.write(`${(error as Error).message}\n`);
      }
    });
    // stdin ending (a background run with </dev/null) stops the console only, not the proxy.
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

export async function runHostsCommand(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  try {
    if (action === 'proxy') return await proxy(rest);
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
        throw new UsageError(`hosts needs up, down, status or proxy, got ${JSON.stringify(action ?? '')}`);
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
