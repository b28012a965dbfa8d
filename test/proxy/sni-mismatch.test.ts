/**
 * Threat: domain fronting through CONNECT: "CONNECT allowed.test:443" then a ClientHello
 * for another name, so the TLS session (and, on shared front ends, the routing) is for a
 * host the policy never allowed. The SNI must be the CONNECT host; a mismatch closes the
 * tunnel with a TLS alert and is counted as sni_mismatch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tls from 'node:tls';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { type ProxyEnv, connectTunnel, metric, originPattern, startProxyEnv } from '../support/proxy.js';
import { clientHello } from '../fixtures/clienthello.js';

let env: ProxyEnv;
let cidrBox: { username: string; password: string };
beforeAll(async () => {
  env = await startProxyEnv();
  const p = await env.gw.api.policy('cidr-and-name', { allowed_cidrs: [{ cidr: '127.0.0.1/32' }], allowed_hostnames: ['www.allowed.test'] });
  cidrBox = await env.gw.api.devbox(p, ['127.0.0.4'], 'box-cidr');
});
afterAll(async () => env?.close());

function sendAndCollect(sock: import('node:net').Socket, bytes: Buffer): Promise<{ got: Buffer; closedMs: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    sock.on('error', () => {});
    sock.on('close', () => resolve({ got: Buffer.concat(got), closedMs: Date.now() - started }));
    sock.write(bytes);
  });
}

describe('CONNECT: the ClientHello SNI must be the CONNECT host', () => {
  it('a hand-made ClientHello naming another host is cut with an access_denied alert and counted', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'sni_mismatch' });
    const perr = await metric(env, 'egress_protocol_errors_total', { door: 'connect', kind: 'sni_mismatch' });
    const seenBefore = env.https.seen.length;
    const sock = await connectTunnel(env.proxyPort, `allowed.test:${env.https.port}`, { localAddress: '127.0.0.2' });
    const { got, closedMs } = await sendAndCollect(sock, clientHello({ sni: 'denied.test' }));
    expect([...got]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
    expect(closedMs).toBeLessThan(1000);
    expect(await metric(env, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'sni_mismatch' })).toBe(before + 1);
    expect(await metric(env, 'egress_protocol_errors_total', { door: 'connect', kind: 'sni_mismatch' })).toBe(perr + 1);
    expect(env.https.seen.length).toBe(seenBefore);
  });

  it('the mismatch is caught even when the ClientHello arrives in the CONNECT packet and in 1-byte records', async () => {
    const hello = clientHello({ sni: 'denied.test', recordSize: 1 });
    const sock = (await import('node:net')).connect({ host: '127.0.0.1', port: env.proxyPort, localAddress: '127.0.0.2' });
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    sock.on('error', () => {});
    sock.write(Buffer.concat([Buffer.from(`CONNECT allowed.test:${env.https.port} HTTP/1.1\r\nHost: allowed.test\r\n\r\n`), hello]));
    await new Promise((r) => sock.on('close', r));
    const all = Buffer.concat(got);
    expect(all.toString('latin1')).toMatch(/^HTTP\/1\.1 200/);
    expect([...all.subarray(all.length - 7)]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
  });

  it('node:tls with a mismatched servername fails; the right one works', async () => {
    const bad = await connectTunnel(env.proxyPort, `www.allowed.test:${env.https.port}`, { localAddress: '127.0.0.2' });
    const err = await new Promise<Error>((resolve) => {
      const t = tls.connect({ socket: bad, servername: 'other.test', ca: readFileSync(env.certPath) });
      t.on('error', resolve);
      t.on('secureConnect', () => resolve(new Error('connected?!')));
    });
    expect(err.message).not.toBe('connected?!');

    // (the test certificate covers *.allowed.test, not allowed.test itself)
    const good = await connectTunnel(env.proxyPort, `www.allowed.test:${env.https.port}`, { localAddress: '127.0.0.2' });
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = https.request({ createConnection: () => tls.connect({ socket: good, servername: 'www.allowed.test', ca: readFileSync(env.certPath) }), path: '/bytes/10000', host: 'www.allowed.test' }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve(Buffer.concat(parts)));
      });
      req.on('error', reject);
      req.end();
    });
    expect(body.equals(originPattern(10000))).toBe(true);
  });

  it('a malformed ClientHello (two names) closes the tunnel', async () => {
    const sock = await connectTunnel(env.proxyPort, `allowed.test:${env.https.port}`, { localAddress: '127.0.0.2' });
    const { got } = await sendAndCollect(
      sock,
      clientHello({
        names: [
          { type: 0, name: 'allowed.test' },
          { type: 0, name: 'denied.test' },
        ],
      }),
    );
    expect(got[0]).toBe(0x15);
  });

  it('a ClientHello without SNI to a hostname destination is allowed (only to that host)', async () => {
    const sock = await connectTunnel(env.proxyPort, `allowed.test:${env.https.port}`, { localAddress: '127.0.0.2' });
    const body = await new Promise<Buffer>((resolve, reject) => {
      // host is an IP: node sends no SNI; the cert has IP:127.0.0.1
      const req = https.request({ createConnection: () => tls.connect({ socket: sock, host: '127.0.0.1', ca: readFileSync(env.certPath) }), path: '/bytes/5000', host: '127.0.0.1' }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve(Buffer.concat(parts)));
      });
      req.on('error', reject);
      req.end();
    });
    expect(body.equals(originPattern(5000))).toBe(true);
  });

  it('IP destination (allowed by CIDR): an SNI the policy allows passes, any other is sni_mismatch', async () => {
    const auth = `${cidrBox.username}:${cidrBox.password}`;
    const ok = await connectTunnel(env.proxyPort, `127.0.0.1:${env.https.port}`, { auth });
    const t = tls.connect({ socket: ok, servername: 'www.allowed.test', ca: readFileSync(env.certPath) });
    await new Promise<void>((resolve, reject) => {
      t.on('secureConnect', () => resolve());
      t.on('error', reject);
    });
    t.destroy();
    const bad = await connectTunnel(env.proxyPort, `127.0.0.1:${env.https.port}`, { auth });
    const { got } = await sendAndCollect(bad, clientHello({ sni: 'denied.test' }));
    expect([...got]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
  });
});
