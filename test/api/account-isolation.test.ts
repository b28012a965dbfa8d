/** Bearer tokens map to accounts; an account sees only its own policies and devboxes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, errorOf, startTestApi, TOKEN_A, TOKEN_B, type TestApi } from '../support/api.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(async () => {
  await api.close();
});

describe('authentication', () => {
  it('a missing token is a 401', async () => {
    const r = await call(api, 'GET', '/v1/network-policies', { token: null });
    expect(errorOf(r, 401)).toMatch(/bearer token/i);
    expect(r.body.error.code).toBe('unauthorized');
  });

  it('an unknown token is a 401', async () => {
    expect(errorOf(await call(api, 'GET', '/v1/network-policies', { token: 'not-a-token' }), 401)).toMatch(/unknown/);
    expect(errorOf(await call(api, 'POST', '/v1/network-policies', { token: 'not-a-token', body: { name: 'x' } }), 401)).toMatch(/unknown/);
    expect(errorOf(await call(api, 'POST', '/v1/devboxes', { token: 'not-a-token', body: {} }), 401)).toMatch(/unknown/);
  });

  it('a non-Bearer scheme is a 401', async () => {
    const r = await call(api, 'GET', '/v1/network-policies', { token: null, headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    expect(errorOf(r, 401)).toMatch(/bearer/i);
  });

  it('/healthz, /metrics and /openapi.json need no token', async () => {
    expect((await call(api, 'GET', '/healthz', { token: null })).body).toEqual({ status: 'ok' });
    expect((await call(api, 'GET', '/metrics', { token: null })).status).toBe(200);
    expect((await call(api, 'GET', '/openapi.json', { token: null })).status).toBe(200);
  });
});

describe('two accounts', () => {
  it("cannot see, change or delete each other's policies (404), and names are per account", async () => {
    const a = await call(api, 'POST', '/v1/network-policies', { token: TOKEN_A, body: { name: 'shared-name' } });
    const b = await call(api, 'POST', '/v1/network-policies', { token: TOKEN_B, body: { name: 'shared-name' } });
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    const idA = a.body.id as string;

    expect(errorOf(await call(api, 'GET', `/v1/network-policies/${idA}`, { token: TOKEN_B }), 404)).toContain(idA);
    expect(errorOf(await call(api, 'POST', `/v1/network-policies/${idA}`, { token: TOKEN_B, body: { name: 'stolen' } }), 404)).toContain(idA);
    expect(errorOf(await call(api, 'POST', `/v1/network-policies/${idA}/delete`, { token: TOKEN_B }), 404)).toContain(idA);

    const listB = await call(api, 'GET', '/v1/network-policies', { token: TOKEN_B });
    expect(listB.body.network_policies.map((p: { id: string }) => p.id)).toEqual([b.body.id]);
    expect(listB.body.total_count).toBe(1);
    const byId = await call(api, 'GET', `/v1/network-policies?id=${idA}`, { token: TOKEN_B });
    expect(byId.body.network_policies).toEqual([]);

    const still = await call(api, 'GET', `/v1/network-policies/${idA}`, { token: TOKEN_A });
    expect(still.body.name).toBe('shared-name');
  });

  it("cannot see each other's devboxes, nor attach the other account's policy", async () => {
    const polA = (await call(api, 'POST', '/v1/network-policies', { token: TOKEN_A, body: { name: 'a-only' } })).body;
    const dbxA = (await call(api, 'POST', '/v1/devboxes', { token: TOKEN_A, body: { network: { addresses: ['10.50.0.1'] } } })).body;
    expect(errorOf(await call(api, 'GET', `/v1/devboxes/${dbxA.id}`, { token: TOKEN_B }), 404)).toContain(dbxA.id);
    expect(errorOf(await call(api, 'POST', `/v1/devboxes/${dbxA.id}/shutdown`, { token: TOKEN_B }), 404)).toContain(dbxA.id);
    expect((await call(api, 'GET', '/v1/devboxes', { token: TOKEN_B })).body.devboxes).toEqual([]);
    const msg = errorOf(await call(api, 'POST', '/v1/devboxes', { token: TOKEN_B, body: { launch_parameters: { network_policy_id: polA.id } } }), 400);
    expect(msg).toContain(polA.id);
    expect(errorOf(await call(api, 'POST', '/v1/egress/check', { token: TOKEN_B, body: { network_policy_id: polA.id, host: 'github.com' } }), 400)).toContain(polA.id);
  });
});
