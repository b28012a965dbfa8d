/**
 * Regression pins (the gateway withstands these today): request-smuggling and URL-parsing
 * tricks against the HTTP proxy door that the existing malformed-request table does not
 * cover. For each, a request for denied.test must never reach the origin, and an allowed
 * one must still be decided on its own host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, headerOf, rawExchange, sleep, startProxyEnv, statusOf } from '../support/proxy.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

const deniedSeen = () => env.http.seen.filter((s) => s.host?.startsWith('denied.test') || s.url.includes('denied'));

/** Every HTTP status line in a raw response stream, in order. */
const statuses = (raw: Buffer) => [...raw.toString('latin1').matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

describe('smuggling and URL tricks against the HTTP proxy', () => {
  it('two pipelined requests in one TCP segment are decided separately (allowed, then denied)', async () => {
    const p = env.http.port;
    const r = await rawExchange(
      env.proxyPort,
      `GET http://allowed.test:${p}/one HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n` + `GET http://denied.test:${p}/two HTTP/1.1\r\nHost: denied.test:${p}\r\n\r\n` + `GET http://allowed.test:${p}/three HTTP/1.1\r\nHost: allowed.test:${p}\r\nConnection: close\r\n\r\n`,
      { localAddress: '127.0.0.2' },
    );
    expect(statuses(r.received)).toEqual([200, 403, 200]);
    expect(deniedSeen()).toEqual([]);
  });

  it('a denied request hidden in the body of an allowed chunked POST is only a body', async () => {
    const p = env.http.port;
    const inner = `GET http://denied.test:${p}/inner HTTP/1.1\r\nHost: denied.test:${p}\r\n\r\n`;
    const chunk = `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`;
    const r = await rawExchange(env.proxyPort, `POST http://allowed.test:${p}/post HTTP/1.1\r\nHost: allowed.test:${p}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk}`, { localAddress: '127.0.0.2' });
    expect(statuses(r.received)).toEqual([200]);
    expect(env.http.seen.filter((s) => s.host?.startsWith('denied.test'))).toEqual([]);
  });

  const BAD: Array<[string, (p: number) => string]> = [
    ['Transfer-Encoding: chunked, identity', (p) => `POST http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
    [
      'Transfer-Encoding with Content-Length and an inner denied request',
      (p) => `POST http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://denied.test:${p}/cl-te HTTP/1.1\r\nHost: denied.test:${p}\r\n\r\n`,
    ],
    ['Content-Length with a comma list', (p) => `POST http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Length: 0, 60\r\n\r\n`],
    ['fragment before userinfo: http://allowed#@denied', (p) => `GET http://allowed.test:${p}#@denied.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`],
    ['backslash before userinfo: http://allowed\\@denied', (p) => `GET http://allowed.test:${p}\\@denied.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`],
    ['IPv6 zone id', (p) => `GET http://[fe80::1%25lo]:${p}/ HTTP/1.1\r\nHost: [fe80::1%25lo]:${p}\r\n\r\n`],
    ['CONNECT port 0', () => 'CONNECT allowed.test:0 HTTP/1.1\r\nHost: allowed.test:0\r\n\r\n'],
    ['CONNECT port 65536', () => 'CONNECT allowed.test:65536 HTTP/1.1\r\nHost: allowed.test\r\n\r\n'],
    ['CONNECT port -1', () => 'CONNECT allowed.test:-1 HTTP/1.1\r\nHost: allowed.test\r\n\r\n'],
    ['CONNECT port +443', () => 'CONNECT allowed.test:+443 HTTP/1.1\r\nHost: allowed.test\r\n\r\n'],
    ['CONNECT userinfo', (p) => `CONNECT denied.test@allowed.test:${p} HTTP/1.1\r\nHost: x\r\n\r\n`],
  ];
  for (const [name, make] of BAD) {
    it(`${name}: refused (400 or 403), nothing reaches denied.test`, async () => {
      const r = await rawExchange(env.proxyPort, make(env.http.port), { localAddress: '127.0.0.2', timeoutMs: 400 });
      expect([400, 403]).toContain(statusOf(r.received));
      await sleep(20);
      expect(deniedSeen()).toEqual([]);
    });
  }

  it('a long URL (10 KB) to an allowed host is forwarded; one over --max-header-bytes is 431 from the gateway', async () => {
    const p = env.http.port;
    const ok = await rawExchange(env.proxyPort, `GET http://allowed.test:${p}/${'a'.repeat(10_000)} HTTP/1.1\r\nHost: allowed.test:${p}\r\nConnection: close\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(ok.received)).toBe(200);
    const big = await rawExchange(env.proxyPort, `GET http://allowed.test:${p}/${'a'.repeat(40_000)} HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(big.received)).toBe(431);
  });

  it('X-Forwarded-For / Forwarded / X-Real-IP naming a devbox are ignored: the source address decides', async () => {
    const p = env.http.port;
    const spoof = 'X-Forwarded-For: 127.0.0.2\r\nForwarded: for=127.0.0.2\r\nX-Real-IP: 127.0.0.2\r\n';
    const r = await rawExchange(env.proxyPort, `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n${spoof}Connection: close\r\n\r\n`, { localAddress: '127.0.0.9' });
    expect(statusOf(r.received)).toBe(403);
    expect(headerOf(r.received, 'X-Egress-Denied-Reason')).toBe('unknown_client');
    const c = await rawExchange(env.proxyPort, `CONNECT allowed.test:${env.https.port} HTTP/1.1\r\nHost: x\r\n${spoof}Connection: close\r\n\r\n`, { localAddress: '127.0.0.9' });
    expect(statusOf(c.received)).toBe(403);
  });

  it("devbox A's credentials from devbox B's address get A's policy, never the union", async () => {
    const p = env.http.port;
    const auth = `Proxy-Authorization: Basic ${Buffer.from(`${env.a.username}:${env.a.password}`).toString('base64')}\r\n`;
    // other.test is B's (the source address), not A's: with A's credentials it is denied.
    const r = await rawExchange(env.proxyPort, `GET http://other.test:${p}/ HTTP/1.1\r\nHost: other.test:${p}\r\n${auth}Connection: close\r\n\r\n`, { localAddress: '127.0.0.3' });
    expect(statusOf(r.received)).toBe(403);
  });
});
