import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SocksClient } from 'socks';
import { type SocksEnv, curl, denyMetric, httpGet, metric, socksConnect, startSocksEnv } from '../support/socks.js';
import { waitFor } from '../support/wait.js';

let env: SocksEnv;
let origin: number;
let creds: { id: string; username: string; password: string };

beforeAll(async () => {
  env = await startSocksEnv();
  origin = env.origin.port;
  const api = env.gw.api;
  const allowed = await api.policy('socks-allowed', { allowed_hostnames: ['allowed.test', '*.allowed.test'] });
  creds = await api.devbox(allowed, ['127.0.0.2'], 'dbx-allowed');
});
afterAll(() => env?.close());

describe('SOCKS5 CONNECT, known source address (no-auth)', () => {
  it('relays an HTTP exchange to an allowed name, body intact', async () => {
    const sock = await socksConnect(env.socksPort, { host: 'allowed.test', port: origin }, { localAddress: '127.0.0.2' });
    const res = await httpGet(sock, `allowed.test:${origin}`, '/echo?x=1');
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body.toString());
    expect(body).toMatchObject({ method: 'GET', url: '/echo?x=1', host: `allowed.test:${origin}` });
  });

  it('relays 5 MiB byte for byte', async () => {
    const n = 5 * 1024 * 1024;
    const sock = await socksConnect(env.socksPort, { host: 'www.allowed.test', port: origin }, { localAddress: '127.0.0.2' });
    const res = await httpGet(sock, 'www.allowed.test', `/bytes/${n}`);
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(n);
    const pattern = Buffer.alloc(65536, 'abcdefghijklmnopqrstuvwxyz0123456789');
    expect(res.body.subarray(0, 65536).equals(pattern)).toBe(true);
  });

  it('denies a name outside the policy with reply 0x02 and counts it', async () => {
    const before = await metric(env.gw, 'egress_decisions_total', denyMetric('not_allowlisted'));
    await expect(socksConnect(env.socksPort, { host: 'other.test', port: origin }, { localAddress: '127.0.0.2' })).rejects.toThrow(/NotAllowed|ruleset/i);
    expect(await metric(env.gw, 'egress_decisions_total', denyMetric('not_allowlisted'))).toBe(before + 1);
  });

  it('answers 0x05 when the allowed destination refuses the connection', async () => {
    // a port nothing listens on: bind and close one to find it
    const net = await import('node:net');
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const dead = (srv.address() as import('node:net').AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    await expect(socksConnect(env.socksPort, { host: 'allowed.test', port: dead }, { localAddress: '127.0.0.2' })).rejects.toThrow(/ConnectionRefused/);
    expect(await metric(env.gw, 'egress_upstream_connect_errors_total', { door: 'socks5', code: 'ECONNREFUSED' })).toBeGreaterThanOrEqual(1);
  });

  it('answers 0x04 when an allowed name does not resolve', async () => {
    const api = env.gw.api;
    const p = await api.policy('socks-nx', { allowed_hostnames: ['nx.allowed-nx.test'] });
    await api.devbox(p, ['127.0.0.5'], 'dbx-nx');
    await expect(socksConnect(env.socksPort, { host: 'nx.allowed-nx.test', port: origin }, { localAddress: '127.0.0.5' })).rejects.toThrow(/HostUnreachable/);
  });

  it('counts bytes both ways and the active-connection gauge returns to 0', async () => {
    const outBefore = await metric(env.gw, 'egress_bytes_total', { door: 'socks5', direction: 'out' });
    const inBefore = await metric(env.gw, 'egress_bytes_total', { door: 'socks5', direction: 'in' });
    const sock = await socksConnect(env.socksPort, { host: 'allowed.test', port: origin }, { localAddress: '127.0.0.2' });
    const res = await httpGet(sock, 'allowed.test', '/bytes/10000');
    expect(res.body.length).toBe(10000);
    await waitFor(async () => (await metric(env.gw, 'egress_active_connections', { door: 'socks5' })) === 0, 5000, 'the tunnel closed');
    expect(await metric(env.gw, 'egress_bytes_total', { door: 'socks5', direction: 'in' })).toBeGreaterThan(inBefore + 10000);
    expect(await metric(env.gw, 'egress_bytes_total', { door: 'socks5', direction: 'out' })).toBeGreaterThan(outBefore);
    expect(await metric(env.gw, 'egress_active_connections', { door: 'socks5' })).toBe(0);
  });
});

describe('curl through the SOCKS5 door', () => {
  it('--socks5-hostname: the gateway resolves and relays', async () => {
    const r = await curl(['--interface', '127.0.0.2', '--socks5-hostname', `127.0.0.1:${env.socksPort}`, `http://allowed.test:${origin}/hello`]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ url: '/hello', host: `allowed.test:${origin}` });
  });

  it('ALL_PROXY=socks5h:// with credentials in the URL', async () => {
    const r = await curl(['--proxy', `socks5h://${creds.username}:${encodeURIComponent(creds.password)}@127.0.0.1:${env.socksPort}`, `http://allowed.test:${origin}/cred`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ url: '/cred' });
  });

  it('--socks5-hostname to a denied name fails with curl error 97 (proxy handshake)', async () => {
    const r = await curl(['--interface', '127.0.0.2', '--socks5-hostname', `127.0.0.1:${env.socksPort}`, `http://denied.test:${origin}/`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/SOCKS|proxy/i);
  });
});

describe('identity by source address, pipelining, policy changes', () => {
  it('two devboxes on 127.0.0.2 and 127.0.0.3 get their own policies (curl --interface)', async () => {
    const api = env.gw.api;
    const other = await api.policy('socks-other-only', { allowed_hostnames: ['other.test'] });
    await api.devbox(other, ['127.0.0.3'], 'dbx-other');
    const run = (iface: string, host: string) => curl(['--interface', iface, '--socks5-hostname', `127.0.0.1:${env.socksPort}`, `http://${host}:${origin}/${iface}`]);
    expect((await run('127.0.0.2', 'allowed.test')).code).toBe(0);
    expect((await run('127.0.0.2', 'other.test')).code).not.toBe(0);
    expect((await run('127.0.0.3', 'other.test')).code).toBe(0);
    expect((await run('127.0.0.3', 'allowed.test')).code).not.toBe(0);
  });

  it('greeting + request + HTTP request in one packet (optimistic data) are all honoured', async () => {
    const net = await import('node:net');
    const name = Buffer.from('allowed.test');
    const req = Buffer.from(`GET /optimistic HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n`);
    const packet = Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, name.length, ...name, origin >> 8, origin & 0xff]), req]);
    const sock = net.connect({ host: '127.0.0.1', port: env.socksPort, localAddress: '127.0.0.2' });
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    sock.on('connect', () => sock.write(packet));
    await new Promise<void>((r) => sock.on('close', () => r()));
    const all = Buffer.concat(got);
    expect([...all.subarray(0, 4)]).toEqual([5, 0, 5, 0]);
    const http = all.subarray(12).toString();
    expect(http).toMatch(/^HTTP\/1\.1 200/);
    expect(http).toContain('"url":"/optimistic"');
  });

  it('a policy change that now denies the destination cuts the open tunnel', async () => {
    const api = env.gw.api;
    const p = await api.policy('socks-cut', { allowed_hostnames: ['allowed.test'] });
    await api.devbox(p, ['127.0.0.4'], 'dbx-cut');
    const sock = await socksConnect(env.socksPort, { host: 'allowed.test', port: origin }, { localAddress: '127.0.0.4' });
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.on('error', () => {});
    await api.updatePolicy(p, { allowed_hostnames: ['other.test'] });
    await closed;
    expect(await metric(env.gw, 'egress_connections_cut_total', { door: 'socks5', reason: 'not_allowlisted' })).toBeGreaterThanOrEqual(1);
  });

  it('the socks package is the client we think it is', () => {
    expect(typeof SocksClient.createConnection).toBe('function');
  });
});
