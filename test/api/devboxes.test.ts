/** Devbox registration: create with addresses and policy, credentials once, list/update/shutdown, policy-in-use. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, errorOf, startTestApi, type TestApi } from '../support/api.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(async () => {
  await api.close();
});

const policy = async (name: string, body: Record<string, unknown> = {}) => (await call(api, 'POST', '/v1/network-policies', { body: { name, ...body } })).body;

describe('POST /v1/devboxes', () => {
  it('registers a running devbox and hands out proxy credentials once', async () => {
    const p = await policy('dbx-policy', { allowed_hostnames: ['github.com'] });
    const r = await call(api, 'POST', '/v1/devboxes', {
      body: { name: 'worker-1', metadata: { team: 'infra' }, launch_parameters: { network_policy_id: p.id }, network: { addresses: ['10.0.0.7', '0:0:0:0:0:ffff:10.0.0.8', 'FD00::1'] } },
    });
    expect(r.status).toBe(200);
    const d = r.body;
    expect(d.id).toMatch(/^dbx_[0-9a-z]{22}$/);
    expect(d).toMatchObject({
      name: 'worker-1',
      status: 'running',
      end_time_ms: null,
      launch_parameters: { network_policy_id: p.id },
      metadata: { team: 'infra' },
      network: { addresses: ['10.0.0.7', '10.0.0.8', 'fd00::1'] },
    });
    expect(d.tunnel_key).toMatch(/^[a-z0-9]+$/);
    expect(d.proxy_credentials.username).toBe(d.id);
    expect(d.proxy_credentials.password.length).toBeGreaterThanOrEqual(24);

    // The password works with the engine (the proxy doors' check) and is not stored in clear.
    expect(api.engine.identifyByCredentials(d.id, d.proxy_credentials.password, '10.0.0.7')?.devboxId).toBe(d.id);
    expect(api.engine.identifyByCredentials(d.id, 'wrong', '10.0.0.7')).toBeNull();
    expect(api.store.getDevbox(d.id)!.password_hash).not.toContain(d.proxy_credentials.password);
    expect(api.engine.identifyByAddress('10.0.0.8').devboxId).toBe(d.id);

    const got = await call(api, 'GET', `/v1/devboxes/${d.id}`);
    expect(got.body.proxy_credentials).toBeUndefined();
    const { proxy_credentials: _c, ...view } = d;
    expect(got.body).toEqual(view);
  });

  it('a devbox without a policy gets the default: deny all', async () => {
    const d = (await call(api, 'POST', '/v1/devboxes', { body: {} })).body;
    expect(d.launch_parameters.network_policy_id).toBeNull();
    expect(d.network.addresses).toEqual([]);
    const check = await call(api, 'POST', '/v1/egress/check', { body: { devbox_id: d.id, host: 'github.com' } });
    expect(check.body).toMatchObject({ decision: 'deny', reason: 'not_allowlisted', network_policy_id: null });
  });

  it('rejects unknown policies, bad and clashing addresses, bad metadata', async () => {
    expect(errorOf(await call(api, 'POST', '/v1/devboxes', { body: { launch_parameters: { network_policy_id: 'npol_missing' } } }), 400)).toContain('npol_missing');
    expect(errorOf(await call(api, 'POST', '/v1/devboxes', { body: { network: { addresses: ['not-an-ip'] } } }), 400)).toContain('network.addresses[0]');
    expect(errorOf(await call(api, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.0.0.0/24'] } } }), 400)).toContain('"10.0.0.0/24"');
    expect(errorOf(await call(api, 'POST', '/v1/devboxes', { body: { metadata: { n: 1 } } }), 400)).toContain('metadata.n');
    expect(errorOf(await call(api, 'POST', '/v1/devboxes', { body: { blueprint_id: 'x' } }), 400)).toBe('blueprint_id: blueprint x does not exist in this account');
    expect(errorOf(await call(api, 'POST', '/v1/devboxes', { body: { blueprint_name: 'x' } }), 400)).toBe('unknown field "blueprint_name"');

    const first = (await call(api, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.9.9.9'] } } })).body;
    const clash = await call(api, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.9.9.10', '::ffff:10.9.9.9'] } } });
    expect(errorOf(clash, 400)).toContain('10.9.9.9');
    expect(clash.body.error.message).toContain(first.id);
    expect(api.engine.identifyByAddress('10.9.9.10').devboxId).toBeNull(); // nothing half-written

    // Once the first devbox shuts down, its address is free again.
    await call(api, 'POST', `/v1/devboxes/${first.id}/shutdown`);
    expect((await call(api, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.9.9.9'] } } })).status).toBe(200);
  });
});

describe('devbox lifecycle', () => {
  it('updates name, metadata and policy; the engine follows', async () => {
    const open = await policy('lifecycle-open', { allowed_hostnames: ['example.org'] });
    const d = (await call(api, 'POST', '/v1/devboxes', { body: { name: 'lc', network: { addresses: ['10.1.1.1'] } } })).body;
    expect((await call(api, 'POST', '/v1/egress/check', { body: { devbox_id: d.id, host: 'example.org' } })).body.decision).toBe('deny');

    const u = await call(api, 'POST', `/v1/devboxes/${d.id}`, { body: { metadata: { k: 'v' }, launch_parameters: { network_policy_id: open.id } } });
    expect(u.status).toBe(200);
    expect(u.body).toMatchObject({ name: 'lc', metadata: { k: 'v' }, launch_parameters: { network_policy_id: open.id } });
    expect((await call(api, 'POST', '/v1/egress/check', { body: { devbox_id: d.id, host: 'example.org' } })).body.decision).toBe('allow');

    const kept = await call(api, 'POST', `/v1/devboxes/${d.id}`, { body: { name: null } });
    expect(kept.body.name).toBe('lc');
    expect(kept.body.launch_parameters.network_policy_id).toBe(open.id);

    const detached = await call(api, 'POST', `/v1/devboxes/${d.id}`, { body: { launch_parameters: { network_policy_id: null } } });
    expect(detached.body.launch_parameters.network_policy_id).toBeNull();
    expect(errorOf(await call(api, 'POST', `/v1/devboxes/${d.id}`, { body: { launch_parameters: { network_policy_id: 'npol_nope' } } }), 400)).toContain('npol_nope');
    expect(errorOf(await call(api, 'POST', '/v1/devboxes/dbx_nope', { body: { name: 'x' } }), 404)).toContain('dbx_nope');
  });

  it('shutdown ends the devbox; list filters by status and pages', async () => {
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await call(api, 'POST', '/v1/devboxes', { body: { name: `list-${i}`, network: { addresses: [`10.2.0.${i + 1}`] } } })).body.id);
    const s = await call(api, 'POST', `/v1/devboxes/${made[1]}/shutdown`, { body: '', headers: { 'content-type': 'application/json' } });
    expect(s.status).toBe(200);
    expect(s.body.status).toBe('shutdown');
    expect(s.body.end_time_ms).toBeGreaterThanOrEqual(s.body.create_time_ms);
    expect(api.engine.identifyByAddress('10.2.0.2').devboxId).toBeNull();
    // Shutting down twice is harmless.
    expect((await call(api, 'POST', `/v1/devboxes/${made[1]}/shutdown`)).body.status).toBe('shutdown');
    expect(errorOf(await call(api, 'POST', '/v1/devboxes/dbx_nope/shutdown'), 404)).toContain('dbx_nope');

    const down = await call(api, 'GET', '/v1/devboxes?status=shutdown&limit=100');
    expect(down.body.devboxes.map((d: { id: string }) => d.id)).toContain(made[1]);
    expect(down.body.devboxes.every((d: { status: string }) => d.status === 'shutdown')).toBe(true);
    const running = await call(api, 'GET', '/v1/devboxes?status=running&limit=100');
    expect(running.body.devboxes.map((d: { id: string }) => d.id)).not.toContain(made[1]);
    expect(errorOf(await call(api, 'GET', '/v1/devboxes?status=sleeping'), 400)).toContain('"status"');

    const seen: string[] = [];
    let after = '';
    for (;;) {
      const r = await call(api, 'GET', `/v1/devboxes?limit=2${after ? `&starting_after=${after}` : ''}`);
      seen.push(...r.body.devboxes.map((d: { id: string }) => d.id));
      if (!r.body.has_more) {
        expect(r.body.total_count).toBe(seen.length);
        break;
      }
      after = seen.at(-1)!;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.slice(-5)).toEqual(made);
  });
});

describe('deleting a policy in use', () => {
  it('is a 400 naming the running devboxes; after shutdown the delete succeeds', async () => {
    const p = await policy('in-use');
    const d1 = (await call(api, 'POST', '/v1/devboxes', { body: { launch_parameters: { network_policy_id: p.id } } })).body;
    const d2 = (await call(api, 'POST', '/v1/devboxes', { body: { launch_parameters: { network_policy_id: p.id } } })).body;
    const r = await call(api, 'POST', `/v1/network-policies/${p.id}/delete`);
    const msg = errorOf(r, 400);
    expect(r.body.error.code).toBe('policy_in_use');
    expect(msg).toContain(d1.id);
    expect(msg).toContain(d2.id);
    expect((await call(api, 'GET', `/v1/network-policies/${p.id}`)).status).toBe(200);

    await call(api, 'POST', `/v1/devboxes/${d1.id}/shutdown`);
    const again = errorOf(await call(api, 'POST', `/v1/network-policies/${p.id}/delete`), 400);
    expect(again).not.toContain(d1.id);
    expect(again).toContain(d2.id);
    await call(api, 'POST', `/v1/devboxes/${d2.id}/shutdown`);
    const del = await call(api, 'POST', `/v1/network-policies/${p.id}/delete`);
    expect(del.status).toBe(200);
    expect(del.body.name).toBe('in-use');
    expect(errorOf(await call(api, 'POST', `/v1/network-policies/${p.id}/delete`), 404)).toContain(p.id);
  });
});
