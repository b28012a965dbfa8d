/**
 * Per-host scope. Every sidecar used to receive every account's policies (`policy.>`): a
 * compromised host read the whole fleet's allowlists. Now a host receives exactly the policies
 * its running devboxes reference, reference-counted by the publisher: written when the first
 * devbox on the host references one (before that devbox), updated while referenced, tombstoned
 * when the last one goes; a policy no devbox uses is on no host.
 */
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetBase, type Node, api, createPolicy, decisionAt, fleetBase, registerDevbox, setHostnames, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let a: Node;
let h1: Node;
let h2: Node;

/** The policy ids a sidecar's local snapshot holds (its read API). */
async function policiesOn(n: Node): Promise<string[]> {
  const r = await api<{ network_policies: Array<{ id: string }> }>(n.apiUrl, 'GET', '/v1/network-policies?limit=100');
  return r.body.network_policies.map((p) => p.id).sort();
}

beforeAll(async () => {
  base = await fleetBase();
  [a, h1, h2] = await Promise.all([startReplica(base.controlDb, base.nats.url), startSidecar(base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port), startSidecar(base.nats.url, 'h2', join(base.dir, 'h2.db'), base.dns.port)]);
}, 300_000);

afterAll(() => base?.close([a, h1, h2]));

describe('a host receives only the policies its devboxes reference', () => {
  it('reference-counted per host: added with the first devbox, gone with the last; unused policies nowhere', async () => {
    const p1 = await createPolicy(a.apiUrl, 'one', ['allowed.test']);
    const p2 = await createPolicy(a.apiUrl, 'two', ['other.test']);
    const unused = await createPolicy(a.apiUrl, 'unused', ['g0.test']);
    const d1 = await registerDevbox(a.apiUrl, 'h1', p1);
    const d2 = await registerDevbox(a.apiUrl, 'h2', p2);
    await until(async () => (await decisionAt(h1.apiUrl, d1.id, 'allowed.test')) === 'allow' && (await decisionAt(h2.apiUrl, d2.id, 'other.test')) === 'allow', 90_000, 'both sidecars to sync');
    expect(await policiesOn(h1)).toEqual([p1]);
    expect(await policiesOn(h2)).toEqual([p2]);

    const nc = await connect({ servers: base.nats.url });
    try {
      const kv = await new Kvm(nc).open('egress-policy');
      const keys: string[] = [];
      for await (const k of await kv.keys('policy.>')) keys.push(k);
      expect(keys.sort()).toEqual([`policy.h1.default.${p1}`, `policy.h2.default.${p2}`].sort());
      expect(keys.join()).not.toContain(unused);
    } finally {
      await nc.close();
    }

    // p2 comes to h1 with a devbox there that uses it (before the devbox: never policy_missing).
    const d3 = await registerDevbox(a.apiUrl, 'h1', p2);
    await until(async () => (await decisionAt(h1.apiUrl, d3.id, 'other.test')) === 'allow', 60_000, 'h1 to receive p2 with d3');
    expect(await policiesOn(h1)).toEqual([p1, p2].sort());
    await setHostnames(a.apiUrl, p2, ['other.test', 'g1.test']);
    await until(async () => (await decisionAt(h1.apiUrl, d3.id, 'g1.test')) === 'allow' && (await decisionAt(h2.apiUrl, d2.id, 'g1.test')) === 'allow', 60_000, 'the update to reach both hosts that reference p2');

    // The last devbox on h1 using p2 goes: so does p2 from h1, not from h2.
    expect((await api(a.apiUrl, 'POST', `/v1/devboxes/${d3.id}/shutdown`)).status).toBe(200);
    await until(async () => (await policiesOn(h1)).length === 1, 60_000, 'p2 to leave h1');
    expect(await policiesOn(h1)).toEqual([p1]);
    expect(await policiesOn(h2)).toEqual([p2]);
    expect(await decisionAt(h2.apiUrl, d2.id, 'g1.test')).toBe('allow');
  }, 400_000);
});
