/**
 * One load process of the FUSE bench (bench/fuse-bench.ts forks it): it does
 * the file operations, synchronously and one at a time like mdtest/dd, in a
 * folder it is given — a handlefs mount or a plain local folder (the ceiling).
 * Each phase runs when the parent says so (a barrier across workers) and is
 * timed here. Owns only its own folder's files; must never serve or mount
 * anything, never spawn a child, and never outlive its parent (it exits when
 * the IPC channel closes).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

export type MetaPhase = 'create' | 'stat' | 'unlink';
export type StreamPhase = 'write' | 'read';
export type Phase = MetaPhase | StreamPhase;

export type WorkerConfig =
  | { kind: 'meta'; dir: string; files: number }
  | { kind: 'stream'; file: string; bytes: number; chunkBytes: number; dropCachesBeforeRead: boolean };

export type ParentMessage = { type: 'run'; phase: Phase } | { type: 'exit' };

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'done'; phase: Phase; ms: number; ops: number; bytes: number; errors: number; lastError: string; cachesDropped?: boolean }
  | { type: 'failed'; error: string };

/** A phase gives up after this many failed calls (a broken mount must not take N × timeouts). */
const MAX_ERRORS_BEFORE_ABORT = 100;
const MAX_FILES_PER_WORKER = 10_000_000;
const MAX_STREAM_BYTES = 64 * 1024 ** 3;

function fileName(dir: string, i: number): string {
  return path.join(dir, `f${i}`);
}

function runMetaPhase(config: Extract<WorkerConfig, { kind: 'meta' }>, phase: MetaPhase): WorkerMessage {
  const createFlags = fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY;
  let errors = 0;
  let lastError = '';
  let ops = 0;
  const startedAt = performance.now();
  for (let i = 0; i < config.files; i++) {
    const file = fileName(config.dir, i);
    try {
      if (phase === 'create') fs.closeSync(fs.openSync(file, createFlags, 0o644));
      else if (phase === 'stat') fs.statSync(file);
      else fs.unlinkSync(file);
      ops++;
    } catch (error) {
      errors++;
      lastError = `${phase} ${file}: ${(error as Error).message}`;
      if (errors >= MAX_ERRORS_BEFORE_ABORT) break;
    }
  }
  return { type: 'done', phase, ms: performance.now() - startedAt, ops, bytes: 0, errors, lastError };
}

/** Drops the page, dentry and inode caches (root only); false when not permitted. */
function dropCaches(): boolean {
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

function runStreamPhase(config: Extract<WorkerConfig, { kind: 'stream' }>, phase: StreamPhase): WorkerMessage {
  const chunk = Buffer.alloc(config.chunkBytes);
  // Not all zeros: no layer may get away with recognising holes or compressing.
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  let cachesDropped: boolean | undefined;
  if (phase === 'read' && config.dropCachesBeforeRead) cachesDropped = dropCaches();
  let bytes = 0;
  let ops = 0;
  const startedAt = performance.now();
  if (phase === 'write') {
    const fd = fs.openSync(config.file, 'w', 0o644);
    try {
      while (bytes < config.bytes) {
        const n = Math.min(chunk.length, config.bytes - bytes);
        const written = fs.writeSync(fd, chunk, 0, n, bytes);
        if (written <= 0) throw new Error(`write returned ${written} at ${bytes}`);
        bytes += written;
        ops++;
      }
      fs.fsyncSync(fd);
    } finally {
      // The close commits the version on handlefs: it belongs inside the timing.
      fs.closeSync(fd);
    }
  } else {
    const fd = fs.openSync(config.file, 'r');
    try {
      // Bounded: one more read than the expected size needs, then EOF must have come.
      const maxReads = Math.ceil(config.bytes / chunk.length) + 1;
      for (let r = 0; r < maxReads; r++) {
        const n = fs.readSync(fd, chunk, 0, chunk.length, bytes);
        if (n === 0) break;
        bytes += n;
        ops++;
      }
    } finally {
      fs.closeSync(fd);
    }
    if (bytes !== config.bytes) throw new Error(`read ${bytes} bytes back from ${config.file}, wrote ${config.bytes}`);
  }
  return { type: 'done', phase, ms: performance.now() - startedAt, ops, bytes, errors: 0, lastError: '', cachesDropped };
}

export function runWorker(config: WorkerConfig): void {
  const send = (message: WorkerMessage) => process.send?.(message);
  process.on('disconnect', () => process.exit(0));
  try {
    if (config.kind === 'meta') {
      if (!Number.isInteger(config.files) || config.files < 1 || config.files > MAX_FILES_PER_WORKER) throw new Error(`files must be 1..${MAX_FILES_PER_WORKER}, got ${config.files}`);
      fs.mkdirSync(config.dir, { recursive: true });
    } else if (!Number.isInteger(config.bytes) || config.bytes < 1 || config.bytes > MAX_STREAM_BYTES) {
      throw new Error(`bytes must be 1..${MAX_STREAM_BYTES}, got ${config.bytes}`);
    }
  } catch (error) {
    send({ type: 'failed', error: (error as Error).message });
    return;
  }
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'exit') { process.disconnect(); return; }
    try {
      if (config.kind === 'meta') {
        if (message.phase !== 'create' && message.phase !== 'stat' && message.phase !== 'unlink') throw new Error(`a meta worker has no ${message.phase} phase`);
        send(runMetaPhase(config, message.phase));
      } else {
        if (message.phase !== 'write' && message.phase !== 'read') throw new Error(`a stream worker has no ${message.phase} phase`);
        send(runStreamPhase(config, message.phase));
      }
    } catch (error) {
      send({ type: 'failed', error: (error as Error).message });
    }
  });
  send({ type: 'ready' });
}
