/**
 * Regression pins (withstood today) for hostile API clients: prototype-pollution keys,
 * deeply nested and oversized JSON, huge allowlists, SQL-ish strings, and pagination
 * cursors from another account. The API must answer cleanly and quickly and never let
 * one account see or change another's data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_A, TOKEN_B, startTestGateway, type TestGateway } from '../support/gateway.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => gw?.close());

async function raw(path: string, body: string, token = TOKEN_A): Promise<{ status: number; body: any; ms: number }> {
  const t = performance.now();
  const res = await fetch(gw.apiUrl + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, ms: performance.now() - t };
}

describe('hostile API input', () => {
  it('__proto__ in a body is refused and pollutes nothing; constructor/toString keys are plain data', async () => {
    const r = await raw('/v1/devboxes', '{"name":"p","metadata":{"__proto__":{"polluted":"yes"}}}');
    expect(r.status).toBe(400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const c = await raw('/v1/devboxes', '{"name":"q","metadata":{"constructor":"x","toString":"y","hasOwnProperty":"z"}}');
    expect(c.status).toBe(200);
    expect(c.body.metadata).toEqual({ constructor: 'x', toString: 'y', hasOwnProperty: 'z' });
    const back = await gw.api.call('GET', `/v1/devboxes/${c.body.id}`);
    expect(back.body.metadata).toEqual({ constructor: 'x', toString: 'y', hasOwnProperty: 'z' });
    const pol = await raw('/v1/network-policies', '{"name":"proto","constructor":{"prototype":{"x":1}}}');
    expect(pol.status).toBe(400);
  });

  it('deeply nested JSON is a quick 400, and the API keeps serving', async () => {
    const r = await raw('/v1/network-policies', `{"name":"deep","description":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    expect(r.status).toBe(400);
    expect(r.ms).toBeLessThan(2000);
    expect((await gw.api.call('GET', '/v1/network-policies')).status).toBe(200);
  });

  it('10,001 allowlist entries are a 400; 10,000 are accepted without stalling the loop for long', async () => {
    const over = Array.from({ length: 10_001 }, (_, i) => `h${i}.example.com`);
    const r1 = await raw('/v1/network-policies', JSON.stringify({ name: 'too-many', allowed_hostnames: over }));
    expect(r1.status).toBe(400);
    const ok = Array.from({ length: 10_000 }, (_, i) => `h${i}.example.com`);
    const r2 = await raw('/v1/network-policies', JSON.stringify({ name: 'ten-k', allowed_hostnames: ok }));
    expect(r2.status).toBe(200);
    expect(r2.ms).toBeLessThan(3000);
    const big = await raw('/v1/network-policies', JSON.stringify({ name: 'big', description: 'x'.repeat(2 << 20) }));
    expect(big.status).toBe(413);
  });

  it('SQL-ish names and filters are data', async () => {
    const name = `x' OR 1=1; DROP TABLE network_policies; --`;
    const id = await gw.api.policy(name, {});
    const r = await gw.api.call('GET', `/v1/network-policies?name=${encodeURIComponent("' OR 1=1 --")}`);
    expect(r.status).toBe(200);
    expect(r.body.network_policies).toEqual([]);
    const pct = await gw.api.call('GET', `/v1/network-policies?name=${encodeURIComponent('%')}`);
    expect(pct.body.network_policies).toEqual([]);
    expect((await gw.api.call('GET', `/v1/network-policies/${id}`)).body.name).toBe(name);
  });

  it("starting_after with another account's id pages only through the caller's own items", async () => {
    const theirs = await gw.api.as(TOKEN_B).policy('b-private', { allowed_hostnames: ['secret.b.example.com'] });
    const mine = await gw.api.call('GET', `/v1/network-policies?starting_after=${theirs}&limit=5000`);
    expect(mine.status).toBe(200);
    expect(JSON.stringify(mine.body)).not.toContain('secret.b.example.com');
    expect(mine.body.network_policies.every((p: { id: string }) => p.id > theirs)).toBe(true);
    const byId = await gw.api.call('GET', `/v1/network-policies?id=${theirs}`);
    expect(byId.body.network_policies).toEqual([]);
    const check = await gw.api.call('POST', '/v1/egress/check', { network_policy_id: theirs, host: 'secret.b.example.com' });
    expect(check.status).toBe(400);
  });
});
