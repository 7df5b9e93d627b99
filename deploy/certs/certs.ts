/**
 * A certificate authority for a local handlefs cluster, made with the
 * `openssl` binary (no X.509 library is a dependency): `init` makes the CA
 * (DIR/ca.key, DIR/ca.crt), `issue` a member certificate (serverAuth and
 * clientAuth, with the SANs its addresses need: members are servers to
 * clients and clients to each other) or a client certificate (clientAuth) as
 * DIR/NAME.crt and DIR/NAME.key, signed by that CA.
 *
 * Owns: the openssl invocations (argv only, never a shell), the file layout
 * and modes (keys 0600), input checks. Must never overwrite an existing CA or
 * certificate (an operator re-running init must not silently invalidate a
 * cluster), and never hold a key anywhere but DIR.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { loadTlsMaterial } from '../../proto/tls';

/** badInput: the operator's arguments or files are wrong (exit 2); otherwise openssl failed (exit 1). */
export class CertsError extends Error {
  constructor(message: string, readonly badInput = true) {
    super(message);
  }
}

const OPENSSL_TIMEOUT_MS = 30_000;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const DNS_NAME = /^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const SANS_MAX = 64;
const DAYS_MAX = 36_500;
export const CA_DAYS_DEFAULT = 3650;
export const CERT_DAYS_DEFAULT = 825;

export interface CaFiles { caCert: string; caKey: string }
export interface IssuedFiles { cert: string; key: string }

export function caFilesOf(dir: string): CaFiles {
  return { caCert: path.join(dir, 'ca.crt'), caKey: path.join(dir, 'ca.key') };
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: OPENSSL_TIMEOUT_MS });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new CertsError('the openssl binary is not on PATH (Debian: apt-get install openssl)', false);
    throw new CertsError(`openssl ${args[0]} failed: ${(e.stderr?.toString() ?? e.message).trim().split('\n').slice(0, 3).join(' / ')}`, false);
  }
}

function checkDays(days: number): number {
  if (!Number.isSafeInteger(days) || days < 1 || days > DAYS_MAX) throw new CertsError(`--days must be an integer in 1..${DAYS_MAX}, got ${days}`);
  return days;
}

function refuseExisting(...files: string[]): void {
  for (const file of files) if (fs.existsSync(file)) throw new CertsError(`${file} already exists; remove it first (nothing was changed)`);
}

/** Creates DIR (0700) and a CA in it; refuses when one is there. */
export function initCa(dir: string, days = CA_DAYS_DEFAULT): CaFiles {
  checkDays(days);
  const files = caFilesOf(dir);
  refuseExisting(files.caCert, files.caKey);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const work = fs.mkdtempSync(path.join(dir, '.init-'));
  try {
    const key = path.join(work, 'ca.key');
    const cert = path.join(work, 'ca.crt');
    openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', String(days), '-subj', `/O=handlefs/CN=handlefs CA ${crypto.randomBytes(4).toString('hex')}`,
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    fs.chmodSync(key, 0o600);
    fs.renameSync(key, files.caKey);
    fs.renameSync(cert, files.caCert);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return files;
}

export interface IssueOptions {
  name: string;
  /** IP SANs; a member certificate with neither ips nor dnsNames gets 127.0.0.1 and localhost. */
  ips?: string[];
  dnsNames?: string[];
  /** A client certificate (clientAuth only) rather than a member's (serverAuth and clientAuth). */
  client?: boolean;
  days?: number;
}

/** Issues DIR/NAME.crt and DIR/NAME.key signed by DIR's CA, and checks the result loads as TLS material. */
export function issueCert(dir: string, options: IssueOptions): IssuedFiles {
  const { name, client = false } = options;
  const days = checkDays(options.days ?? CERT_DAYS_DEFAULT);
  if (!NAME.test(name ?? '')) throw new CertsError(`--name ${JSON.stringify(name)} must be 1..64 letters, digits, '.', '_' or '-'`);
  if (name === 'ca') throw new CertsError('--name ca is the CA\'s own file name; pick another');
  const ips = options.ips ?? [];
  const dnsNames = options.dnsNames ?? [];
  for (const ip of ips) if (net.isIP(ip) === 0) throw new CertsError(`--ip ${JSON.stringify(ip)} is not an IP address`);
  for (const dns of dnsNames) if (!DNS_NAME.test(dns) || dns.length > 253) throw new CertsError(`--dns ${JSON.stringify(dns)} is not a DNS name`);
  if (ips.length + dnsNames.length > SANS_MAX) throw new CertsError(`at most ${SANS_MAX} --ip and --dns names, got ${ips.length + dnsNames.length}`);
  const ca = caFilesOf(dir);
  for (const file of [ca.caCert, ca.caKey]) if (!fs.existsSync(file)) throw new CertsError(`${file} does not exist: run \`handlefs certs init --dir ${dir}\` first`);
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  refuseExisting(files.cert, files.key);
  const sans = client && ips.length === 0 && dnsNames.length === 0 ? [] : [
    ...(ips.length + dnsNames.length === 0 ? ['IP:127.0.0.1', 'DNS:localhost'] : []), ...ips.map((ip) => `IP:${ip}`), ...dnsNames.map((dns) => `DNS:${dns}`),
  ];
  const work = fs.mkdtempSync(path.join(dir, `.issue-${name}-`));
  try {
    const key = path.join(work, 'key.pem');
    const csr = path.join(work, 'req.csr');
    const cert = path.join(work, 'cert.pem');
    const extensions = path.join(work, 'ext.cnf');
    fs.writeFileSync(extensions, [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth,clientAuth'}`,
      ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
      '',
    ].join('\n'));
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/O=handlefs/CN=${name}`]);
    openssl([
      'x509', '-req', '-in', csr, '-CA', ca.caCert, '-CAkey', ca.caKey, '-set_serial', `0x${crypto.randomBytes(16).toString('hex')}`,
      '-days', String(days), '-extfile', extensions, '-out', cert,
    ]);
    loadTlsMaterial({ caFile: ca.caCert, certFile: cert, keyFile: key });
    fs.chmodSync(key, 0o600);
    fs.renameSync(key, files.key);
    fs.renameSync(cert, files.cert);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return files;
}
