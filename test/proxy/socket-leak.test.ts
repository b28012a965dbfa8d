/**
 * Threat: resource exhaustion by churn. Thousands of connections opened and aborted at
 * every stage (before the head, mid-head, mid-dial, mid-tunnel, mid-response, denied)
 * must leave no socket, timer or tracked connection behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { type ProxyEnv, connectTunnel, curl, metric, startProxyEnv, until } from '../support/proxy.js';
import { clientHello } from '../fixtures/clienthello.js';

let env: ProxyEnv;
beforeAll(async () => {
  // Short idle time-out so the forwarder's pooled upstream sockets expire inside the test.
  env = await startProxyEnv({ 'idle-timeout-ms': '800', 'transparent-tls': '127.0.0.1:0' });
  env.gw.gw.config.transparentTlsUpstreamPort = env.https.port;
});
afterAll(async () => env?.close());

function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

/** Opens a socket, writes `bytes`, waits `waitMs` (or for the first response byte), then destroys it. */
function abortAfter(port: number, bytes: string | Buffer | null, waitMs: number, localAddress = '127.0.0.2'): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    const done = () => {
      s.destroy();
      resolve();
    };
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => {
      if (bytes !== null) s.write(bytes);
      if (waitMs === 0) done();
      else {
        s.once('data', () => setImmediate(done));
        setTimeout(done, waitMs);
      }
    });
  });
}

describe('no socket or listener leaks', () => {
  it('thousands of open/abort cycles leave the process as it was', async () => {
    const p = env.http.port;
    const hp = env.https.port;
    const tport = env.gw.addr('transparent-tls').port;
    // Warm up every path once so lazily created things (agents, metrics) exist in the baseline.
    await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, `http://allowed.test:${p}/warm`]);
    await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '-k', `https://www.allowed.test:${hp}/warm`]);
    // Kept: the warm-up's keep-alive sockets and timers end on their own idle timers (time passing).
    await new Promise((r) => setTimeout(r, 1500));
    const base = resources();

    const kinds: Array<() => Promise<void>> = [
      () => abortAfter(env.proxyPort, null, 0),
      () => abortAfter(env.proxyPort, 'GET http://allowed.test', 0),
      () => abortAfter(env.proxyPort, `GET http://allowed.test:${p}/bytes/2000000 HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`, 5),
      () => abortAfter(env.proxyPort, `GET http://denied.test:${p}/ HTTP/1.1\r\nHost: denied.test:${p}\r\n\r\n`, 50),
      () => abortAfter(env.proxyPort, `CONNECT www.allowed.test:${hp} HTTP/1.1\r\nHost: x\r\n\r\n`, 0),
      () => abortAfter(env.proxyPort, `CONNECT www.allowed.test:${hp} HTTP/1.1\r\nHost: x\r\n\r\n`, 50),
      () => abortAfter(env.proxyPort, Buffer.concat([Buffer.from(`CONNECT www.allowed.test:${hp} HTTP/1.1\r\nHost: x\r\n\r\n`), clientHello({ sni: 'www.allowed.test' })]), 50),
      () => abortAfter(env.proxyPort, Buffer.concat([Buffer.from(`CONNECT www.allowed.test:${hp} HTTP/1.1\r\nHost: x\r\n\r\n`), clientHello({ sni: 'denied.test' })]), 50),
      () => abortAfter(env.proxyPort, `CONNECT denied.test:${hp} HTTP/1.1\r\nHost: x\r\n\r\n`, 50),
      () => abortAfter(env.proxyPort, `CONNECT allowed.test:${p} HTTP/1.1\r\nHost: x\r\n\r\n`, 50, '127.0.0.9'),
      () => abortAfter(tport, clientHello({ sni: 'www.allowed.test' }), 20),
      () => abortAfter(tport, clientHello({ sni: 'www.allowed.test' }).subarray(0, 30), 0),
      () => abortAfter(tport, clientHello({ sni: 'other.test' }), 50),
      async () => {
        const s = await connectTunnel(env.proxyPort, `allowed.test:${p}`, { localAddress: '127.0.0.2' }).catch(() => null);
        s?.write(`GET /bytes/100000 HTTP/1.1\r\nHost: allowed.test\r\n\r\n`);
        await new Promise((r) => setTimeout(r, 2));
        s?.destroy();
      },
    ];
    const TOTAL = 3000;
    const CONCURRENCY = 60;
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < TOTAL) {
          const i = next++;
          await kinds[i % kinds.length]!();
        }
      }),
    );

    // Everything the churn created must go away (tunnels at once, pooled upstream sockets after the idle time-out).
    const settled = await until(async () => {
      const now = resources();
      const active = await metric(env, 'egress_active_connections');
      return active === 0 && (now.TCPSocketWrap ?? 0) <= (base.TCPSocketWrap ?? 0) && (now.Timeout ?? 0) <= (base.Timeout ?? 0) + 2;
    }, 6000);
    const after = resources();
    expect({ settled, after, base }).toMatchObject({ settled: true });
    expect(after.TCPServerWrap).toBe(base.TCPServerWrap);
    expect(await metric(env, 'egress_active_connections')).toBe(0);

    // And it still works.
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, `http://allowed.test:${p}/still`]);
    expect(r.status).toBe(200);
  }, 60_000);
});
