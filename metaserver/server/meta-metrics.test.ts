import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { isMalformedRequest } from '../../proto/grpc-method';
import { Errno } from '../rules/errno';
import { CommitKind, MetaMetrics, StateGauges, instrumentHandlers } from './meta-metrics';
import { LEADER_ID_METADATA, MetaGrpcClient, metaService } from '../../proto/meta-proto';

/** The value of one sample in Prometheus text, or undefined when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = new Map([...(match[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => present.get(k) === v)) return Number(match[3]);
  }
  return undefined;
}

const STATE: StateGauges = {
  handles: 12, sessions: 3, openFhs: 5, versions: 40, conflictVersions: 2, conflictCopies: 1, blocksStored: 7, blockBytesStored: 7 * 4096, blocksCollected: 9,
};

function newMetrics(state: () => Promise<StateGauges> | StateGauges = () => STATE, stateTimeoutMs?: number) {
  const registry = new Registry();
  return { registry, metrics: new MetaMetrics({ registry, memberId: 'm1', state, stateTimeoutMs }) };
}

const NO_ATTR_REPLY = { errno: 0, message: '', sessionError: '', attr: null };

describe('metadata API metrics around a real gRPC server', () => {
  let server: grpc.Server;
  let client: grpc.Client;
  let registry: Registry;
  let address: string;

  /** A stand-in for MetaService.implementation(): same callback contract, canned answers. */
  const fakeImplementation: grpc.UntypedServiceImplementation = {
    GetAttr: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      if (isMalformedRequest(call.request)) return callback({ code: grpc.status.INVALID_ARGUMENT, details: call.request.malformed });
      callback(null, { ...NO_ATTR_REPLY, attr: { handle: 1, generation: 1, type: 'dir', mode: 0o755, uid: 0, gid: 0, nlink: 2, sizeBytes: 0, atimeMs: 1, mtimeMs: 2, ctimeMs: 3, rdev: 0 } });
    },
    Lookup: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { ...NO_ATTR_REPLY, errno: Errno.ENOENT, message: 'no entry "x"' }),
    Open: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { ...NO_ATTR_REPLY, errno: 4242, message: 'a number no table knows', fh: 0, version: 0, sizeBytes: 0 }),
    Mkdir: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      const metadata = new grpc.Metadata();
      metadata.set(LEADER_ID_METADATA, 'm2');
      callback({ code: grpc.status.FAILED_PRECONDITION, details: 'not the leader; the leader is m2', metadata });
    },
    Unlink: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(new Error('a handler bug without a code')),
    StatFs: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      setTimeout(() => callback(null, { errno: 0, message: '', inodesInUse: 3, nextHandle: 4, sessionsOpen: 1 }), 30);
    },
  };

  beforeAll(async () => {
    ({ registry } = (() => {
      const made = newMetrics();
      server = new grpc.Server();
      server.addService(metaService, instrumentHandlers(fakeImplementation, made.metrics));
      return made;
    })());
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
    });
    address = `127.0.0.1:${port}`;
    client = new MetaGrpcClient(address, grpc.credentials.createInsecure());
  });

  afterAll(() => {
    client.close();
    server.forceShutdown();
  });

  function call(method: string, request: object): Promise<{ error: grpc.ServiceError | null; reply: Record<string, unknown> | undefined }> {
    return new Promise((resolve) => {
      (client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, v?: Record<string, unknown>) => void) => void>)[method](
        request, (error, reply) => resolve({ error, reply }));
    });
  }

  it('passes replies, POSIX errors, gRPC errors and their metadata through unchanged', async () => {
    const ok = await call('GetAttr', { handle: 1, generation: 0 });
    expect(ok.error).toBeNull();
    expect(ok.reply).toMatchObject({ errno: 0, attr: { handle: 1, type: 'dir', mode: 0o755, nlink: 2 } });

    const enoent = await call('Lookup', { caller: { uid: 0, gid: 0, groups: [] }, parent: 1, name: 'x' });
    expect(enoent.error).toBeNull();
    expect(enoent.reply).toMatchObject({ errno: Errno.ENOENT, message: 'no entry "x"' });

    const notLeader = await call('Mkdir', { header: null, parent: 1, name: 'd', mode: 0o755 });
    expect(notLeader.error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(notLeader.error?.details).toBe('not the leader; the leader is m2');
    expect(notLeader.error?.metadata.get(LEADER_ID_METADATA)).toEqual(['m2']);

    const bug = await call('Unlink', { header: null, parent: 1, name: 'f' });
    expect(bug.error?.code).toBe(grpc.status.UNKNOWN);
    expect(bug.error?.details).toBe('a handler bug without a code');
  });

  it('counts each call by method and final status, errno answers by errno name, and times them', async () => {
    await call('GetAttr', { handle: 1, generation: 0 });
    await call('Lookup', { caller: null, parent: 1, name: 'x' });
    await call('Open', { header: null, handle: 1, read: true, write: false, append: false });
    await call('StatFs', {});
    const malformed = await new Promise<grpc.ServiceError | null>((resolve) => {
      const raw = new grpc.Client(address, grpc.credentials.createInsecure());
      raw.makeUnaryRequest('/handlefs.meta.Meta/GetAttr', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0xff, 0xff, 0xff]), (error) => {
        raw.close();
        resolve(error);
      });
    });
    expect(malformed?.code).toBe(grpc.status.INVALID_ARGUMENT);

    const text = await registry.metrics();
    const m1 = { member_id: 'm1' };
    // Two GetAttr OK (this test's and the first test's), one malformed.
    expect(sample(text, 'handlefs_meta_requests_total', { ...m1, method: 'GetAttr', code: 'OK' })).toBe(2);
    expect(sample(text, 'handlefs_meta_requests_total', { ...m1, method: 'GetAttr', code: 'INVALID_ARGUMENT' })).toBe(1);
    expect(sample(text, 'handlefs_meta_requests_total', { ...m1, method: 'Lookup', code: 'OK' })).toBe(2);
    expect(sample(text, 'handlefs_meta_requests_total', { ...m1, method: 'Mkdir', code: 'FAILED_PRECONDITION' })).toBe(1);
    expect(sample(text, 'handlefs_meta_requests_total', { ...m1, method: 'Unlink', code: 'UNKNOWN' })).toBe(1);
    expect(sample(text, 'handlefs_meta_request_errno_total', { ...m1, method: 'Lookup', errno: 'ENOENT' })).toBe(2);
    expect(sample(text, 'handlefs_meta_request_errno_total', { ...m1, method: 'Open', errno: 'EUNKNOWN' })).toBe(1);
    expect(sample(text, 'handlefs_meta_request_errno_total', { method: 'GetAttr' })).toBeUndefined();

    expect(sample(text, 'handlefs_meta_request_duration_seconds_count', { ...m1, method: 'GetAttr' })).toBe(3);
    expect(sample(text, 'handlefs_meta_request_duration_seconds_count', { ...m1, method: 'StatFs' })).toBe(1);
    // StatFs answered after 30 ms: above the 25 ms bucket, and well within the 2.5 s bucket even on a loaded machine.
    expect(sample(text, 'handlefs_meta_request_duration_seconds_bucket', { ...m1, method: 'StatFs', le: '0.025' })).toBe(0);
    expect(sample(text, 'handlefs_meta_request_duration_seconds_bucket', { ...m1, method: 'StatFs', le: '2.5' })).toBe(1);
    expect(sample(text, 'handlefs_meta_request_duration_seconds_sum', { ...m1, method: 'StatFs' })).toBeGreaterThanOrEqual(0.029);
    expect(sample(text, 'handlefs_meta_request_duration_seconds_bucket', { ...m1, method: 'GetAttr', le: '0.0001' })).toBeDefined();
    expect(sample(text, 'handlefs_meta_request_duration_seconds_bucket', { ...m1, method: 'GetAttr', le: '10' })).toBe(3);
  });
});

describe('instrumentHandlers on its own', () => {
  it('keeps every method, counts a callback answered twice once, and leaves callback-less (streaming) handlers alone', () => {
    const { metrics } = newMetrics();
    const seen: unknown[] = [];
    const twice = (_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      callback(null, { errno: 0 });
      callback(null, { errno: 0 });
    };
    const streaming = (call: unknown) => seen.push(call);
    const wrapped = instrumentHandlers({ Twice: twice, Streaming: streaming } as grpc.UntypedServiceImplementation, metrics);
    expect(Object.keys(wrapped).sort()).toEqual(['Streaming', 'Twice']);
    let answers = 0;
    (wrapped.Twice as grpc.handleUnaryCall<unknown, unknown>)({} as grpc.ServerUnaryCall<unknown, unknown>, () => answers++);
    expect(answers).toBe(2);
    (wrapped.Streaming as (call: unknown) => void)('the call');
    expect(seen).toEqual(['the call']);
    return metrics.registry.metrics().then((text) => {
      expect(sample(text, 'handlefs_meta_requests_total', { method: 'Twice', code: 'OK' })).toBe(1);
      expect(sample(text, 'handlefs_meta_requests_total', { method: 'Streaming' })).toBeUndefined();
    });
  });
});

describe('state gauges and counters', () => {
  it('reads the state once per scrape and exports every gauge under its name', async () => {
    let reads = 0;
    const { registry } = newMetrics(async () => {
      reads++;
      return STATE;
    });
    const text = await registry.metrics();
    expect(reads).toBe(1);
    const m1 = { member_id: 'm1' };
    expect(sample(text, 'handlefs_meta_handles', m1)).toBe(12);
    expect(sample(text, 'handlefs_meta_sessions', m1)).toBe(3);
    expect(sample(text, 'handlefs_meta_open_fhs', m1)).toBe(5);
    expect(sample(text, 'handlefs_meta_versions', m1)).toBe(40);
    expect(sample(text, 'handlefs_meta_conflict_versions', m1)).toBe(2);
    expect(sample(text, 'handlefs_meta_conflict_copies', m1)).toBe(1);
    expect(sample(text, 'handlefs_meta_blocks_stored', m1)).toBe(7);
    expect(sample(text, 'handlefs_meta_block_bytes_stored', m1)).toBe(7 * 4096);
    expect(sample(text, 'handlefs_meta_blocks_collected_total', m1)).toBe(9);
    expect(text).toContain('# TYPE handlefs_meta_blocks_collected_total counter');
    expect(text).toContain('# TYPE handlefs_meta_open_fhs gauge');
    expect(sample(text, 'handlefs_meta_state_collect_failures_total', m1)).toBe(0);
    await registry.metrics();
    expect(reads).toBe(2);
  });

  it('follows the state between scrapes, the collected-blocks total included', async () => {
    let current: StateGauges = STATE;
    const { registry } = newMetrics(() => current);
    await registry.metrics();
    current = { ...STATE, openFhs: 0, blocksCollected: 30 };
    const text = await registry.metrics();
    expect(sample(text, 'handlefs_meta_open_fhs')).toBe(0);
    expect(sample(text, 'handlefs_meta_blocks_collected_total')).toBe(30);
  });

  it('answers a scrape with the last good values when the state callback throws, hangs or answers nonsense', async () => {
    let mode: 'good' | 'throw' | 'hang' | 'negative' | 'missing' = 'good';
    const { registry } = newMetrics(() => {
      switch (mode) {
        case 'good': return STATE;
        case 'throw': throw new Error('state closed');
        case 'hang': return new Promise<StateGauges>(() => {});
        case 'negative': return { ...STATE, handles: -1 };
        case 'missing': return { ...STATE, versions: undefined } as unknown as StateGauges;
      }
    }, 50);
    await registry.metrics();
    let failures = 0;
    for (const bad of ['throw', 'hang', 'negative', 'missing'] as const) {
      mode = bad;
      const text = await registry.metrics();
      failures++;
      expect(sample(text, 'handlefs_meta_state_collect_failures_total')).toBe(failures);
      expect(sample(text, 'handlefs_meta_handles')).toBe(12);
      expect(sample(text, 'handlefs_meta_versions')).toBe(40);
    }
  });

  it('shows no state sample before the first good read', async () => {
    const { registry } = newMetrics(() => {
      throw new Error('not open yet');
    });
    const text = await registry.metrics();
    expect(sample(text, 'handlefs_meta_handles')).toBeUndefined();
    expect(sample(text, 'handlefs_meta_state_collect_failures_total')).toBe(1);
  });

  it('counts commits by kind (every kind present from the start), expired sessions and dropped versions', async () => {
    const { registry, metrics } = newMetrics();
    metrics.commit('rebase');
    metrics.commit('rebase');
    metrics.commit('conflict-lww');
    metrics.sessionsExpired();
    metrics.versionsDropped(5);
    const text = await registry.metrics();
    expect(sample(text, 'handlefs_meta_commits_total', { member_id: 'm1', kind: 'rebase' })).toBe(2);
    expect(sample(text, 'handlefs_meta_commits_total', { kind: 'conflict-lww' })).toBe(1);
    for (const kind of ['fast-forward', 'conflict-reject', 'no-change', 'truncate', 'restore']) expect(sample(text, 'handlefs_meta_commits_total', { kind })).toBe(0);
    expect(sample(text, 'handlefs_meta_sessions_expired_total', { member_id: 'm1' })).toBe(1);
    expect(sample(text, 'handlefs_meta_versions_dropped_total', { member_id: 'm1' })).toBe(5);
    expect(() => metrics.commit('merge' as CommitKind)).toThrow(/unknown commit kind "merge"/);
  });

  it('refuses a second MetaMetrics on one registry, and a missing member id', () => {
    const { registry } = newMetrics();
    expect(() => new MetaMetrics({ registry, memberId: 'm2', state: () => STATE })).toThrow(/already been registered/);
    expect(() => new MetaMetrics({ registry: new Registry(), memberId: '', state: () => STATE })).toThrow(/member id/);
  });
});
