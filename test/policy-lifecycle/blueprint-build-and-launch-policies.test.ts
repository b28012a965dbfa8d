/**
 * Blueprints (seed subset) through the official SDK on its default transport (h2c): a build
 * registers its addresses and is enforced with the build policy while queued, provisioning
 * or building, and not at all once it is done; a devbox created from the blueprint is
 * enforced with the blueprint's launch policy unless it names its own. Traffic goes through
 * the real HTTP proxy with curl from each client's own source address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import Runloop from '@runloop/api-client';
import { type DnsUpstream, loopbackRecords, startDnsUpstream } from '../support/dns-upstream.js';
import { type Origin, startHttpOrigin } from '../support/origin.js';
import { type TestGateway, TOKEN_A, TOKEN_B, startTestGateway } from '../support/gateway.js';

const BUILD_SOURCE = '127.0.0.88';
const DEVBOX_SOURCE = '127.0.0.89';
const OWN_SOURCE = '127.0.0.90';

let dns: DnsUpstream;
let origin: Origin;
let gw: TestGateway;
let client: Runloop;
let buildPolicy: string;
let launchPolicy: string;
let ownPolicy: string;

/** curl through the HTTP proxy from `source`: status and the denial reason header. */
function curl(source: string, host: string): Promise<{ status: number; reason: string | null }> {
  return new Promise((resolve) =>
    execFile('curl', ['-s', '-o', '/dev/null', '-D', '-', '-w', '%{http_code}', '--max-time', '5', '--interface', source, '-x', `http://127.0.0.1:${gw.addr('http-proxy').port}`, `http://${host}:${origin.port}/`], (_e, stdout) => {
      resolve({ status: Number(stdout.slice(-3)), reason: /x-egress-denied-reason:\s*(\S+)/i.exec(stdout)?.[1] ?? null });
    }),
  );
}

type Extra = Record<string, unknown>;

beforeAll(async () => {
  dns = await startDnsUpstream({ records: loopbackRecords(['build.example.com', 'launch.example.com', 'own.example.com']) });
  origin = await startHttpOrigin();
  gw = await startTestGateway({ upstreamDnsPort: dns.port });
  client = new Runloop({ bearerToken: TOKEN_A, baseURL: gw.apiUrl, maxRetries: 0 });
  buildPolicy = (await client.networkPolicies.create({ name: 'build', allowed_hostnames: ['build.example.com'] })).id;
  launchPolicy = (await client.networkPolicies.create({ name: 'launch', allowed_hostnames: ['launch.example.com'] })).id;
  ownPolicy = (await client.networkPolicies.create({ name: 'own', allowed_hostnames: ['own.example.com'] })).id;
});

afterAll(async () => {
  await gw?.close();
  await origin?.close();
  await dns?.close();
});

describe('blueprints', () => {
  let bpId: string;

  it('create returns a bpt_ id, status queued and the parameters; the build is enforced with the build policy', async () => {
    const bp = await client.blueprints.create({
      name: 'python-base',
      dockerfile: 'FROM python:3.12',
      network_policy_id: buildPolicy,
      launch_parameters: { network_policy_id: launchPolicy },
      network: { addresses: [BUILD_SOURCE] },
    } as Runloop.BlueprintCreateParams & Extra);
    expect(bp.id).toMatch(/^bpt_[0-9a-z]{22}$/);
    expect(bp).toMatchObject({ name: 'python-base', status: 'queued', state: 'created' });
    expect(bp.parameters).toMatchObject({ name: 'python-base', dockerfile: 'FROM python:3.12', network_policy_id: buildPolicy, launch_parameters: { network_policy_id: launchPolicy } });
    bpId = bp.id;
    expect(await curl(BUILD_SOURCE, 'build.example.com')).toEqual({ status: 200, reason: null });
    expect(await curl(BUILD_SOURCE, 'launch.example.com')).toEqual({ status: 403, reason: 'not_allowlisted' });
  });

  it('stays enforced through provisioning and building; a policy in use by the build cannot be deleted', async () => {
    for (const status of ['provisioning', 'building']) {
      const r = await gw.api.call('POST', `/v1/blueprints/${bpId}/status`, { status });
      expect(r.body.status).toBe(status);
      expect(await curl(BUILD_SOURCE, 'build.example.com')).toEqual({ status: 200, reason: null });
    }
    const del = await gw.api.call('POST', `/v1/network-policies/${buildPolicy}/delete`);
    expect(del.status).toBe(400);
    expect(del.body.error.message).toContain(bpId);
  });

  it('a devbox cannot be created from a blueprint that is not built', async () => {
    const r = await gw.api.call('POST', '/v1/devboxes', { blueprint_id: bpId, network: { addresses: [DEVBOX_SOURCE] } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/not built \(status building\)/);
  });

  it('once built, the build address is no longer admitted', async () => {
    const r = await client.blueprints.retrieve(bpId);
    expect(r.status).toBe('building');
    const done = await gw.api.call('POST', `/v1/blueprints/${bpId}/status`, { status: 'build_complete' });
    expect(done.body).toMatchObject({ status: 'build_complete', network: { addresses: [BUILD_SOURCE] } });
    expect(done.body.build_finish_time_ms).toBeGreaterThan(0);
    expect(await curl(BUILD_SOURCE, 'build.example.com')).toEqual({ status: 403, reason: 'unknown_client' });
    expect((await gw.api.call('POST', `/v1/blueprints/${bpId}/status`, { status: 'building' })).status).toBe(400);
  });

  it('a devbox created from the blueprint (SDK) inherits its launch policy; one naming its own keeps it', async () => {
    const d = await client.devboxes.create({ blueprint_id: bpId, network: { addresses: [DEVBOX_SOURCE] } } as Runloop.DevboxCreateParams & Extra);
    expect(d.launch_parameters.network_policy_id).toBe(launchPolicy);
    expect((d as unknown as { blueprint_id: string }).blueprint_id).toBe(bpId);
    expect(await curl(DEVBOX_SOURCE, 'launch.example.com')).toEqual({ status: 200, reason: null });
    expect(await curl(DEVBOX_SOURCE, 'build.example.com')).toEqual({ status: 403, reason: 'not_allowlisted' });
    const own = await client.devboxes.create({ blueprint_id: bpId, launch_parameters: { network_policy_id: ownPolicy }, network: { addresses: [OWN_SOURCE] } } as Runloop.DevboxCreateParams & Extra);
    expect(own.launch_parameters.network_policy_id).toBe(ownPolicy);
    expect(await curl(OWN_SOURCE, 'own.example.com')).toEqual({ status: 200, reason: null });
    expect(await curl(OWN_SOURCE, 'launch.example.com')).toEqual({ status: 403, reason: 'not_allowlisted' });
  });

  it('lists with the name filter and cursor paging (SDK auto-pagination), account-scoped; delete returns the deleted view', async () => {
    for (let i = 0; i < 3; i++) await client.blueprints.create({ name: `paged-${i}` });
    const names: string[] = [];
    for await (const b of client.blueprints.list({ name: 'PAGED', limit: 2 })) names.push(b.name);
    expect(names).toEqual(['paged-0', 'paged-1', 'paged-2']);
    const page = await gw.api.call('GET', '/v1/blueprints?limit=1');
    expect(page.body).toMatchObject({ has_more: true, total_count: 4 });
    expect((await gw.api.as(TOKEN_B).call('GET', '/v1/blueprints')).body).toMatchObject({ blueprints: [], total_count: 0 });
    expect((await gw.api.as(TOKEN_B).call('GET', `/v1/blueprints/${bpId}`)).status).toBe(404);
    const gone = (await client.blueprints.delete(bpId)) as { id: string; state: string };
    expect(gone).toMatchObject({ id: bpId, state: 'deleted' });
    expect((await gw.api.call('GET', `/v1/blueprints/${bpId}`)).status).toBe(404);
  });

  it('a build on an address a running devbox holds is refused; unknown fields and policies are 400s', async () => {
    const clash = await gw.api.call('POST', '/v1/blueprints', { name: 'clash', network: { addresses: [DEVBOX_SOURCE] } });
    expect(clash.status).toBe(400);
    expect(clash.body.error.code).toBe('address_in_use');
    expect((await gw.api.call('POST', '/v1/blueprints', { name: 'x', network_policy_id: 'npol_nope' })).body.error.message).toMatch(/network_policy_id: network policy npol_nope does not exist/);
    expect((await gw.api.call('POST', '/v1/blueprints', { name: 'x', launch_parameters: { network_policy_id: 'npol_nope' } })).status).toBe(400);
    expect((await gw.api.call('POST', '/v1/blueprints', { name: 'x', code_mounts: [] })).body.error.message).toMatch(/unknown field "code_mounts"/);
  });
});
