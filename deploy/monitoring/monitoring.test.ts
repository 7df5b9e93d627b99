/**
 * The alert rules and the Grafana dashboard against a live cluster: starts a
 * real three-member cluster (`handlefs cluster up`), sends it a few calls,
 * scrapes each member's /metrics, and checks that every metric name the rules
 * and the dashboard use is exported with the type the expression assumes
 * (rate/increase on counters, histogram_quantile on histograms) and that the
 * labels they group by exist. Mount metrics (the mount process's own
 * /metrics) are checked against the names the mount exports, listed below;
 * proposed metrics (not exported yet) must be marked PROPOSED where used.
 * promtool is not installed here, so PromQL syntax itself is not checked.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { clusterUpOnFreePorts } from '../cluster-testing';

// js-yaml 3 comes with jest (no dependency of its own is added); it has no types here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const yaml = require('js-yaml') as { safeLoad(text: string): unknown };

const CLI = path.resolve(__dirname, '..', '..', 'bin', 'handlefs.js');
const RULES_FILE = path.join(__dirname, 'handlefs-alerts.yml');
const SCRAPE_FILE = path.join(__dirname, 'prometheus.yml');
const DASHBOARD_FILE = path.join(__dirname, 'grafana-dashboard.json');

type MetricType = 'counter' | 'gauge' | 'histogram';
interface Exported { type: MetricType; labels: Set<string> }

/** The mount process's metrics (served on --metrics-address); not on the members. */
const MOUNT_METRICS = new Map<string, Exported>([
  ['handlefs_mount_requests_total', { type: 'counter', labels: new Set(['op', 'result']) }],
  ['handlefs_mount_request_duration_seconds', { type: 'histogram', labels: new Set(['op']) }],
  ['handlefs_mount_commit_failures_total', { type: 'counter', labels: new Set(['errno']) }],
  ['handlefs_mount_dirty_bytes', { type: 'gauge', labels: new Set() }],
  ['handlefs_mount_block_cache_bytes', { type: 'gauge', labels: new Set() }],
]);
/** Not exported yet (deploy/monitoring/README.md would propose them); every use must say PROPOSED. None today. */
const PROPOSED_METRICS = new Map<string, Exported>([]);
/** Made by Prometheus itself (up) or by node_exporter, not by handlefs. */
const FOREIGN_METRICS = new Set(['up']);
/** Labels Prometheus adds to every series (target labels) or that histograms carry. */
const TARGET_LABELS = new Set(['job', 'instance', 'cluster', 'le']);

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-monitoring-'));
const dataDir = path.join(base, 'data');
const exported = new Map<string, Exported>();
let servers = '';
let basePort = 0;

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000, cwd: base }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

/** Metric families and the label names seen on their samples, from Prometheus text format. */
function parseExposition(text: string, into: Map<string, Exported>): void {
  for (const line of text.split('\n')) {
    const typed = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (typed) {
      if (!into.has(typed[1])) into.set(typed[1], { type: typed[2] as MetricType, labels: new Set() });
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/.exec(line);
    if (!sample) continue;
    const family = into.get(sample[1]) ?? into.get(sample[1].replace(/_(bucket|sum|count)$/, ''));
    for (const pair of sample[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) family?.labels.add(pair[1]);
  }
}

interface Use { where: string; expr: string; proposedMarked: boolean }

function ruleUses(): Use[] {
  const text = fs.readFileSync(RULES_FILE, 'utf8');
  const doc = yaml.safeLoad(text) as { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; labels: { severity: string }; annotations: { summary: string } }> }> };
  const uses: Use[] = [];
  for (const group of doc.groups) {
    for (const rule of group.rules) {
      // The comment block right above a rule's expr says whether it uses a proposed metric.
      const at = text.indexOf(`alert: ${rule.alert}\n`);
      const block = text.slice(at, text.indexOf('expr:', at));
      uses.push({ where: `rule ${rule.alert}`, expr: rule.expr, proposedMarked: /PROPOSED/.test(block) });
    }
  }
  return uses;
}

function dashboardUses(): Use[] {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: Array<{ title: string; description?: string; targets?: Array<{ expr: string }> }>; templating: { list: Array<{ name: string; definition?: string }> } };
  const uses: Use[] = [];
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) uses.push({ where: `panel "${panel.title}"`, expr: target.expr, proposedMarked: /PROPOSED/.test(`${panel.title} ${panel.description ?? ''}`) });
  }
  for (const variable of dashboard.templating.list) if (variable.definition) uses.push({ where: `variable $${variable.name}`, expr: variable.definition, proposedMarked: false });
  return uses;
}

/** Every metric named in an expression, with how it is used. */
function metricsIn(expr: string): Array<{ family: string; suffix: string; inRate: boolean }> {
  const found: Array<{ family: string; suffix: string; inRate: boolean }> = [];
  for (const match of expr.matchAll(/\b(handlefs_[a-z0-9_]+|up)\b/g)) {
    const name = match[1];
    const suffix = /_(bucket|sum|count)$/.exec(name)?.[1] ?? '';
    const before = expr.slice(0, match.index).replace(/\s+$/, '');
    found.push({ family: suffix && !exported.has(name) ? name.slice(0, -suffix.length - 1) : name, suffix, inRate: /\b(rate|increase|irate)\($/.test(before) });
  }
  return found;
}

/** Label names an expression groups or filters by. */
function labelsIn(expr: string): Set<string> {
  const labels = new Set<string>();
  for (const by of expr.matchAll(/\bby \(([^)]*)\)/g)) for (const l of by[1].split(',')) labels.add(l.trim());
  for (const selector of expr.matchAll(/\{([^}]*)\}/g)) for (const pair of selector[1].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)/g)) labels.add(pair[1]);
  return labels;
}

beforeAll(async () => {
  ({ servers, basePort } = await clusterUpOnFreePorts(cli, dataDir));
  // A few calls so the labelled request series (method, code, errno) have samples.
  await cli('cat', '/no-such-file', '--servers', servers);
  await cli('versions', '/', '--servers', servers, '--json');
  for (let i = 1; i <= 3; i++) {
    const response = await fetch(`http://127.0.0.1:${basePort + 200 + i}/metrics`, { signal: AbortSignal.timeout(5_000) });
    expect(response.status).toBe(200);
    parseExposition(await response.text(), exported);
  }
}, 60_000);

afterAll(async () => {
  await cli('cluster', 'down', '--data', dataDir);
  fs.rmSync(base, { recursive: true, force: true });
}, 60_000);

describe('the monitoring files against a live cluster', () => {
  it('scraped the Raft, transport and metadata metrics from the members', () => {
    for (const name of ['handlefs_raft_is_leader', 'handlefs_raft_persist_latency_seconds', 'handlefs_raft_transport_messages_sent_total', 'handlefs_meta_requests_total']) expect(exported.has(name)).toBe(true);
    expect(exported.get('handlefs_meta_requests_total')!.labels).toEqual(new Set(['member_id', 'method', 'code']));
  });

  it.each([['the alert rules', ruleUses], ['the dashboard', dashboardUses]])('%s use only metrics that exist, with their real types and labels', (_what, uses) => {
    const problems: string[] = [];
    let checked = 0;
    for (const use of uses()) {
      const families = metricsIn(use.expr);
      const known: Exported[] = [];
      for (const { family, suffix, inRate } of families) {
        if (FOREIGN_METRICS.has(family)) continue;
        const proposed = PROPOSED_METRICS.get(family);
        if (proposed && !use.proposedMarked) problems.push(`${use.where}: ${family} is only proposed, but the use is not marked PROPOSED`);
        const metric = exported.get(family) ?? MOUNT_METRICS.get(family) ?? proposed;
        if (!metric) {
          problems.push(`${use.where}: ${family}${suffix ? `_${suffix}` : ''} is not exported by the members, nor a mount or proposed metric`);
          continue;
        }
        checked++;
        known.push(metric);
        if (suffix && metric.type !== 'histogram') problems.push(`${use.where}: ${family}_${suffix} but ${family} is a ${metric.type}`);
        if (!suffix && metric.type === 'histogram') problems.push(`${use.where}: histogram ${family} used without _bucket/_sum/_count`);
        if (inRate && !suffix && metric.type !== 'counter') problems.push(`${use.where}: rate/increase of ${family}, a ${metric.type}`);
      }
      // A label the expression needs must be on one of its metrics (those whose labels were seen).
      const seen = new Set(known.flatMap((m) => [...m.labels]));
      if (seen.size > 0) {
        for (const label of labelsIn(use.expr)) {
          if (!TARGET_LABELS.has(label) && !seen.has(label)) problems.push(`${use.where}: label ${label} is on none of ${families.map((f) => f.family).join(', ')}`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(15);
  });

  it('reports each member\'s data disk and its last contact with a leader, with sane values', async () => {
    const values = new Map<string, number>();
    for (let i = 1; i <= 3; i++) {
      const response = await fetch(`http://127.0.0.1:${basePort + 200 + i}/metrics`, { signal: AbortSignal.timeout(5_000) });
      for (const line of (await response.text()).split('\n')) {
        const sample = /^(handlefs_data_disk_(?:free|size)_bytes|handlefs_raft_last_contact_seconds)\{member_id="([^"]+)"\} (\S+)$/.exec(line);
        if (sample) values.set(`${sample[1]} ${sample[2]}`, Number(sample[3]));
      }
    }
    for (const id of ['m1', 'm2', 'm3']) {
      const size = values.get(`handlefs_data_disk_size_bytes ${id}`)!;
      const free = values.get(`handlefs_data_disk_free_bytes ${id}`)!;
      expect(size).toBeGreaterThan(0);
      expect(free).toBeGreaterThan(0);
      expect(free).toBeLessThanOrEqual(size);
      // Heartbeats arrive every tick: far below an election timeout (0 on the leader).
      expect(values.get(`handlefs_raft_last_contact_seconds ${id}`)).toBeLessThan(2);
    }
    expect([1, 2, 3].filter((i) => values.get(`handlefs_raft_last_contact_seconds m${i}`) === 0).length).toBeGreaterThanOrEqual(1);
  });

  it('would catch a misspelt metric name (the check above can fail)', () => {
    const [found] = metricsIn('sum(rate(handlefs_raft_leader_change_total[5m]))');
    expect(exported.has(found.family) || MOUNT_METRICS.has(found.family) || PROPOSED_METRICS.has(found.family)).toBe(false);
  });

  it('names the proposed metrics nowhere the members already export them', () => {
    for (const name of PROPOSED_METRICS.keys()) expect(exported.has(name)).toBe(false);
  });
});

describe('the monitoring files as files', () => {
  it('give every alert a severity and a summary, and the scrape config names the rule file and both jobs', () => {
    const rules = yaml.safeLoad(fs.readFileSync(RULES_FILE, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string; labels?: { severity?: string }; annotations?: { summary?: string } }> }> };
    const alerts = rules.groups.flatMap((g) => g.rules);
    for (const rule of alerts) {
      expect([rule.alert, rule.labels?.severity]).toEqual([rule.alert, expect.stringMatching(/^(critical|warning|info)$/)]);
      expect(rule.annotations?.summary).toBeTruthy();
    }
    const names = alerts.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const required of ['HandlefsNoLeader', 'HandlefsLeaderFlapping', 'HandlefsFollowerLagging', 'HandlefsFsyncLatencyHigh', 'HandlefsQuorumLost', 'HandlefsDiskNearlyFull', 'HandlefsMountCommitFailures']) {
      expect(names).toContain(required);
    }
    const scrape = yaml.safeLoad(fs.readFileSync(SCRAPE_FILE, 'utf8')) as { rule_files: string[]; scrape_configs: Array<{ job_name: string }> };
    expect(scrape.rule_files).toEqual([path.basename(RULES_FILE)]);
    expect(scrape.scrape_configs.map((c) => c.job_name)).toEqual(expect.arrayContaining(['handlefs-meta', 'handlefs-mount']));
  });

  it('lay the dashboard panels out without overlaps, with unique ids', () => {
    const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: Array<{ id: number; gridPos: { x: number; y: number; w: number; h: number } }> };
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const { gridPos: g, id } of dashboard.panels) {
      expect(g.x + g.w).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
        const cell = `${x},${y}`;
        if (cells.has(cell)) throw new Error(`panel ${id} overlaps another at ${cell}`);
        cells.add(cell);
      }
    }
  });
});
