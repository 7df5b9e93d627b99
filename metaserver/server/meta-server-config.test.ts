import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseMetaServerArgs } from './meta-server-config';

describe('the metadata server command line', () => {
  let dataDir: string;
  beforeEach(() => { dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meta-config-')); });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  const base = () => ['--id', 'm1', '--listen', '127.0.0.1:7001', '--client-listen', '127.0.0.1:8001', '--data', dataDir,
    '--peers', 'm1=127.0.0.1:7001,m2=127.0.0.1:7002'];

  it('passes the Raft flags to raft\'s parser and keeps its own: client addresses and session TTLs', () => {
    const config = parseMetaServerArgs([...base(), '--clients', 'm2=127.0.0.1:8002', '--session-ttl-ms', '5000', '--tick-ms', '20']);
    expect(config.raft.id).toBe('m1');
    expect(config.raft.tickIntervalMs).toBe(20);
    expect(config.clientAddresses).toEqual(new Map([['m2', '127.0.0.1:8002'], ['m1', '127.0.0.1:8001']]));
    expect(config.defaultSessionTtlMs).toBe(5000);
    expect(config.maxSessionTtlMs).toBe(60_000);
  });

  it('names the problem in a bad configuration', () => {
    expect(() => parseMetaServerArgs(base().slice(0, 6).concat(base().slice(8)))).toThrow(/--data is required[\s\S]*metaserver\/server\/server-main/);
    expect(() => parseMetaServerArgs(base().filter((_, i) => i !== 4 && i !== 5))).toThrow(/--client-listen is required/);
    expect(() => parseMetaServerArgs([...base(), '--clients', 'm9=127.0.0.1:1'])).toThrow(/"m9" is not one of the --peers/);
    expect(() => parseMetaServerArgs([...base(), '--clients', 'm2=nowhere'])).toThrow(/--clients \(member m2\)/);
    expect(() => parseMetaServerArgs([...base(), '--session-ttl-ms', '10'])).toThrow(/--session-ttl-ms must be an integer/);
    expect(() => parseMetaServerArgs([...base(), '--session-ttl-ms', '90000', '--max-session-ttl-ms', '60000'])).toThrow(/exceeds --max-session-ttl-ms/);
    expect(() => parseMetaServerArgs([...base(), '--session-ttl-ms'])).toThrow(/--session-ttl-ms needs a value/);
    expect(() => parseMetaServerArgs([...base(), '--bogus'])).toThrow(/unknown argument "--bogus"/);
  });
});
