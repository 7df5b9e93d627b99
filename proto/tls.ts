/**
 * The one place gRPC credentials are built, for every server and channel of
 * handlefs: the Raft transport (mutual TLS between members), the metadata
 * client port (Meta, Admin, BlockPeer), the members' BlockPeer calls to each
 * other, the SDK and the operator commands.
 *
 * Owns: reading and checking the PEM files (a CA, this side's certificate and
 * key: readable, parseable, key matching the certificate, certificate signed
 * by the CA and not expired), and turning them into grpc-js credentials; the
 * bearer token a client sends (`authorization: Bearer ...`) as a client
 * interceptor. Plaintext stays the default: no TLS material → insecure
 * credentials, exactly as before.
 * Must never decide who is allowed to do what (metaserver/server/client-auth.ts
 * does) and never read a file after start-up (certificates are loaded once;
 * a rotation is a restart).
 *
 * Why here: proto/ is the one folder raft/transport, metaserver/ and client/
 * may all import (docs/architecture.md).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';

/** A PEM file larger than this is not a certificate or a key (a chain of a few certificates is a few KiB). */
const PEM_FILE_MAX_BYTES = 1024 * 1024;
/** A bearer token larger than this is refused when read (it travels in every call's headers). */
export const TOKEN_MAX_BYTES = 4096;
export const AUTHORIZATION_METADATA = 'authorization';

export class TlsConfigError extends Error {
  readonly code = 'TLS_CONFIG';
  constructor(problem: string) {
    super(problem);
    this.name = 'TlsConfigError';
  }
}

/** Where the PEM files are; a client may leave out its own certificate and key (server-only TLS). */
export interface TlsFiles {
  caFile: string;
  certFile?: string;
  keyFile?: string;
}

/** The checked contents of TlsFiles. */
export interface TlsMaterial {
  files: TlsFiles;
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** The subject CN of this side's certificate (for logs), '' without one. */
  commonName: string;
}

function readPem(file: string, what: string): Buffer {
  if (typeof file !== 'string' || file === '') throw new TlsConfigError(`the ${what} file name is empty`);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (error) {
    throw new TlsConfigError(`cannot read the ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!stat.isFile()) throw new TlsConfigError(`the ${what} ${file} is not a regular file`);
  if (stat.size > PEM_FILE_MAX_BYTES) throw new TlsConfigError(`the ${what} ${file} is ${stat.size} bytes, over ${PEM_FILE_MAX_BYTES}: not a PEM file`);
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new TlsConfigError(`cannot read the ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function parseCertificate(pem: Buffer, file: string, what: string): crypto.X509Certificate {
  try {
    return new crypto.X509Certificate(pem);
  } catch (error) {
    throw new TlsConfigError(`the ${what} ${file} is not a PEM X.509 certificate (${(error as Error).message})`);
  }
}

function commonNameOf(certificate: crypto.X509Certificate): string {
  const match = /(?:^|\n)CN=([^\n]*)/.exec(certificate.subject);
  return match ? match[1] : '';
}

/**
 * Reads and checks the files; every problem is a TlsConfigError naming the
 * file. `now` is for tests of expiry.
 */
export function loadTlsMaterial(files: TlsFiles, now: Date = new Date()): TlsMaterial {
  if (typeof files !== 'object' || files === null) throw new TlsConfigError('TLS files must be {caFile, certFile?, keyFile?}');
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new TlsConfigError(`a TLS certificate needs its private key and a key its certificate (got ${files.certFile === undefined ? 'a key' : 'a certificate'} only)`);
  }
  const ca = readPem(files.caFile, 'CA certificate');
  const caCertificate = parseCertificate(ca, files.caFile, 'CA certificate');
  if (!caCertificate.ca) throw new TlsConfigError(`the CA certificate ${files.caFile} is not a CA (basicConstraints CA:FALSE)`);
  if (files.certFile === undefined || files.keyFile === undefined) return { files, ca, commonName: '' };
  const cert = readPem(files.certFile, 'certificate');
  const key = readPem(files.keyFile, 'private key');
  const certificate = parseCertificate(cert, files.certFile, 'certificate');
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(key);
  } catch (error) {
    throw new TlsConfigError(`the private key ${files.keyFile} is not a PEM private key (${(error as Error).message})`);
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new TlsConfigError(`the private key ${files.keyFile} does not match the certificate ${files.certFile}`);
  if (!certificate.checkIssued(caCertificate) || !certificate.verify(caCertificate.publicKey)) {
    throw new TlsConfigError(`the certificate ${files.certFile} is not signed by the CA ${files.caFile}`);
  }
  if (new Date(certificate.validTo).getTime() < now.getTime()) throw new TlsConfigError(`the certificate ${files.certFile} expired on ${certificate.validTo}`);
  if (new Date(certificate.validFrom).getTime() > now.getTime()) throw new TlsConfigError(`the certificate ${files.certFile} is not valid before ${certificate.validFrom}`);
  return { files, ca, cert, key, commonName: commonNameOf(certificate) };
}

/**
 * A server's credentials: plaintext without material; TLS with it, and with
 * `requireClientCertificate` only clients presenting a certificate signed by
 * the CA complete the handshake.
 */
export function serverCredentials(tls: TlsMaterial | undefined, requireClientCertificate: boolean): grpc.ServerCredentials {
  if (tls === undefined) {
    if (requireClientCertificate) throw new TlsConfigError('client certificates can only be required with TLS (a CA, a certificate and a key)');
    return grpc.ServerCredentials.createInsecure();
  }
  if (tls.cert === undefined || tls.key === undefined) throw new TlsConfigError('a TLS server needs its certificate and private key');
  return grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], requireClientCertificate);
}

/** What a channel needs: its credentials and the client options that carry the token. */
export interface ClientSecurity {
  credentials: grpc.ChannelCredentials;
  /** Spread into the client's options (it holds the token interceptor, if any). */
  clientOptions: Partial<grpc.ClientOptions>;
}

function bearerInterceptor(token: string): grpc.Interceptor {
  const value = `Bearer ${token}`;
  return (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set(AUTHORIZATION_METADATA, value);
      next(metadata, listener);
    },
  });
}

/** Checks a token's shape (it goes into an HTTP/2 header: printable ASCII, no spaces). */
export function checkToken(token: string, where: string): string {
  if (token.length === 0) throw new TlsConfigError(`${where}: the token is empty`);
  if (token.length > TOKEN_MAX_BYTES) throw new TlsConfigError(`${where}: the token is longer than ${TOKEN_MAX_BYTES} characters`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new TlsConfigError(`${where}: the token must be printable ASCII without spaces`);
  return token;
}

/** A client's token file holds one token (surrounding whitespace ignored). */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new TlsConfigError(`the token file ${file} is not a regular file`);
    if (stat.size > TOKEN_MAX_BYTES + 2) throw new TlsConfigError(`the token file ${file} is ${stat.size} bytes, over ${TOKEN_MAX_BYTES}`);
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof TlsConfigError) throw error;
    throw new TlsConfigError(`cannot read the token file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return checkToken(text.trim(), `the token file ${file}`);
}

/**
 * A channel's security: plaintext without material, TLS (with this side's
 * certificate when it has one: mutual TLS) with it; a token is sent with
 * every call as `authorization: Bearer TOKEN`.
 */
export function clientSecurity(tls?: TlsMaterial, token?: string): ClientSecurity {
  const credentials = tls === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null);
  const clientOptions: Partial<grpc.ClientOptions> = token === undefined ? {} : { interceptors: [bearerInterceptor(checkToken(token, 'the client token'))] };
  return { credentials, clientOptions };
}

/** The default of every channel: plaintext, no token. */
export const PLAINTEXT: ClientSecurity = Object.freeze({ credentials: grpc.credentials.createInsecure(), clientOptions: {} });

/** Client-side options as callers receive them (files, read at start). */
export interface ClientTlsOptions {
  caFile: string;
  certFile?: string;
  keyFile?: string;
}

/** Builds a ClientSecurity from file names (SDK, mount, operator commands); throws TlsConfigError naming the file. */
export function clientSecurityFromFiles(tls?: ClientTlsOptions, token?: string): ClientSecurity {
  return clientSecurity(tls === undefined ? undefined : loadTlsMaterial(tls), token);
}
