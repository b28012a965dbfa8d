/**
 * Threat: redirected plain HTTP reaching a host the policy denies. The Host header decides
 * (every request of a keep-alive connection on its own), the request goes to port 80 of
 * the checked address (the test origin's port here); a denial is the same 403.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, curl, headerOf, metric, rawExchange, startProxyEnv, statusOf } from '../support/proxy.js';

let env: ProxyEnv;
let hport: number;
beforeAll(async () => {
  env = await startProxyEnv({ 'transparent-http': '127.0.0.1:0' });
  hport = env.gw.addr('transparent-http').port;
  env.gw.gw.config.transparentHttpUpstreamPort = env.http.port;
});
afterAll(async () => env?.close());

describe('transparent HTTP (Host)', () => {
  it('curl --connect-to allowed.test:80 → forwarded, body intact', async () => {
    const r = await curl(['--interface', '127.0.0.2', '--connect-to', `allowed.test:80:127.0.0.1:${hport}`, 'http://allowed.test/bytes/500000']);
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(500000);
  });

  it('each request of a keep-alive connection is decided on its own Host', async () => {
    const r = await curl(['--interface', '127.0.0.2', '--connect-to', `::127.0.0.1:${hport}`, '-w', '\n%{num_connects}\n', 'http://allowed.test/t1', 'http://other.test/t2', 'http://www.allowed.test/t3']);
    const statuses = [...r.headers.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200, 403, 200]);
    expect(env.http.seen.some((s) => s.url === '/t2')).toBe(false);
  });

  it('a denied Host gets 403 with X-Egress-Denied-Reason, counted on door transparent-http', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'transparent-http', decision: 'deny', reason: 'not_allowlisted' });
    const r = await curl(['--interface', '127.0.0.2', '--connect-to', `denied.test:80:127.0.0.1:${hport}`, 'http://denied.test/']);
    expect(r.status).toBe(403);
    expect(headerOf(r.headers, 'X-Egress-Denied-Reason')).toBe('not_allowlisted');
    expect(await metric(env, 'egress_decisions_total', { door: 'transparent-http', decision: 'deny', reason: 'not_allowlisted' })).toBe(before + 1);
  });

  it('unknown clients are denied; credentials are not a transparent-door thing', async () => {
    const r = await curl(['--interface', '127.0.0.9', '--connect-to', `allowed.test:80:127.0.0.1:${hport}`, 'http://allowed.test/']);
    expect(r.status).toBe(403);
    expect(headerOf(r.headers, 'X-Egress-Denied-Reason')).toBe('unknown_client');
  });

  it('no Host (HTTP/1.0) → 400; CONNECT → 405; IP-literal Host → ip_literal', async () => {
    const a = await rawExchange(hport, 'GET / HTTP/1.0\r\n\r\n', { localAddress: '127.0.0.2' });
    expect(statusOf(a.received)).toBe(400);
    const b = await rawExchange(hport, 'CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test\r\n\r\n', { localAddress: '127.0.0.2' });
    expect(statusOf(b.received)).toBe(405);
    const c = await rawExchange(hport, 'GET / HTTP/1.1\r\nHost: 127.1\r\nConnection: close\r\n\r\n', { localAddress: '127.0.0.2' });
    expect(statusOf(c.received)).toBe(403);
    expect(headerOf(c.received, 'X-Egress-Denied-Reason')).toBe('ip_literal');
  });

  it('a Host header with a byte ≥ 0x80 → 400 (not a Latin-1 reading turned into punycode), counted bad_host', async () => {
    const before = await metric(env, 'egress_protocol_errors_total', { door: 'transparent-http', kind: 'bad_host' });
    const seen = env.http.seen.length;
    const raw = Buffer.concat([Buffer.from('GET /idn HTTP/1.1\r\nHost: '), Buffer.from('bücher.allowed.test', 'utf8'), Buffer.from('\r\nConnection: close\r\n\r\n')]);
    const r = await rawExchange(hport, raw, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(400);
    const latin1 = Buffer.concat([Buffer.from('GET /idn HTTP/1.1\r\nHost: '), Buffer.from([0x61, 0xe9, 0x2e, 0x61, 0x6c, 0x6c, 0x6f, 0x77, 0x65, 0x64, 0x2e, 0x74, 0x65, 0x73, 0x74]), Buffer.from('\r\nConnection: close\r\n\r\n')]);
    const l = await rawExchange(hport, latin1, { localAddress: '127.0.0.2' });
    expect(statusOf(l.received)).toBe(400);
    expect(await metric(env, 'egress_protocol_errors_total', { door: 'transparent-http', kind: 'bad_host' })).toBe(before + 2);
    expect(env.http.seen.length).toBe(seen);
  });
});
