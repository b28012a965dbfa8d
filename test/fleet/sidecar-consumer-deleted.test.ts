/**
 * A sidecar's watch consumer deleted under it (by anyone holding the stream's admin rights):
 * the issue saw such a host keep allowing a revoked name for ~85 s while it reported live with
 * age < 1 s (its heartbeats kept arriving over the meta watch). Pinned: with the consumers of
 * its policy and devbox ranges deleted, the sidecar notices (it asks for its consumers every
 * 5 s), resumes, and a devbox registered next and a tightening after it reach it.
 */
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetBase, type Node, createPolicy, decisionAt, fleetBase, registerDevbox, setHostnames, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let a: Node;
let h1: Node;

beforeAll(async () => {
  base = await fleetBase();
  [a, h1] = await Promise.all([startReplica(base.controlDb, base.nats.url), startSidecar(base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port)]);
}, 300_000);

afterAll(() => base?.close([a, h1]));

describe("a sidecar's watch consumers deleted under it", () => {
  it('later changes still reach it', async () => {
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    const first = await registerDevbox(a.apiUrl, 'h1', policy);
    await until(async () => (await decisionAt(h1.apiUrl, first.id, 'allowed.test')) === 'allow', 90_000, 'h1 to sync');

    const nc = await connect({ servers: base.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      let deleted = 0;
      for await (const c of jsm.consumers.list('KV_egress-policy')) {
        const filter = c.config.filter_subject ?? '';
        if (filter.includes('.h1.')) {
          await jsm.consumers.delete('KV_egress-policy', c.name);
          deleted++;
        }
      }
      expect(deleted).toBeGreaterThanOrEqual(2);
    } finally {
      await nc.close();
    }
    const second = await registerDevbox(a.apiUrl, 'h1', policy);
    await setHostnames(a.apiUrl, policy, ['other.test']);
    await until(async () => (await decisionAt(h1.apiUrl, second.id, 'other.test')) === 'allow' && (await decisionAt(h1.apiUrl, first.id, 'allowed.test')) === 'deny', 60_000, 'changes after the deletion to reach h1');
  }, 300_000);
});
