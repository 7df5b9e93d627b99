/**
 * The debug-unsafe fault switches are refused unless HANDLEFS_DEBUG_UNSAFE=1:
 * in the parser (every flag, unknown switch names) and end to end, where a
 * real server process exits 2 naming the variable before it opens anything.
 * Run `npx tsc -p .` first (the process test runs dist/).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseMetaServerArgs } from '../../metaserver/server/meta-server-config';
import { metaServerMainPath } from '../../metaserver/server/main-path';
import { assertDistIsFresh } from '../../raft/node/process-cluster';
import { META_SOURCE_FOLDERS } from '../../metaserver/server/testing';

const REFUSAL = '--debug-unsafe needs HANDLEFS_DEBUG_UNSAFE=1: it makes the cluster lose or corrupt data on purpose';

let dataRoot: string;
const savedEnv = process.env.HANDLEFS_DEBUG_UNSAFE;

function baseArgs(): string[] {
  return ['--id', 'm1', '--listen', '127.0.0.1:17001', '--client-listen', '127.0.0.1:18001', '--data', path.join(dataRoot, 'm1'), '--peers', 'm1=127.0.0.1:17001'];
}

beforeAll(() => {
  dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-debug-guard-'));
});

afterEach(() => {
  if (savedEnv === undefined) delete process.env.HANDLEFS_DEBUG_UNSAFE;
  else process.env.HANDLEFS_DEBUG_UNSAFE = savedEnv;
});

afterAll(() => {
  fs.rmSync(dataRoot, { recursive: true, force: true });
});

describe('the debug-unsafe guard in the parser', () => {
  it('refuses every fault flag without HANDLEFS_DEBUG_UNSAFE=1, naming the variable and why', () => {
    delete process.env.HANDLEFS_DEBUG_UNSAFE;
    expect(() => parseMetaServerArgs([...baseArgs(), '--debug-unsafe', 'stale-reads'])).toThrow(REFUSAL);
    expect(() => parseMetaServerArgs([...baseArgs(), '--debug-follower-apply-delay-ms', '100'])).toThrow(/--debug-follower-apply-delay-ms needs HANDLEFS_DEBUG_UNSAFE=1/);
    expect(() => parseMetaServerArgs([...baseArgs(), '--debug-fsync-delay-ms', '100'])).toThrow(/--debug-fsync-delay-ms needs HANDLEFS_DEBUG_UNSAFE=1/);
    expect(() => parseMetaServerArgs([...baseArgs(), '--debug-fsync-delay-file', '/tmp/x'])).toThrow(/--debug-fsync-delay-file needs HANDLEFS_DEBUG_UNSAFE=1/);
    process.env.HANDLEFS_DEBUG_UNSAFE = 'yes';
    expect(() => parseMetaServerArgs([...baseArgs(), '--debug-unsafe', 'no-dedup'])).toThrow(REFUSAL);
  });

  it('accepts the known switches with the variable set, and refuses an unknown one by listing the known', () => {
    process.env.HANDLEFS_DEBUG_UNSAFE = '1';
    const config = parseMetaServerArgs([...baseArgs(), '--debug-unsafe', 'ack-before-commit,stale-reads,no-dedup', '--debug-follower-apply-delay-ms', '50', '--debug-fsync-delay-ms', '20']);
    expect([...config.debugUnsafe].sort()).toEqual(['ack-before-commit', 'no-dedup', 'stale-reads']);
    expect(config.debugFollowerApplyDelayMs).toBe(50);
    expect(config.raft.debugFsyncDelayMs).toBe(20);
    expect(() => parseMetaServerArgs([...baseArgs(), '--debug-unsafe', 'stale-reads,skip-fsync'])).toThrow(/unknown switch "skip-fsync"; known: ack-before-commit, stale-reads, no-dedup/);
    expect(() => parseMetaServerArgs([...baseArgs(), '--debug-fsync-delay-ms', '-1'])).toThrow(/--debug-fsync-delay-ms must be an integer/);
  });

  it('leaves every switch off in a normal configuration', () => {
    delete process.env.HANDLEFS_DEBUG_UNSAFE;
    const config = parseMetaServerArgs(baseArgs());
    expect(config.debugUnsafe.size).toBe(0);
    expect(config.debugFollowerApplyDelayMs).toBe(0);
    expect(config.raft.debugFsyncDelayMs).toBeUndefined();
    expect(config.raft.debugFsyncDelayFile).toBeUndefined();
  });
});

describe('the debug-unsafe guard in a real server process', () => {
  beforeAll(() => assertDistIsFresh(META_SOURCE_FOLDERS));

  it('exits 2 with the refusal on stderr when the variable is not set', () => {
    const env = { ...process.env };
    delete env.HANDLEFS_DEBUG_UNSAFE;
    const run = spawnSync(process.execPath, [metaServerMainPath(), ...baseArgs(), '--debug-unsafe', 'ack-before-commit'], { env, encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(REFUSAL);
    // Refused before anything was opened: no Raft log was created.
    expect(fs.existsSync(path.join(dataRoot, 'm1', 'raft'))).toBe(false);
  });
});
