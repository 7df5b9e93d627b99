/**
 * A stand-alone BlockPeer process over a block store folder, for tests that
 * need a real member process to kill (SIGKILL) while a leader replicates:
 *   node dist/metaserver/blocks/block-peer-main.js --dir <folder> [--listen 127.0.0.1:0]
 * Prints one JSON line {"port": N} on stdout once it serves. Its state machine
 * is taken as having applied everything (waitApplied resolves at once): the
 * metadata server wires the real one. Owns nothing else; must never listen
 * beyond the address it is given.
 */
import * as grpc from '@grpc/grpc-js';
import { stderrLogger } from '../../raft/node/node-logger';
import { blockPeerService } from '../../proto/blocks-proto';
import { BlockPeerService } from './block-peer-service';
import { BlockStore } from './block-store';

function argValue(argv: readonly string[], flag: string): string | undefined {
  const at = argv.indexOf(flag);
  return at >= 0 ? argv[at + 1] : undefined;
}

async function main(argv: readonly string[]): Promise<void> {
  const dir = argValue(argv, '--dir');
  const listen = argValue(argv, '--listen') ?? '127.0.0.1:0';
  if (dir === undefined || dir === '') throw new Error('usage: block-peer-main --dir <folder> [--listen host:port]');
  const logger = stderrLogger(`block-peer:${process.pid}`, false);
  const store = await BlockStore.open(dir, { logger });
  const service = new BlockPeerService({ store, waitApplied: async () => {}, logger });
  const server = new grpc.Server();
  server.addService(blockPeerService, service.implementation());
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
  });
  process.stdout.write(JSON.stringify({ port }) + '\n');
  const stop = (): void => {
    server.tryShutdown(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`block-peer-main: ${(error as Error)?.message ?? String(error)}\n`);
    process.exit(1);
  });
}
