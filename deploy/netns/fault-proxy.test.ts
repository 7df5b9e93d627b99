/**
 * The fault-injecting proxy (fault-proxy.ts): first over plain TCP to an echo
 * server in this process (bytes, delay, bandwidth, backpressure, stall, cut),
 * then with the SDK to a real 3-member cluster (dist/; run `npx tsc -p .`
 * first): added latency shows in the p50, a stall delays a call that then
 * completes, a cut makes the client fail over to another member.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { MetaClient, ROOT_HANDLE } from '../../client/sdk';
import { MetaTestCluster } from '../../metaserver/server/testing';
import { FaultProxy, FaultProxyOptions, applyProxyCommand } from './fault-proxy';

async function listen(onConnection: (socket: net.Socket) => void): Promise<{ server: net.Server; address: string }> {
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, address: `127.0.0.1:${(server.address() as net.AddressInfo).port}` };
}

function connect(address: string): Promise<net.Socket> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port: Number(port) }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Writes `data` and resolves once `expected` bytes came back (with how long it took). */
function roundTrip(socket: net.Socket, data: Buffer, expected = data.length): Promise<{ bytes: Buffer; ms: number }> {
  const startedAt = Date.now();
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (chunk: Buffer): void => {
      parts.push(chunk);
      got += chunk.length;
      if (got >= expected) {
        socket.off('data', onData);
        socket.off('error', reject);
        resolve({ bytes: Buffer.concat(parts), ms: Date.now() - startedAt });
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(data);
  });
}

function closed(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let code = 'closed';
    socket.once('error', (error: NodeJS.ErrnoException) => { code = error.code ?? 'error'; });
    socket.once('close', () => resolve(code));
  });
}

describe('the fault proxy over plain TCP', () => {
  const servers: net.Server[] = [];
  const proxies: FaultProxy[] = [];
  const sockets: net.Socket[] = [];
  let echo: string;

  beforeAll(async () => {
    const started = await listen((socket) => { socket.on('error', () => undefined); socket.pipe(socket); });
    servers.push(started.server);
    echo = started.address;
  });

  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  afterAll(async () => {
    for (const proxy of proxies) await proxy.close();
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
  });

  async function proxyTo(target: string, options: Partial<FaultProxyOptions> = {}): Promise<FaultProxy> {
    const proxy = await FaultProxy.start({ listen: '127.0.0.1:0', target, ...options });
    proxies.push(proxy);
    return proxy;
  }

  async function client(proxy: FaultProxy): Promise<net.Socket> {
    const socket = await connect(proxy.address);
    sockets.push(socket);
    return socket;
  }

  it('forwards 4 MiB both ways unchanged', async () => {
    const proxy = await proxyTo(echo);
    const data = crypto.randomBytes(4 * 1024 * 1024);
    const { bytes } = await roundTrip(await client(proxy), data);
    expect(bytes.equals(data)).toBe(true);
    expect(proxy.stats()).toMatchObject({ accepted: 1, bytesToTarget: data.length, bytesToClient: data.length });
  });

  it('adds the delay of each direction to a round trip, and can change it while connected', async () => {
    const proxy = await proxyTo(echo);
    const socket = await client(proxy);
    const base = (await roundTrip(socket, Buffer.from('ping'))).ms;
    proxy.setDelay(40, 0, 'toTarget');
    proxy.setDelay(60, 10, 'toClient');
    const delayed = (await roundTrip(socket, Buffer.from('ping'))).ms;
    expect(delayed).toBeGreaterThanOrEqual(100);
    expect(delayed).toBeLessThan(base + 400);
    proxy.setDelay(0, 0);
    expect((await roundTrip(socket, Buffer.from('ping'))).ms).toBeLessThan(60);
  });

  it('caps the bandwidth of one direction', async () => {
    const proxy = await proxyTo(echo);
    proxy.setBandwidth(512 * 1024, 'toClient');
    const { bytes, ms } = await roundTrip(await client(proxy), crypto.randomBytes(256 * 1024));
    expect(bytes.length).toBe(256 * 1024);
    // 256 KiB at 512 KiB/s: about 500 ms (the first slice leaves at once).
    expect(ms).toBeGreaterThanOrEqual(440);
    expect(ms).toBeLessThan(3_000);
  });

  it('holds at most its buffer limit per direction when the target does not read (backpressure to the sender)', async () => {
    const parked: net.Socket[] = [];
    const sink = await listen((socket) => { socket.on('error', () => undefined); socket.pause(); parked.push(socket); });
    servers.push(sink.server);
    const limit = 256 * 1024;
    const proxy = await proxyTo(sink.address, { bufferLimitBytes: limit });
    const socket = await client(proxy);
    const total = 32 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 1);
    for (let sent = 0; sent < total; sent += chunk.length) socket.write(chunk);
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The proxy stopped reading: the rest waits in the kernel's socket buffers and the sender's own queue.
    expect(proxy.stats().maxQueuedBytes).toBeLessThanOrEqual(limit + 128 * 1024);
    expect(socket.writableLength).toBeGreaterThan(total / 2);
    for (const p of parked) p.destroy();
  });

  it('stalls: nothing is forwarded for the stall, then everything arrives intact', async () => {
    const proxy = await proxyTo(echo);
    const socket = await client(proxy);
    proxy.stall(500);
    const data = crypto.randomBytes(100_000);
    const { bytes, ms } = await roundTrip(socket, data);
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(bytes.equals(data)).toBe(true);
    expect((await roundTrip(socket, Buffer.from('after'))).ms).toBeLessThan(100);
  });

  it('cut resets every connection and refuses new ones until healed', async () => {
    const proxy = await proxyTo(echo);
    const socket = await client(proxy);
    const ended = closed(socket);
    proxy.cut();
    expect(await ended).toBe('ECONNRESET');
    // A new connection is accepted and reset at once: the connect itself or the first read fails.
    const refused = await connect(proxy.address).then((fresh) => { sockets.push(fresh); return closed(fresh); }, (error: NodeJS.ErrnoException) => error.code);
    expect(refused).toBe('ECONNRESET');
    expect(proxy.stats().refused).toBe(1);
    proxy.heal();
    expect((await roundTrip(await client(proxy), Buffer.from('back'))).bytes.toString()).toBe('back');
  });

  it('takes console lines (handlefs hosts proxy reads them from stdin) that change the faults, refusing bad ones', async () => {
    const proxy = await proxyTo(echo);
    applyProxyCommand(proxy, 'delay 30 5 to-client');
    applyProxyCommand(proxy, 'bandwidth 1000 to-target');
    expect(proxy.faultsOf('toClient')).toEqual({ delayMs: 30, jitterMs: 5, bandwidthBytesPerS: 0 });
    expect(proxy.faultsOf('toTarget')).toEqual({ delayMs: 0, jitterMs: 0, bandwidthBytesPerS: 1000 });
    applyProxyCommand(proxy, 'cut');
    expect(JSON.parse(applyProxyCommand(proxy, 'stats'))).toMatchObject({ cut: true });
    applyProxyCommand(proxy, 'heal');
    expect(() => applyProxyCommand(proxy, 'delay soon')).toThrow('delay needs milliseconds, got "soon"');
    expect(() => applyProxyCommand(proxy, 'delay 5 to-nowhere')).toThrow('direction must be to-target or to-client');
    expect(() => applyProxyCommand(proxy, 'explode')).toThrow('unknown command "explode"');
    expect(proxy.isCut).toBe(false);
  });

  it('refuses bad addresses and faults with a message naming them', async () => {
    await expect(FaultProxy.start({ listen: 'nowhere', target: echo })).rejects.toThrow('listen must be HOST:PORT, got "nowhere"');
    const proxy = await proxyTo(echo);
    expect(() => proxy.setDelay(-1)).toThrow('fault delayMs must be a number');
    expect(() => proxy.stall(Number.NaN)).toThrow('stall must be');
  });
});

describe('the fault proxy between the SDK and a real cluster', () => {
  let cluster: MetaTestCluster;
  const proxies: FaultProxy[] = [];
  const clients: MetaClient[] = [];

  beforeAll(async () => {
    cluster = await MetaTestCluster.start();
  }, 40_000);

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    for (const proxy of proxies) await proxy.close();
    await cluster?.destroy();
  }, 30_000);

  async function throughProxyToLeader(): Promise<{ proxy: FaultProxy; others: string[] }> {
    const leader = await cluster.leader();
    const proxy = await FaultProxy.start({ listen: '127.0.0.1:0', target: leader.clientAddress });
    proxies.push(proxy);
    return { proxy, others: cluster.members.filter((m) => m.id !== leader.id).map((m) => m.clientAddress) };
  }

  async function p50Ms(client: MetaClient, calls: number): Promise<number> {
    const times: number[] = [];
    for (let i = 0; i < calls; i++) {
      const startedAt = process.hrtime.bigint();
      await client.getattr(ROOT_HANDLE);
      times.push(Number(process.hrtime.bigint() - startedAt) / 1e6);
    }
    times.sort((x, y) => x - y);
    return times[Math.floor(times.length / 2)];
  }

  it('shows the added latency in the p50 of getattr, and a stall makes a call wait and then complete', async () => {
    const { proxy } = await throughProxyToLeader();
    const client = await MetaClient.connect({ servers: [proxy.address], deadlineMs: 10_000 });
    clients.push(client);
    const base = await p50Ms(client, 30);
    proxy.setDelay(25, 0);
    const delayed = await p50Ms(client, 30);
    process.stdout.write(`getattr p50 through the proxy: ${base.toFixed(1)} ms without delay, ${delayed.toFixed(1)} ms with 25 ms each way\n`);
    expect(delayed).toBeGreaterThanOrEqual(base + 45);
    expect(delayed).toBeLessThan(base + 250);
    proxy.setDelay(0, 0);

    proxy.stall(1_000);
    const startedAt = Date.now();
    const made = await client.mkdir(ROOT_HANDLE, 'after-stall', 0o755);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(900);
    expect((await client.lookup(ROOT_HANDLE, 'after-stall')).handle).toBe(made.handle);
  }, 30_000);

  it('makes the SDK fail over to another member when the proxy in front of its member is cut', async () => {
    const { proxy, others } = await throughProxyToLeader();
    const client = await MetaClient.connect({ servers: [proxy.address, ...others], deadlineMs: 10_000 });
    clients.push(client);
    await client.mkdir(ROOT_HANDLE, 'before-cut', 0o755);
    expect(client.leaderAddress).toBe(proxy.address);
    proxy.cut();
    const startedAt = Date.now();
    await client.mkdir(ROOT_HANDLE, 'after-cut', 0o755);
    expect(Date.now() - startedAt).toBeLessThan(8_000);
    expect(client.leaderAddress).not.toBe(proxy.address);
    expect(proxy.stats().connections).toBe(0);
    expect((await client.lookup(ROOT_HANDLE, 'after-cut')).type).toBe('dir');
  }, 30_000);
});
