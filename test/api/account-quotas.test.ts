/**
 * What one account may store is bounded, each bound answered 403 quota_exceeded naming the
 * quota, its limit and its setting; another account is not affected; list pages stop at
 * the byte budget with has_more, and paging with starting_after still reaches every item.
 * (The attack these bounds answer: test/attacks/api-list-stalls-doors.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_B, call, errorOf, startTestApi, type TestApi } from '../support/api.js';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi({
    extraFlags: [
      ['max-policies-per-account', ['3']],
      ['max-entries-per-policy', ['4']],
      ['max-entries-per-account', ['6']],
      ['max-devboxes-per-account', ['2']],
      ['max-addresses-per-account', ['3']],
      ['api-page-bytes', ['65536']],
    ],
  });
});
afterAll(async () => api?.close());

const policy = (name: string, hosts: string[], token?: string) => call(api, 'POST', '/v1/network-policies', { token, body: { name, allowed_hostnames: hosts } });

describe('account quotas', () => {
  it('entries per policy, on create and on update', async () => {
    const msg = errorOf(await policy('big', ['a.test', 'b.test', 'c.test', 'd.test', 'e.test']), 403);
    expect(msg).toMatch(/quota entries_per_policy exceeded.*limit is 4 \(--max-entries-per-policy\)/);
    const ok = await policy('p1', ['a.test', 'b.test']);
    expect(ok.status).toBe(200);
    const up = await call(api, 'POST', `/v1/network-policies/${ok.body.id}`, { body: { allowed_hostnames: ['a.test'], allowed_cidrs: [{ cidr: '10.0.0.0/8' }, { cidr: '10.1.0.0/16' }, { cidr: '10.2.0.0/16' }, { cidr: '10.3.0.0/16' }] } });
    expect(errorOf(up, 403)).toMatch(/entries_per_policy/);
    expect(up.body.error.code).toBe('quota_exceeded');
  });

  it('entries per account, counting the policy being replaced once', async () => {
    expect((await policy('p2', ['c.test', 'd.test', 'e.test'])).status).toBe(200); // 2 + 3 = 5
    expect(errorOf(await policy('p3', ['f.test', 'g.test']), 403)).toMatch(/quota entries_per_account exceeded.*--max-entries-per-account/);
    const p1 = (await call(api, 'GET', '/v1/network-policies?name=p1')).body.network_policies[0].id as string;
    // Replacing p1's 2 entries with 3: 3 + 3 = 6, at the limit, allowed.
    expect((await call(api, 'POST', `/v1/network-policies/${p1}`, { body: { allowed_hostnames: ['x.test', 'y.test', 'z.test'] } })).status).toBe(200);
  });

  it('policies per account; another account has its own', async () => {
    expect((await policy('p3', [])).status).toBe(200);
    expect(errorOf(await policy('p4', []), 403)).toMatch(/quota policies_per_account exceeded.*limit is 3/);
    expect((await policy('theirs', ['a.test'], TOKEN_B)).status).toBe(200);
  });

  it('running devboxes and addresses per account; a shut-down devbox frees both', async () => {
    const d1 = await call(api, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.9.0.1', '10.9.0.2'] } } });
    expect(d1.status).toBe(200);
    expect(errorOf(await call(api, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.9.0.3', '10.9.0.4'] } } }), 403)).toMatch(/quota addresses_per_account exceeded/);
    expect((await call(api, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.9.0.3'] } } })).status).toBe(200);
    expect(errorOf(await call(api, 'POST', '/v1/devboxes', { body: {} }), 403)).toMatch(/quota devboxes_per_account exceeded.*--max-devboxes-per-account/);
    expect((await call(api, 'POST', `/v1/devboxes/${d1.body.id}/shutdown`)).status).toBe(200);
    expect((await call(api, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.9.0.1', '10.9.0.2'] } } })).status).toBe(200);
  });
});

describe('byte-bounded pages', () => {
  it('stop early with has_more, and starting_after reaches every item', async () => {
    const wide = await startTestApi({ extraFlags: [['api-page-bytes', ['65536']]] });
    try {
      const desc = 'd'.repeat(4096);
      const hosts = Array.from({ length: 40 }, (_, i) => `host-${i}.${'x'.repeat(60)}.example`);
      for (let i = 0; i < 30; i++) expect((await call(wide, 'POST', '/v1/network-policies', { body: { name: `wide-${i}`, description: desc, allowed_hostnames: hosts } })).status).toBe(200);
      const first = await call(wide, 'GET', '/v1/network-policies?limit=100');
      expect(first.body.has_more).toBe(true);
      expect(first.body.network_policies.length).toBeGreaterThan(0);
      expect(first.body.network_policies.length).toBeLessThan(30);
      expect(first.text.length).toBeLessThanOrEqual(65536 + 8192);
      const seen: string[] = first.body.network_policies.map((p: { id: string }) => p.id);
      let page = first;
      while (page.body.has_more) {
        page = await call(wide, 'GET', `/v1/network-policies?limit=100&starting_after=${seen.at(-1)}`);
        seen.push(...page.body.network_policies.map((p: { id: string }) => p.id));
      }
      expect(new Set(seen).size).toBe(30);
    } finally {
      await wide.close();
    }
  });
});
