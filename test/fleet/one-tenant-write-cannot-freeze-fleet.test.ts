/**
 * Defect: one tenant's write froze propagation for the whole fleet. A policy under the API's
 * 1 MiB body limit became a NATS entry over NATS's max_payload; every replica retried that
 * change forever and no later write of any account reached any sidecar.
 *
 * Pinned here with real PostgreSQL, nats-server and sidecars:
 * - a policy near 1 MiB is refused at the API with 413 naming the limit (what the API accepts
 *   fits what the fan-out carries);
 * - against a nats-server whose max_payload is smaller than that bound (64 KiB), a policy the
 *   API accepts but NATS cannot carry is isolated: withheld on the sidecar (its devbox denied,
 *   never left on the old, looser policy), a dead letter in the bucket, counted and logged;
 *   and another account's later update still reaches the sidecar.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsUpstream, loopbackRecords, startDnsUpstream } from '../support/dns-upstream.js';
import { type NatsServer, startNats } from '../support/nats.js';
import { sharedPostgres } from '../support/postgres.js';
import { killAll } from '../support/serve-process.js';
import { type Node, decisionAt, startReplica, startSidecar, tempDir, until } from './support.js';

const OTHER_TOKEN = 'egw_fleet_other_account_token_0123456789';
const tmp = tempDir();
let nats: NatsServer;
let dns: DnsUpstream;
let a: Node;
let h1: Node;

/** `count` valid hostnames of about 240 bytes each (four long labels). */
function bigNames(count: number, tag: string): string[] {
  const label = (c: string) => c.repeat(57);
  return Array.from({ length: count }, (_, i) => `${tag}${i}-${label('a')}.${label('b')}.${label('c')}.${label('d')}.test`);
}

/** The sidecar's decision for the other account's devbox (its token sees only its own devboxes). */
async function otherDecision(devboxId: string, host: string): Promise<string> {
  const res = await fetch(`${h1.apiUrl}/v1/egress/check`, { method: 'POST', headers: { authorization: `Bearer ${OTHER_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ devbox_id: devboxId, host, port: 443 }) });
  const body = (await res.json()) as { decision?: string };
  return res.status === 200 ? (body.decision ?? 'error') : res.status === 400 ? 'unknown' : 'error';
}

async function call(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, any> }> {
  const res = await fetch(`${a.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

beforeAll(async () => {
  const conf = join(tmp.dir, 'nats.conf');
  writeFileSync(conf, 'max_payload: 65536\n');
  nats = await startNats({ config: conf });
  dns = await startDnsUpstream({ records: loopbackRecords(['allowed.test', 'other.test']) });
  const db = await (await sharedPostgres()).createDatabase();
  [a, h1] = await Promise.all([startReplica(db, nats.url, {}, ['--api-token', `${OTHER_TOKEN}:other`]), startSidecar(nats.url, 'h1', join(tmp.dir, 'h1.db'), dns.port, ['--api-token', `${OTHER_TOKEN}:other`])]);
}, 300_000);

afterAll(async () => {
  await Promise.allSettled([a, h1].filter(Boolean).map((n) => n.stop()));
  killAll();
  await dns?.close();
  await nats?.close();
  tmp.remove();
});

describe("one tenant's write cannot freeze the fleet", () => {
  it('a policy near 1 MiB is refused with 413 naming the limit', async () => {
    const names = bigNames(4200, 'n');
    const body = JSON.stringify({ name: 'huge', allowed_hostnames: names });
    expect(Buffer.byteLength(body)).toBeLessThan(1024 * 1024);
    const r = await call('egw_fleet_test_token_0123456789abcdef', 'POST', '/v1/network-policies', JSON.parse(body));
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('payload_too_large');
    expect(r.body.error.message).toMatch(/limit is 1000000 bytes/);
  }, 120_000);

  it("a policy NATS cannot carry is withheld and dead-lettered; another account's update still reaches the sidecar", async () => {
    const mine = 'egw_fleet_test_token_0123456789abcdef';
    const p1 = await call(mine, 'POST', '/v1/network-policies', { name: 'p1', allowed_hostnames: ['allowed.test'] });
    const d1 = await call(mine, 'POST', '/v1/devboxes', { network: { host_id: 'h1' }, launch_parameters: { network_policy_id: p1.body.id } });
    const p2 = await call(OTHER_TOKEN, 'POST', '/v1/network-policies', { name: 'p2', allowed_hostnames: ['allowed.test'] });
    const d2 = await call(OTHER_TOKEN, 'POST', '/v1/devboxes', { network: { host_id: 'h1' }, launch_parameters: { network_policy_id: p2.body.id } });
    expect([p1.status, d1.status, p2.status, d2.status]).toEqual([200, 200, 200, 200]);
    await until(async () => (await decisionAt(h1.apiUrl, d1.body.id, 'allowed.test')) === 'allow' && (await otherDecision(d2.body.id, 'allowed.test')) === 'allow', 90_000, 'h1 to sync both accounts');

    // About 100 KB: under the API's bound, over this nats-server's 64 KiB max_payload.
    const big = await call(mine, 'POST', `/v1/network-policies/${p1.body.id}`, { allowed_hostnames: ['allowed.test', ...bigNames(400, 'x')] });
    expect(big.status).toBe(200);
    const tightened = await call(OTHER_TOKEN, 'POST', `/v1/network-policies/${p2.body.id}`, { allowed_hostnames: ['other.test'] });
    expect(tightened.status).toBe(200);

    await until(async () => (await otherDecision(d2.body.id, 'allowed.test')) === 'deny' && (await otherDecision(d2.body.id, 'other.test')) === 'allow', 90_000, "the other account's update to reach h1");
    // The withheld policy is gone on the sidecar: its devbox is denied, not left on the old policy.
    expect(await decisionAt(h1.apiUrl, d1.body.id, 'allowed.test')).not.toBe('allow');

    const metrics = await (await fetch(`${a.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/^egress_fleet_dead_letters_total\{kind="policy"\} [1-9]/m);
    expect(a.out()).toMatch(/"event":"fleet_publish_dead_letter"[^\n]*max_payload/);
    const nc = await connect({ servers: nats.url });
    try {
      const kv = await new Kvm(nc).open('egress-policy');
      const dead = await kv.get(`dead.policy.h1.default.${p1.body.id}`);
      expect(dead).not.toBeNull();
      expect(JSON.parse(new TextDecoder().decode(dead!.value))).toMatchObject({ kind: 'policy', id: p1.body.id });
    } finally {
      await nc.close();
    }
  }, 300_000);
});
