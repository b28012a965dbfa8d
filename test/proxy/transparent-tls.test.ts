/**
 * Threat: traffic the firewall redirects to the transparent TLS door reaching a host the
 * policy denies. The SNI decides; the name is resolved by the gateway and the connection
 * spliced to the checked address (port 443; the test origin's port here). No SNI, a denied
 * or unknown client: a TLS alert and close.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { type ProxyEnv, curl, metric, originPattern, rawExchange, startProxyEnv } from '../support/proxy.js';
import { clientHello } from '../fixtures/clienthello.js';
import { waitFor } from '../support/wait.js';

let env: ProxyEnv;
let tport: number;
beforeAll(async () => {
  env = await startProxyEnv({ 'transparent-tls': '127.0.0.1:0', 'header-timeout-ms': '500' });
  tport = env.gw.addr('transparent-tls').port;
  // Tests cannot bind 443: point the door's upstream port at the HTTPS origin.
  env.gw.gw.config.transparentTlsUpstreamPort = env.https.port;
});
afterAll(async () => env?.close());

function getVia(servername: string | undefined, localAddress: string, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        createConnection: () => tls.connect({ host: '127.0.0.1', port: tport, localAddress, ...(servername ? { servername } : {}), ca: readFileSync(env.certPath) } as tls.ConnectionOptions),
        path,
        host: servername ?? '127.0.0.1',
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('transparent TLS (SNI)', () => {
  it('an allowed SNI is spliced to the resolved address, body intact (3 MB)', async () => {
    const r = await getVia('www.allowed.test', '127.0.0.2', '/bytes/3000000');
    expect(r.status).toBe(200);
    expect(r.body.equals(originPattern(3_000_000))).toBe(true);
    expect(env.dns.countFor('www.allowed.test')).toBeGreaterThan(0);
  });

  it('curl --connect-to (as after an nftables redirect)', async () => {
    const r = await curl(['--interface', '127.0.0.2', '--cacert', env.certPath, '--connect-to', `www.allowed.test:443:127.0.0.1:${tport}`, 'https://www.allowed.test/bytes/1234']);
    expect(r.status).toBe(200);
    expect(r.body.equals(originPattern(1234))).toBe(true);
  });

  it('a denied SNI gets an access_denied alert and is counted', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'transparent-tls', decision: 'deny', reason: 'not_allowlisted' });
    const r = await rawExchange(tport, clientHello({ sni: 'other.test' }), { localAddress: '127.0.0.2' });
    expect([...r.received]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
    expect(r.closed).toBe(true);
    expect(await metric(env, 'egress_decisions_total', { door: 'transparent-tls', decision: 'deny', reason: 'not_allowlisted' })).toBe(before + 1);
    await expect(getVia('other.test', '127.0.0.2', '/')).rejects.toThrow();
  });

  it('an unknown client gets the alert (unknown_client)', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'transparent-tls', decision: 'deny', reason: 'unknown_client' });
    const r = await rawExchange(tport, clientHello({ sni: 'www.allowed.test' }), { localAddress: '127.0.0.9' });
    expect([...r.received]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
    expect(await metric(env, 'egress_decisions_total', { door: 'transparent-tls', decision: 'deny', reason: 'unknown_client' })).toBe(before + 1);
  });

  it('no SNI → unrecognized_name alert; not TLS → closed; malformed → decode_error', async () => {
    const none = await rawExchange(tport, clientHello({}), { localAddress: '127.0.0.2' });
    expect([...none.received]).toEqual([0x15, 3, 3, 0, 2, 2, 112]);
    const http = await rawExchange(tport, 'GET / HTTP/1.1\r\nHost: www.allowed.test\r\n\r\n', { localAddress: '127.0.0.2' });
    expect(http.closed).toBe(true);
    expect(http.received.toString()).not.toContain('HTTP/1.1 200');
    const bad = await rawExchange(tport, clientHello({ sni: 'www.allowed.test', duplicateSni: true }), { localAddress: '127.0.0.2' });
    expect([...bad.received]).toEqual([0x15, 3, 3, 0, 2, 2, 50]);
  });

  it('a client that sends nothing or half a hello is closed after the header time-out', async () => {
    const silent = await rawExchange(tport, [], { localAddress: '127.0.0.2', timeoutMs: 3000 });
    expect(silent.closed).toBe(true);
    expect(silent.elapsedMs).toBeLessThan(1500);
    const half = await rawExchange(tport, clientHello({ sni: 'www.allowed.test' }).subarray(0, 20), { localAddress: '127.0.0.2', timeoutMs: 3000 });
    expect(half.closed).toBe(true);
    expect(half.elapsedMs).toBeLessThan(1500);
  });

  it('a policy change cuts an open transparent TLS connection', async () => {
    const p = await env.gw.api.policy('tls-cut', { allowed_hostnames: ['www.allowed.test'] });
    await env.gw.api.devbox(p, ['127.0.0.30'], 'tls-cut');
    const sock = tls.connect({ host: '127.0.0.1', port: tport, localAddress: '127.0.0.30', servername: 'www.allowed.test', ca: readFileSync(env.certPath) } as tls.ConnectionOptions);
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', () => resolve());
      sock.once('error', reject);
    });
    sock.on('error', () => {});
    let closedAt = 0;
    sock.on('close', () => (closedAt = Date.now()));
    const t0 = Date.now();
    await env.gw.api.updatePolicy(p, { allowed_hostnames: ['other.test'] });
    await waitFor(() => closedAt > 0, 5000, 'the tunnel cut');
    expect(closedAt - t0).toBeLessThan(1000);
    void net;
  });
});
