/** List paging over raw HTTP: limit, starting_after, has_more, total_count, filters, stable order. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, errorOf, startTestApi, type TestApi } from '../support/api.js';

let api: TestApi;
const ids: string[] = [];
beforeAll(async () => {
  api = await startTestApi();
  for (let i = 0; i < 45; i++) {
    const r = await call(api, 'POST', '/v1/network-policies', { body: { name: i % 3 === 0 ? `Alpha-${i}` : `beta-${i}` } });
    ids.push(r.body.id);
  }
});
afterAll(async () => {
  await api.close();
});

describe('GET /v1/network-policies paging', () => {
  it('ids sort in creation order', () => {
    expect([...ids].sort()).toEqual(ids);
  });

  it('defaults to 20 items with total_count', async () => {
    const r = await call(api, 'GET', '/v1/network-policies');
    expect(r.body.network_policies.length).toBe(20);
    expect(r.body.has_more).toBe(true);
    expect(r.body.total_count).toBe(45);
    expect(r.body.network_policies.map((p: { id: string }) => p.id)).toEqual(ids.slice(0, 20));
  });

  it('starting_after walks every item exactly once; has_more is exact', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const q: string = after ? `&starting_after=${after}` : '';
      const r = await call(api, 'GET', `/v1/network-policies?limit=15${q}`);
      pages++;
      seen.push(...r.body.network_policies.map((p: { id: string }) => p.id));
      if (!r.body.has_more) break;
      after = seen.at(-1)!;
    }
    expect(pages).toBe(3); // 45 = 3 full pages, and the third says has_more: false
    expect(seen).toEqual(ids);
  });

  it('a page that ends exactly at the last item says has_more: false', async () => {
    const r = await call(api, 'GET', `/v1/network-policies?limit=5&starting_after=${ids[39]}`);
    expect(r.body.network_policies.length).toBe(5);
    expect(r.body.has_more).toBe(false);
  });

  it('include_total_count=false leaves total_count out', async () => {
    const r = await call(api, 'GET', '/v1/network-policies?limit=2&include_total_count=false');
    expect(r.body.network_policies.length).toBe(2);
    expect('total_count' in r.body).toBe(false);
    expect(errorOf(await call(api, 'GET', '/v1/network-policies?include_total_count=maybe'), 400)).toContain('include_total_count');
  });

  it('name filters by case-insensitive substring; id filters exactly', async () => {
    const r = await call(api, 'GET', '/v1/network-policies?name=ALPHA&limit=100');
    expect(r.body.total_count).toBe(15);
    expect(r.body.network_policies.every((p: { name: string }) => p.name.startsWith('Alpha-'))).toBe(true);
    const one = await call(api, 'GET', `/v1/network-policies?id=${ids[7]}`);
    expect(one.body.network_policies.map((p: { id: string }) => p.id)).toEqual([ids[7]]);
    expect(one.body.has_more).toBe(false);
    const none = await call(api, 'GET', '/v1/network-policies?name=zzz');
    expect(none.body).toEqual({ network_policies: [], has_more: false, total_count: 0 });
  });

  it('limit 1 and 5000 are fine; 0, 5001, -1, abc, 1.5 are 400s naming limit', async () => {
    expect((await call(api, 'GET', '/v1/network-policies?limit=1')).body.network_policies.length).toBe(1);
    expect((await call(api, 'GET', '/v1/network-policies?limit=5000')).body.network_policies.length).toBe(45);
    for (const bad of ['0', '5001', '-1', 'abc', '1.5', '']) {
      const msg = errorOf(await call(api, 'GET', `/v1/network-policies?limit=${bad}`), 400);
      expect(msg).toContain('"limit"');
    }
  });

  it('unknown query parameters are a 400', async () => {
    expect(errorOf(await call(api, 'GET', '/v1/network-policies?offset=3'), 400)).toBe('unknown query parameter "offset"');
  });
});
