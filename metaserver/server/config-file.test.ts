import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ServerConfigError } from '../../raft/node/server-config';
import { CONFIG_FILE_MAX_BYTES, argsFromConfigFile, readServerConfigFile } from './config-file';
import { parseMetaServerArgs } from './meta-server-config';

describe('handlefs server --config FILE', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meta-config-file-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Writes text (or an object as JSON) to DIR/name and returns its path. */
  function write(content: string | object, name = 'server.json'): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
    return file;
  }

  const full = () => ({
    id: 'm1',
    listen: '127.0.0.1:7001',
    clientListen: '127.0.0.1:8001',
    data: path.join(dir, 'm1'),
    peers: { m2: '127.0.0.1:7002', m1: '127.0.0.1:7001', m3: '127.0.0.1:7003' },
    clients: { m1: '127.0.0.1:8001', m2: '127.0.0.1:8002', m3: '127.0.0.1:8003' },
    metricsListen: '127.0.0.1:0',
    sessionTtlMs: 5000,
    maxSessionTtlMs: 30000,
    tickMs: 20,
    electionTicks: 12,
    heartbeatTicks: 2,
    snapshotEntries: 5000,
    snapshotTrailingEntries: 500,
    join: false,
    verbose: true,
    retention: { keepLast: 4, keepYoungerThanMs: 60000, keepConflictsYoungerThanMs: 86400000 },
    blocks: { gcGraceMs: 120000 },
  });

  /** Asserts fn throws a ServerConfigError whose message matches. */
  function rejects(fn: () => unknown, message: RegExp): void {
    let thrown: unknown;
    try {
      fn();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ServerConfigError);
    expect((thrown as Error).message).toMatch(message);
  }

  describe('a good file', () => {
    it('becomes the same flags the command line takes, and the server parser accepts them', () => {
      const file = write(full());
      const args = argsFromConfigFile(['--config', file]);
      expect(args).toEqual([
        '--id', 'm1', '--listen', '127.0.0.1:7001', '--client-listen', '127.0.0.1:8001', '--data', path.join(dir, 'm1'),
        '--peers', 'm1=127.0.0.1:7001,m2=127.0.0.1:7002,m3=127.0.0.1:7003', '--clients', 'm1=127.0.0.1:8001,m2=127.0.0.1:8002,m3=127.0.0.1:8003',
        '--metrics-listen', '127.0.0.1:0', '--session-ttl-ms', '5000', '--max-session-ttl-ms', '30000', '--tick-ms', '20',
        '--election-ticks', '12', '--heartbeat-ticks', '2', '--snapshot-entries', '5000', '--snapshot-trailing-entries', '500', '--verbose',
        '--keep-last', '4', '--keep-younger-than-ms', '60000', '--keep-conflicts-younger-than-ms', '86400000', '--block-gc-grace-ms', '120000',
      ]);
      const config = parseMetaServerArgs(args);
      expect(config.raft).toMatchObject({
        id: 'm1', listenAddress: '127.0.0.1:7001', dataDir: path.join(dir, 'm1'), metricsListenAddress: '127.0.0.1:0', tickIntervalMs: 20,
        electionTicks: 12, heartbeatTicks: 2, snapshotThresholdEntries: 5000, snapshotTrailingEntries: 500, join: false, verbose: true,
      });
      expect(config.raft.members.map((m) => m.id)).toEqual(['m1', 'm2', 'm3']);
      expect(config.clientAddresses.get('m3')).toBe('127.0.0.1:8003');
      expect(config).toMatchObject({ clientListenAddress: '127.0.0.1:8001', defaultSessionTtlMs: 5000, maxSessionTtlMs: 30000 });
    });

    it('lets flags on the command line win over the file, in either spelling, with --config anywhere', () => {
      const file = write(full());
      const args = argsFromConfigFile(['--tick-ms=30', '--config', file, '--id', 'm2', '--listen', '127.0.0.1:7002', '--client-listen', '127.0.0.1:8002']);
      const config = parseMetaServerArgs(args);
      expect(config.raft).toMatchObject({ id: 'm2', listenAddress: '127.0.0.1:7002', tickIntervalMs: 30, electionTicks: 12 });
      expect(config.clientListenAddress).toBe('127.0.0.1:8002');
      expect(args.filter((a) => a === '--id' || a.startsWith('--tick-ms'))).toEqual(['--tick-ms=30', '--id']);
      expect(parseMetaServerArgs(argsFromConfigFile([`--config=${file}`, '--verbose'])).raft.verbose).toBe(true);
    });

    it('lets one cluster file serve every member, each naming itself on the command line', () => {
      const { peers, clients, tickMs } = full();
      const file = write({ peers, clients, tickMs });
      for (const id of ['m1', 'm2', 'm3']) {
        const n = id.slice(1);
        const config = parseMetaServerArgs(argsFromConfigFile(['--config', file, '--id', id, '--listen', `127.0.0.1:700${n}`,
          '--client-listen', `127.0.0.1:800${n}`, '--data', path.join(dir, id)]));
        expect(config.raft.id).toBe(id);
        expect(config.raft.tickIntervalMs).toBe(20);
      }
    });

    it('reads a relative data folder from the file\'s own folder, not the current one', () => {
      fs.mkdirSync(path.join(dir, 'etc'));
      const file = write({ data: '../var/m1' }, path.join('etc', 'm1.json'));
      expect(argsFromConfigFile(['--config', file])).toEqual(['--data', path.join(dir, 'var', 'm1')]);
    });

    it('returns argv unchanged without --config', () => {
      const argv = ['--id', 'm1', '--verbose'];
      expect(argsFromConfigFile(argv)).toEqual(argv);
    });

    it('turns the retention and blocks sections into their flags', () => {
      const args = argsFromConfigFile(['--id', 'x', '--config', write(full())]);
      expect(args.join(' ')).toContain('--keep-last 4 --keep-younger-than-ms 60000 --keep-conflicts-younger-than-ms 86400000 --block-gc-grace-ms 120000');
      expect(argsFromConfigFile(['--config', write({ retention: {} }, 'empty.json')])).toEqual([]);
    });

    it('accepts a byte-order mark, any whitespace, and numbers written with exponents', () => {
      const file = write('\ufeff{\r\n\t"tickMs": 2e1 ,"join" : true}\n');
      expect(argsFromConfigFile(['--config', file])).toEqual(['--tick-ms', '20', '--join']);
    });

    it('parses the example in README-config.md', () => {
      const readme = fs.readFileSync(path.join(__dirname, 'README-config.md'), 'utf8');
      const example = /```json\n([\s\S]*?)```/.exec(readme)?.[1];
      expect(example).toBeDefined();
      const parsed = readServerConfigFile(write(example!));
      expect(parsed.flags.map(([flag]) => flag)).toContain('--peers');
      expect(parsed.flags.map(([flag]) => flag)).toContain('--keep-last');
    });
  });

  describe('a bad file is refused with its name, the position and the key', () => {
    it('that cannot be read', () => {
      const missing = path.join(dir, 'nope.json');
      rejects(() => argsFromConfigFile(['--config', missing]), new RegExp(`--config ${missing}: cannot read the file`));
      rejects(() => argsFromConfigFile(['--config', dir]), /cannot read the file \(not a regular file\)/);
      const huge = write(`{"id": "${'x'.repeat(CONFIG_FILE_MAX_BYTES)}"}`);
      rejects(() => argsFromConfigFile(['--config', huge]), /over the 1048576-byte limit/);
    });

    it('that is not JSON', () => {
      const file = write('{\n  "id": "m1",\n  "tickMs": 20,\n}\n');
      rejects(() => argsFromConfigFile(['--config', file]), new RegExp(`${file}:4:1: invalid JSON: property name expected`));
      rejects(() => readServerConfigFile(write('{"id": "m1" "tickMs": 2}')), /:1:13: invalid JSON: comma expected/);
      rejects(() => readServerConfigFile(write('{"id": \'m1\'}')), /:1:8: invalid JSON: invalid symbol/);
      rejects(() => readServerConfigFile(write('{"id": "m1\n"}')), /:1:8: invalid JSON: unexpected end of string/);
      rejects(() => readServerConfigFile(write('{"tickMs": 020}')), /invalid JSON: comma expected/);
      rejects(() => readServerConfigFile(write('{} {}')), /:1:4: invalid JSON: end of file expected/);
      rejects(() => readServerConfigFile(write('')), /:1:1: invalid JSON: value expected/);
      rejects(() => readServerConfigFile(write('{"a":'.repeat(20) + '1' + '}'.repeat(20))), /nested deeper than 8 levels/);
    });

    it('that repeats a key (JSON.parse would keep the last one silently)', () => {
      const file = write('{\n  "peers": {\n    "m1": "127.0.0.1:7001",\n    "m1": "127.0.0.1:7002"\n  }\n}');
      rejects(() => argsFromConfigFile(['--config', file]), /:4:5: invalid JSON: key "peers.m1" appears twice/);
      rejects(() => readServerConfigFile(write('{"tickMs": 1, "tickMs": 2}')), /key "tickMs" appears twice/);
    });

    it('with an unknown key, suggesting the one meant', () => {
      const file = write('{\n  "id": "m1",\n  "clientListn": "127.0.0.1:8001"\n}');
      rejects(() => argsFromConfigFile(['--config', file]), new RegExp(`${file}:3:3: unknown key "clientListn" \\(did you mean "clientListen"\\?\\)`));
      rejects(() => readServerConfigFile(write({ TickMs: 5 })), /unknown key "TickMs" \(did you mean "tickMs"\?\)/);
      rejects(() => readServerConfigFile(write({ retention: { keeplast: 3 } })), /unknown key "retention.keeplast" \(did you mean "keepLast"\?\)/);
      rejects(() => readServerConfigFile(write({ blocks: { gcGrace: 3 } })), /unknown key "blocks.gcGrace" \(did you mean "gcGraceMs"\?\)/);
      rejects(() => readServerConfigFile(write({ quota: 3 })), /unknown key "quota"; see/);
      rejects(() => readServerConfigFile(write('{"__proto__": {}}')), /unknown key "__proto__"/);
    });

    it('with a value of the wrong type or shape', () => {
      rejects(() => readServerConfigFile(write({ tickMs: '20' })), /key "tickMs": must be a whole number ≥ 0, got string "20"/);
      rejects(() => readServerConfigFile(write({ electionTicks: 1.5 })), /key "electionTicks": must be a whole number/);
      rejects(() => readServerConfigFile(write({ snapshotEntries: -1 })), /key "snapshotEntries": must be a whole number/);
      rejects(() => readServerConfigFile(write({ join: 'yes' })), /key "join": must be true or false/);
      rejects(() => readServerConfigFile(write({ verbose: null })), /key "verbose": must be true or false, got null/);
      rejects(() => readServerConfigFile(write({ id: 7 })), /key "id": must be a string, got number 7/);
      rejects(() => readServerConfigFile(write({ id: '' })), /key "id": must be 1..4096 characters/);
      rejects(() => readServerConfigFile(write({ id: '--join' })), /key "id": must not start with "--"/);
      rejects(() => readServerConfigFile(write({ data: ['a'] })), /key "data": must be a string, got a list/);
      rejects(() => readServerConfigFile(write({ listen: '127.0.0.1' })), /key "listen": address "127.0.0.1" is not "host:port"/);
      rejects(() => readServerConfigFile(write({ listen: '127.0.0.1:0' })), /key "listen": .*port 0 outside 1..65535/);
      expect(readServerConfigFile(write({ clientListen: '127.0.0.1:0', metricsListen: '[::1]:0' })).flags).toHaveLength(2);
      rejects(() => readServerConfigFile(write({ peers: 'm1=127.0.0.1:7001' })), /key "peers": must be an object of member id → "host:port", got string/);
      rejects(() => readServerConfigFile(write({ peers: {} })), /key "peers": names no member/);
      rejects(() => readServerConfigFile(write({ peers: { 'a,b': '127.0.0.1:1' } })), /key "peers.a,b": member id must be/);
      rejects(() => readServerConfigFile(write({ peers: { 'a=b': '127.0.0.1:1' } })), /key "peers.a=b": member id must be/);
      rejects(() => readServerConfigFile(write({ clients: { m1: 8001 } })), /key "clients.m1": must be a string, got number/);
      rejects(() => readServerConfigFile(write({ peers: { m1: '127.0.0.1:7001,m2=127.0.0.1:7002' } })), /key "peers.m1": address .* is not "host:port"/);
      rejects(() => readServerConfigFile(write([full()])), /must hold one JSON object, got a list/);
      const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, `127.0.0.1:${7000 + i}`]));
      rejects(() => readServerConfigFile(write({ peers: many })), /key "peers": names 65 members, at most 64/);
    });

    it('whose ids disagree: this member or a client that is not a peer', () => {
      rejects(() => readServerConfigFile(write({ ...full(), id: 'm9' })), /:2:3: key "id": "m9" is not one of the peers \(m1, m2, m3\)/);
      rejects(() => readServerConfigFile(write({ ...full(), clients: { m1: '127.0.0.1:8001', m4: '127.0.0.1:8004' } })), /key "clients.m4": "m4" is not one of the peers/);
    });

    it('with retention or blocks settings out of range', () => {
      rejects(() => readServerConfigFile(write({ retention: { keepConflictsYoungerThanMs: -5 } })), /key "retention.keepConflictsYoungerThanMs": must be a whole number/);
      rejects(() => readServerConfigFile(write({ retention: { keepYoungerThanMs: '1h' } })), /key "retention.keepYoungerThanMs": must be a whole number/);
      rejects(() => readServerConfigFile(write({ retention: [] })), /key "retention": must be an object, got a list/);
      rejects(() => readServerConfigFile(write({ blocks: { gcGraceMs: 1.5 } })), /key "blocks.gcGraceMs": must be a whole number/);
      rejects(() => argsFromConfigFile(['--config', write({ blocks: 5 })]), /key "blocks": must be an object/);
    });

    it('and --config itself must be given once, with a file', () => {
      const file = write({});
      rejects(() => argsFromConfigFile(['--config']), /--config needs a FILE/);
      rejects(() => argsFromConfigFile(['--config', '--verbose']), /--config needs a FILE/);
      rejects(() => argsFromConfigFile(['--config=']), /--config needs a FILE/);
      rejects(() => argsFromConfigFile(['--config', file, `--config=${file}`]), /--config given twice/);
    });
  });
});
