/**
 * A client that is not a running devbox's address and gives no credentials gets no open
 * proxy: the door accepts no-auth, then decide() denies the request as unknown_client
 * (reply 0x02), before any DNS lookup or dial. A client offering no usable method gets 0xFF.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDomain, GRANT_NO_AUTH } from '../fixtures/socks5-cases.js';
import { type SocksEnv, curl, denyMetric, failReplyBytes, metric, rawExchange, socksConnect, startSocksEnv } from '../support/socks.js';

let env: SocksEnv;

beforeAll(async () => {
  env = await startSocksEnv();
  const p = await env.gw.api.policy('unknown-allow-all', { allow_all: true });
  await env.gw.api.devbox(p, ['127.0.0.2']);
});
afterAll(() => env?.close());

describe('SOCKS5 unknown client', () => {
  it('no-auth from an unregistered address: reply 0x02, counted as unknown_client, nothing resolved or dialled', async () => {
    const before = await metric(env.gw, 'egress_decisions_total', denyMetric('unknown_client'));
    const dnsBefore = env.dns.countFor('allowed.test');
    const seenBefore = env.origin.seen.length;
    const r = await rawExchange(env.socksPort, connectDomain('allowed.test', env.origin.port), { localAddress: '127.0.0.9' });
    expect(r.received).toEqual(Buffer.concat([Buffer.from(GRANT_NO_AUTH), failReplyBytes(0x02)]));
    expect(r.closed).toBe(true);
    expect(await metric(env.gw, 'egress_decisions_total', denyMetric('unknown_client'))).toBe(before + 1);
    expect(env.dns.countFor('allowed.test')).toBe(dnsBefore);
    expect(env.origin.seen.length).toBe(seenBefore);
  });

  it('an IP literal from an unregistered address is denied too', async () => {
    const r = await rawExchange(env.socksPort, Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, env.origin.port >> 8, env.origin.port & 0xff]), { localAddress: '127.0.0.9' });
    expect(r.received.subarray(2)).toEqual(failReplyBytes(0x02));
  });

  it('the socks package without credentials is refused', async () => {
    await expect(socksConnect(env.socksPort, { host: 'allowed.test', port: env.origin.port }, { localAddress: '127.0.0.9' })).rejects.toThrow(/NotAllowed/);
  });

  it('curl --socks5-hostname from an unregistered interface fails', async () => {
    const r = await curl(['--interface', '127.0.0.9', '--socks5-hostname', `127.0.0.1:${env.socksPort}`, `http://allowed.test:${env.origin.port}/`]);
    expect(r.code).not.toBe(0);
    expect(env.origin.seen.some((s) => s.url === '/' && s.host?.startsWith('allowed.test'))).toBe(false);
  });

  it('the same request from the registered address is allowed (the policy is allow_all)', async () => {
    const r = await curl(['--interface', '127.0.0.2', '--socks5-hostname', `127.0.0.1:${env.socksPort}`, `http://allowed.test:${env.origin.port}/known`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ url: '/known' });
  });

  it('a client offering neither no-auth nor username/password gets 0xFF', async () => {
    const r = await rawExchange(env.socksPort, Buffer.from([5, 2, 0x01, 0x80]), { localAddress: '127.0.0.9' });
    expect([...r.received]).toEqual([5, 0xff]);
    expect(r.closed).toBe(true);
  });
});
