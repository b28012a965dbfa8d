/**
 * The fleet end to end, with real processes: a policy created on replica A, a devbox registered
 * on host h1 through replica B; traffic from that devbox through h1's sidecar (curl through its
 * HTTP proxy to a loopback origin) is allowed, then denied after the policy is tightened on A,
 * and a tunnel open through the sidecar is cut by that update. h2's sidecar does not know the
 * devbox (unknown_client); a sidecar refuses writes with 409 naming the control plane; its
 * /healthz, /readyz and /metrics show the snapshot revision and age.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl, connectTunnel } from '../support/proxy.js';
import { type DnsUpstream, loopbackRecords, startDnsUpstream } from '../support/dns-upstream.js';
import { killAll } from '../support/serve-process.js';
import { type NatsServer, startNats } from '../support/nats.js';
import { sharedPostgres } from '../support/postgres.js';
import { type Origin, startHttpOrigin } from '../support/origin.js';
import { type Node, api, createPolicy, decisionAt, health, registerDevbox, setHostnames, startReplica, startSidecar, tempDir, until } from './support.js';

let nats: NatsServer;
let dns: DnsUpstream;
let origin: Origin;
let a: Node;
let b: Node;
let h1: Node;
let h2: Node;
const tmp = tempDir();

beforeAll(async () => {
  nats = await startNats();
  dns = await startDnsUpstream({ records: loopbackRecords(['allowed.test', 'other.test']) });
  origin = await startHttpOrigin();
  const db = await (await sharedPostgres()).createDatabase();
  // In parallel: on a loaded 2-core box each start takes seconds.
  [a, b, h1, h2] = await Promise.all([startReplica(db, nats.url), startReplica(db, nats.url), startSidecar(nats.url, 'h1', join(tmp.dir, 'h1.db'), dns.port), startSidecar(nats.url, 'h2', join(tmp.dir, 'h2.db'), dns.port)]);
}, 300_000);

afterAll(async () => {
  await Promise.allSettled([a, b, h1, h2].filter(Boolean).map((n) => n.stop()));
  killAll();
  await origin?.close();
  await dns?.close();
  await nats?.close();
  tmp.remove();
});

describe("fleet: a policy written on one replica is enforced by the sidecar of the devbox's host", () => {
  it("allowed through h1's proxy, then denied after an update; the open tunnel is cut; h2 does not know the devbox", async () => {
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    const box = await registerDevbox(b.apiUrl, 'h1', policy);
    const user = `${box.id}:${box.password}`;
    const target = `http://allowed.test:${origin.port}/hello`;

    await until(async () => (await decisionAt(h1.apiUrl, box.id, 'allowed.test', origin.port)) === 'allow', 60_000, 'h1 to enforce the policy');
    const ok = await curl(['-x', `http://127.0.0.1:${h1.proxyPort}`, '-U', user, target]);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body.toString()).url).toBe('/hello');
    expect(await decisionAt(h2.apiUrl, box.id, 'allowed.test', origin.port)).toBe('unknown');

    const tunnel = await connectTunnel(h1.proxyPort, `allowed.test:${origin.port}`, { auth: user });
    const cut = new Promise<void>((r) => tunnel.once('close', () => r()));
    tunnel.on('error', () => {});

    await setHostnames(a.apiUrl, policy, ['other.test']);
    await until(async () => (await decisionAt(h1.apiUrl, box.id, 'allowed.test', origin.port)) === 'deny', 60_000, 'h1 to enforce the update');
    const denied = await curl(['-x', `http://127.0.0.1:${h1.proxyPort}`, '-U', user, target]);
    expect(denied.status).toBe(403);
    await cut;
    expect(origin.seen.filter((s) => s.url === '/hello')).toHaveLength(1);
  }, 300_000);

  it('a sidecar refuses policy and devbox writes with 409 naming the control plane, and serves /v1/egress/check', async () => {
    const w = await api<{ error: { code: string; message: string } }>(h1.apiUrl, 'POST', '/v1/network-policies', { name: 'local' });
    expect(w.status).toBe(409);
    expect(w.body.error.code).toBe('read_only_follower');
    expect(w.body.error.message).toMatch(/control plane/);
    const d = await api<{ error: { code: string } }>(h1.apiUrl, 'POST', '/v1/devboxes', {});
    expect(d.status).toBe(409);
  });

  it('health and metrics show the snapshot revision and age', async () => {
    const hz = await health(h1.apiUrl);
    const snap = hz.body.snapshot as { revision: number; age_seconds: number; host_id: string; live: boolean };
    expect(snap.host_id).toBe('h1');
    expect(snap.revision).toBeGreaterThan(0);
    expect(snap.age_seconds).toBeLessThan(30);
    expect((await health(h1.apiUrl, '/readyz')).status).toBe(200);
    const m = await (await fetch(`${h1.apiUrl}/metrics`)).text();
    expect(m).toMatch(/^egress_policy_snapshot_age_seconds \d/m);
    expect(m).toMatch(/^egress_policy_snapshot_revision [1-9]/m);
    expect(m).toMatch(/^egress_policy_snapshot_lag \d/m);
  });
});
