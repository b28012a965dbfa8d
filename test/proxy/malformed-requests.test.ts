/**
 * Threat: parser differentials (smuggling, ambiguous targets, odd encodings) that make the
 * gateway decide on one host while an origin acts on another, or that crash it. Each
 * fixture is refused in HTTP words and never reaches the origin; the proxy keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, curl, rawExchange, startProxyEnv, statusOf } from '../support/proxy.js';
import { MALFORMED_CASES } from '../fixtures/malformed-requests.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

describe('malformed requests', () => {
  for (const c of MALFORMED_CASES) {
    it(c.name, async () => {
      const raw = typeof c.raw === 'string' ? c.raw.replaceAll(':P', `:${env.http.port}`) : c.raw;
      const seen = env.http.seen.length;
      const r = await rawExchange(env.proxyPort, raw, { localAddress: '127.0.0.2', timeoutMs: 1000 });
      const status = statusOf(r.received);
      if (c.expect === null) expect(status === 0 || (status >= 400 && status < 500)).toBe(true);
      else expect(status).toBe(c.expect);
      expect(env.http.seen.length).toBe(seen);
    });
  }

  it('the proxy still serves after all of that', async () => {
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, `http://allowed.test:${env.http.port}/after`]);
    expect(r.status).toBe(200);
  });
});
