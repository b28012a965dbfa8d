/**
 * Attack: "WebSocket smuggling" through the HTTP proxy. The devbox sends an Upgrade request
 * to an allowed host; the gateway decides on that host, dials its address and splices the
 * client's socket to it as a raw tunnel at once, without waiting for the origin's answer.
 * The origin does not upgrade (it answers an ordinary 200 and keeps the connection alive),
 * so the "tunnel" is now a plain keep-alive HTTP connection to a shared origin (a CDN or
 * virtual-host server), and the devbox sends its next request with `Host: denied.test`
 * through it: a request for a denied host reaches the origin without any decision.
 *
 * Expected: the client → origin direction stays closed until the origin answered
 * `101 Switching Protocols`; on any other status the response is relayed and the tunnel
 * ends (or the connection goes back to per-request decisions). Either way the origin must
 * never see a request for denied.test. Same for the transparent HTTP door.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { type ProxyEnv, sleep, startProxyEnv } from '../support/proxy.js';
import { startTestGateway } from '../support/gateway.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

/** Sends `first`, waits for the first response, then sends `second`; returns all bytes received. */
function twoStep(port: number, first: string, second: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    let got = '';
    let sent = false;
    const done = () => {
      clearTimeout(t);
      sock.destroy();
      resolve(got);
    };
    const t = setTimeout(done, 1500);
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (!sent && got.includes('\r\n\r\n')) {
        sent = true;
        setTimeout(() => sock.write(second), 50);
      }
    });
    sock.on('error', done);
    sock.on('close', done);
    sock.on('connect', () => sock.write(first));
  });
}

const upgradeHead = (target: string, host: string) => `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
const smuggled = (p: number) => `GET /smuggled HTTP/1.1\r\nHost: denied.test:${p}\r\nConnection: close\r\n\r\n`;

describe('upgrade smuggling: a non-101 answer must not leave a raw tunnel open', () => {
  it('HTTP proxy: a request for denied.test never reaches the origin through a failed upgrade', async () => {
    const p = env.http.port;
    const before = env.http.seen.length;
    const got = await twoStep(env.proxyPort, upgradeHead(`http://allowed.test:${p}/upgrade-me`, `allowed.test:${p}`), smuggled(p));
    await sleep(100); // kept: a window for a smuggled request that must never reach the origin
    const seen = env.http.seen.slice(before);
    expect(seen.map((s) => s.url)).toContain('/upgrade-me'); // the allowed request did go through
    expect(
      seen.filter((s) => s.host?.startsWith('denied.test')),
      JSON.stringify(got.slice(-300)),
    ).toEqual([]);
  });

  it('transparent HTTP door: same', async () => {
    // A second gateway whose transparent HTTP door dials the test origin's port.
    const gw2 = await startTestGateway({
      upstreamDnsPort: env.dns.port,
      flags: { 'transparent-http': '127.0.0.1:0', 'transparent-http-upstream-port': String(env.http.port), 'http-proxy': 'off', socks: 'off', dns: 'off' },
    });
    try {
      const pol = await gw2.api.policy('a', { allowed_hostnames: ['allowed.test'] });
      await gw2.api.devbox(pol, ['127.0.0.2']);
      const before = env.http.seen.length;
      await twoStep(gw2.addr('transparent-http').port, upgradeHead('/upgrade-me', 'allowed.test'), 'GET /smuggled HTTP/1.1\r\nHost: denied.test\r\nConnection: close\r\n\r\n');
      await sleep(100); // kept: a window for a smuggled request that must never reach the origin
      const seen = env.http.seen.slice(before);
      expect(seen.map((s) => s.url)).toContain('/upgrade-me');
      expect(seen.filter((s) => s.host?.startsWith('denied.test'))).toEqual([]);
    } finally {
      await gw2.close();
    }
  });
});
