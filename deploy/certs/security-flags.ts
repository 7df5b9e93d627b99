/**
 * The operator commands' TLS and token flags (`--tls-ca F [--tls-cert F
 * --tls-key F] --token-file F`), turned into channel credentials through
 * proto/tls.ts, so `handlefs status|member|leader|snapshot|fsck|gc` all take
 * the same flags. Owns the flag names and their pairing rules; must never
 * build credentials itself.
 */
import { ClientSecurity, TlsConfigError, clientSecurityFromFiles, readTokenFile } from '../../proto/tls';

export const SECURITY_FLAGS: readonly string[] = ['--tls-ca', '--tls-cert', '--tls-key', '--token-file'];
export const SECURITY_USAGE = '--tls-ca F [--tls-cert F --tls-key F] and --token-file F for a secured cluster';

/**
 * Credentials from the flag values given (plaintext when none); a bad file
 * or pairing throws `makeUsageError(message)` naming the file.
 */
export function securityFromFlags(values: ReadonlyMap<string, string>, makeUsageError: (message: string) => Error): ClientSecurity {
  const caFile = values.get('--tls-ca');
  const tokenFile = values.get('--token-file');
  try {
    if (caFile === undefined && (values.has('--tls-cert') || values.has('--tls-key'))) throw new TlsConfigError('--tls-cert and --tls-key need --tls-ca (the cluster CA)');
    const tls = caFile === undefined ? undefined : { caFile, certFile: values.get('--tls-cert'), keyFile: values.get('--tls-key') };
    return clientSecurityFromFiles(tls, tokenFile === undefined ? undefined : readTokenFile(tokenFile));
  } catch (error) {
    if (error instanceof TlsConfigError) throw makeUsageError(error.message);
    throw error;
  }
}
