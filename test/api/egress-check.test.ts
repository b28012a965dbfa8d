/** POST /v1/egress/check explains the decision the doors would enforce. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, errorOf, startTestApi, type TestApi } from '../support/api.js';

let api: TestApi;
let policyId: string;
beforeAll(async () => {
  api = await startTestApi();
  policyId = (
    await call(api, 'POST', '/v1/network-policies', {
      body: { name: 'check', allowed_hostnames: ['github.com', '*.npmjs.org'], allowed_cidrs: [{ cidr: '8.8.8.0/24', ports: [{ port: 53, protocol: 'UDP' }] }] },
    })
  ).body.id;
});
afterAll(async () => {
  await api.close();
});

const check = (body: Record<string, unknown>) => call(api, 'POST', '/v1/egress/check', { body });

describe('egress check', () => {
  it('allows listed names with the entry that matched', async () => {
    const r = await check({ network_policy_id: policyId, host: 'registry.npmjs.org', port: 443 });
    expect(r.body).toMatchObject({ decision: 'allow', reason: 'hostname', matched: '*.npmjs.org', host: 'registry.npmjs.org', port: 443, network_policy_id: policyId, policy_version: 1 });
  });

  it('denies the apex of a wildcard, unknown names and private addresses', async () => {
    expect((await check({ network_policy_id: policyId, host: 'npmjs.org' })).body).toMatchObject({ decision: 'deny', reason: 'not_allowlisted', port: 443 });
    expect((await check({ network_policy_id: policyId, host: 'evil.com' })).body.decision).toBe('deny');
    expect((await check({ network_policy_id: policyId, host: '169.254.169.254', port: 80 })).body).toMatchObject({ decision: 'deny', reason: 'private_address' });
  });

  it('says why a denial is one and what would allow it, as the doors do', async () => {
    expect((await check({ network_policy_id: policyId, host: 'npmjs.org' })).body).toMatchObject({ detail: 'no rule matched (*.npmjs.org does not admit npmjs.org)', remedy: 'add npmjs.org to allowed_hostnames' });
    expect((await check({ network_policy_id: policyId, host: '169.254.169.254', port: 80 })).body).toMatchObject({ detail: '169.254.169.254 in 169.254.0.0/16 (link-local (cloud metadata))', remedy: '--allow-private 169.254.0.0/16' });
    const allowed = (await check({ network_policy_id: policyId, host: 'registry.npmjs.org' })).body;
    expect(allowed.detail).toBeUndefined();
    expect(allowed.remedy).toBeUndefined();
  });

  it('applies CIDR port and protocol rules', async () => {
    expect((await check({ network_policy_id: policyId, host: '8.8.8.8', port: 53, protocol: 'UDP' })).body).toMatchObject({ decision: 'allow', reason: 'cidr', matched: '8.8.8.0/24' });
    expect((await check({ network_policy_id: policyId, host: '8.8.8.8', port: 53, protocol: 'TCP' })).body.decision).toBe('deny');
  });

  it('follows policy updates and reports the version', async () => {
    const p = (await call(api, 'POST', '/v1/network-policies', { body: { name: 'versioned' } })).body;
    expect((await check({ network_policy_id: p.id, host: 'example.com' })).body).toMatchObject({ decision: 'deny', policy_version: 1 });
    await call(api, 'POST', `/v1/network-policies/${p.id}`, { body: { allowed_hostnames: ['example.com'] } });
    expect((await check({ network_policy_id: p.id, host: 'example.com' })).body).toMatchObject({ decision: 'allow', policy_version: 2 });
  });

  it('checks for a devbox through its policy; a shut-down devbox is denied', async () => {
    const d = (await call(api, 'POST', '/v1/devboxes', { body: { launch_parameters: { network_policy_id: policyId } } })).body;
    expect((await check({ devbox_id: d.id, host: 'github.com' })).body).toMatchObject({ decision: 'allow', network_policy_id: policyId, devbox_id: d.id });
    await call(api, 'POST', `/v1/devboxes/${d.id}/shutdown`);
    expect((await check({ devbox_id: d.id, host: 'github.com' })).body.decision).toBe('deny');
  });

  it('rejects bad requests', async () => {
    expect(errorOf(await check({ host: 'github.com' }), 400)).toMatch(/exactly one/);
    expect(errorOf(await check({ network_policy_id: policyId, devbox_id: 'dbx_x', host: 'github.com' }), 400)).toMatch(/exactly one/);
    expect(errorOf(await check({ network_policy_id: policyId }), 400)).toBe('missing required field "host"');
    expect(errorOf(await check({ network_policy_id: policyId, host: 'a.com', port: 70000 }), 400)).toContain('"port"');
    expect(errorOf(await check({ network_policy_id: policyId, host: 'a.com', protocol: 'ICMP' }), 400)).toContain('"protocol"');
    expect(errorOf(await check({ devbox_id: 'dbx_missing', host: 'a.com' }), 400)).toContain('dbx_missing');
  });
});
