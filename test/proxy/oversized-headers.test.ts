/**
 * Threat: memory exhaustion with huge request heads. Above --max-header-bytes the proxy
 * answers 431 and closes, without forwarding anything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, metric, rawExchange, startProxyEnv, statusOf } from '../support/proxy.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv({ 'max-header-bytes': '4096' });
});
afterAll(async () => env?.close());

describe('oversized headers', () => {
  it('a 10 KB header → 431, counted, origin untouched', async () => {
    const before = await metric(env, 'egress_protocol_errors_total', { door: 'http', kind: 'header_overflow' });
    const r = await rawExchange(env.proxyPort, `GET http://allowed.test:${env.http.port}/ HTTP/1.1\r\nHost: allowed.test:${env.http.port}\r\nX-Big: ${'x'.repeat(10_000)}\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(431);
    expect(r.closed).toBe(true);
    expect(env.http.seen.length).toBe(0);
    expect(await metric(env, 'egress_protocol_errors_total', { door: 'http', kind: 'header_overflow' })).toBe(before + 1);
  });

  it('many small headers adding up over the limit → 431; CONNECT too', async () => {
    const many = Array.from({ length: 400 }, (_, i) => `X-Header-${i}: value\r\n`).join('');
    const r = await rawExchange(env.proxyPort, `GET http://allowed.test:${env.http.port}/ HTTP/1.1\r\nHost: allowed.test\r\n${many}\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(431);
    const c = await rawExchange(env.proxyPort, `CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test\r\n${many}\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(c.received)).toBe(431);
  });

  it('a head just under the limit is forwarded', async () => {
    const r = await rawExchange(env.proxyPort, `GET http://allowed.test:${env.http.port}/ok HTTP/1.1\r\nHost: allowed.test:${env.http.port}\r\nX-Fits: ${'y'.repeat(3000)}\r\nConnection: close\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(200);
  });
});
