/**
 * Attack: a devbox writes tens of thousands of pipelined requests on one connection and
 * never reads the answers, so the gateway's answers pile up in its memory (each denial is
 * ~8× the size of its request). The front must stop reading that client once its answers
 * stop draining, and lose nothing: when the client finally reads, every request has been
 * answered, in order.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, metric, startProxyEnv } from '../support/proxy.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

const REQUESTS = 40_000;
const ONE = 'GET http://denied.test/x HTTP/1.1\r\nHost: denied.test\r\n\r\n';

describe('pipelined requests from a client that does not read', () => {
  it('are answered only as fast as the client reads, and all of them once it does', async () => {
    const denied = () => metric(env, 'egress_decisions_total', { door: 'http', decision: 'deny' });
    const before = await denied();
    const s = net.connect({ host: '127.0.0.1', port: env.proxyPort, localAddress: '127.0.0.2' });
    s.on('error', () => {});
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.pause();
    const burst = Buffer.from(ONE.repeat(1000));
    for (let i = 0; i < REQUESTS / 1000; i++) {
      if (!s.write(burst))
        await new Promise((r) => {
          s.once('drain', r);
          setTimeout(r, 100);
        });
    }
    // Let the gateway answer what it can while nobody reads.
    let last = -1;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = await denied();
      if (now === last) break;
      last = now;
    }
    const whileUnread = last - before;
    expect(whileUnread).toBeGreaterThan(0);
    expect(whileUnread).toBeLessThan(REQUESTS);

    // Now read everything: every request gets its 403, nothing is lost.
    let answered = 0;
    let tail = '';
    const done = new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => {
        const text = tail + d.toString('latin1');
        answered += text.split('HTTP/1.1 403 ').length - 1;
        tail = text.slice(-12); // shorter than the pattern: no match counted twice
        if (answered >= REQUESTS) resolve();
      });
    });
    s.resume();
    await Promise.race([done, new Promise((r) => setTimeout(r, 20_000))]);
    s.destroy();
    expect(answered).toBe(REQUESTS);
    expect((await denied()) - before).toBe(REQUESTS);
  }, 40_000);
});
