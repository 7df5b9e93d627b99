/**
 * POSIX conformance on a real mount of a 3-member cluster, part 4: one 1 GiB
 * file written sequentially in 8 MiB chunks on mount a (random bytes, so no
 * block deduplicates), closed, and read back on mount b (whose block cache
 * is cold) with the same SHA-256. Prints the MB/s it saw; it is a correctness
 * test with a generous limit, not a benchmark (npm run bench:fuse is that).
 */
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useClusterMounts } from './harness';

const fsp = fs.promises;
const MiB = 1024 * 1024;
const FILE_BYTES = 1024 * MiB;
const CHUNK_BYTES = 8 * MiB;
const m = useClusterMounts('large', 2);

describe('a 1 GiB file', () => {
  it('reads back on the other mount with the SHA-256 it was written with, at the size written', async () => {
    const name = 'one-gib.bin';
    const chunk = Buffer.alloc(CHUNK_BYTES);
    const written = createHash('sha256');
    const writeStartMs = Date.now();
    const out = await fsp.open(path.join(m.a, name), 'w');
    try {
      for (let offset = 0; offset < FILE_BYTES; offset += CHUNK_BYTES) {
        randomFillSync(chunk);
        written.update(chunk);
        const { bytesWritten } = await out.write(chunk, 0, CHUNK_BYTES, offset);
        expect(bytesWritten).toBe(CHUNK_BYTES);
      }
    } finally {
      await out.close();
    }
    const writeMs = Date.now() - writeStartMs;

    expect((await fsp.stat(path.join(m.b, name))).size).toBe(FILE_BYTES);
    const read = createHash('sha256');
    let readBytes = 0;
    const readStartMs = Date.now();
    const input = await fsp.open(path.join(m.b, name), 'r');
    try {
      for (;;) {
        const { bytesRead } = await input.read(chunk, 0, CHUNK_BYTES, readBytes);
        if (bytesRead === 0) break;
        read.update(chunk.subarray(0, bytesRead));
        readBytes += bytesRead;
        expect(readBytes).toBeLessThanOrEqual(FILE_BYTES);
      }
    } finally {
      await input.close();
    }
    const readMs = Date.now() - readStartMs;
    expect(readBytes).toBe(FILE_BYTES);
    expect(read.digest('hex')).toBe(written.digest('hex'));
    const mbps = (ms: number): string => (FILE_BYTES / 1e6 / (ms / 1000)).toFixed(1);
    console.log(`1 GiB: write+close ${writeMs} ms (${mbps(writeMs)} MB/s), read on the other mount ${readMs} ms (${mbps(readMs)} MB/s)`);
  }, 300_000);
});
