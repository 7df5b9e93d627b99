/**
 * The member's HTTP port: /healthz, /readyz and /status answer from the
 * node's status as an operator and `handlefs cluster` read them.
 */
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { listenMetrics } from './member-process';
import { RaftNodeStatus } from './raft-node';

function statusOf(fields: Partial<RaftNodeStatus>): RaftNodeStatus {
  return {
    id: 'm1', role: 'follower', term: 3, vote: '', leaderId: '', commit: 10, applied: 10, firstIndex: 1, lastIndex: 10, snapshotIndex: 0,
    membership: { members: [{ id: 'm1', address: '127.0.0.1:1', role: 'voter' }, { id: 'm2', address: '127.0.0.1:2', role: 'voter' }] },
    progress: [], transferee: '', appliedIndex: 10, leaderAddress: '', electionTimeoutMs: 500, pendingProposals: 0, pendingReads: 0,
    ...fields,
  };
}

function get(port: number, route: string, method = 'GET'): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path: route, method, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => { body += chunk; });
      response.on('end', () => resolve({ code: response.statusCode ?? 0, body }));
    });
    request.on('error', reject).end();
  });
}

describe("a member's HTTP port", () => {
  let server: http.Server;
  let port: number;
  let current: () => RaftNodeStatus;

  beforeAll(async () => {
    server = await listenMetrics('127.0.0.1:0', new Registry(), () => current());
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('is healthy while the process runs, whatever Raft says', async () => {
    current = () => statusOf({});
    expect((await get(port, '/healthz')).code).toBe(200);
  });

  it('is not ready while no leader is known', async () => {
    current = () => statusOf({ leaderId: '' });
    expect((await get(port, '/readyz')).code).toBe(503);
  });

  it('is not ready while it has not applied everything it knows committed', async () => {
    current = () => statusOf({ leaderId: 'm2', commit: 12, appliedIndex: 11 });
    expect((await get(port, '/readyz')).code).toBe(503);
  });

  it('is ready once it knows a leader and has applied up to its commit index', async () => {
    current = () => statusOf({ leaderId: 'm2', commit: 12, appliedIndex: 12 });
    expect((await get(port, '/readyz')).code).toBe(200);
  });

  it('is not ready when the node cannot report (stopping)', async () => {
    current = () => { throw new Error('stopped'); };
    expect((await get(port, '/readyz')).code).toBe(503);
  });

  it('reports id, role, term, leader, members with addresses and both indexes on /status', async () => {
    current = () => statusOf({ role: 'leader', leaderId: 'm1', leaderAddress: '127.0.0.1:1', commit: 7, appliedIndex: 6 });
    const answer = await get(port, '/status');
    expect(answer.code).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({
      id: 'm1', role: 'leader', term: 3, leaderId: 'm1', leaderAddress: '127.0.0.1:1',
      members: [{ id: 'm1', address: '127.0.0.1:1', role: 'voter' }, { id: 'm2', address: '127.0.0.1:2', role: 'voter' }],
      commitIndex: 7, appliedIndex: 6, pid: process.pid,
    });
  });

  it('answers 404 for an unknown path and 405 for anything but GET', async () => {
    expect((await get(port, '/nope')).code).toBe(404);
    expect((await get(port, '/status', 'POST')).code).toBe(405);
  });

  it('serves only /metrics and /healthz when given no status', async () => {
    const bare = await listenMetrics('127.0.0.1:0', new Registry());
    try {
      const barePort = (bare.address() as AddressInfo).port;
      expect((await get(barePort, '/metrics')).code).toBe(200);
      expect((await get(barePort, '/healthz')).code).toBe(200);
      expect((await get(barePort, '/readyz')).code).toBe(404);
    } finally {
      await new Promise<void>((resolve) => bare.close(() => resolve()));
    }
  });
});
