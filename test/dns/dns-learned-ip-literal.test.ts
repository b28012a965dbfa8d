/**
 * An address the DNS door returned to a devbox for an allowed name is admitted for an
 * IP-literal connection from that devbox (and only that devbox) until TTL + grace:
 * CONNECT 127.0.0.30:port is 403 before the devbox resolved the name, 200 after.
 * Also: the proxy doors resolve through the DNS door's cache.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsSetup, setupDns, sleep, status } from '../support/dns.js';

let s: DnsSetup;
let origin: net.Server;
let originPort: number;

/** Raw CONNECT through the HTTP proxy door from `source`; resolves with the status code. */
function connect(source: string, target: string): Promise<number> {
  return new Promise((resolve) => {
    const proxy = s.g.addr('http-proxy');
    const sock = net.connect({ host: '127.0.0.1', port: proxy.port, localAddress: source });
    let head = '';
    const timer = setTimeout(() => done(0), 5000);
    const done = (code: number) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(code);
    };
    sock.on('connect', () => sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    sock.on('data', (d) => {
      head += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (m) done(Number(m[1]));
    });
    sock.on('error', () => done(0));
  });
}

beforeAll(async () => {
  origin = net.createServer((c) => c.end());
  await new Promise<void>((r) => origin.listen(0, '127.0.0.30', () => r()));
  originPort = (origin.address() as net.AddressInfo).port;
  s = await setupDns({
    upstream: {
      records: {
        'app.test': [{ type: 'A', data: '127.0.0.30', ttl: 300 }],
        'brief.test': [{ type: 'A', data: '127.0.0.31', ttl: 1 }],
        'proxied.test': [{ type: 'A', data: '127.0.0.30', ttl: 300 }],
      },
    },
    devboxes: { '127.0.0.2': ['app.test', 'brief.test', 'proxied.test'], '127.0.0.3': ['app.test'] },
    flags: { 'dns-min-ttl': '0', 'dns-learn-grace': '1' },
  });
});
afterAll(async () => {
  await s.close();
  origin.close();
});

describe('DNS-learned addresses', () => {
  it('CONNECT to an IP literal: 403 before the devbox resolved the name, 200 after', async () => {
    expect(await connect('127.0.0.2', `127.0.0.30:${originPort}`)).toBe(403);
    expect(status(await s.dig('127.0.0.2', 'app.test', 'A'))).toBe('NOERROR');
    expect(await connect('127.0.0.2', `127.0.0.30:${originPort}`)).toBe(200);
  });

  it('only for the devbox that resolved it', async () => {
    // 127.0.0.3 is allowed app.test too, but has not asked for it.
    expect(await connect('127.0.0.3', `127.0.0.30:${originPort}`)).toBe(403);
  });

  it('expires after TTL + grace', async () => {
    const brief = net.createServer((c) => c.end());
    await new Promise<void>((r) => brief.listen(0, '127.0.0.31', () => r()));
    const port = (brief.address() as net.AddressInfo).port;
    try {
      expect(status(await s.dig('127.0.0.2', 'brief.test'))).toBe('NOERROR');
      expect(await connect('127.0.0.2', `127.0.0.31:${port}`)).toBe(200);
      await sleep(2300); // TTL 1 s + grace 1 s
      expect(await connect('127.0.0.2', `127.0.0.31:${port}`)).toBe(403);
    } finally {
      brief.close();
    }
  });

  it("the proxy doors resolve through the DNS door's cache", async () => {
    expect(status(await s.dig('127.0.0.2', 'proxied.test', 'A'))).toBe('NOERROR');
    expect(s.up.queries.filter((q) => q.startsWith('proxied.test/A/'))).toHaveLength(1);
    expect(await connect('127.0.0.2', `proxied.test:${originPort}`)).toBe(200);
    expect(s.up.queries.filter((q) => q.startsWith('proxied.test/A/'))).toHaveLength(1);
  });
});
