/**
 * IP literals never match hostname entries, in any spelling a client may send as a SOCKS
 * domain (127.1, decimal, hex, octal, bracketed IPv6) or as an address type; only
 * allowed_cidrs admit them. Client-side resolution (curl --socks5) sends an IP literal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDomain, GRANT_NO_AUTH } from '../fixtures/socks5-cases.js';
import { type SocksEnv, curl, denyMetric, failReplyBytes, metric, rawExchange, startSocksEnv } from '../support/socks.js';

let env: SocksEnv;
let policyId: string;

beforeAll(async () => {
  env = await startSocksEnv();
  policyId = await env.gw.api.policy('literal', { allowed_hostnames: ['allowed.test'] });
  await env.gw.api.devbox(policyId, ['127.0.0.2']);
});
afterAll(() => env?.close());

const denied = Buffer.concat([Buffer.from(GRANT_NO_AUTH), failReplyBytes(0x02)]);

describe('SOCKS5 IP-literal bypass attempts', () => {
  // [::1] is not in the test's --allow-private 127.0.0.0/8, so the guardrail answers first.
  const spellings: Array<[string, string]> = [
    ['127.0.0.1', 'ip_literal'],
    ['127.1', 'ip_literal'],
    ['2130706433', 'ip_literal'],
    ['0x7f000001', 'ip_literal'],
    ['0x7f.0.0.1', 'ip_literal'],
    ['0177.0.0.1', 'ip_literal'],
    ['127.0.0.1.', 'ip_literal'],
    ['::ffff:127.0.0.1', 'ip_literal'],
    ['[::ffff:7f00:1]', 'ip_literal'],
    ['[::1]', 'private_address'],
    ['169.254.169.254', 'private_address'],
    ['10.1', 'private_address'],
  ];
  for (const [name, reason] of spellings) {
    it(`domain "${name}" is an IP literal: denied ${reason}, never resolved`, async () => {
      const before = await metric(env.gw, 'egress_decisions_total', denyMetric(reason));
      const queries = env.dns.queries.length;
      const r = await rawExchange(env.socksPort, connectDomain(name, env.origin.port), { localAddress: '127.0.0.2' });
      expect(r.received).toEqual(denied);
      expect(await metric(env.gw, 'egress_decisions_total', denyMetric(reason))).toBe(before + 1);
      expect(env.dns.queries.length).toBe(queries);
    });
  }

  it('ATYP IPv4 and IPv6 (v4-mapped) destinations are denied as ip_literal', async () => {
    const p = env.origin.port;
    const v4 = Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, p >> 8, p & 0xff]);
    expect((await rawExchange(env.socksPort, v4, { localAddress: '127.0.0.2' })).received).toEqual(denied);
    const mapped = Buffer.from([5, 1, 0, 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1, p >> 8, p & 0xff]);
    expect((await rawExchange(env.socksPort, mapped, { localAddress: '127.0.0.2' })).received).toEqual(denied);
  });

  it('case and one trailing dot of an allowed name are normalised, not a bypass or a false deny', async () => {
    for (const name of ['ALLOWED.TEST', 'allowed.test.']) {
      const r = await rawExchange(env.socksPort, connectDomain(name, env.origin.port), { localAddress: '127.0.0.2', timeoutMs: 300 });
      expect(r.received[3], name).toBe(0x00);
    }
  });

  it('curl --socks5 (client resolves, sends 127.0.0.1) is denied; allowed once 127.0.0.1/32 is in allowed_cidrs', async () => {
    const url = `http://allowed.test:${env.origin.port}/literal`;
    const args = ['--interface', '127.0.0.2', '--resolve', `allowed.test:${env.origin.port}:127.0.0.1`, '--socks5', `127.0.0.1:${env.socksPort}`, url];
    const before = await metric(env.gw, 'egress_decisions_total', denyMetric('ip_literal'));
    const no = await curl(args);
    expect(no.code).not.toBe(0);
    expect(await metric(env.gw, 'egress_decisions_total', denyMetric('ip_literal'))).toBe(before + 1);

    await env.gw.api.updatePolicy(policyId, { allowed_cidrs: [{ cidr: '127.0.0.1/32' }] });
    const yes = await curl(args);
    expect(yes.code).toBe(0);
    expect(JSON.parse(yes.stdout)).toMatchObject({ url: '/literal' });
    expect(await metric(env.gw, 'egress_decisions_total', { door: 'socks5', decision: 'allow', reason: 'cidr' })).toBeGreaterThanOrEqual(1);
  });
});
