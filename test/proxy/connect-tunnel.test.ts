/**
 * Threat: CONNECT opens a tunnel the policy does not allow, to an address other than the
 * one checked, or loses/corrupts bytes. Allowed tunnels must carry HTTPS end to end
 * (curl -x https://…), denied ones get a 403 naming the reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { type ProxyEnv, connectTunnel, curl, headerOf, metric, originPattern, rawExchange, startProxyEnv, statusOf, until } from '../support/proxy.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

describe('CONNECT tunnels', () => {
  it('carries HTTPS through curl -x, 5 MB body intact', async () => {
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '--cacert', env.certPath, `https://www.allowed.test:${env.https.port}/bytes/5000000`]);
    expect(r.exit).toBe(0);
    expect(r.connectStatus).toBe(200);
    expect(r.status).toBe(200);
    expect(r.body.equals(originPattern(5_000_000))).toBe(true);
  });

  it('denies a CONNECT to a host outside the policy with 403 and X-Egress-Denied-Reason', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'not_allowlisted' });
    const r = await rawExchange(env.proxyPort, `CONNECT denied.test:${env.https.port} HTTP/1.1\r\nHost: denied.test:${env.https.port}\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(403);
    expect(headerOf(r.received, 'X-Egress-Denied-Reason')).toBe('not_allowlisted');
    const body = JSON.parse(r.received.toString().split('\r\n\r\n')[1]!);
    expect(body).toMatchObject({ host: 'denied.test', policy: env.a.policy, reason: 'not_allowlisted' });
    expect(r.closed).toBe(true);
    expect(await metric(env, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'not_allowlisted' })).toBe(before + 1);
  });

  it('curl sees the denial as the CONNECT response', async () => {
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '--cacert', env.certPath, `https://denied.test:${env.https.port}/`]);
    expect(r.connectStatus).toBe(403);
    expect(r.exit).not.toBe(0);
  });

  it('relays non-TLS protocols unchanged (first bytes are not a ClientHello)', async () => {
    const sock = await connectTunnel(env.proxyPort, `allowed.test:${env.http.port}`, { localAddress: '127.0.0.2' });
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    sock.write('GET /bytes/70000 HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
    await new Promise((r) => sock.on('close', r));
    const all = Buffer.concat(got);
    const sep = all.indexOf('\r\n\r\n');
    expect(statusOf(all)).toBe(200);
    expect(all.subarray(sep + 4).equals(originPattern(70000))).toBe(true);
  });

  it('server-speaks-first protocols work (the gateway does not wait for client bytes)', async () => {
    const banner = net.createServer((s) => s.end('220 hello from the server\r\n'));
    await new Promise<void>((r) => banner.listen(0, '127.0.0.1', r));
    const port = (banner.address() as net.AddressInfo).port;
    const sock = await connectTunnel(env.proxyPort, `allowed.test:${port}`, { localAddress: '127.0.0.2' });
    const text = await new Promise<string>((resolve) => {
      let t = '';
      sock.on('data', (d) => (t += d));
      sock.on('close', () => resolve(t));
    });
    expect(text).toBe('220 hello from the server\r\n');
    banner.close();
  });

  it('502 when the destination refuses, 400 for a malformed target', async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const before = await metric(env, 'egress_upstream_connect_errors_total', { door: 'connect', code: 'ECONNREFUSED' });
    const r = await rawExchange(env.proxyPort, `CONNECT allowed.test:${port} HTTP/1.1\r\nHost: allowed.test:${port}\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(502);
    expect(await metric(env, 'egress_upstream_connect_errors_total', { door: 'connect', code: 'ECONNREFUSED' })).toBe(before + 1);
    for (const target of ['allowed.test', 'allowed.test:0', 'allowed.test:99999', ':443', 'a b:443', 'x@allowed.test:443']) {
      const bad = await rawExchange(env.proxyPort, `CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, { localAddress: '127.0.0.2' });
      expect(statusOf(bad.received), target).toBe(400);
    }
  });

  it('the destination is resolved by the gateway: a name the test DNS does not know is 502, never a host lookup', async () => {
    const r = await rawExchange(env.proxyPort, `CONNECT nowhere.allowed.test:443 HTTP/1.1\r\nHost: nowhere.allowed.test:443\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(502);
    expect(env.dns.countFor('nowhere.allowed.test')).toBeGreaterThan(0);
  });

  it('counts tunnel bytes and the active-connections gauge returns to zero', async () => {
    const before = await metric(env, 'egress_bytes_total', { door: 'connect', direction: 'in' });
    await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '--cacert', env.certPath, `https://www.allowed.test:${env.https.port}/bytes/200000`]);
    // Counted when the tunnel ends, which may be a moment after curl has its body.
    expect(await until(async () => (await metric(env, 'egress_bytes_total', { door: 'connect', direction: 'in' })) > before + 200_000)).toBe(true);
    expect(await until(async () => (await metric(env, 'egress_active_connections', { door: 'connect' })) === 0)).toBe(true);
  });
});

describe('per-devbox connection limit', () => {
  it('the devbox at --max-connections-per-devbox gets 503 for the next tunnel and request; others are unaffected', async () => {
    const e = await startProxyEnv({ 'max-connections-per-devbox': '2' });
    const echo = net.createServer((s) => s.on('error', () => {}).pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const port = (echo.address() as net.AddressInfo).port;
    try {
      const t1 = await connectTunnel(e.proxyPort, `allowed.test:${port}`, { localAddress: '127.0.0.2' });
      const t2 = await connectTunnel(e.proxyPort, `allowed.test:${port}`, { localAddress: '127.0.0.2' });
      await expect(connectTunnel(e.proxyPort, `allowed.test:${port}`, { localAddress: '127.0.0.2' })).rejects.toThrow(/503/);
      const r = await curl(['--interface', '127.0.0.2', '-x', e.proxyUrl, `http://allowed.test:${e.http.port}/`]);
      expect(r.status).toBe(503);
      const other = await connectTunnel(e.proxyPort, `other.test:${port}`, { localAddress: '127.0.0.3' });
      other.destroy();
      t1.destroy();
      expect(await until(async () => (await curl(['--interface', '127.0.0.2', '-x', e.proxyUrl, `http://allowed.test:${e.http.port}/`])).status === 200)).toBe(true);
      t2.destroy();
    } finally {
      echo.close();
      await e.close();
    }
  });
});
