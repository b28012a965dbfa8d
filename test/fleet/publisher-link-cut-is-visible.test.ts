/**
 * Defect: a broken link between the control plane and NATS was invisible. With the
 * replica→NATS link cut, a tightening stayed unenforced while sidecars showed age ≤ 1 s and
 * ready (their age measured only their own NATS link) and the replica stayed ready.
 *
 * Pinned: both replicas reach NATS through a loopback TCP forwarder the test cuts; the
 * sidecars keep their own link. The sidecars' `egress_policy_snapshot_age_seconds` (now − the
 * newest control-plane heartbeat) grows past --max-staleness and /readyz turns 503 naming the
 * age; the sidecar with --stale fail-closed refuses new connections (403 policy_stale) while
 * the fail-static one keeps enforcing its snapshot; the replicas are not ready. Before the cut
 * the replica that had nothing left to publish reports the fleet's published seq (not 0), and
 * the age metric is never negative. Mended link: ready again, fresh again.
 */
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../support/proxy.js';
import { freePort } from '../support/nats.js';
import { type FleetBase, type Node, createPolicy, decisionAt, fleetBase, health, registerDevbox, startReplica, startSidecar, until } from './support.js';

/** A loopback TCP forwarder to `target` that can be cut (every connection dropped, listener closed) and mended on the same port. */
async function forwarder(target: number) {
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  const open = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer((client) => {
        const upstream = net.connect(target, '127.0.0.1');
        for (const x of [client, upstream]) {
          sockets.add(x);
          x.on('close', () => sockets.delete(x));
          x.on('error', () => {});
        }
        client.pipe(upstream).pipe(client);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
      server = s;
    });
  await open();
  return {
    url: `nats://127.0.0.1:${port}`,
    async cut() {
      const s = server;
      server = null;
      for (const x of sockets) x.destroy();
      await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
    },
    mend: open,
  };
}

async function metric(n: Node, name: string): Promise<number> {
  const text = await (await fetch(`${n.apiUrl}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

let base: FleetBase;
let link: Awaited<ReturnType<typeof forwarder>>;
let a: Node;
let b: Node;
let h1: Node;
let h2: Node;

beforeAll(async () => {
  base = await fleetBase();
  link = await forwarder(base.nats.port);
  const sidecar = (host: string, extra: string[]) => startSidecar(base.nats.url, host, join(base.dir, `${host}.db`), base.dns.port, ['--max-staleness', '3', ...extra]);
  [a, b, h1, h2] = await Promise.all([startReplica(base.controlDb, link.url), startReplica(base.controlDb, link.url), sidecar('h1', []), sidecar('h2', ['--stale', 'fail-closed', '--workers', '1'])]);
}, 300_000);

afterAll(async () => {
  await link?.cut();
  await base?.close([a, b, h1, h2]);
});

describe("the control plane's link to NATS cut", () => {
  it('sidecar age grows past --max-staleness, readiness drops, fail-closed refuses; replicas not ready', async () => {
    expect(await metric(h1, 'egress_policy_snapshot_age_seconds')).toBeGreaterThanOrEqual(0);
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    const d1 = await registerDevbox(a.apiUrl, 'h1', policy);
    const d2 = await registerDevbox(a.apiUrl, 'h2', policy);
    await until(async () => (await decisionAt(h1.apiUrl, d1.id, 'allowed.test')) === 'allow' && (await decisionAt(h2.apiUrl, d2.id, 'allowed.test')) === 'allow', 90_000, 'both sidecars to sync');
    // Every replica reports the fleet's published seq, whichever one published.
    await until(async () => (await metric(a, 'egress_fleet_published_seq')) >= 3 && (await metric(b, 'egress_fleet_published_seq')) >= 3, 30_000, 'both replicas to report the published seq');
    for (const n of [a, b, h1, h2]) await until(async () => (await health(n.apiUrl, '/readyz')).status === 200, 30_000, 'every node to be ready');
    expect(await metric(h1, 'egress_policy_snapshot_age_seconds')).toBeLessThan(3);
    const through = (n: Node, d: { id: string; password: string }) => curl(['-x', `http://127.0.0.1:${n.proxyPort}`, '-U', `${d.id}:${d.password}`, `http://allowed.test:${base.origin.port}/x`]);
    expect((await through(h2, d2)).status).toBe(200);

    await link.cut();
    await until(async () => (await health(h1.apiUrl, '/readyz')).status === 503, 60_000, "h1's readiness to drop");
    const why = (await health(h1.apiUrl, '/readyz')).body as { error: { message: string } };
    expect(why.error.message).toMatch(/s behind the control plane \(more than --max-staleness 3 s\)/);
    expect(await metric(h1, 'egress_policy_snapshot_age_seconds')).toBeGreaterThan(3);
    expect(((await health(h1.apiUrl)).body.snapshot as { connected: boolean }).connected).toBe(true);
    for (const r of [a, b]) await until(async () => (await health(r.apiUrl, '/readyz')).status === 503, 30_000, 'the replicas to be not ready');
    expect(((await health(a.apiUrl, '/readyz')).body as { error: { message: string } }).error.message).toMatch(/fleet publisher has not published/);
    // fail-static keeps enforcing; fail-closed refuses new connections.
    expect((await through(h1, d1)).status).toBe(200);
    await until(async () => (await health(h2.apiUrl, '/readyz')).status === 503, 30_000, "h2's readiness to drop");
    const refused = await through(h2, d2);
    expect(refused.status).toBe(403);
    expect(refused.headers).toMatch(/x-egress-denied-reason: policy_stale/i);

    await link.mend();
    await until(async () => (await health(h1.apiUrl, '/readyz')).status === 200 && (await health(a.apiUrl, '/readyz')).status === 200, 60_000, 'readiness to come back with the link');
    expect(await metric(h1, 'egress_policy_snapshot_age_seconds')).toBeLessThan(3);
    await until(async () => (await through(h2, d2)).status === 200, 30_000, 'h2 to admit again');
  }, 400_000);
});
