/**
 * The schema's indexes are stated once (src/store/indexes.ts) and each backend's migrations
 * must build exactly those: a new sqlite file and a new PostgreSQL database, each migrated from
 * nothing, hold the shared indexes plus their own, by name, table, columns and partial-ness.
 * PostgreSQL lacked egress_events_devbox_seen, the index the denial record's per-devbox cap
 * sorts by, until its migration 3.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type IndexSpec, PG_ONLY_INDEXES, SQLITE_ONLY_INDEXES, STORE_INDEXES } from '../../src/store/indexes.js';
import { openControlStore } from '../../src/store/open.js';
import { sharedPostgres } from '../support/postgres.js';

type Found = Record<string, { table: string; columns: string[]; partial: boolean }>;

/** The specs as the catalogs report an index. */
function expected(...lists: Readonly<Record<string, IndexSpec>>[]): Found {
  const out: Found = {};
  for (const list of lists) for (const [name, s] of Object.entries(list)) out[name] = { table: s.table, columns: [...s.columns], partial: s.partial === true };
  return out;
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

beforeAll(async () => {
  await sharedPostgres();
}, 120_000);

describe('the schema indexes of both backends are the ones store/indexes.ts states', () => {
  it('sqlite: a new file holds the shared indexes and its own, nothing else', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-idx-'));
    dirs.push(dir);
    const path = join(dir, 'egress.db');
    await (await openControlStore(path)).close();
    const db = new Database(path, { readonly: true });
    try {
      const found: Found = {};
      // Indexes a migration created (those of PRIMARY KEY and UNIQUE constraints have no sql).
      for (const { name, tbl_name } of db.prepare(`SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL`).all() as { name: string; tbl_name: string }[]) {
        const columns = (db.prepare(`SELECT name FROM pragma_index_info(?) ORDER BY seqno`).all(name) as { name: string }[]).map((c) => c.name);
        const partial = (db.prepare('SELECT partial FROM pragma_index_list(?) WHERE name = ?').get(tbl_name, name) as { partial: number }).partial === 1;
        found[name] = { table: tbl_name, columns, partial };
      }
      expect(found).toEqual(expected(STORE_INDEXES, SQLITE_ONLY_INDEXES));
    } finally {
      db.close();
    }
  });

  it('postgres: a new database holds the shared indexes (egress_events_devbox_seen among them) and its own, nothing else', async () => {
    const url = await (await sharedPostgres()).createDatabase();
    await (await openControlStore(url)).close();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      // Indexes a migration created: not those of PRIMARY KEY and UNIQUE constraints.
      const { rows } = await c.query<{ name: string; table: string; columns: string[]; partial: boolean }>(`
        SELECT i.relname AS name, t.relname AS table, ix.indpred IS NOT NULL AS partial,
               array(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n) AS columns
        FROM pg_index ix
        JOIN pg_class i ON i.oid = ix.indexrelid
        JOIN pg_class t ON t.oid = ix.indrelid
        JOIN pg_namespace ns ON ns.oid = t.relnamespace
        WHERE ns.nspname = current_schema()
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ix.indexrelid)`);
      const found: Found = {};
      for (const r of rows) found[r.name] = { table: r.table, columns: r.columns, partial: r.partial };
      expect(found).toEqual(expected(STORE_INDEXES, PG_ONLY_INDEXES));
    } finally {
      await c.end();
    }
  });
});
