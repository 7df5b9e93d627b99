/**
 * Drives a FUSE mount with real system calls (fs.promises) from a worker
 * process — never from the mount process, never synchronously. Each append is
 * its own open(O_APPEND)/write/close, each register write its own
 * open(O_CREAT|O_TRUNC)/write/close, so every operation is one close-to-open
 * unit. Owns nothing but the fds it opens, which it always closes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Driver } from './driver';

const fsp = fs.promises;

export class FuseDriver implements Driver {
  constructor(private readonly mountDir: string) {}

  private at(clusterPath: string, name?: string): string {
    const joined = path.join(this.mountDir, clusterPath, name ?? '');
    if (!joined.startsWith(this.mountDir + path.sep)) throw Object.assign(new Error(`path ${clusterPath}/${name ?? ''} leaves the mount`), { code: 'EINVAL' });
    return joined;
  }

  async write(file: string, value: string): Promise<void> {
    const handle = await fsp.open(this.at(file), 'w');
    try {
      await handle.write(value);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    await handle.close();
  }

  async read(file: string): Promise<string | undefined> {
    try {
      return await fsp.readFile(this.at(file), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async append(file: string, record: string): Promise<void> {
    const handle = await fsp.open(this.at(file), 'a');
    try {
      await handle.write(record);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    await handle.close();
  }

  async create(dir: string, name: string): Promise<void> {
    // 'wx' = O_CREAT|O_EXCL: a name that exists fails with EEXIST, changing nothing.
    const handle = await fsp.open(this.at(dir, name), 'wx');
    await handle.close();
  }

  async rename(dir: string, from: string, to: string): Promise<void> {
    await fsp.rename(this.at(dir, from), this.at(dir, to));
  }

  async link(dir: string, existing: string, newName: string): Promise<void> {
    await fsp.link(this.at(dir, existing), this.at(dir, newName));
  }

  async unlink(dir: string, name: string): Promise<void> {
    await fsp.unlink(this.at(dir, name));
  }

  async list(dir: string): Promise<string[]> {
    return (await fsp.readdir(this.at(dir))).sort();
  }

  async close(): Promise<void> {}
}
