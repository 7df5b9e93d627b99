/**
 * Test support for TLS: a temp folder with a cluster CA and its member and
 * client certificates, and a second, foreign CA with its own certificates
 * (what an outsider would present). Made once per test file with the real
 * openssl through certs.ts. Must never be imported by production code.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TlsFiles } from '../../proto/tls';
import { initCa, issueCert } from './certs';

export interface TestPki {
  root: string;
  /** The cluster's CA folder and the foreign one. */
  clusterDir: string;
  foreignDir: string;
  /** The cluster CA file. */
  ca: string;
  foreignCa: string;
  files(dir: 'cluster' | 'foreign', name: string): TlsFiles;
  destroy(): void;
}

/** Issues `members` (server+client use, SAN 127.0.0.1) and `clients` (client use) in both CAs. */
export function makeTestPki(members: string[], clients: string[]): TestPki {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-pki-'));
  const clusterDir = path.join(root, 'cluster');
  const foreignDir = path.join(root, 'foreign');
  for (const dir of [clusterDir, foreignDir]) {
    initCa(dir);
    for (const name of members) issueCert(dir, { name, ips: ['127.0.0.1'], dnsNames: ['localhost'] });
    for (const name of clients) issueCert(dir, { name, client: true });
  }
  return {
    root, clusterDir, foreignDir, ca: path.join(clusterDir, 'ca.crt'), foreignCa: path.join(foreignDir, 'ca.crt'),
    files: (which, name) => {
      const dir = which === 'cluster' ? clusterDir : foreignDir;
      return { caFile: path.join(dir, 'ca.crt'), certFile: path.join(dir, `${name}.crt`), keyFile: path.join(dir, `${name}.key`) };
    },
    destroy: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}
