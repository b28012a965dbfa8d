/**
 * Defect: NATS restarted without its store needed a person, then caused an outage. Replicas
 * never recreated the bucket (publishing timed out until one was restarted by hand), and then
 * every sidecar resynced against the half-refilled bucket and refused registered devboxes.
 *
 * Pinned: kill -9 nats-server, wipe its store folder, start it again. The replica notices,
 * recreates the bucket and republishes the database under a new epoch without anyone acting;
 * the sidecar never swaps in a half-filled bucket (it relists only once the publisher has
 * marked the republish complete), so a registered devbox stays allowed on its sidecar the
 * whole time (no deny window), and a later update and a later devbox arrive.
 *
 * The half-filled bucket made deterministic: with the replica stopped, NATS loses its store and
 * the test fills the new bucket with only some of the entries (no complete-snapshot marker).
 * The sidecar reconnects, defers its relist and keeps allowing the devbox; once the replica is
 * back and has republished whole, it relists and a later write arrives.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetBase, type Node, createPolicy, decisionAt, fleetBase, health, registerDevbox, setHostnames, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let a: Node;
let h1: Node;

beforeAll(async () => {
  base = await fleetBase();
  [a, h1] = await Promise.all([startReplica(base.controlDb, base.nats.url), startSidecar(base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port)]);
}, 300_000);

afterAll(() => base?.close([a, h1]));

describe('NATS restarted without its store', () => {
  it('the replica recreates the bucket and republishes; the sidecar keeps allowing a registered devbox throughout and gets later writes', async () => {
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    // Others on the same host first: the republish (in id order) reaches the watched devbox last.
    for (let i = 0; i < 150; i++) await registerDevbox(a.apiUrl, 'h1', policy);
    const watched = await registerDevbox(a.apiUrl, 'h1', policy);
    await until(async () => (await decisionAt(h1.apiUrl, watched.id, 'allowed.test')) === 'allow', 90_000, 'h1 to sync');
    const before = (await health(h1.apiUrl)).body.snapshot as { epoch: number };

    // Watch the devbox's decision on its sidecar the whole time.
    const seen = new Map<string, number>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const d = await decisionAt(h1.apiUrl, watched.id, 'allowed.test');
        seen.set(d, (seen.get(d) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    await base.nats.kill();
    rmSync(join(base.nats.dir, 'js'), { recursive: true, force: true });
    await base.nats.start();

    await setHostnames(a.apiUrl, policy, ['allowed.test', 'other.test']);
    const later = await registerDevbox(a.apiUrl, 'h1', policy);
    await until(async () => (await decisionAt(h1.apiUrl, watched.id, 'other.test')) === 'allow' && (await decisionAt(h1.apiUrl, later.id, 'allowed.test')) === 'allow', 120_000, 'a later update and a later devbox to reach h1');
    watching = false;
    await watcher;

    expect(Object.fromEntries(seen)).toEqual({ allow: seen.get('allow') });
    expect(seen.get('allow')).toBeGreaterThan(10);
    expect(a.out()).toMatch(/"event":"fleet_new_epoch"/);
    const after = (await health(h1.apiUrl)).body.snapshot as { epoch: number };
    expect(after.epoch).toBeGreaterThan(before.epoch);
  }, 400_000);

  it('a half-filled bucket (no complete-snapshot marker) never replaces the sidecar snapshot', async () => {
    const policy = await createPolicy(a.apiUrl, 'half', ['allowed.test']);
    const watched = await registerDevbox(a.apiUrl, 'h1', policy);
    await until(async () => (await decisionAt(h1.apiUrl, watched.id, 'allowed.test')) === 'allow', 90_000, 'h1 to sync');

    const deferrals = () => (h1.out().match(/"event":"fleet_resync_deferred"[^\n]*no complete snapshot/g) ?? []).length;
    const before = deferrals();
    await a.stop();
    await base.nats.kill();
    rmSync(join(base.nats.dir, 'js'), { recursive: true, force: true });
    await base.nats.start();
    // What a refill cut short leaves: a bucket with one of the entries and no marker.
    const nc = await connect({ servers: base.nats.url });
    try {
      const kv = await new Kvm(nc).create('egress-policy', { history: 1 });
      await kv.put(`policy.h1.default.${policy}`, JSON.stringify({ seq: 1, epoch: Date.now(), kind: 'policy', id: policy, account_id: 'default', value: null }));
    } finally {
      await nc.close();
    }
    // Until the sidecar has looked at the half-filled bucket (or, wrongly, taken it).
    await until(async () => deferrals() > before || (await decisionAt(h1.apiUrl, watched.id, 'allowed.test')) !== 'allow', 60_000, 'h1 to look at the half-filled bucket');
    expect(await decisionAt(h1.apiUrl, watched.id, 'allowed.test')).toBe('allow');
    expect(deferrals()).toBeGreaterThan(before);

    a = await startReplica(base.controlDb, base.nats.url);
    await setHostnames(a.apiUrl, policy, ['allowed.test', 'g2.test']);
    await until(async () => (await decisionAt(h1.apiUrl, watched.id, 'g2.test')) === 'allow', 120_000, 'the update after the republish to reach h1');
    expect(await decisionAt(h1.apiUrl, watched.id, 'allowed.test')).toBe('allow');
  }, 400_000);
});
