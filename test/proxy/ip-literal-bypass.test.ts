/**
 * Threat: reaching an address by spelling it so a name matcher does not recognise it as
 * one (127.1, 0x7f.1, 2130706433, [::ffff:127.0.0.1], 0177.0.0.1). Every spelling is an
 * IP literal, decided on allowed_cidrs only: denied as ip_literal unless a CIDR admits it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, headerOf, metric, rawExchange, startProxyEnv, statusOf } from '../support/proxy.js';

let env: ProxyEnv;
let cidrAuth: string;
beforeAll(async () => {
  env = await startProxyEnv();
  const p = await env.gw.api.policy('cidr', { allowed_cidrs: [{ cidr: '127.0.0.1/32' }] });
  const box = await env.gw.api.devbox(p, ['127.0.0.5'], 'box-cidr');
  cidrAuth = Buffer.from(`${box.username}:${box.password}`).toString('base64');
});
afterAll(async () => env?.close());

const SPELLINGS = ['127.0.0.1', '127.1', '0x7f.1', '0x7f000001', '2130706433', '0177.0.0.1', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]'];

describe('IP-literal destinations', () => {
  for (const host of SPELLINGS) {
    it(`GET http://${host}/ is denied as ip_literal without a CIDR, allowed with one`, async () => {
      const p = env.http.port;
      const req = (extra = '') => `GET http://${host}:${p}/ip HTTP/1.1\r\nHost: ${host}:${p}\r\n${extra}Connection: close\r\n\r\n`;
      const denied = await rawExchange(env.proxyPort, req(), { localAddress: '127.0.0.2' });
      expect(statusOf(denied.received)).toBe(403);
      expect(headerOf(denied.received, 'X-Egress-Denied-Reason')).toBe('ip_literal');
      const allowed = await rawExchange(env.proxyPort, req(`Proxy-Authorization: Basic ${cidrAuth}\r\n`));
      expect(statusOf(allowed.received)).toBe(200);
    });

    it(`CONNECT ${host} is denied as ip_literal without a CIDR`, async () => {
      const t = `${host}:${env.https.port}`;
      const r = await rawExchange(env.proxyPort, `CONNECT ${t} HTTP/1.1\r\nHost: ${t}\r\n\r\n`, { localAddress: '127.0.0.2' });
      expect(statusOf(r.received)).toBe(403);
      expect(headerOf(r.received, 'X-Egress-Denied-Reason')).toBe('ip_literal');
    });
  }

  it('a CIDR admits only its range: 127.0.0.2 is still denied for the CIDR box', async () => {
    const p = env.http.port;
    const r = await rawExchange(env.proxyPort, `GET http://127.0.0.2:${p}/ HTTP/1.1\r\nHost: 127.0.0.2:${p}\r\nProxy-Authorization: Basic ${cidrAuth}\r\n\r\n`, { timeoutMs: 500 });
    expect(statusOf(r.received)).toBe(403);
  });

  it('metadata and link-local addresses are denied whatever the spelling', async () => {
    for (const host of ['169.254.169.254', '0xa9fea9fe', '[fd00:ec2::254]']) {
      const r = await rawExchange(env.proxyPort, `CONNECT ${host}:80 HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic ${cidrAuth}\r\n\r\n`);
      expect(statusOf(r.received), host).toBe(403);
      expect(headerOf(r.received, 'X-Egress-Denied-Reason')).toBe('private_address');
    }
  });

  it('is counted', async () => {
    expect(await metric(env, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'ip_literal' })).toBeGreaterThanOrEqual(SPELLINGS.length);
  });
});
