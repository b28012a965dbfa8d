/**
 * Resume, don't resync. Every reconnect used to be a full relist (1,000 policies + 5,001
 * devboxes: seconds of CPU and a few hundred MiB per host, a thundering herd after a NATS
 * restart). Now a sidecar whose snapshot came from the same bucket resumes each watch from the
 * revision it stored + 1, and what changed meanwhile arrives as updates.
 *
 * Pinned: NATS killed (store kept) while a tightening, a new devbox and a shutdown are written;
 * NATS back: the sidecar converges with no relist (`egress_policy_resyncs_total` stays 1,
 * `egress_policy_resumes_total` grows, `fleet_resumed` logged). A sidecar process restarted
 * with NATS up resumes from its local file too, and a later update reaches it.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetBase, type Node, api, createPolicy, decisionAt, fleetBase, registerDevbox, setHostnames, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let a: Node;
let h1: Node;

async function counter(n: Node, name: string): Promise<number> {
  const text = await (await fetch(`${n.apiUrl}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
}

beforeAll(async () => {
  base = await fleetBase();
  [a, h1] = await Promise.all([startReplica(base.controlDb, base.nats.url), startSidecar(base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port)]);
}, 300_000);

afterAll(() => base?.close([a, h1]));

describe('a NATS restart is resumed, not relisted', () => {
  it('changes made while NATS was down arrive as updates; no relist, also after a sidecar restart', async () => {
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    const d1 = await registerDevbox(a.apiUrl, 'h1', policy);
    const d2 = await registerDevbox(a.apiUrl, 'h1', policy);
    await until(async () => (await decisionAt(h1.apiUrl, d2.id, 'allowed.test')) === 'allow', 90_000, 'h1 to sync');
    expect(await counter(h1, 'egress_policy_resyncs_total')).toBe(1);

    await base.nats.kill();
    await setHostnames(a.apiUrl, policy, ['other.test']);
    const d3 = await registerDevbox(a.apiUrl, 'h1', policy);
    expect((await api(a.apiUrl, 'POST', `/v1/devboxes/${d2.id}/shutdown`)).status).toBe(200);
    await base.nats.start();

    await until(
      async () =>
        (await decisionAt(h1.apiUrl, d1.id, 'allowed.test')) === 'deny' &&
        (await decisionAt(h1.apiUrl, d1.id, 'other.test')) === 'allow' &&
        (await decisionAt(h1.apiUrl, d3.id, 'other.test')) === 'allow' &&
        ['deny', 'unknown'].includes(await decisionAt(h1.apiUrl, d2.id, 'other.test')),
      90_000,
      'h1 to converge after NATS returned',
    );
    expect(await counter(h1, 'egress_policy_resyncs_total')).toBe(1);
    expect(await counter(h1, 'egress_policy_resumes_total')).toBeGreaterThanOrEqual(1);
    expect(h1.out()).toMatch(/"event":"fleet_resumed"/);

    await h1.stop();
    h1 = await startSidecar(base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port);
    await until(async () => /"event":"fleet_resumed"/.test(h1.out()), 60_000, 'the restarted sidecar to resume');
    await setHostnames(a.apiUrl, policy, ['other.test', 'g0.test']);
    await until(async () => (await decisionAt(h1.apiUrl, d3.id, 'g0.test')) === 'allow', 60_000, 'a later update to reach the restarted sidecar');
    expect(['deny', 'unknown']).toContain(await decisionAt(h1.apiUrl, d2.id, 'other.test'));
    expect(await counter(h1, 'egress_policy_resyncs_total')).toBe(0);
  }, 400_000);
});
