/**
 * The `handlefs` command line. Owns argument dispatch and exit codes only;
 * each subcommand lives with the part it belongs to.
 */
import { CLIENT_COMMANDS, CLIENT_USAGE, runClientCommand } from '../client/cli/client-commands';
import { runClusterCommand } from '../deploy/cluster-command';
import { CERTS_USAGE, runCertsCommand } from '../deploy/certs/certs-command';
import { runHostsCommand } from '../deploy/netns/netns-command';
import { OPS_COMMANDS, OPS_USAGE, runOpsCommand } from '../deploy/ops/ops-command';
import { FSCK_USAGE, runFsckCommand } from '../deploy/fsck/fsck-command';
import { CHAOS_USAGE, runChaosCommand } from '../chaos-tests/chaos-command';
import { runMetaServer } from '../metaserver/server/server-main';

const USAGE = `usage: handlefs <command> [options]

commands:
  cluster up [--data DIR] [--base-port 7400] [--members 3] [--tls]
        start a local metadata cluster of detached processes on 127.0.0.1 (data, pid files and
        logs under DIR, default ./.handlefs-cluster; Raft on base+1.., client API on base+101..,
        /status on base+201..); waits for a leader and prints the client addresses; --tls makes a CA and member
        certificates under DIR/pki and starts the members with TLS
  cluster down [--data DIR]
        SIGTERM every member (a leader hands leadership over first) and wait for the exits
  cluster status [--data DIR] [--json]
        the status table (as \`handlefs status\`) of this folder's members, with their pids; exits 0 only when healthy
  server --id ID --listen HOST:PORT --client-listen HOST:PORT --data DIR --peers ID=HOST:PORT,... [...]
        run one metadata server in the foreground (run it without flags to see them all)
  hosts up [--count 5] [--prefix hfs] [--bridge hfsbr0]
        create N simulated hosts (network namespaces hfs1..N at 127.77.0.11.., bridge 127.77.0.1); needs root
  hosts down [--prefix hfs] [--bridge hfsbr0]
        remove them and anything a crashed run left
  hosts status [--json]
        each host's address, link state and process count; exits 0 only when all are up
  hosts proxy --listen HOST:PORT --target HOST:PORT [--delay-ms MS] [--jitter-ms MS] [--rate-bytes-per-s N]
        a fault-injecting TCP proxy (this kernel has no netem): delay, bandwidth cap; stall/cut/heal from stdin
${OPS_USAGE}${FSCK_USAGE}${CHAOS_USAGE}${CERTS_USAGE}${CLIENT_USAGE}  help  show this text
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && CLIENT_COMMANDS.has(command)) return runClientCommand(command, rest);
  if (command !== undefined && OPS_COMMANDS.has(command)) return runOpsCommand(command, rest);
  if (command === 'fsck') return runFsckCommand(rest);
  if (command === 'chaos') return runChaosCommand(rest);
  switch (command) {
    case 'cluster':
      return runClusterCommand(rest);
    case 'hosts':
      return runHostsCommand(rest);
    case 'certs':
      return runCertsCommand(rest);
    case 'server':
      // Runs until SIGTERM/SIGINT; it exits the process itself (0 after a graceful stop, 1/2/70 on failures).
      runMetaServer(rest);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`handlefs: unknown command ${JSON.stringify(command)}\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    process.stderr.write(`handlefs: ${error.message}\n`);
    process.exitCode = 1;
  },
);
