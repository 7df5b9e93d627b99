/**
 * Kill -9 scenario: a child process (dist/raft/storage/crash-writer.js) persists
 * batches in a loop and prints each acknowledged write; it is killed with
 * SIGKILL at a random moment, the folder is reopened, and everything it
 * acknowledged must be there, intact and contiguous. Repeated on the same
 * folder, so each run also recovers from the previous crash.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { expectedEntryData, expectedSnapshotData } from './crash-writer';
import { LevelRaftStorage } from './level-storage';
import { TempDirs } from './testing';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const WRITER_JS = path.join(REPO_ROOT, 'dist', 'raft', 'storage', 'crash-writer.js');
const CRASH_ROUNDS = 4;
const ACKS_BEFORE_KILL_MIN = 20;
const KILL_DELAY_MS_MAX = 300;
const WRITER_START_TIMEOUT_MS = 8000;
const WRITER_RUN_SECONDS_MAX = 15;

const temp = new TempDirs();
let running: ChildProcess | undefined;

afterEach(() => {
  running?.kill('SIGKILL');
  running = undefined;
  temp.cleanup();
});

interface Ack {
  lastIndex: number;
  term: number;
  commit: number;
}

/** Fails with instructions when the compiled writer is missing or older than the storage sources. */
function requireCompiledWriter(): void {
  if (!fs.existsSync(WRITER_JS)) throw new Error(`${WRITER_JS} is missing: run \`npx tsc -p .\` before this test`);
  const writerBuiltMs = fs.statSync(WRITER_JS).mtimeMs;
  const sourceDir = path.join(REPO_ROOT, 'raft', 'storage');
  for (const name of fs.readdirSync(sourceDir)) {
    if (!name.endsWith('.ts') || name.endsWith('.test.ts')) continue;
    const compiled = path.join(REPO_ROOT, 'dist', 'raft', 'storage', name.replace(/\.ts$/, '.js'));
    if (!fs.existsSync(compiled) || fs.statSync(compiled).mtimeMs < fs.statSync(path.join(sourceDir, name)).mtimeMs) {
      throw new Error(`${compiled} is missing or older than raft/storage/${name} (writer built at ${new Date(writerBuiltMs).toISOString()}): run \`npx tsc -p .\``);
    }
  }
}

/** Runs the writer until it has acknowledged enough writes, then kills it with SIGKILL at a random moment. */
function runAndKill(dataDir: string, killDelayMs: number): Promise<Ack[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER_JS, dataDir, String(WRITER_RUN_SECONDS_MAX)], { stdio: ['ignore', 'pipe', 'pipe'] });
    running = child;
    const acks: Ack[] = [];
    let stdoutRest = '';
    let stderr = '';
    let killScheduled = false;
    const startTimer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`crash-writer acknowledged only ${acks.length} writes in ${WRITER_START_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, WRITER_START_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => {
      const lines = (stdoutRest + text).split('\n');
      stdoutRest = lines.pop()!;
      for (const line of lines) {
        const [word, lastIndex, term, commit] = line.split(' ');
        if (word !== 'ack') continue;
        acks.push({ lastIndex: Number(lastIndex), term: Number(term), commit: Number(commit) });
      }
      if (!killScheduled && acks.length >= ACKS_BEFORE_KILL_MIN) {
        killScheduled = true;
        clearTimeout(startTimer);
        setTimeout(() => child.kill('SIGKILL'), killDelayMs);
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      stderr += text;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(startTimer);
      running = undefined;
      if (signal === 'SIGKILL') resolve(acks);
      else reject(new Error(`crash-writer exited by itself (code ${code}, signal ${signal}) before it was killed; stderr: ${stderr}`));
    });
  });
}

describe('a member killed with SIGKILL while persisting', () => {
  it('keeps every acknowledged write, intact and contiguous, across repeated crashes', async () => {
    requireCompiledWriter();
    const dataDir = temp.make('crash');
    let previousLastIndex = 0;
    for (let round = 1; round <= CRASH_ROUNDS; round++) {
      const killDelayMs = Math.floor(Math.random() * KILL_DELAY_MS_MAX);
      const acks = await runAndKill(dataDir, killDelayMs);
      const lastAck = acks[acks.length - 1];

      const store = await LevelRaftStorage.open(dataDir);
      try {
        const initial = await store.load();
        const snapshot = await store.loadSnapshot();
        const lastIndex = initial.entries.length > 0 ? initial.entries[initial.entries.length - 1].index : initial.snapshot.index;
        const context = `round ${round} (killed ${killDelayMs} ms after ${ACKS_BEFORE_KILL_MIN} acks, ${acks.length} acks seen)`;

        if (lastIndex < lastAck.lastIndex) throw new Error(`${context}: recovered last index ${lastIndex} is below the acknowledged ${lastAck.lastIndex}`);
        if (initial.hardState.term < lastAck.term) throw new Error(`${context}: recovered term ${initial.hardState.term} is below the acknowledged ${lastAck.term}`);
        if (initial.hardState.commit < lastAck.commit) throw new Error(`${context}: recovered commit ${initial.hardState.commit} is below the acknowledged ${lastAck.commit}`);
        expect(lastIndex).toBeGreaterThanOrEqual(previousLastIndex);
        // load() already verified contiguity and CRCs; check that it handed out the log right after the snapshot and every byte survived.
        initial.entries.forEach((entry, i) => {
          expect(entry.index).toBe(initial.snapshot.index + 1 + i);
          expect(Buffer.from(entry.data).equals(Buffer.from(expectedEntryData(entry.index, entry.term)))).toBe(true);
        });
        if (snapshot !== undefined) expect(Buffer.from(snapshot.data).equals(Buffer.from(expectedSnapshotData(snapshot.metadata.index)))).toBe(true);
        previousLastIndex = lastIndex;
      } finally {
        await store.close();
      }
    }
  }, 30_000);
});
