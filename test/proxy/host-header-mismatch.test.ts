/**
 * Threat: "GET http://allowed.test/ Host: evil.test": the decision is made on the URL while
 * a virtual-hosting origin (or a CDN) routes on the Host header. Disagreement is denied.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, curl, headerOf, metric, rawExchange, startProxyEnv, statusOf } from '../support/proxy.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

describe('Host header must agree with the URL', () => {
  it('denies a different Host with 403 host_mismatch naming the policy, origin never sees it', async () => {
    const p = env.http.port;
    const seen = env.http.seen.length;
    const before = await metric(env, 'egress_decisions_total', { door: 'http', decision: 'deny', reason: 'host_mismatch' });
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '-H', `Host: denied.test:${p}`, `http://allowed.test:${p}/x`]);
    expect(r.status).toBe(403);
    expect(headerOf(r.headers, 'X-Egress-Denied-Reason')).toBe('host_mismatch');
    expect(JSON.parse(r.body.toString())).toMatchObject({ host: 'allowed.test', policy: env.a.policy, reason: 'host_mismatch' });
    expect(env.http.seen.length).toBe(seen);
    expect(await metric(env, 'egress_decisions_total', { door: 'http', decision: 'deny', reason: 'host_mismatch' })).toBe(before + 1);
  });

  it('a different port in Host is a mismatch too', async () => {
    const p = env.http.port;
    const r = await rawExchange(env.proxyPort, `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:1\r\n\r\n`, { localAddress: '127.0.0.2', timeoutMs: 500 });
    expect(statusOf(r.received)).toBe(403);
  });

  it('case, a trailing dot and an explicit default port are the same host', async () => {
    const p = env.http.port;
    const r = await rawExchange(env.proxyPort, `GET http://allowed.test:${p}/same HTTP/1.1\r\nHost: ALLOWED.test.:${p}\r\nConnection: close\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(200);
  });

  it('on WebSocket upgrades as well', async () => {
    const p = env.http.port;
    const r = await rawExchange(env.proxyPort, `GET http://ws.test:${p}/ HTTP/1.1\r\nHost: denied.test:${p}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(403);
    expect(headerOf(r.received, 'X-Egress-Denied-Reason')).toBe('host_mismatch');
  });

  it('two Host headers are refused as malformed', async () => {
    const p = env.http.port;
    const r = await rawExchange(env.proxyPort, `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nHost: denied.test\r\n\r\n`, { localAddress: '127.0.0.2', timeoutMs: 500 });
    expect([400, 403]).toContain(statusOf(r.received));
  });
});
