/**
 * The change feed (src/store/change-feed.ts) both backends implement, pinned the same way on
 * each: records in commit order with consecutive seqs, the value each change left (null for a
 * delete) and the devbox's host; a reader polling while two stores write concurrently misses
 * nothing; a reader further behind than the retained window sees the gap and takes a snapshot,
 * after which it holds exactly the snapshot (never a partial mix).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlStore } from '../../src/store/backend.js';
import type { ChangeRecord } from '../../src/store/change-feed.js';
import { FeedFollower } from '../../src/store/feed-follower.js';
import { openControlStore } from '../../src/store/open.js';
import { sharedPostgres } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';

/** Generous for a loaded 2-core box: PostgreSQL round trips queue behind other work. */
const BUDGET = 90_000;

// The shared server starts (initdb) before the tests, with a budget of its own.
beforeAll(async () => {
  await sharedPostgres();
}, 120_000);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function newDb(backend: 'sqlite' | 'postgres'): Promise<string> {
  if (backend === 'postgres') return (await sharedPostgres()).createDatabase();
  const dir = tempDir('feed');
  dirs.push(dir);
  return join(dir, 'egress.db');
}

describe.each(['sqlite', 'postgres'] as const)('change feed on %s', (backend) => {
  const open = async (db: string, keep?: number): Promise<ControlStore> => openControlStore(db, { changeLogKeep: keep });

  it(
    'records every write in commit order with its value and host; deletes carry null',
    async () => {
      const s = await open(await newDb(backend));
      try {
        const base = await s.feed.lastSeq();
        const p = await s.policies.create('acct', { name: 'p', egress: { allowed_hostnames: ['a.example'] } });
        const p2 = await s.policies.update('acct', p.id, { egress: { allowed_hostnames: ['b.example'] } });
        const { devbox } = await s.devboxes.create('acct', { addresses: ['10.1.0.1'], networkPolicyId: p.id, hostId: 'node-1' });
        const down = await s.devboxes.shutdown('acct', devbox.id);
        await s.policies.delete('acct', p.id);
        const bp = await s.blueprints.create('acct', { name: 'b', addresses: ['10.1.0.2'], parameters: { name: 'b' } });
        await s.blueprints.delete('acct', bp.id);

        const got = await s.feed.changesSince(base, 100);
        expect(got.map((c) => c.seq)).toEqual([1, 2, 3, 4, 5, 6, 7].map((n) => base + n));
        expect(got.map((c) => [c.kind, c.id])).toEqual([
          ['policy', p.id],
          ['policy', p.id],
          ['devbox', devbox.id],
          ['devbox', devbox.id],
          ['policy', p.id],
          ['devbox', bp.id],
          ['devbox', bp.id],
        ]);
        expect(got[0]!.value).toMatchObject({ id: p.id, version: 1, egress: { allowed_hostnames: ['a.example'] } });
        expect(got[1]!.value).toEqual(p2);
        expect(got[2]).toMatchObject({ accountId: 'acct', hostId: 'node-1', value: { id: devbox.id, status: 'running', host_id: 'node-1', addresses: ['10.1.0.1'] } });
        expect(got[3]).toMatchObject({ hostId: 'node-1', value: { status: 'shutdown', end_time_ms: down.end_time_ms } });
        expect(got[4]!.value).toBeNull();
        expect(got[5]!.value).toMatchObject({ id: bp.id, status: 'running', addresses: ['10.1.0.2'] });
        expect(got[6]!.value).toBeNull();
        expect(await s.feed.lastSeq()).toBe(base + 7);
        expect((await s.feed.changesSince(base + 2, 2)).map((c) => c.seq)).toEqual([base + 3, base + 4]);
        // A refused write leaves no record.
        await expect(s.policies.create('acct', { name: 'q' }).then(() => s.policies.create('acct', { name: 'q' }))).rejects.toThrow(/already exists/);
        expect(await s.feed.lastSeq()).toBe(base + 8);
      } finally {
        await s.close();
      }
    },
    BUDGET,
  );

  it(
    'a snapshot holds every policy and every devbox not shut down, as of its seq',
    async () => {
      const s = await open(await newDb(backend));
      try {
        const keep = await s.policies.create('acct', { name: 'keep' });
        const gone = await s.policies.create('acct', { name: 'gone' });
        await s.policies.delete('acct', gone.id);
        const { devbox: up } = await s.devboxes.create('acct', { addresses: ['10.2.0.1'], hostId: 'h1' });
        const { devbox: down } = await s.devboxes.create('acct', { addresses: ['10.2.0.2'] });
        await s.devboxes.shutdown('acct', down.id);
        const snap = await s.feed.snapshot();
        expect(snap.seq).toBe(await s.feed.lastSeq());
        expect(snap.policies.map((p) => p.id)).toEqual([keep.id]);
        expect(snap.devboxes.map((d) => [d.id, d.host_id])).toEqual([[up.id, 'h1']]);
      } finally {
        await s.close();
      }
    },
    BUDGET,
  );

  it(
    'two stores writing at once: seqs are gapless and a reader polling meanwhile misses nothing',
    async () => {
      const db = await newDb(backend);
      const a = await open(db);
      const b = await open(db);
      try {
        const seen: ChangeRecord[] = [];
        let writing = true;
        const reader = (async () => {
          let at = 0;
          while (writing || at < (await a.feed.lastSeq())) {
            for (const c of await a.feed.changesSince(at, 50)) {
              expect(c.seq).toBe(at + 1); // never a gap that fills in later
              seen.push(c);
              at = c.seq;
            }
            await new Promise((r) => setTimeout(r, 2));
          }
        })();
        const writer = (s: ControlStore, tag: string) =>
          (async () => {
            for (let i = 0; i < 25; i++) {
              const p = await s.policies.create(`acct-${tag}`, { name: `p${i}` });
              await s.policies.update(`acct-${tag}`, p.id, { description: `d${i}` });
            }
          })();
        await Promise.all([writer(a, 'a'), writer(b, 'b'), writer(a, 'c'), writer(b, 'd')]);
        writing = false;
        await reader;
        const all = await b.feed.changesSince(0, 1000);
        expect(all).toHaveLength(200);
        expect(all.map((c) => c.seq)).toEqual(all.map((_, i) => i + 1));
        expect(seen).toEqual(all);
        // Each policy's create comes before its update.
        const firstSeen = new Map<string, number>();
        for (const c of all) {
          const v = c.value as { version: number } | null;
          if (!firstSeen.has(c.id)) {
            firstSeen.set(c.id, c.seq);
            expect(v?.version).toBe(1);
          } else expect(v?.version).toBe(2);
        }
      } finally {
        await a.close();
        await b.close();
      }
    },
    BUDGET,
  );

  it(
    'a reader behind the retained window resyncs from a snapshot, and holds exactly it',
    async () => {
      const s = await open(await newDb(backend), 5);
      try {
        const early = await s.policies.create('acct', { name: 'early' });
        const { devbox: early_d } = await s.devboxes.create('acct', { addresses: ['10.3.0.1'], networkPolicyId: early.id });
        const follower = await FeedFollower.start(s.feed, { pollMs: 3_600_000 });
        try {
          expect(follower.getPolicy(early.id)).toBeDefined();
          // Twenty writes while it does not poll: its position falls out of a 5-record window.
          await s.devboxes.shutdown('acct', early_d.id);
          await s.policies.delete('acct', early.id);
          const later = [];
          for (let i = 0; i < 9; i++) later.push(await s.policies.create('acct', { name: `later${i}` }));
          for (const p of later) await s.policies.update('acct', p.id, { description: 'x' });
          const first = (await s.feed.changesSince(follower.position, 100))[0]!;
          expect(first.seq).toBeGreaterThan(follower.position + 1);

          await follower.refresh();
          const snap = await s.feed.snapshot();
          expect(follower.position).toBe(snap.seq);
          expect(follower.getPolicy(early.id)).toBeUndefined();
          expect(follower.getDevbox(early_d.id)).toBeUndefined();
          for (const p of snap.policies) expect(follower.getPolicy(p.id)).toEqual(p);
          expect(follower.runningDevboxes()).toEqual(snap.devboxes);
          expect(later.every((p) => follower.getPolicy(p.id)?.version === 2)).toBe(true);
        } finally {
          follower.close();
        }
      } finally {
        await s.close();
      }
    },
    BUDGET,
  );
});
