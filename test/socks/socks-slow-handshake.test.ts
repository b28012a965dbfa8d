/** Handshake time-out (--header-timeout-ms 300): trickled but timely handshakes work, stalled ones are closed. */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDomain } from '../fixtures/socks5-cases.js';
import { type SocksEnv, metric, rawExchange, startSocksEnv } from '../support/socks.js';

let env: SocksEnv;
const TIMEOUT = 300;

beforeAll(async () => {
  env = await startSocksEnv({ 'header-timeout-ms': String(TIMEOUT) });
  const p = await env.gw.api.policy('slow', { allowed_hostnames: ['allowed.test'] });
  await env.gw.api.devbox(p, ['127.0.0.2']);
});
afterAll(() => env?.close());

const timeouts = () => metric(env.gw, 'egress_protocol_errors_total', { door: 'socks5', kind: 'handshake_timeout' });

describe('SOCKS5 slow handshakes', () => {
  it('a greeting and request sent one byte at a time succeed, then data flows', async () => {
    const bytes = connectDomain('allowed.test', env.origin.port);
    const sock = net.connect({ host: '127.0.0.1', port: env.socksPort, localAddress: '127.0.0.2' });
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    for (const b of bytes) {
      sock.write(Buffer.from([b]));
      await new Promise((r) => setTimeout(r, 4));
    }
    const replied = await new Promise<boolean>((resolve) => {
      const t = setInterval(() => {
        if (Buffer.concat(got).length >= 12) {
          clearInterval(t);
          resolve(true);
        }
      }, 5);
      sock.once('close', () => {
        clearInterval(t);
        resolve(false);
      });
    });
    expect(replied).toBe(true);
    const head = Buffer.concat(got);
    expect([...head.subarray(0, 4)]).toEqual([5, 0, 5, 0]);
    got.length = 0;
    sock.write(`GET /slow HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n`);
    await new Promise<void>((r) => sock.once('close', () => r()));
    const text = Buffer.concat(got).toString();
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).toContain('"url":"/slow"');
  });

  it('a client that stalls mid-greeting is closed after the time-out', async () => {
    const before = await timeouts();
    const r = await rawExchange(env.socksPort, Buffer.from([5, 2]), { localAddress: '127.0.0.2', timeoutMs: 3000 });
    expect(r.closed).toBe(true);
    expect(r.received.length).toBe(0);
    expect(r.elapsedMs).toBeGreaterThanOrEqual(TIMEOUT - 50);
    expect(r.elapsedMs).toBeLessThan(TIMEOUT + 1500);
    expect(await timeouts()).toBe(before + 1);
  });

  it('a client that stalls after the method reply is closed', async () => {
    const r = await rawExchange(env.socksPort, Buffer.from([5, 1, 0]), { localAddress: '127.0.0.2', timeoutMs: 3000 });
    expect(r.closed).toBe(true);
    expect([...r.received]).toEqual([5, 0]);
    expect(r.elapsedMs).toBeGreaterThanOrEqual(TIMEOUT - 50);
  });

  it('a client that stalls in the middle of username/password is closed', async () => {
    const r = await rawExchange(env.socksPort, Buffer.from([5, 1, 2, 1, 10, 0x61]), { timeoutMs: 3000 });
    expect(r.closed).toBe(true);
    expect([...r.received]).toEqual([5, 2]);
  });

  it('the time-out is a deadline for the whole handshake, not per byte (slow-loris)', async () => {
    const bytes = connectDomain(`${'a'.repeat(60)}.allowed.test`, 80);
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    const r = await rawExchange(env.socksPort, chunks, { localAddress: '127.0.0.2', gapMs: 50, timeoutMs: 5000 });
    expect(r.closed).toBe(true);
    expect(r.elapsedMs).toBeLessThan(TIMEOUT + 1000);
    expect([...r.received]).toEqual([5, 0]);
  });
});
