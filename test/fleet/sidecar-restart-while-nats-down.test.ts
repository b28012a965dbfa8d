/**
 * A sidecar restarted (kill -9, then started again) while NATS is down starts from its local
 * snapshot and enforces it: the devbox it knew is allowed where its policy allows and denied
 * elsewhere, a devbox it never heard of is unknown_client (fail-static, never fail-open), and
 * /healthz shows the snapshot's revision with its age growing. When NATS returns it resyncs.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../support/proxy.js';
import { type FleetBase, type Node, createPolicy, decisionAt, fleetBase, health, registerDevbox, setHostnames, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let a: Node;
let h1: Node | undefined;

beforeAll(async () => {
  base = await fleetBase();
  a = await startReplica(base.controlDb, base.nats.url);
}, 300_000);

afterAll(() => base?.close([a, h1]));

const snapshotOf = async (n: Node) => (await health(n.apiUrl)).body.snapshot as { revision: number; age_seconds: number; connected: boolean };

describe('a sidecar restarted while NATS is down', () => {
  it('enforces its last good snapshot, and resyncs when NATS returns', async () => {
    const local = join(base.dir, 'h1.db');
    h1 = await startSidecar(base.nats.url, 'h1', local, base.dns.port);
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    const known = await registerDevbox(a.apiUrl, 'h1', policy);
    await until(async () => (await decisionAt(h1!.apiUrl, known.id, 'allowed.test')) === 'allow', 60_000, 'the sidecar to sync');
    const synced = await snapshotOf(h1);

    await base.nats.kill();
    h1.child.kill('SIGKILL');
    await h1.exited;
    const unseen = await registerDevbox(a.apiUrl, 'h1', policy);

    h1 = await startSidecar(base.nats.url, 'h1', local, base.dns.port);
    const user = `${known.id}:${known.password}`;
    expect((await curl(['-x', `http://127.0.0.1:${h1.proxyPort}`, '-U', user, `http://allowed.test:${base.origin.port}/ok`])).status).toBe(200);
    expect((await curl(['-x', `http://127.0.0.1:${h1.proxyPort}`, '-U', user, `http://other.test:${base.origin.port}/no`])).status).toBe(403);
    const stranger = await curl(['-x', `http://127.0.0.1:${h1.proxyPort}`, '-U', `${unseen.id}:${unseen.password}`, `http://allowed.test:${base.origin.port}/no`]);
    expect(stranger.status).toBe(407);
    expect(await decisionAt(h1.apiUrl, unseen.id, 'allowed.test')).toBe('unknown');
    const offline = await snapshotOf(h1);
    expect(offline.revision).toBe(synced.revision);
    expect(offline.connected).toBe(false);
    expect((await health(h1.apiUrl, '/readyz')).status).toBe(200);
    await until(async () => (await snapshotOf(h1!)).age_seconds >= 1, 30_000, 'the snapshot age to grow while NATS is down');
    const metrics = await (await fetch(`${h1.apiUrl}/metrics`)).text();
    expect(Number(/^egress_policy_snapshot_age_seconds (\S+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);

    await setHostnames(a.apiUrl, policy, ['other.test']);
    await base.nats.start();
    await until(async () => (await decisionAt(h1!.apiUrl, unseen.id, 'other.test')) === 'allow' && (await decisionAt(h1!.apiUrl, known.id, 'allowed.test')) === 'deny', 90_000, 'the sidecar to resync');
    expect((await snapshotOf(h1)).revision).toBeGreaterThan(synced.revision);
  }, 300_000);
});
