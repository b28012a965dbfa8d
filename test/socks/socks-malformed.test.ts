/** Malformed and refused SOCKS5 input: exact replies, a clean close, a counted protocol error, no crash. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOCKS5_MALFORMED, connectDomain, GRANT_NO_AUTH } from '../fixtures/socks5-cases.js';
import { type SocksEnv, denyMetric, failReplyBytes, httpGet, metric, rawExchange, socksConnect, startSocksEnv } from '../support/socks.js';

let env: SocksEnv;

beforeAll(async () => {
  env = await startSocksEnv();
  const p = await env.gw.api.policy('malformed-allow-all', { allow_all: true });
  await env.gw.api.devbox(p, ['127.0.0.2']);
});
afterAll(() => env?.close());

describe('SOCKS5 malformed input (named fixtures)', () => {
  for (const c of SOCKS5_MALFORMED) {
    it(`${c.name}: answers ${c.reply.length ? Buffer.from(c.reply).toString('hex') : 'nothing'} and closes`, async () => {
      const labels = { door: 'socks5', kind: c.protocolError ?? '' };
      const before = await metric(env.gw, 'egress_protocol_errors_total', labels);
      const r = await rawExchange(env.socksPort, c.send, { localAddress: '127.0.0.2', endAfterSend: c.endAfterSend });
      expect(r.closed).toBe(true);
      expect([...r.received]).toEqual(c.reply);
      if (c.protocolError) expect(await metric(env.gw, 'egress_protocol_errors_total', labels)).toBe(before + 1);
    });
  }

  it('a complete 255-byte domain is judged by decide(): invalid_host, reply 0x02', async () => {
    const before = await metric(env.gw, 'egress_decisions_total', denyMetric('invalid_host'));
    const r = await rawExchange(env.socksPort, connectDomain('a'.repeat(255), 80), { localAddress: '127.0.0.2' });
    expect(r.received).toEqual(Buffer.concat([Buffer.from(GRANT_NO_AUTH), failReplyBytes(0x02)]));
    expect(r.closed).toBe(true);
    expect(await metric(env.gw, 'egress_decisions_total', denyMetric('invalid_host'))).toBe(before + 1);
  });

  it('control bytes, spaces, % and @ in a domain are denied as invalid_host, even under allow_all', async () => {
    for (const name of ['allowed.test\0.evil', 'allowed .test', 'allowed%2etest', 'user@allowed.test', 'a..b']) {
      const r = await rawExchange(env.socksPort, connectDomain(name, 80), { localAddress: '127.0.0.2' });
      expect(r.received, name).toEqual(Buffer.concat([Buffer.from(GRANT_NO_AUTH), failReplyBytes(0x02)]));
    }
  });

  it('still serves a well-formed client afterwards', async () => {
    const sock = await socksConnect(env.socksPort, { host: 'allowed.test', port: env.origin.port }, { localAddress: '127.0.0.2' });
    const res = await httpGet(sock, 'allowed.test', '/after-malformed');
    expect(res.status).toBe(200);
  });
});
