/**
 * The token guard (client-auth.ts) on a real gRPC server in this process,
 * over plaintext (tokens without TLS), with the real Admin and Meta service
 * definitions and handlers that record every call they get.
 */
import * as grpc from '@grpc/grpc-js';
import * as a from '../../proto/admin-proto';
import * as p from '../../proto/meta-proto';
import { clientSecurity } from '../../proto/tls';
import { AuthConfigError, AuthenticatingServer, parseTokenFile } from './client-auth';

const RW = 'rw-secret-token';
const RO = 'ro-secret-token';

type Unary = (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: unknown) => void) => void;
function call(client: grpc.Client, method: string, request: unknown): Promise<{ error?: grpc.ServiceError; reply?: Record<string, unknown> }> {
  const fn = (client as unknown as Record<string, Unary>)[method];
  return new Promise((resolve) => fn.call(client, request, { deadline: Date.now() + 3_000 }, (error, reply) => resolve(error ? { error } : { reply: reply as Record<string, unknown> })));
}

describe('the token guard around every service of the client port', () => {
  let server: AuthenticatingServer;
  let address: string;
  const reached: string[] = [];
  const clients: grpc.Client[] = [];

  function handlersFor(definition: grpc.ServiceDefinition): grpc.UntypedServiceImplementation {
    return Object.fromEntries(Object.keys(definition).map((name) => [name, ((_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      reached.push(name);
      callback(null, {});
    }) as grpc.UntypedHandleCall]));
  }

  function admin(token?: string) {
    const security = clientSecurity(undefined, token);
    const client = new a.AdminGrpcClient(address, security.credentials, security.clientOptions);
    clients.push(client);
    return client;
  }
  function meta(token?: string) {
    const security = clientSecurity(undefined, token);
    const client = new p.MetaGrpcClient(address, security.credentials, security.clientOptions);
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    server = new AuthenticatingServer(parseTokenFile(`${RO} ro name=reader\n${RW}\n`, 'tokens'));
    server.addService(a.adminService, handlersFor(a.adminService));
    server.addService(p.metaService, handlersFor(p.metaService));
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, bound) => (e ? reject(e) : resolve(bound))));
    address = `127.0.0.1:${port}`;
  });
  afterAll(() => {
    for (const client of clients) client.close();
    server.forceShutdown();
  });
  beforeEach(() => {
    reached.length = 0;
  });

  it('refuses calls without a token or with a wrong one before any handler runs', async () => {
    for (const client of [admin(), admin('wrong')]) {
      expect((await call(client, 'Status', {})).error?.code).toBe(grpc.status.UNAUTHENTICATED);
      expect((await call(client, 'MemberRemove', { id: 'm1' })).error?.code).toBe(grpc.status.UNAUTHENTICATED);
    }
    expect((await call(meta('Bearer'), 'Lookup', { parent: 1, name: 'x' })).error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(reached).toEqual([]);
    expect(server.authCounters.refusedUnauthenticated).toBeGreaterThanOrEqual(5);
  });

  it('lets a read-write token through to every handler', async () => {
    expect((await call(admin(RW), 'MemberRemove', { id: 'm1' })).error).toBeUndefined();
    expect((await call(meta(RW), 'Mkdir', { parent: 1, name: 'd', mode: 0o755 })).error).toBeUndefined();
    expect(reached).toEqual(['MemberRemove', 'Mkdir']);
  });

  it('lets a read-only token read, answers EROFS to its file-system changes and PERMISSION_DENIED to admin changes, including methods it does not know as reads', async () => {
    expect((await call(admin(RO), 'Status', {})).error).toBeUndefined();
    expect((await call(admin(RO), 'FsckScan', {})).error).toBeUndefined();
    expect((await call(meta(RO), 'Lookup', { parent: 1, name: 'x' })).error).toBeUndefined();
    expect((await call(meta(RO), 'Open', { handle: 2, read: true })).error).toBeUndefined();
    expect(reached).toEqual(['Status', 'FsckScan', 'Lookup', 'Open']);
    reached.length = 0;
    for (const method of ['MemberAdd', 'MemberPromote', 'MemberRemove', 'LeaderTransfer', 'Snapshot', 'FsckRepair']) {
      expect({ method, code: (await call(admin(RO), method, {})).error?.code }).toEqual({ method, code: grpc.status.PERMISSION_DENIED });
    }
    const mkdir = await call(meta(RO), 'Mkdir', { parent: 1, name: 'd', mode: 0o755 });
    expect(mkdir.reply?.errno).toBe(30);
    expect(mkdir.reply?.message).toContain('token reader is read-only: Meta/Mkdir refused');
    expect((await call(meta(RO), 'Open', { handle: 2, read: true, write: true })).reply?.errno).toBe(30);
    expect(reached).toEqual([]);
  });
});

describe('the token file', () => {
  it('names the line of every problem', () => {
    expect(() => parseTokenFile('abc rw\nabc ro\n', '/etc/t')).toThrow('/etc/t:2: this token is already granted by line 1');
    expect(() => parseTokenFile('abc maybe\n', '/etc/t')).toThrow('/etc/t:1: unknown option "maybe"');
    expect(() => parseTokenFile('tok\u00e9n\n', '/etc/t')).toThrow('/etc/t:1: the token must be printable ASCII without spaces');
    expect(() => parseTokenFile('# nothing\n\n', '/etc/t')).toThrow('/etc/t: no token in the file');
    expect(() => parseTokenFile('abc ro\n', '/etc/t')).toThrow(/needs at least one read-write token/);
    expect(() => parseTokenFile('abc subtree=/home\n', '/etc/t')).toThrow(/needs at least one read-write token without subtree=/);
    for (const bad of ['home', '/a/../b', '/a//b', '/./a']) {
      expect(() => parseTokenFile(`w rw\nabc subtree=${bad}\n`, '/etc/t')).toThrow(AuthConfigError);
    }
  });

  it('reads subtree= as a normalized absolute path; subtree=/ is the whole tree', () => {
    const policy = parseTokenFile('w rw\ns1 rw subtree=/projects/a/ name=a\ns2 ro subtree=/\n', 't');
    expect([...policy.grants.values()]).toEqual([
      { name: 'line 1', readOnly: false },
      { name: 'a', readOnly: false, subtree: '/projects/a' },
      { name: 'line 3', readOnly: true },
    ]);
  });

  it('gives members the first read-write token for their own calls', () => {
    expect(parseTokenFile('r1 ro\nw1 # ops\nw2 rw\n', 't').memberToken).toBe('w1');
  });
});
