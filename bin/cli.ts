/**
 * The `handlefs` command line. Owns argument dispatch and exit codes only;
 * each subcommand lives with the part it belongs to.
 */
import { runLocalCluster } from '../deploy/local-cluster';

const USAGE = `usage: handlefs <command> [options]

commands:
  local [--data DIR] [--base-port N] [--members 3]
        run a local cluster of real processes on 127.0.0.1 (Raft over gRPC, LevelDB under DIR,
        default ./.handlefs-local) with the replicated key-value demo machine; Ctrl-C stops it
  help  show this text
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'local':
      return runLocalCluster(rest);
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
