/**
 * A sidecar away for longer than the bucket keeps history (history 1 per key: every revision it
 * last saw was overwritten, the stream's first sequence is past its revision) comes back and
 * catches up: policies rewritten, one deleted, a devbox shut down, another registered, all while
 * it was away. It resumes from its stored revision (the bucket holds the last value of every key
 * changed since, so nothing is missing) and applies the backlog in one transaction: a reader of
 * its local snapshot, polling through the restart, only ever sees the whole old state or the
 * whole new one, never a mix; the end state is the database's.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetBase, type Node, api, bucketLook, decisionAt, fleetBase, registerDevbox, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let a: Node;
let h1: Node | undefined;

beforeAll(async () => {
  base = await fleetBase();
  a = await startReplica(base.controlDb, base.nats.url);
}, 300_000);

afterAll(() => base?.close([a, h1]));

const N = 6;

async function policy(name: string, gen: string, host: string): Promise<string> {
  const r = await api<{ id: string }>(a.apiUrl, 'POST', '/v1/network-policies', { name, description: gen, allowed_hostnames: [host] });
  expect(r.status).toBe(200);
  return r.body.id;
}

/** One consistent read of the local snapshot: the generations its policies carry and its running devboxes. */
function observe(db: Database.Database): { gens: string[]; devboxes: string[] } {
  return db
    .transaction(() => ({
      gens: [...new Set(db.prepare('SELECT description FROM network_policies').pluck().all() as string[])].sort(),
      devboxes: db.prepare(`SELECT id FROM devboxes WHERE status = 'running' ORDER BY id`).pluck().all() as string[],
    }))
    .deferred();
}

describe("a sidecar away past the bucket's history", () => {
  it("catches up in one transaction onto the database's state", async () => {
    const local = join(base.dir, 'h1.db');
    h1 = await startSidecar(base.nats.url, 'h1', local, base.dns.port);
    const ids: string[] = [];
    for (let i = 0; i < N; i++) ids.push(await policy(`p${i}`, 'gen1', `g${i}.test`));
    const spare = await policy('spare', 'gen1', 'other.test');
    const boxes: Array<{ id: string; password: string }> = [];
    for (let i = 0; i < N; i++) boxes.push(await registerDevbox(a.apiUrl, 'h1', ids[i]!));
    await until(async () => (await decisionAt(h1!.apiUrl, boxes[N - 1]!.id, `g${N - 1}.test`)) === 'allow', 60_000, 'the sidecar to sync');
    h1.child.kill('SIGKILL');
    await h1.exited;
    const before = new Database(local, { readonly: true });
    const seenRevision = Number(before.prepare(`SELECT value FROM meta WHERE key = 'fleet_revision'`).pluck().get());
    const old = observe(before);
    before.close();
    expect(old.gens).toEqual(['gen1']);

    // While it is away: every policy rewritten twice (to gen2), one deleted, a devbox shut down, one registered.
    for (const round of ['gen2-draft', 'gen2']) {
      for (let i = 0; i < N; i++) expect((await api(a.apiUrl, 'POST', `/v1/network-policies/${ids[i]}`, { description: round, allowed_hostnames: [`g${(i + 1) % N}.test`] })).status).toBe(200);
    }
    expect((await api(a.apiUrl, 'POST', `/v1/network-policies/${spare}/delete`)).status).toBe(200);
    expect((await api(a.apiUrl, 'POST', `/v1/devboxes/${boxes[0]!.id}/shutdown`)).status).toBe(200);
    const late = await registerDevbox(a.apiUrl, 'h1', ids[1]!);
    // The bucket cannot replay what happened since the sidecar's revision: the drafts are gone.
    const look = await bucketLook(base.nats.url);
    await until(async () => (await look.watermark()) > 0 && (await look.revisions(`policy.h1.default.${ids[0]}`)).length === 1 && (await look.revisions(`policy.h1.default.${ids[0]}`))[0]! > seenRevision + N, 60_000, 'the bucket to hold only the last revision of each policy');
    await look.close();

    const want = { gens: ['gen2'], devboxes: [...boxes.slice(1).map((b) => b.id), late.id].sort() };
    const reader = new Database(local, { readonly: true });
    const observations: Array<{ gens: string[]; devboxes: string[] }> = [];
    let stop = false;
    const polling = (async () => {
      while (!stop) {
        try {
          observations.push(observe(reader));
        } catch {
          // busy for a moment: read again
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      h1 = await startSidecar(base.nats.url, 'h1', local, base.dns.port);
      await until(async () => (await decisionAt(h1!.apiUrl, late.id, 'g2.test')) === 'allow', 90_000, 'the sidecar to catch up');
    } finally {
      stop = true;
      await polling;
    }
    const final = observe(reader);
    reader.close();
    expect(final).toEqual(want);
    expect(final.gens).toEqual(['gen2']);
    // Every read saw the old state or the new one.
    const mixed = observations.filter((o) => JSON.stringify(o) !== JSON.stringify(old) && JSON.stringify(o) !== JSON.stringify(want));
    expect(mixed).toEqual([]);
    expect(observations.some((o) => JSON.stringify(o) === JSON.stringify(old))).toBe(true);
    expect(await decisionAt(h1.apiUrl, boxes[0]!.id, 'g0.test')).not.toBe('allow');
    expect(await decisionAt(h1.apiUrl, boxes[1]!.id, 'g1.test')).toBe('deny');
    expect(await decisionAt(h1.apiUrl, boxes[1]!.id, 'g2.test')).toBe('allow');
    expect(h1.out()).toMatch(/"event":"fleet_resumed"/);
  }, 300_000);
});
