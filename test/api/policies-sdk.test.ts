/** The official SDK, default options (HTTP/2 cleartext), against the real API. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Runloop from '@runloop/api-client';
import { startTestApi, TOKEN_A, type TestApi } from '../support/api.js';

let api: TestApi;
let client: Runloop;

beforeAll(async () => {
  api = await startTestApi();
  client = new Runloop({ bearerToken: TOKEN_A, baseURL: api.base });
});
afterAll(async () => {
  await api.close();
});

describe('network policies through @runloop/api-client', () => {
  it('creates, retrieves, updates and deletes a policy', async () => {
    const created = await client.networkPolicies.create({
      name: 'sdk-basic',
      description: 'from the SDK',
      allowed_hostnames: ['GitHub.com', '*.npmjs.org', 'github.com.'],
      allow_agent_gateway: true,
      allowed_cidrs: [{ cidr: '10.12.0.0/16', ports: [{ port: 443 }, { port: 8000, end_port: 8100, protocol: 'TCP' }] }],
    });
    expect(created.id).toMatch(/^npol_[0-9a-z]{22}$/);
    expect(created.name).toBe('sdk-basic');
    expect(created.description).toBe('from the SDK');
    expect(created.egress).toEqual({
      allow_all: false,
      allow_devbox_to_devbox: false,
      allowed_hostnames: ['github.com', '*.npmjs.org'],
      allow_agent_gateway: true,
      allow_mcp_gateway: false,
      allow_runloop_mirrors: false,
      allowed_cidrs: [{ cidr: '10.12.0.0/16', ports: [{ port: 443 }, { port: 8000, end_port: 8100, protocol: 'TCP' }] }],
    });
    expect(created.create_time_ms).toBeGreaterThan(Date.now() - 60_000);
    expect(created.update_time_ms).toBe(created.create_time_ms);

    const got = await client.networkPolicies.retrieve(created.id);
    expect(got).toEqual(created);

    // Omitted and null fields keep their values; provided fields replace entirely.
    const updated = await client.networkPolicies.update(created.id, {
      allowed_hostnames: ['api.openai.com'],
      description: null,
      allow_mcp_gateway: null,
    });
    expect(updated.name).toBe('sdk-basic');
    expect(updated.description).toBe('from the SDK');
    expect(updated.egress.allowed_hostnames).toEqual(['api.openai.com']);
    expect(updated.egress.allow_agent_gateway).toBe(true);
    expect(updated.egress.allowed_cidrs).toEqual(created.egress.allowed_cidrs);
    expect(updated.update_time_ms).toBeGreaterThanOrEqual(created.update_time_ms);
    expect(api.store.getPolicy(created.id)!.version).toBe(2);

    const renamed = await client.networkPolicies.update(created.id, { name: 'sdk-renamed', allowed_cidrs: [] });
    expect(renamed.name).toBe('sdk-renamed');
    expect(renamed.egress.allowed_cidrs).toEqual([]);
    expect(api.store.getPolicy(created.id)!.version).toBe(3);

    const deleted = await client.networkPolicies.delete(created.id);
    expect(deleted.id).toBe(created.id);
    expect(deleted.name).toBe('sdk-renamed');
    await expect(client.networkPolicies.retrieve(created.id)).rejects.toMatchObject({ status: 404 });
  });

  it('allow_all forces allow_devbox_to_devbox on create and on update', async () => {
    const p = await client.networkPolicies.create({ name: 'sdk-open', allow_all: true, allow_devbox_to_devbox: false });
    expect(p.egress.allow_all).toBe(true);
    expect(p.egress.allow_devbox_to_devbox).toBe(true);

    const q = await client.networkPolicies.create({ name: 'sdk-closed' });
    expect(q.egress.allow_devbox_to_devbox).toBe(false);
    const u = await client.networkPolicies.update(q.id, { allow_all: true });
    expect(u.egress.allow_devbox_to_devbox).toBe(true);
    const v = await client.networkPolicies.update(q.id, { allow_devbox_to_devbox: false });
    expect(v.egress.allow_all).toBe(true);
    expect(v.egress.allow_devbox_to_devbox).toBe(true);
    const w = await client.networkPolicies.update(q.id, { allow_all: false, allow_devbox_to_devbox: false, allow_runloop_mirrors: true });
    expect(w.egress).toMatchObject({ allow_all: false, allow_devbox_to_devbox: false, allow_runloop_mirrors: true });
  });

  it('list() auto-paginates over 250 policies, visiting each exactly once in creation order', async () => {
    const mine: string[] = [];
    for (let i = 0; i < 250; i++) {
      const p = await client.networkPolicies.create({ name: `page-${String(i).padStart(3, '0')}` });
      mine.push(p.id);
    }
    const seen: string[] = [];
    for await (const p of client.networkPolicies.list({ name: 'page-', limit: 7 })) seen.push(p.id);
    expect(seen.length).toBe(250);
    expect(new Set(seen).size).toBe(250);
    expect(seen).toEqual(mine);

    const firstPage = await client.networkPolicies.list({ name: 'PAGE-', limit: 100 });
    expect(firstPage.network_policies.length).toBe(100);
    expect(firstPage.has_more).toBe(true);
    expect(firstPage.total_count).toBe(250);

    // Default page size is 20.
    const dflt = await client.networkPolicies.list({ name: 'page-' });
    expect(dflt.network_policies.length).toBe(20);
    // 250 sequential writes, each applied by the doors before its answer: generous on a loaded 2-core box.
  }, 120_000);

  it('surfaces API errors as SDK errors with the status', async () => {
    await expect(client.networkPolicies.create({ name: 'bad', allowed_hostnames: ['*'] })).rejects.toMatchObject({ status: 400 });
    const other = new Runloop({ bearerToken: 'wrong-token', baseURL: api.base, maxRetries: 0 });
    await expect(other.networkPolicies.list()).rejects.toMatchObject({ status: 401 });
  });
});
