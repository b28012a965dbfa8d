/**
 * Threat: an open proxy. A connection from an address that is no running devbox, without
 * valid credentials, must be denied (unknown_client) on every door of this module.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, curl, headerOf, metric, rawExchange, startProxyEnv, statusOf } from '../support/proxy.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

describe('unknown clients', () => {
  it('HTTP from 127.0.0.9 → 403 unknown_client, counted', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'http', decision: 'deny', reason: 'unknown_client' });
    const r = await curl(['--interface', '127.0.0.9', '-x', env.proxyUrl, `http://allowed.test:${env.http.port}/`]);
    expect(r.status).toBe(403);
    expect(headerOf(r.headers, 'X-Egress-Denied-Reason')).toBe('unknown_client');
    expect(JSON.parse(r.body.toString())).toMatchObject({ reason: 'unknown_client', policy: null });
    expect(await metric(env, 'egress_decisions_total', { door: 'http', decision: 'deny', reason: 'unknown_client' })).toBe(before + 1);
  });

  it('CONNECT from 127.0.0.9 → 403 unknown_client', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'unknown_client' });
    const r = await curl(['--interface', '127.0.0.9', '-x', env.proxyUrl, '--cacert', env.certPath, `https://www.allowed.test:${env.https.port}/`]);
    expect(r.connectStatus).toBe(403);
    expect(await metric(env, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'unknown_client' })).toBe(before + 1);
  });

  it('WebSocket upgrade from 127.0.0.9 → 403', async () => {
    const p = env.http.port;
    const r = await rawExchange(env.proxyPort, `GET http://ws.test:${p}/ HTTP/1.1\r\nHost: ws.test:${p}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, { localAddress: '127.0.0.9' });
    expect(statusOf(r.received)).toBe(403);
  });

  it('the origin never saw any of it', async () => {
    expect(env.http.seen.length + env.https.seen.length).toBe(0);
  });

  it('a devbox that shut down becomes an unknown client', async () => {
    const p = await env.gw.api.policy('short-lived', { allowed_hostnames: ['allowed.test'] });
    const box = await env.gw.api.devbox(p, ['127.0.0.10'], 'short');
    const ok = await curl(['--interface', '127.0.0.10', '-x', env.proxyUrl, `http://allowed.test:${env.http.port}/`]);
    expect(ok.status).toBe(200);
    await env.gw.api.shutdown(box.id);
    const r = await curl(['--interface', '127.0.0.10', '-x', env.proxyUrl, `http://allowed.test:${env.http.port}/`]);
    expect(r.status).toBe(403);
    expect(headerOf(r.headers, 'X-Egress-Denied-Reason')).toBe('unknown_client');
  });
});
