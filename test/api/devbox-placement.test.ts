/**
 * Fleet placement: `network.host_id` on POST /v1/devboxes names the host whose sidecar serves
 * the devbox; the view shows it, GET /v1/devboxes?host_id= lists that host's devboxes, and a
 * host id that is not one NATS subject token (a dot, a wildcard) is refused. Both backends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, errorOf, startTestApi, TOKEN_B, type TestApi } from '../support/api.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(async () => {
  await api.close();
});

const create = (network: Record<string, unknown>, token?: string) => call(api, 'POST', '/v1/devboxes', { body: { network }, token });

describe('devbox placement (network.host_id)', () => {
  it('is stored, shown, and null when not given', async () => {
    const placed = await create({ addresses: ['10.31.0.1'], host_id: 'node-a' });
    expect(placed.status).toBe(200);
    expect(placed.body.network).toEqual({ addresses: ['10.31.0.1'], host_id: 'node-a' });
    expect((await call(api, 'GET', `/v1/devboxes/${placed.body.id}`)).body.network.host_id).toBe('node-a');
    expect(api.store.getDevbox(placed.body.id)?.host_id).toBe('node-a');

    const unplaced = await create({ addresses: ['10.31.0.2'] });
    expect(unplaced.body.network.host_id).toBeNull();
  });

  it("GET /v1/devboxes?host_id= lists only that host's devboxes of the account", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await create({ addresses: [`10.32.0.${i + 1}`], host_id: 'node-b' })).body.id);
    await create({ addresses: ['10.32.1.1'], host_id: 'node-c' });
    await create({ addresses: ['10.32.2.1'], host_id: 'node-b' }, TOKEN_B); // another account's

    const r = await call(api, 'GET', '/v1/devboxes?host_id=node-b&limit=2');
    expect(r.status).toBe(200);
    expect(r.body.total_count).toBe(3);
    expect(r.body.has_more).toBe(true);
    const next = await call(api, 'GET', `/v1/devboxes?host_id=node-b&starting_after=${r.body.devboxes[1].id}`);
    expect([...r.body.devboxes, ...next.body.devboxes].map((d: { id: string }) => d.id)).toEqual(ids);
    expect((await call(api, 'GET', '/v1/devboxes?host_id=nowhere')).body.devboxes).toEqual([]);
  });

  it('takes a Kubernetes node name (dots included) and refuses wildcards, spaces and over-long ids', async () => {
    const node = 'ip-10-0-1-2.eu-west-1.compute.internal';
    expect((await create({ addresses: [], host_id: node })).status).toBe(200);
    expect((await call(api, 'GET', `/v1/devboxes?host_id=${node}`)).body.devboxes).toHaveLength(1);
    for (const bad of ['node*', 'node>', '', 'x'.repeat(254), 'sp ace', '-lead', '.lead']) {
      const r = await create({ addresses: [], host_id: bad });
      expect(errorOf(r, 400)).toMatch(/host_id/);
    }
    expect(errorOf(await call(api, 'GET', '/v1/devboxes?host_id=node*'), 400)).toMatch(/host_id/);
  });
});
