import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TlsConfigError, loadTlsMaterial } from '../../proto/tls';
import { CertsError, initCa, issueCert } from './certs';
import { TestPki, makeTestPki } from './testing';

const CLI = path.join(__dirname, '..', '..', 'dist', 'bin', 'cli.js');

let pki: TestPki;
let scratch: string;
beforeAll(() => {
  pki = makeTestPki(['m1'], ['alice']);
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'handlefs-certs-'));
});
afterAll(() => {
  pki.destroy();
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('handlefs certs: a CA and its certificates for a local cluster', () => {
  it('makes a CA whose member certificate names 127.0.0.1 and serves both ends of TLS, with private keys readable by the owner only', () => {
    const material = loadTlsMaterial(pki.files('cluster', 'm1'));
    expect(material.commonName).toBe('m1');
    const cert = new crypto.X509Certificate(material.cert!);
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.ca).toBe(false);
    expect(fs.statSync(path.join(pki.clusterDir, 'm1.key')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(pki.clusterDir, 'ca.key')).mode & 0o777).toBe(0o600);
  });

  it('makes a client certificate for client authentication only', () => {
    const cert = new crypto.X509Certificate(fs.readFileSync(pki.files('cluster', 'alice').certFile!));
    expect(cert.subject).toContain('CN=alice');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
  });

  it('refuses to overwrite a CA or a certificate, and changes nothing', () => {
    const before = fs.readFileSync(pki.ca);
    expect(() => initCa(pki.clusterDir)).toThrow(/ca\.crt already exists/);
    expect(() => issueCert(pki.clusterDir, { name: 'm1' })).toThrow(/m1\.crt already exists/);
    expect(fs.readFileSync(pki.ca).equals(before)).toBe(true);
  });

  it('refuses bad names, addresses and a folder without a CA, naming the problem', () => {
    expect(() => issueCert(pki.clusterDir, { name: '../evil' })).toThrow(CertsError);
    expect(() => issueCert(pki.clusterDir, { name: 'm9', ips: ['300.1.1.1'] })).toThrow(/--ip "300.1.1.1" is not an IP address/);
    expect(() => issueCert(pki.clusterDir, { name: 'm9', dnsNames: ['bad name'] })).toThrow(/--dns "bad name" is not a DNS name/);
    expect(() => issueCert(path.join(scratch, 'nothing'), { name: 'm9' })).toThrow(/ca\.crt does not exist: run `handlefs certs init/);
    expect(fs.existsSync(path.join(pki.clusterDir, 'm9.crt'))).toBe(false);
  });

  it('runs from the command line with exit codes 0 (done) and 2 (bad input)', () => {
    const dir = path.join(scratch, 'cli');
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'certs', ...args], { encoding: 'utf8', timeout: 20_000 });
    expect(run('init', '--dir', dir).status).toBe(0);
    const issued = run('issue', '--dir', dir, '--name', 'm2', '--ip', '127.0.0.1,127.77.0.12', '--dns', 'm2.local');
    expect(issued.status).toBe(0);
    expect(issued.stdout).toContain(`--tls-cert ${path.join(dir, 'm2.crt')}`);
    expect(new crypto.X509Certificate(fs.readFileSync(path.join(dir, 'm2.crt'))).subjectAltName).toBe('IP Address:127.0.0.1, IP Address:127.77.0.12, DNS:m2.local');
    const again = run('init', '--dir', dir);
    expect(again.status).toBe(2);
    expect(again.stderr).toContain('already exists');
    expect(run('issue', '--dir', dir).stderr).toContain('--name is required');
    expect(run('frobnicate').status).toBe(2);
  });
});

describe('loading TLS files (proto/tls.ts): every problem names the file', () => {
  const good = () => pki.files('cluster', 'm1');

  it('names a missing file', () => {
    expect(() => loadTlsMaterial({ ...good(), certFile: path.join(scratch, 'missing.crt') })).toThrow(new TlsConfigError(`cannot read the certificate ${path.join(scratch, 'missing.crt')}: ENOENT`));
    expect(() => loadTlsMaterial({ ...good(), caFile: path.join(scratch, 'missing-ca.crt') })).toThrow(/cannot read the CA certificate .*missing-ca\.crt: ENOENT/);
  });

  it('names a key that does not match its certificate', () => {
    const files = { ...good(), keyFile: pki.files('cluster', 'alice').keyFile };
    expect(() => loadTlsMaterial(files)).toThrow(`the private key ${files.keyFile} does not match the certificate ${files.certFile}`);
  });

  it('names a certificate another CA signed, and a CA file that is not a CA', () => {
    const files = { ...good(), caFile: pki.foreignCa };
    expect(() => loadTlsMaterial(files)).toThrow(`the certificate ${files.certFile} is not signed by the CA ${pki.foreignCa}`);
    expect(() => loadTlsMaterial({ ...good(), caFile: good().certFile! })).toThrow(/is not a CA/);
  });

  it('names a file that is not PEM, and an expired certificate', () => {
    const junk = path.join(scratch, 'junk.pem');
    fs.writeFileSync(junk, 'not a certificate\n');
    expect(() => loadTlsMaterial({ ...good(), certFile: junk })).toThrow(`the certificate ${junk} is not a PEM X.509 certificate`);
    expect(() => loadTlsMaterial({ ...good(), keyFile: junk })).toThrow(`the private key ${junk} is not a PEM private key`);
    expect(() => loadTlsMaterial(good(), new Date(Date.now() + 900 * 24 * 3600 * 1000))).toThrow(/m1\.crt expired on/);
  });

  it('wants a certificate and its key together', () => {
    expect(() => loadTlsMaterial({ caFile: pki.ca, certFile: good().certFile })).toThrow(/needs its private key/);
    expect(loadTlsMaterial({ caFile: pki.ca }).cert).toBeUndefined();
  });
});
