/**
 * Drives the cluster through the SDK (MetaClient) from a worker process in a
 * client host: whole-file writes and reads with writeFile/readFile (reads
 * alternate between an fh's pinned version and the head version read without
 * an fh, so both read paths are checked), appends as
 * open(append) + one inline commit of the record at the base's end (the server
 * moves it to the head's end), namespace calls on the directory's handle.
 * Owns its MetaClient; must never retry an operation itself (the SDK's own
 * exactly-once retries are part of what is tested).
 */
import { INLINE_LIMIT_BYTES, MetaClient, MetaError, ReadFrom } from '../../client/sdk';
import type { Driver } from './driver';

const utf8 = new TextEncoder();

export class SdkDriver implements Driver {
  private reads = 0;

  private constructor(private readonly client: MetaClient) {}

  static async connect(servers: string[], name: string, deadlineMs: number, readFrom: ReadFrom): Promise<SdkDriver> {
    return new SdkDriver(await MetaClient.connect({ servers, deadlineMs, clientName: name, readFrom }));
  }

  private async handleOf(dir: string): Promise<number> {
    return (await this.client.resolve(dir)).handle;
  }

  async write(file: string, value: string): Promise<void> {
    await this.client.writeFile(file, utf8.encode(value));
  }

  async read(file: string): Promise<string | undefined> {
    try {
      const version = this.reads++ % 2 === 0 ? undefined : 'head';
      return Buffer.from(await this.client.readFile(file, { version })).toString('utf8');
    } catch (error) {
      if (error instanceof MetaError && error.code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async append(file: string, record: string): Promise<void> {
    const slash = file.lastIndexOf('/');
    const parent = await this.handleOf(file.slice(0, slash) || '/');
    const { attr } = await this.client.create(parent, file.slice(slash + 1), 0o644, { exclusive: false });
    const data = utf8.encode(record);
    const opened = await this.client.open(attr.handle, { read: false, write: true, append: true });
    if (opened.sizeBytes + data.length > INLINE_LIMIT_BYTES) {
      await this.client.release(opened.fh);
      // Refused before anything was sent: the workload keeps files small, so this is a planning bug made visible.
      throw Object.assign(new Error(`${file} is ${opened.sizeBytes} B: an inline append would pass ${INLINE_LIMIT_BYTES} B`), { code: 'EFBIG' });
    }
    try {
      await this.client.commit(opened.fh, opened.version, { kind: 'inline', written: [{ offset: opened.sizeBytes, data }], newSize: opened.sizeBytes + data.length }, { release: true });
    } catch (error) {
      // Best effort: the fh would otherwise stay open until the session ends; the commit's error is what counts.
      await this.client.release(opened.fh).catch(() => undefined);
      throw error;
    }
  }

  async create(dir: string, name: string): Promise<void> {
    await this.client.create(await this.handleOf(dir), name, 0o644, { exclusive: true });
  }

  async rename(dir: string, from: string, to: string): Promise<void> {
    const parent = await this.handleOf(dir);
    await this.client.rename(parent, from, parent, to);
  }

  async link(dir: string, existing: string, newName: string): Promise<void> {
    const parent = await this.handleOf(dir);
    const target = await this.client.lookup(parent, existing);
    await this.client.link(target.handle, parent, newName);
  }

  async unlink(dir: string, name: string): Promise<void> {
    await this.client.unlink(await this.handleOf(dir), name);
  }

  async list(dir: string): Promise<string[]> {
    const names: string[] = [];
    for await (const entry of this.client.readdir(await this.handleOf(dir))) if (entry.name !== '.' && entry.name !== '..') names.push(entry.name);
    return names.sort();
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  async abandon(file: string): Promise<{ sessionId: number; fh: number }> {
    const opened = await this.client.open((await this.client.resolve(file)).handle, { read: true, write: false, append: false });
    return { sessionId: this.client.sessionId, fh: opened.fh };
  }
}
