/**
 * kill -9 NATS in the middle of a run of updates: every write still succeeds (the outbox holds
 * it), both sidecars keep enforcing their last good snapshot, and once NATS is back every
 * sidecar converges on the database's state (the last update, a devbox registered while NATS
 * was down, a devbox shut down while it was down).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../support/proxy.js';
import { type FleetBase, type Node, api, createPolicy, decisionAt, fleetBase, registerDevbox, setHostnames, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let a: Node;
let b: Node;
let h1: Node;
let h2: Node;

beforeAll(async () => {
  base = await fleetBase();
  const db = base.controlDb;
  // In parallel: on a loaded 2-core box each start takes seconds.
  [a, b, h1, h2] = await Promise.all([startReplica(db, base.nats.url), startReplica(db, base.nats.url), startSidecar(base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port), startSidecar(base.nats.url, 'h2', join(base.dir, 'h2.db'), base.dns.port)]);
}, 300_000);

afterAll(() => base?.close([a, b, h1, h2]));

describe('NATS killed during updates', () => {
  it('writes succeed, sidecars keep enforcing, and converge on the database when NATS returns', async () => {
    const p1 = await createPolicy(a.apiUrl, 'p1', ['allowed.test']);
    const p2 = await createPolicy(b.apiUrl, 'p2', ['allowed.test']);
    const d1 = await registerDevbox(b.apiUrl, 'h1', p1);
    const d2 = await registerDevbox(a.apiUrl, 'h2', p2);
    await until(async () => (await decisionAt(h1.apiUrl, d1.id, 'allowed.test')) === 'allow' && (await decisionAt(h2.apiUrl, d2.id, 'allowed.test')) === 'allow', 60_000, 'both sidecars to sync');

    // Updates before, across and after the kill, alternating replicas: each one acknowledged.
    // (setHostnames throws unless the answer is 200.)
    for (let i = 0; i < 6; i++) {
      if (i === 3) await base.nats.kill();
      await setHostnames(i % 2 === 0 ? a.apiUrl : b.apiUrl, p1, ['allowed.test', `g${i}.test`]);
    }
    // While NATS is down: a new devbox on h1, d2 shut down, p1 tightened. All acknowledged.
    const d3 = await registerDevbox(a.apiUrl, 'h1', p2);
    expect((await api(b.apiUrl, 'POST', `/v1/devboxes/${d2.id}/shutdown`)).status).toBe(200);
    await setHostnames(b.apiUrl, p1, ['other.test']);

    // The sidecars keep enforcing what they had: d1 still allowed to allowed.test, d2 still known.
    expect(await decisionAt(h1.apiUrl, d1.id, 'g5.test')).toBe('deny');
    const through = await curl(['-x', `http://127.0.0.1:${h1.proxyPort}`, '-U', `${d1.id}:${d1.password}`, `http://allowed.test:${base.origin.port}/during`]);
    expect(through.status).toBe(200);
    expect(await decisionAt(h2.apiUrl, d2.id, 'allowed.test')).toBe('allow');
    expect(await decisionAt(h1.apiUrl, d3.id, 'allowed.test')).toBe('unknown');

    await base.nats.start();
    await until(
      async () =>
        (await decisionAt(h1.apiUrl, d1.id, 'allowed.test')) === 'deny' &&
        (await decisionAt(h1.apiUrl, d1.id, 'other.test')) === 'allow' &&
        (await decisionAt(h1.apiUrl, d3.id, 'allowed.test')) === 'allow' &&
        ['deny', 'unknown'].includes(await decisionAt(h2.apiUrl, d2.id, 'allowed.test')),
      90_000,
      'both sidecars to converge on the database',
    );
    const after = await curl(['-x', `http://127.0.0.1:${h1.proxyPort}`, '-U', `${d1.id}:${d1.password}`, `http://allowed.test:${base.origin.port}/after`]);
    expect(after.status).toBe(403);
  }, 300_000);
});
