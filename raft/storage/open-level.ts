/**
 * The one way this project opens a LevelDB folder (classic-level, binary keys
 * and values), so every opener gets the same encodings and the same clear
 * error naming the folder when it cannot be used.
 * Owns: creating/opening the folder. Never: knowledge of what is stored in it.
 */
import * as fs from 'fs';
import { ClassicLevel } from 'classic-level';

export type LevelDb = ClassicLevel<Buffer, Buffer>;

export class StorageOpenError extends Error {
  readonly code = 'STORAGE_OPEN_FAILED';
  constructor(readonly dataDir: string, problem: string) {
    super(`cannot open LevelDB folder ${dataDir}: ${problem}`);
  }
}

/** Duck-typed: errors may come from another realm (jest's sandbox), where instanceof Error fails. */
function describeCause(error: unknown): string {
  const outer = error as { message?: unknown; cause?: { message?: unknown; code?: unknown } } | undefined;
  const cause = outer?.cause;
  if (cause?.code === 'LEVEL_LOCKED') return 'it is locked (already open in this or another process)';
  const message = typeof outer?.message === 'string' ? outer.message : String(error);
  return typeof cause?.message === 'string' ? `${message}: ${cause.message}` : message;
}

/** Creates the folder if missing and opens it; rejects with StorageOpenError naming the folder. */
export async function openLevel(dataDir: string): Promise<LevelDb> {
  if (typeof dataDir !== 'string' || dataDir.length === 0) throw new StorageOpenError(String(dataDir), 'the folder path is empty');
  try {
    fs.mkdirSync(dataDir, { recursive: true });
    const stat = fs.statSync(dataDir);
    if (!stat.isDirectory()) throw new Error('the path exists but is not a folder');
    fs.accessSync(dataDir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (error) {
    throw new StorageOpenError(dataDir, `the folder is not a readable and writable folder (${(error as Error).message})`);
  }
  const db = new ClassicLevel<Buffer, Buffer>(dataDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  try {
    await db.open({ createIfMissing: true });
  } catch (error) {
    throw new StorageOpenError(dataDir, describeCause(error));
  }
  return db;
}
