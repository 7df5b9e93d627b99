/**
 * Helpers for the storage tests: unique temporary folders that are always
 * removed, and entry/membership factories.
 * Owns: test fixtures only. Never: imported by production code.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Entry, EntryType, Membership } from '../core/types';

export const THREE_MEMBERS: Membership = {
  members: [
    { id: 'm1', address: '127.0.0.1:7001', role: 'voter' },
    { id: 'm2', address: '127.0.0.1:7002', role: 'voter' },
    { id: 'm3', address: '127.0.0.1:7003', role: 'learner' },
  ],
};

/** Entries fromIndex..toIndex, all of `term`, whose data names their index and term. */
export function entries(fromIndex: number, toIndex: number, term: number): Entry[] {
  const result: Entry[] = [];
  for (let index = fromIndex; index <= toIndex; index++) {
    result.push({ index, term, type: index % 5 === 0 ? EntryType.Noop : EntryType.Normal, data: new Uint8Array(Buffer.from(`entry ${index} of term ${term}`)) });
  }
  return result;
}

export function patternBytes(sizeBytes: number, seed: number): Uint8Array {
  const data = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) data[i] = (seed * 31 + i * 7 + (i >> 11)) & 0xff;
  return data;
}

/** Creates unique temp folders for one test file and removes them all in cleanup(). */
export class TempDirs {
  private readonly dirs: string[] = [];

  make(label: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `handlefs-storage-${label}-`));
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    for (const dir of this.dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  }
}
