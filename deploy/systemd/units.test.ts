/**
 * The systemd units and example configs as an operator would install them:
 * `systemd-analyze verify` on an instance of each template (a warning fails
 * the test; a deliberately broken copy shows the check can fail), the three
 * example member configs through the server's own parsers (the same code
 * `handlefs server --config` runs), and every flag the units pass to
 * `handlefs` checked against the flags the CLI documents.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argsFromConfigFile } from '../../metaserver/server/config-file';
import { parseMetaServerArgs } from '../../metaserver/server/meta-server-config';
import { CLIENT_USAGE } from '../../client/cli/client-commands';

const UNITS = ['handlefs-server@.service', 'handlefs-mount@.service'];
const EXAMPLES = path.join(__dirname, 'examples');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-units-'));

function run(file: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

const hasSystemdAnalyze = fs.existsSync('/usr/bin/systemd-analyze');

beforeAll(() => {
  for (const unit of UNITS) fs.copyFileSync(path.join(__dirname, unit), path.join(work, unit));
  // A copy with a misspelt key: verify must complain about it, or the checks below prove nothing.
  const broken = fs.readFileSync(path.join(__dirname, 'handlefs-server@.service'), 'utf8').replace('Restart=on-failure', 'Restart=on-failure\nRestartt=always');
  fs.writeFileSync(path.join(work, 'broken@.service'), broken);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('the systemd units', () => {
  (hasSystemdAnalyze ? it : it.skip)('pass systemd-analyze verify without a single warning', async () => {
    for (const instance of ['handlefs-server@m1.service', 'handlefs-mount@mnt-handlefs.service']) {
      const verified = await run('/usr/bin/systemd-analyze', ['verify', path.join(work, instance)]);
      expect({ instance, ...verified }).toEqual({ instance, code: 0, stdout: '', stderr: '' });
    }
    const broken = await run('/usr/bin/systemd-analyze', ['verify', path.join(work, 'broken@x.service')]);
    expect(broken.stderr).toMatch(/Unknown key 'Restartt'/);
  }, 30_000);

  it('run the server with --config /etc/handlefs/server-%i.json and restart it on failure but not on a bad config', () => {
    const unit = fs.readFileSync(path.join(__dirname, 'handlefs-server@.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/handlefs\/bin\/handlefs\.js server --config \/etc\/handlefs\/server-%i\.json$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^RestartPreventExitStatus=2$/m);
    expect(unit).toMatch(/^LimitNOFILE=\d+$/m);
    expect(unit).toMatch(/^After=network-online\.target$/m);
  });

  it('mount with flags `handlefs mount` documents, and never give the mount its own mount namespace', () => {
    const unit = fs.readFileSync(path.join(__dirname, 'handlefs-mount@.service'), 'utf8');
    const env = fs.readFileSync(path.join(EXAMPLES, 'mount-mnt-handlefs.env'), 'utf8');
    const execStart = /^ExecStart=(.*)$/m.exec(unit)![1];
    expect(execStart).toMatch(/handlefs\.js mount %f --foreground --servers \$\{HANDLEFS_SERVERS\}/);
    const extra = /^HANDLEFS_MOUNT_FLAGS=(.*)$/m.exec(env)![1];
    const flags = `${execStart} ${extra}`.split(/\s+/).filter((word) => word.startsWith('--'));
    expect(flags.length).toBeGreaterThan(3);
    const documented = new Set(CLIENT_USAGE.match(/--[a-z-]+/g));
    expect(flags.filter((flag) => !documented.has(flag))).toEqual([]);
    for (const namespaced of ['PrivateTmp', 'ProtectSystem', 'ProtectHome', 'ReadOnlyPaths', 'ReadWritePaths', 'TemporaryFileSystem', 'PrivateMounts', 'BindPaths']) {
      expect(unit).not.toMatch(new RegExp(`^${namespaced}=`, 'm'));
    }
  });
});

describe('the example member configs', () => {
  const files = ['server-m1.json', 'server-m2.json', 'server-m3.json'].map((name) => path.join(EXAMPLES, name));

  it('are read by the server\'s own parsers into one three-member cluster, each naming itself', () => {
    const configs = files.map((file) => parseMetaServerArgs(argsFromConfigFile(['--config', file])));
    configs.forEach((config, i) => {
      const id = `m${i + 1}`;
      expect(config.raft.id).toBe(id);
      expect(config.raft.dataDir).toBe(`/var/lib/handlefs/${id}`);
      expect(config.raft.listenAddress).toBe(`10.0.0.${i + 1}:7001`);
      expect(config.raft.metricsListenAddress).toBe(`10.0.0.${i + 1}:9001`);
      expect(config.clientListenAddress).toBe(config.clientAddresses.get(id));
      expect(config.raft.members.map((m) => m.id)).toEqual(['m1', 'm2', 'm3']);
    });
    // Every member must be told the same cluster, or the first election mixes layouts.
    const layouts = configs.map((c) => JSON.stringify({ peers: c.raft.members, clients: [...c.clientAddresses] }));
    expect(new Set(layouts).size).toBe(1);
  });

  it('are refused by the same parser when a member id is misspelt (a check that can fail)', () => {
    const bad = path.join(work, 'server-bad.json');
    fs.writeFileSync(bad, fs.readFileSync(files[0], 'utf8').replace('"id": "m1"', '"id": "m4"'));
    expect(() => argsFromConfigFile(['--config', bad])).toThrow(/"m4" is not one of the peers/);
  });
});
