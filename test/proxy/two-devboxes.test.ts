/**
 * Threat: one devbox's policy leaking to another. Two devboxes on 127.0.0.2 and 127.0.0.3
 * with different policies, through the same proxy, each get exactly their own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, curl, startProxyEnv } from '../support/proxy.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

describe('two devboxes, two policies', () => {
  const cases: Array<[string, string, number]> = [
    ['127.0.0.2', 'allowed.test', 200],
    ['127.0.0.2', 'other.test', 403],
    ['127.0.0.3', 'allowed.test', 403],
    ['127.0.0.3', 'other.test', 200],
  ];
  for (const [iface, host, want] of cases) {
    it(`${iface} → http://${host} is ${want}`, async () => {
      const r = await curl(['--interface', iface, '-x', env.proxyUrl, `http://${host}:${env.http.port}/${iface}`]);
      expect(r.status).toBe(want);
      if (want === 200) expect(JSON.parse(r.body.toString()).url).toBe(`/${iface}`);
      else expect(JSON.parse(r.body.toString()).policy).toBe(iface === '127.0.0.2' ? env.a.policy : env.b.policy);
    });
    it(`${iface} → CONNECT ${host} is ${want}`, async () => {
      const r = await curl(['--interface', iface, '-x', env.proxyUrl, '-k', `https://${host}:${env.https.port}/bytes/3000`]);
      expect(r.connectStatus).toBe(want);
      if (want === 200) expect(r.body.length).toBe(3000);
    });
  }
});
