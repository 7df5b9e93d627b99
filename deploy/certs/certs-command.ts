/**
 * `handlefs certs init|issue`: the command-line face of certs.ts. Owns
 * argument parsing, messages and exit codes (0 done, 2 bad usage, 1 failed);
 * must never touch files itself.
 */
import { CA_DAYS_DEFAULT, CERT_DAYS_DEFAULT, CertsError, initCa, issueCert } from './certs';

export const CERTS_USAGE = `  certs init --dir DIR [--days ${CA_DAYS_DEFAULT}]
        make a certificate authority for a local cluster: DIR/ca.crt and DIR/ca.key (refuses to overwrite)
  certs issue --dir DIR --name NAME [--ip 127.0.0.1,...] [--dns host,...] [--client] [--days ${CERT_DAYS_DEFAULT}]
        a member certificate (server and client use; SANs default to 127.0.0.1 and localhost) or with --client a
        client certificate (mounts, operator commands), as DIR/NAME.crt and DIR/NAME.key, signed by DIR's CA
`;

const VALUE_FLAGS = new Set(['--dir', '--name', '--ip', '--dns', '--days']);

function usage(problem: string): number {
  process.stderr.write(`handlefs certs: ${problem}\nusage:\n${CERTS_USAGE}`);
  return 2;
}

function list(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((item) => item.trim()).filter((item) => item !== '');
}

export async function runCertsCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'init' && sub !== 'issue') return usage(sub === undefined ? 'init or issue?' : `unknown subcommand ${JSON.stringify(sub)}`);
  const values = new Map<string, string>();
  let client = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '--client' && sub === 'issue') { client = true; continue; }
    if (!VALUE_FLAGS.has(arg)) return usage(`unknown argument ${JSON.stringify(arg)}`);
    const value = rest[++i];
    if (value === undefined || value.startsWith('--')) return usage(`${arg} needs a value`);
    if (values.has(arg)) return usage(`${arg} given twice`);
    values.set(arg, value);
  }
  const dir = values.get('--dir');
  if (dir === undefined) return usage('--dir is required');
  const days = values.has('--days') ? Number(values.get('--days')) : undefined;
  try {
    if (sub === 'init') {
      for (const flag of ['--name', '--ip', '--dns']) if (values.has(flag)) return usage(`${flag} belongs to certs issue`);
      const files = initCa(dir, days);
      process.stdout.write(`CA created: ${files.caCert} (give it to every member and client as --tls-ca); key ${files.caKey} (keep it private)\n`);
    } else {
      const name = values.get('--name');
      if (name === undefined) return usage('--name is required');
      const files = issueCert(dir, { name, ips: list(values.get('--ip')), dnsNames: list(values.get('--dns')), client, days });
      process.stdout.write(`${client ? 'client' : 'member'} certificate for ${name}: --tls-cert ${files.cert} --tls-key ${files.key}\n`);
    }
    return 0;
  } catch (error) {
    if (error instanceof CertsError) {
      process.stderr.write(`handlefs certs ${sub}: ${error.message}\n`);
      return error.badInput ? 2 : 1;
    }
    throw error;
  }
}
