/**
 * A replica killed (SIGKILL) after its write committed and before it published the change
 * (the test-only fault hook EGRESS_FLEET_FAULT=kill-before-publish, docs/testing.md): the
 * bucket's watermark stays behind the committed change, the sidecar keeps the old state, and
 * the next replica to publish (here: one restarted afterwards) publishes it from the watermark,
 * so the change still reaches the sidecar.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetBase, type Node, api, bucketLook, createPolicy, decisionAt, fleetBase, registerDevbox, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let b: Node | undefined;
let a: Node | undefined;
let h1: Node;
let db: string;

beforeAll(async () => {
  base = await fleetBase();
  db = base.controlDb;
  h1 = await startSidecar(base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port);
}, 300_000);

afterAll(() => base?.close([a, b, h1]));

describe('a replica killed between commit and publish', () => {
  it('its committed change reaches the sidecar through the next replica that publishes', async () => {
    b = await startReplica(db, base.nats.url);
    const policy = await createPolicy(b.apiUrl, 'web', ['allowed.test']);
    const box = await registerDevbox(b.apiUrl, 'h1', policy);
    await until(async () => (await decisionAt(h1.apiUrl, box.id, 'allowed.test')) === 'allow', 60_000, 'the sidecar to sync');
    await b.stop();

    a = await startReplica(db, base.nats.url, { EGRESS_FLEET_FAULT: 'kill-before-publish' });
    // The answer may not arrive (the process dies under it); the database says what committed.
    await api(a.apiUrl, 'POST', `/v1/network-policies/${policy}`, { allowed_hostnames: ['other.test'] }).catch(() => null);
    await until(async () => a!.child.exitCode !== null || a!.child.signalCode !== null, 60_000, 'the faulty replica to die');
    expect(a.child.signalCode).toBe('SIGKILL');

    // What committed, read from the control plane's PostgreSQL database itself.
    const control = new pg.Client({ connectionString: db });
    await control.connect();
    const committed = Number((await control.query('SELECT max(seq) AS seq FROM change_log')).rows[0].seq);
    const egress = (await control.query('SELECT egress FROM network_policies WHERE id = $1', [policy])).rows[0].egress as string;
    await control.end();
    const stored = JSON.parse(egress) as { allowed_hostnames: string[] };
    expect(stored.allowed_hostnames).toEqual(['other.test']);

    const look = await bucketLook(base.nats.url);
    try {
      expect(await look.watermark()).toBeLessThan(committed);
      expect(await decisionAt(h1.apiUrl, box.id, 'allowed.test')).toBe('allow');

      b = await startReplica(db, base.nats.url);
      await until(async () => (await decisionAt(h1.apiUrl, box.id, 'allowed.test')) === 'deny' && (await decisionAt(h1.apiUrl, box.id, 'other.test')) === 'allow', 60_000, 'the left-behind change to reach the sidecar');
      await until(async () => (await look.watermark()) >= committed, 30_000, 'the watermark to pass the change');
    } finally {
      await look.close();
    }
  }, 300_000);
});
