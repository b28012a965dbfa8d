/**
 * Threat: the plain-HTTP door forwards what it should not (a second host on a keep-alive
 * connection riding on the first one's decision, proxy credentials or hop-by-hop headers
 * leaking upstream) or corrupts what it forwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ProxyEnv, curl, metric, originPattern, rawExchange, startProxyEnv, statusOf } from '../support/proxy.js';
import { tempDir } from '../support/temp.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

describe('HTTP proxy: absolute-form forwarding', () => {
  it('forwards an allowed GET with curl -x, body intact (2 MB)', async () => {
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, `http://allowed.test:${env.http.port}/bytes/2000000`]);
    expect(r.status).toBe(200);
    expect(r.body.equals(originPattern(2_000_000))).toBe(true);
  });

  it('forwards a POST body intact and keeps the client Host header', async () => {
    const body = randomBytes(300_000).toString('base64');
    const file = join(tempDir('body'), 'body');
    writeFileSync(file, body);
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '--data-binary', `@${file}`, '-H', 'content-type: text/plain', `http://www.allowed.test:${env.http.port}/echo?x=1`]);
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body.toString());
    expect(echo.body).toBe(body);
    expect(echo.url).toBe('/echo?x=1');
    expect(echo.host).toBe(`www.allowed.test:${env.http.port}`);
  });

  it('decides every request of a keep-alive connection on its own host', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'http', decision: 'deny', reason: 'not_allowlisted' });
    const p = env.http.port;
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '-w', '\n%{num_connects}\n', `http://allowed.test:${p}/one`, `http://other.test:${p}/two`, `http://www.allowed.test:${p}/three`]);
    const text = r.body.toString();
    const statuses = [...r.headers.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200, 403, 200]);
    expect(text).toContain('"/one"');
    expect(text).toContain('"/three"');
    expect(text).not.toContain('"/two"');
    // one TCP connection to the proxy carried all three
    expect(text.match(/^(\d+)$/gm)?.map(Number)).toEqual([1, 0, 0]);
    expect(env.http.seen.some((s) => s.url === '/two')).toBe(false);
    expect(await metric(env, 'egress_decisions_total', { door: 'http', decision: 'deny', reason: 'not_allowlisted' })).toBe(before + 1);
  });

  it('a keep-alive agent through the proxy: 50 requests alternating hosts on one socket', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<net.Socket>();
    const results: number[] = [];
    for (let i = 0; i < 50; i++) {
      const host = i % 2 === 0 ? 'allowed.test' : 'denied.test';
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: env.proxyPort, path: `http://${host}:${env.http.port}/k${i}`, headers: { host: `${host}:${env.http.port}` }, agent, localAddress: '127.0.0.2' }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('socket', (s) => sockets.add(s));
        req.on('error', reject);
        req.end();
      });
      results.push(status);
    }
    agent.destroy();
    expect(results.filter((s) => s === 200)).toHaveLength(25);
    expect(results.filter((s) => s === 403)).toHaveLength(25);
    expect(sockets.size).toBe(1);
  });

  it('strips hop-by-hop headers, the ones Connection names, and never passes Proxy-Authorization upstream', async () => {
    const r = await curl([
      '--interface',
      '127.0.0.2',
      '-x',
      env.proxyUrl,
      '-H',
      'Connection: keep-alive, X-Secret-Hop',
      '-H',
      'X-Secret-Hop: 1',
      '-H',
      'Keep-Alive: timeout=5',
      '-H',
      'TE: trailers',
      '-H',
      'Proxy-Connection: keep-alive',
      '-H',
      'X-End-To-End: kept',
      '-H',
      'Upgrade: h2c',
      '--proxy-user',
      `${env.a.username}:${env.a.password}`,
      `http://allowed.test:${env.http.port}/hop`,
    ]);
    expect(r.status).toBe(200);
    const h = JSON.parse(r.body.toString()).headers as Record<string, string>;
    expect(h['x-end-to-end']).toBe('kept');
    for (const k of ['x-secret-hop', 'keep-alive', 'te', 'proxy-connection', 'proxy-authorization', 'upgrade']) expect(h[k], k).toBeUndefined();
  });

  it('refuses non-proxy requests and other schemes with 400', async () => {
    const r1 = await rawExchange(env.proxyPort, 'GET /local HTTP/1.1\r\nHost: allowed.test\r\n\r\n', { localAddress: '127.0.0.2' });
    expect(statusOf(r1.received)).toBe(400);
    const r2 = await rawExchange(env.proxyPort, 'GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n', { localAddress: '127.0.0.2' });
    expect(statusOf(r2.received)).toBe(400);
    const r3 = await rawExchange(env.proxyPort, 'GET http://user:pw@allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n', { localAddress: '127.0.0.2' });
    expect(statusOf(r3.received)).toBe(400);
  });

  it('answers 502 when the allowed destination refuses the connection, and counts it', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const before = await metric(env, 'egress_upstream_connect_errors_total', { door: 'http' });
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, `http://allowed.test:${port}/`]);
    expect(r.status).toBe(502);
    expect(await metric(env, 'egress_upstream_connect_errors_total', { door: 'http' })).toBe(before + 1);
  });

  it('counts bytes relayed', async () => {
    const before = await metric(env, 'egress_bytes_total', { door: 'http', direction: 'in' });
    await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, `http://allowed.test:${env.http.port}/bytes/100000`]);
    expect(await metric(env, 'egress_bytes_total', { door: 'http', direction: 'in' })).toBeGreaterThanOrEqual(before + 100_000);
  });
});
