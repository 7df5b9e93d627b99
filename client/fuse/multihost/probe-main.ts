/**
 * A one-shot look at the cluster from INSIDE a simulated host (started with
 * deploy/netns runIn by the multi-host tests, compiled to dist/): the members'
 * /status, a file's version history with each version's content, or one of its
 * conflict copies, printed as one JSON line on stdout.
 * Why a process: with two bridges of the address plan up at once the root
 * namespace may route 127.77.0.0/24 to the other one (deploy/netns/README.md),
 * so the test never talks to the servers from the root namespace.
 * Owns nothing; must never change the cluster (reads only) and never run longer
 * than PROBE_LIMIT_MS.
 *
 *   node probe-main.js status <http-addr,...>
 *   node probe-main.js versions <servers> <cluster-path>
 *   node probe-main.js conflict-copy <servers> <cluster-path> <copy>
 */
import { MetaClient, sha256 } from '../../sdk';

const PROBE_LIMIT_MS = 20_000;
const STATUS_TIMEOUT_MS = 1_000;
const DEADLINE_MS = 10_000;
/** Contents up to this size travel back whole (base64); larger ones as size + SHA-256 only. */
const CONTENT_INLINE_MAX_BYTES = 256 * 1024;

function contentFields(content: Uint8Array): { sha256: string; contentBase64?: string } {
  return { sha256: sha256(content), ...(content.length <= CONTENT_INLINE_MAX_BYTES ? { contentBase64: Buffer.from(content).toString('base64') } : {}) };
}

async function status(addresses: string[]): Promise<unknown> {
  return Promise.all(addresses.map(async (address) => {
    try {
      const response = await fetch(`http://${address}/status`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
      return response.ok ? await response.json() : null;
    } catch {
      return null;
    }
  }));
}

async function withClient<T>(servers: string, run: (client: MetaClient) => Promise<T>): Promise<T> {
  const client = await MetaClient.connect({ servers: servers.split(','), deadlineMs: DEADLINE_MS, clientName: `multihost probe pid ${process.pid}` });
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

async function main(argv: string[]): Promise<unknown> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'status': {
      if (rest.length !== 1) throw new Error('status takes one comma-separated list of HTTP addresses');
      return status(rest[0].split(','));
    }
    case 'versions': {
      if (rest.length !== 2) throw new Error('versions takes <servers> <cluster-path>');
      return withClient(rest[0], async (client) => {
        const attr = await client.resolve(rest[1]);
        const versions = [];
        for await (const info of client.listVersions(attr.handle)) {
          const { content } = await client.getVersion(attr.handle, info.version);
          versions.push({
            version: info.version, sizeBytes: info.sizeBytes, kind: info.kind, baseVersion: info.baseVersion, conflict: info.conflict,
            lostToVersion: info.lostToVersion, overwroteVersion: info.overwroteVersion, ...contentFields(content),
          });
        }
        return { handle: attr.handle, head: attr.headVersion ?? 0, versions };
      });
    }
    case 'conflict-copy': {
      const copy = Number(rest[2]);
      if (rest.length !== 3 || !Number.isSafeInteger(copy) || copy < 1) throw new Error('conflict-copy takes <servers> <cluster-path> <copy ≥ 1>');
      return withClient(rest[0], async (client) => {
        const attr = await client.resolve(rest[1]);
        const { info, content } = await client.getConflictCopy(attr.handle, copy);
        return { copy: info.copy, baseVersion: info.baseVersion, lostToVersion: info.lostToVersion, sizeBytes: info.sizeBytes, ...contentFields(content) };
      });
    }
    default:
      throw new Error(`unknown probe command ${String(command)} (status | versions | conflict-copy)`);
  }
}

if (require.main === module) {
  setTimeout(() => {
    process.stderr.write(`probe: not done within ${PROBE_LIMIT_MS} ms\n`);
    process.exit(1);
  }, PROBE_LIMIT_MS).unref();
  main(process.argv.slice(2)).then((result) => {
    process.stdout.write(JSON.stringify({ ok: true, result }) + '\n', () => process.exit(0));
  }, (error: unknown) => {
    const e = error as { code?: string; message?: string };
    process.stdout.write(JSON.stringify({ ok: false, code: e.code ?? null, error: e.message ?? String(error) }) + '\n', () => process.exit(1));
  });
}
