/**
 * The Kubernetes manifests as the API server and the members would read them
 * (no Kubernetes cluster runs here, and kubectl's dry run needs one): every
 * document parses, the StatefulSet's serviceName is a headless Service
 * publishing not-ready addresses, selectors match the pod labels, every
 * member's stable DNS name is in the ConfigMap's peers, and the ConfigMap plus
 * each pod's args pass the server's own config parsers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argsFromConfigFile } from '../../metaserver/server/config-file';
import { parseMetaServerArgs } from '../../metaserver/server/meta-server-config';

// js-yaml 3 comes with jest (no dependency of its own is added); it has no types here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const yaml = require('js-yaml') as { safeLoadAll(text: string): unknown[] };

interface Doc { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec?: any; data?: Record<string, string> } // eslint-disable-line @typescript-eslint/no-explicit-any
const docs = yaml.safeLoadAll(fs.readFileSync(path.join(__dirname, 'handlefs.yaml'), 'utf8')) as Doc[];
const find = (kind: string, name: string): Doc => {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name);
  if (!doc) throw new Error(`no ${kind} ${name}`);
  return doc;
};

describe('the Kubernetes manifests', () => {
  it('are well-formed objects in one namespace', () => {
    expect(docs.map((d) => d.kind)).toEqual(['Namespace', 'ConfigMap', 'Service', 'Service', 'StatefulSet', 'PodDisruptionBudget']);
    for (const doc of docs) {
      expect(doc.apiVersion).toMatch(/^(v1|apps\/v1|policy\/v1)$/);
      expect(doc.metadata.name).toMatch(/^[a-z0-9-]+$/);
      if (doc.kind !== 'Namespace') expect(doc.metadata.namespace).toBe('handlefs');
    }
  });

  it('give each member a stable DNS name through a headless Service, and clients a Service of their own', () => {
    const sts = find('StatefulSet', 'handlefs');
    const headless = find('Service', sts.spec.serviceName);
    expect(headless.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    const podLabels = sts.spec.template.metadata.labels;
    expect(sts.spec.selector.matchLabels).toEqual(podLabels);
    for (const service of [headless, find('Service', 'handlefs-client')]) {
      expect(service.spec.selector).toEqual(podLabels);
      const containerPorts = new Set(sts.spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name));
      for (const port of service.spec.ports) expect(containerPorts.has(port.targetPort)).toBe(true);
    }
    expect(sts.spec.volumeClaimTemplates[0].metadata.name).toBe('data');
    expect(find('PodDisruptionBudget', 'handlefs').spec.maxUnavailable).toBe(1);
  });

  it('configure every pod, by its own name, through the server\'s config parsers', () => {
    const sts = find('StatefulSet', 'handlefs');
    const container = sts.spec.template.spec.containers[0];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-k8s-'));
    try {
      const mountPath = container.volumeMounts.find((m: { name: string }) => m.name === 'config').mountPath as string;
      const configFile = path.join(dir, 'cluster.json');
      fs.writeFileSync(configFile, find('ConfigMap', 'handlefs-config').data!['cluster.json']);
      for (let i = 0; i < sts.spec.replicas; i++) {
        const pod = `${sts.metadata.name}-${i}`;
        const args = (container.args as string[]).map((a) => a.replace('$(POD_NAME)', pod).replace(mountPath, dir));
        expect(args.slice(0, 1)).toEqual(['server']);
        const config = parseMetaServerArgs(argsFromConfigFile(args.slice(1)));
        expect(config.raft.id).toBe(pod);
        const dns = `${pod}.${sts.spec.serviceName}.${sts.metadata.namespace}.svc.cluster.local`;
        expect(config.raft.members.find((m) => m.id === pod)?.address).toBe(`${dns}:7001`);
        expect(config.clientAddresses.get(pod)).toBe(`${dns}:8001`);
        expect(config.raft.metricsListenAddress).toBe('0.0.0.0:9001');
        expect(config.raft.dataDir.startsWith(container.volumeMounts.find((m: { name: string }) => m.name === 'data').mountPath)).toBe(true);
      }
      expect(parseMetaServerArgs(argsFromConfigFile(['--config', configFile, '--id', 'handlefs-0'])).raft.members).toHaveLength(sts.spec.replicas);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
