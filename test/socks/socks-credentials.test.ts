/** RFC 1929 username/password: devbox id + password; credentials beat the source address. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SocksEnv, curl, denyMetric, httpGet, metric, rawExchange, socksConnect, startSocksEnv } from '../support/socks.js';

let env: SocksEnv;
let a: { id: string; username: string; password: string };
let b: { id: string; username: string; password: string };

function authBytes(user: string, pass: string): Buffer {
  const u = Buffer.from(user);
  const p = Buffer.from(pass);
  return Buffer.from([5, 1, 2, 1, u.length, ...u, p.length, ...p]);
}

beforeAll(async () => {
  env = await startSocksEnv();
  const api = env.gw.api;
  const pa = await api.policy('creds-a', { allowed_hostnames: ['allowed.test'] });
  const pb = await api.policy('creds-b', { allowed_hostnames: ['other.test'] });
  a = await api.devbox(pa, ['127.0.0.2'], 'creds-a');
  b = await api.devbox(pb, [], 'creds-b');
});
afterAll(() => env?.close());

describe('SOCKS5 username/password', () => {
  it('right credentials from an unregistered address are admitted; body intact', async () => {
    const sock = await socksConnect(env.socksPort, { host: 'allowed.test', port: env.origin.port }, { userId: a.username, password: a.password, localAddress: '127.0.0.9' });
    const res = await httpGet(sock, 'allowed.test', '/bytes/70000');
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(70000);
  });

  it('wrong password: RFC 1929 status 0x01, then close', async () => {
    const before = await metric(env.gw, 'egress_decisions_total', denyMetric('unknown_client'));
    const r = await rawExchange(env.socksPort, authBytes(a.username, 'not-the-password'));
    expect([...r.received]).toEqual([5, 2, 1, 1]);
    expect(r.closed).toBe(true);
    expect(await metric(env.gw, 'egress_decisions_total', denyMetric('unknown_client'))).toBe(before + 1);
  });

  it('unknown username: status 0x01', async () => {
    const r = await rawExchange(env.socksPort, authBytes('dbx_nope', 'x'));
    expect([...r.received]).toEqual([5, 2, 1, 1]);
  });

  it('the socks package reports an authentication failure', async () => {
    await expect(socksConnect(env.socksPort, { host: 'allowed.test', port: env.origin.port }, { userId: a.username, password: 'wrong' })).rejects.toThrow(/Authentication/i);
  });

  it('credentials beat the source address: devbox B creds from devbox A address use B policy', async () => {
    await expect(socksConnect(env.socksPort, { host: 'allowed.test', port: env.origin.port }, { userId: b.username, password: b.password, localAddress: '127.0.0.2' })).rejects.toThrow(/NotAllowed/);
    const sock = await socksConnect(env.socksPort, { host: 'other.test', port: env.origin.port }, { userId: b.username, password: b.password, localAddress: '127.0.0.2' });
    expect((await httpGet(sock, 'other.test', '/b')).status).toBe(200);
  });

  it('curl with socks5h://user:pass@ works; a wrong password fails', async () => {
    const ok = await curl(['--proxy', `socks5h://${a.username}:${encodeURIComponent(a.password)}@127.0.0.1:${env.socksPort}`, `http://allowed.test:${env.origin.port}/c`]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ url: '/c' });
    const bad = await curl(['--proxy', `socks5h://${a.username}:wrong@127.0.0.1:${env.socksPort}`, `http://allowed.test:${env.origin.port}/c`]);
    expect(bad.code).not.toBe(0);
  });

  it('credentials stop working when the devbox shuts down', async () => {
    const api = env.gw.api;
    const p = await api.policy('creds-c', { allowed_hostnames: ['allowed.test'] });
    const c = await api.devbox(p, [], 'creds-c');
    const sock = await socksConnect(env.socksPort, { host: 'allowed.test', port: env.origin.port }, { userId: c.username, password: c.password });
    sock.destroy();
    await api.shutdown(c.id);
    const r = await rawExchange(env.socksPort, authBytes(c.username, c.password));
    expect([...r.received]).toEqual([5, 2, 1, 1]);
  });
});
