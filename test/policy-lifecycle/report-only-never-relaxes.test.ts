/**
 * Threat: a report-only policy used as a way around the refusals that are not the policy's
 * to waive. Under report mode the doors let the policy's own denials through, but an SNI
 * that names another host than the tunnel's, a Host header that disagrees with the URL, the
 * cloud metadata address and unknown clients are refused exactly as under enforcement; and
 * switching the policy back to enforce cuts the tunnels it had only reported.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type net from 'node:net';
import { type ProxyEnv, connectTunnel, curl, metric, startProxyEnv, until } from '../support/proxy.js';
import { clientHello } from '../fixtures/clienthello.js';

const SOURCE = '127.0.0.5';
const ACCESS_DENIED = [0x15, 3, 3, 0, 2, 2, 49];

let env: ProxyEnv;
let policy: string;

beforeAll(async () => {
  env = await startProxyEnv();
  policy = await env.gw.api.policy('report-allowed', { allowed_hostnames: ['allowed.test'], enforcement: 'report' });
  await env.gw.api.devbox(policy, [SOURCE], 'box-report');
});
afterAll(async () => env?.close());

/** Sends bytes into an open tunnel and collects what comes back until it closes (or 3 s pass). */
function sendAndCollect(sock: net.Socket, bytes: Buffer): Promise<{ got: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ got: Buffer.concat(got), closed: false });
    }, 3000);
    sock.on('data', (d) => got.push(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ got: Buffer.concat(got), closed: true });
    });
    sock.write(bytes);
  });
}

const wouldDeny = (door: string, reason: string) => metric(env, 'egress_decisions_total', { door, decision: 'would_deny', reason });
const proxy = () => `http://127.0.0.1:${env.proxyPort}`;

describe('report-only never relaxes', () => {
  it("lets the policy's own denial through: CONNECT to a name it does not list opens, counted as would_deny", async () => {
    const before = await wouldDeny('connect', 'not_allowlisted');
    const sock = await connectTunnel(env.proxyPort, `denied.test:${env.https.port}`, { localAddress: SOURCE });
    sock.destroy();
    expect(await wouldDeny('connect', 'not_allowlisted')).toBe(before + 1);
  });

  it('an SNI naming another host than the CONNECT name is still cut (sni_mismatch)', async () => {
    const sock = await connectTunnel(env.proxyPort, `denied.test:${env.https.port}`, { localAddress: SOURCE });
    const { got } = await sendAndCollect(sock, clientHello({ sni: 'other.test' }));
    expect([...got]).toEqual(ACCESS_DENIED);
  });

  it('a tunnel to an IP literal let through as would_deny still needs an SNI the policy itself admits', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'sni_mismatch' });
    const ipLiteral = await wouldDeny('connect', 'ip_literal');
    const sock = await connectTunnel(env.proxyPort, `127.0.0.1:${env.https.port}`, { localAddress: SOURCE });
    expect(await wouldDeny('connect', 'ip_literal')).toBe(ipLiteral + 1);
    const { got } = await sendAndCollect(sock, clientHello({ sni: 'denied.test' }));
    expect([...got]).toEqual(ACCESS_DENIED);
    expect(await metric(env, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'sni_mismatch' })).toBe(before + 1);
  });

  it('a Host header that disagrees with the URL is still refused (host_mismatch)', async () => {
    const r = await curl(['-x', proxy(), '--interface', SOURCE, '-H', 'Host: other.test', `http://denied.test:${env.http.port}/`]);
    expect(r.status).toBe(403);
    expect(r.headers).toMatch(/x-egress-denied-reason: host_mismatch/i);
  });

  it('the cloud metadata address and private ranges are still refused (private_address)', async () => {
    for (const host of ['169.254.169.254', '10.1.2.3']) {
      const r = await curl(['-x', proxy(), '--interface', SOURCE, `http://${host}/latest/meta-data/`]);
      expect(r.status, host).toBe(403);
      expect(r.headers).toMatch(/x-egress-denied-reason: private_address/i);
    }
  });

  it('switching the policy back to enforce cuts the tunnels it had only reported', async () => {
    const sock = await connectTunnel(env.proxyPort, `denied.test:${env.https.port}`, { localAddress: SOURCE });
    let closed = false;
    sock.on('close', () => (closed = true));
    sock.on('error', () => {});
    await env.gw.api.updatePolicy(policy, { enforcement: 'enforce' });
    expect(await until(() => closed, 5000)).toBe(true);
    const r = await curl(['-x', proxy(), '--interface', SOURCE, `http://denied.test:${env.http.port}/`]);
    expect(r.status).toBe(403);
    expect(r.headers).toMatch(/x-egress-denied-reason: not_allowlisted/i);
  });
});
