/**
 * Threat: a long keep-alive connection (one devbox, many requests) makes the proxy's front
 * add a listener per request to the client socket or to the pooled origin socket (e.g.
 * `socket.setTimeout(ms, callback)` adds a 'timeout' listener on every call), so memory
 * grows with every request and node warns MaxListenersExceededWarning. Many requests on one
 * connection must leave both sockets with a constant set of listeners.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, startProxyEnv } from '../support/proxy.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

/** Sends `n` GETs one after another on one connection; resolves with their status codes. */
function keepAliveGets(n: number, path: (i: number) => string): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: env.proxyPort, localAddress: '127.0.0.2' });
    const statuses: number[] = [];
    let buf = Buffer.alloc(0);
    const send = () => s.write(`GET ${path(statuses.length)} HTTP/1.1\r\nHost: ${new URL(path(statuses.length)).host}\r\n\r\n`);
    s.on('connect', send);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        statuses.push(Number(head.slice(9, 12)));
        buf = buf.subarray(end + 4 + len);
        if (statuses.length === n) {
          s.destroy();
          resolve(statuses);
          return;
        }
        send();
      }
    });
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('time-out')));
  });
}

describe('many requests on one keep-alive connection', () => {
  it('add no listeners per request (no MaxListenersExceededWarning), allowed and denied alike', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const origin = `http://allowed.test:${env.http.port}`;
      const statuses = await keepAliveGets(60, (i) => (i % 3 === 2 ? 'http://denied.test/x' : `${origin}/r${i}`));
      expect(statuses).toHaveLength(60);
      expect(statuses.filter((s) => s === 200)).toHaveLength(40);
      expect(statuses.filter((s) => s === 403)).toHaveLength(20);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
  });
});
