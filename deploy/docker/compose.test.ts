/**
 * The compose file and Dockerfile, checked as far as this machine can (no
 * container engine runs here; `docker compose` is not installed): the compose
 * file parses, every member's command plus the shared cluster.json passes the
 * server's own parsers, the client has what FUSE needs and uses only flags
 * `handlefs mount` documents, and every path the Dockerfile copies exists.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { argsFromConfigFile } from '../../metaserver/server/config-file';
import { parseMetaServerArgs } from '../../metaserver/server/meta-server-config';
import { CLIENT_USAGE } from '../../client/cli/client-commands';

// js-yaml 3 comes with jest (no dependency of its own is added); it has no types here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const yaml = require('js-yaml') as { safeLoad(text: string): unknown };

const REPO = path.resolve(__dirname, '..', '..');
interface Service { command: string[]; configs?: Array<{ source: string; target: string }>; devices?: string[]; cap_add?: string[]; depends_on?: Record<string, unknown>; init?: boolean }
const compose = yaml.safeLoad(fs.readFileSync(path.join(__dirname, 'compose.yaml'), 'utf8')) as { services: Record<string, Service>; configs: Record<string, { file: string }> };

describe('the compose file', () => {
  it('runs three members, each naming itself, on one shared config the server accepts', () => {
    const members = ['m1', 'm2', 'm3'];
    for (const id of members) {
      const service = compose.services[id];
      expect(service.init).toBe(true);
      const [command, ...args] = service.command;
      expect(command).toBe('server');
      const mounted = service.configs!.find((c) => args.includes(c.target))!;
      const file = path.resolve(__dirname, compose.configs[mounted.source].file);
      const config = parseMetaServerArgs(argsFromConfigFile(args.map((a) => (a === mounted.target ? file : a))));
      expect(config.raft.id).toBe(id);
      // Peers are the compose service names (the containers' DNS names).
      expect(config.raft.members.map((m) => `${m.id}@${m.address}`)).toEqual(members.map((m) => `${m}@${m}:7001`));
      expect(config.raft.metricsListenAddress).toBe('0.0.0.0:9001');
    }
  });

  it('gives the client /dev/fuse and CAP_SYS_ADMIN, waits for healthy members, and mounts with documented flags', () => {
    const client = compose.services.client;
    expect(client.devices).toContain('/dev/fuse:/dev/fuse');
    expect(client.cap_add).toContain('SYS_ADMIN');
    expect(Object.keys(client.depends_on!)).toEqual(['m1', 'm2', 'm3']);
    expect(client.command.slice(0, 3)).toEqual(['mount', '/mnt/handlefs', '--foreground']);
    const documented = new Set(CLIENT_USAGE.match(/--[a-z-]+/g));
    expect(client.command.filter((a) => a.startsWith('--') && !documented.has(a))).toEqual([]);
    expect(client.command[client.command.indexOf('--servers') + 1]).toBe('m1:8001,m2:8001,m3:8001');
  });
});

describe('the Dockerfile', () => {
  const dockerfile = fs.readFileSync(path.join(__dirname, 'Dockerfile'), 'utf8');

  it('starts from node:20-bookworm-slim, has the toolchain the fuse-native rebuild needs, and copies only paths that exist', () => {
    expect(dockerfile).toMatch(/^FROM node:20-bookworm-slim AS build$/m);
    expect(dockerfile).toMatch(/apt-get install -y --no-install-recommends python3 make g\+\+/);
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    // The postinstall the image's `npm ci` runs must be copied in before it.
    const postinstall = /node (\S+)/.exec(pkg.scripts.postinstall)![1];
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+) (\S+)$/gm)].flatMap((m) => m[1].split(' '));
    expect(copies.some((source) => postinstall.startsWith(source.replace(/\/$/, '')))).toBe(true);
    for (const source of copies.filter((s) => s !== '.')) expect(fs.existsSync(path.join(REPO, source))).toBe(true);
    for (const used of ['/opt/handlefs/bin/handlefs.js', '/opt/handlefs/deploy/mount-helper/mount.handlefs']) {
      expect(dockerfile).toContain(used);
      expect(fs.existsSync(path.join(REPO, used.replace('/opt/handlefs/', '')))).toBe(true);
    }
  });
});
