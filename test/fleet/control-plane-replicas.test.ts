/**
 * Two real `serve` processes (API replicas, each with its doors) on one PostgreSQL database:
 * the rules hold between them, not in either's memory — the same name created on both at
 * once is stored once (one 200, one 400 duplicate_name), concurrent updates get distinct
 * versions with none lost, the same address registered on both at once goes to one devbox;
 * and a write acknowledged by one replica reaches the other's doors (its change feed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, startServe, type RunningServe } from '../support/serve-process.js';
import { sharedPostgres } from '../support/postgres.js';
import { api, until } from './pg-clients.js';
import { openControlStore } from '../../src/store/open.js';
import type { NetworkPolicy } from '../../src/policy/model.js';

const TOKEN = 'replica-token-0001';
const OTHER = 'replica-token-0002';
let db: string;
let a: RunningServe;
let b: RunningServe;

beforeAll(async () => {
  db = await (await sharedPostgres()).createDatabase();
  const args = ['--db', db, '--api-token', `${TOKEN}:acct-r`, '--api-token', `${OTHER}:acct-o`];
  // Started together: both migrate the empty database at once (the advisory lock orders them).
  [a, b] = await Promise.all([startServe(args), startServe(args)]);
}, 240_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  killAll();
});

describe('two API replicas on one PostgreSQL', () => {
  it('the same policy name created on both at once: exactly one is stored', async () => {
    for (let i = 0; i < 8; i++) {
      const name = `same-${i}`;
      const [ra, rb] = await Promise.all([api(a.apiUrl, TOKEN, 'POST', '/v1/network-policies', { name }), api(b.apiUrl, TOKEN, 'POST', '/v1/network-policies', { name })]);
      expect([ra.status, rb.status].sort()).toEqual([200, 400]);
      expect([ra.body, rb.body].find((r) => r.error)?.error.code).toBe('duplicate_name');
      const list = await api(b.apiUrl, TOKEN, 'GET', `/v1/network-policies?name=${name}`);
      expect(list.body.network_policies.filter((p: { name: string }) => p.name === name)).toHaveLength(1);
    }
  });

  it('concurrent updates through both replicas: every version once, none lost', async () => {
    const p = (await api(a.apiUrl, TOKEN, 'POST', '/v1/network-policies', { name: 'versions' })).body;
    const n = 20;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => api(i % 2 === 0 ? a.apiUrl : b.apiUrl, TOKEN, 'POST', `/v1/network-policies/${p.id}`, { description: `d${i}` })));
    expect(answers.map((r) => r.status)).toEqual(Array(n).fill(200));
    // The outbox holds each version once, in order, each with the description its update wrote.
    const store = await openControlStore(db);
    try {
      const mine = (await store.feed.changesSince(0, 10_000)).filter((c) => c.id === p.id).map((c) => c.value as NetworkPolicy);
      expect(mine.map((v) => v.version)).toEqual(Array.from({ length: n + 1 }, (_, i) => i + 1));
      expect(new Set(mine.slice(1).map((v) => v.description)).size).toBe(n);
      expect((await store.policies.get('acct-r', p.id))!.version).toBe(n + 1);
    } finally {
      await store.close();
    }
    // Both replicas' doors end on the last version.
    for (const url of [a.apiUrl, b.apiUrl]) {
      const r = await until(
        () => api(url, TOKEN, 'POST', '/v1/egress/check', { network_policy_id: p.id, host: 'x.example' }),
        (x) => x.body.policy_version === n + 1,
        10_000,
      );
      expect(r.body.policy_version).toBe(n + 1);
    }
  });

  it('the same address registered on both at once: one devbox holds it', async () => {
    for (const [i, other] of [
      [1, TOKEN],
      [2, OTHER],
    ] as const) {
      const address = `10.77.0.${i}`;
      const [ra, rb] = await Promise.all([api(a.apiUrl, TOKEN, 'POST', '/v1/devboxes', { network: { addresses: [address] } }), api(b.apiUrl, other, 'POST', '/v1/devboxes', { network: { addresses: [address] } })]);
      expect([ra.status, rb.status].filter((s) => s === 200)).toHaveLength(1);
      const loser = ra.status === 200 ? rb : ra;
      expect(['address_in_use', 'address_unavailable']).toContain(loser.body.error.code);
    }
  });

  it("a write acknowledged by one replica is decided by the other's doors", async () => {
    const p = (await api(a.apiUrl, TOKEN, 'POST', '/v1/network-policies', { name: 'cross', allowed_hostnames: ['one.example'] })).body;
    const d = (await api(b.apiUrl, TOKEN, 'POST', '/v1/devboxes', { launch_parameters: { network_policy_id: p.id }, network: { addresses: ['10.78.0.1'], host_id: 'node-1' } })).body;
    const check = (url: string) => api(url, TOKEN, 'POST', '/v1/egress/check', { devbox_id: d.id, host: 'two.example', port: 443 });
    expect((await check(a.apiUrl)).body.decision).toBe('deny');
    expect((await api(a.apiUrl, TOKEN, 'POST', `/v1/network-policies/${p.id}`, { allowed_hostnames: ['two.example'] })).status).toBe(200);
    // Replica b's data plane follows the change feed (a 100 ms poll): allowed there soon after.
    const there = await until(
      () => check(b.apiUrl),
      (r) => r.body.decision === 'allow',
      10_000,
    );
    expect(there.body).toMatchObject({ decision: 'allow', policy_version: 2 });
  });
});
