/**
 * Threat: slowloris. A client that trickles request headers must not hold a connection
 * (and a slot) forever: after --header-timeout-ms it gets 408 and the socket is closed.
 * The same bound applies to a ClientHello trickled into a CONNECT tunnel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, connectTunnel, metric, rawExchange, startProxyEnv, statusOf } from '../support/proxy.js';
import { clientHello } from '../fixtures/clienthello.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv({ 'header-timeout-ms': '400' });
});
afterAll(async () => env?.close());

describe('slow clients', () => {
  it('headers trickled one line every 150 ms → 408 and closed after ~400 ms', async () => {
    const before = await metric(env, 'egress_protocol_errors_total', { door: 'http', kind: 'header_timeout' });
    const lines = [`GET http://allowed.test:${env.http.port}/ HTTP/1.1\r\n`, ...Array.from({ length: 30 }, (_, i) => `X-Slow-${i}: ${'a'.repeat(10)}\r\n`)];
    const r = await rawExchange(env.proxyPort, lines, { localAddress: '127.0.0.2', gapMs: 150, timeoutMs: 4000 });
    expect(r.closed).toBe(true);
    expect(statusOf(r.received)).toBe(408);
    expect(r.elapsedMs).toBeGreaterThanOrEqual(350);
    expect(r.elapsedMs).toBeLessThan(2000);
    expect(await metric(env, 'egress_protocol_errors_total', { door: 'http', kind: 'header_timeout' })).toBe(before + 1);
  });

  it('a connection that sends nothing is closed too', async () => {
    const r = await rawExchange(env.proxyPort, [], { localAddress: '127.0.0.2', timeoutMs: 4000 });
    expect(r.closed).toBe(true);
    expect(r.elapsedMs).toBeLessThan(2000);
  });

  it('a ClientHello trickled into a CONNECT tunnel is cut after the header time-out', async () => {
    const sock = await connectTunnel(env.proxyPort, `www.allowed.test:${env.https.port}`, { localAddress: '127.0.0.2' });
    const hello = clientHello({ sni: 'www.allowed.test' });
    sock.on('error', () => {});
    sock.write(hello.subarray(0, 10));
    const t0 = Date.now();
    await new Promise((r) => sock.on('close', r));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await metric(env, 'egress_protocol_errors_total', { door: 'connect', kind: 'client_hello' })).toBeGreaterThanOrEqual(1);
  });
});
