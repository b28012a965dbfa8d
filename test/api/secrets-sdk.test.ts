/**
 * Secrets through the official SDK (client.secrets): round trip by name, and the value never
 * leaves: not in any answer, not in a log line, not in the database (file bytes, WAL, change
 * log), sealed with a key file created 0600.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Runloop from '@runloop/api-client';
import { call, errorOf, startTestApi, TEST_BACKEND, TOKEN_A, TOKEN_B, type TestApi } from '../support/api.js';

let api: TestApi;
let a: Runloop;
let b: Runloop;
const logLines: string[] = [];
/** Every raw answer body the SDK received. */
const bodies: string[] = [];

const recordingFetch: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  bodies.push(await res.clone().text());
  return res;
};

beforeAll(async () => {
  api = await startTestApi({ logLines });
  a = new Runloop({ bearerToken: TOKEN_A, baseURL: api.base, fetch: recordingFetch as never, maxRetries: 0 });
  b = new Runloop({ bearerToken: TOKEN_B, baseURL: api.base, fetch: recordingFetch as never, maxRetries: 0 });
});
afterAll(async () => {
  await api.close();
});

/** Everything the database holds, as text (sqlite: the file and its WAL; PostgreSQL: every row of the tables that could hold it). */
async function storedText(): Promise<string> {
  if (TEST_BACKEND === 'sqlite') {
    const parts = [api.dbPath, `${api.dbPath}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f).toString('latin1'));
    return parts.join('\n');
  }
  const c = new pg.Client({ connectionString: api.dbPath });
  await c.connect();
  try {
    const out: string[] = [];
    for (const t of ['secrets', 'agent_configs', 'agent_tokens', 'change_log', 'devboxes']) {
      const r = await c.query(`SELECT t::text AS row FROM ${t} t`);
      out.push(...r.rows.map((x: { row: string }) => x.row));
    }
    return out.join('\n');
  } finally {
    await c.end();
  }
}

describe('secrets through @runloop/api-client', () => {
  it('creates, lists, retrieves, updates and deletes a secret by name; the value is in no answer', async () => {
    const value = `sk-live-${randomBytes(16).toString('hex')}`;
    const created = await a.secrets.create({ name: 'ANTHROPIC_KEY', value });
    expect(created.id).toMatch(/^sec_[0-9a-z]{22}$/);
    expect(created).toEqual({ id: created.id, name: 'ANTHROPIC_KEY', create_time_ms: created.create_time_ms, update_time_ms: created.create_time_ms });

    const got = await a.secrets.retrieve('ANTHROPIC_KEY');
    expect(got).toEqual(created);
    const list = await a.secrets.list({ limit: 10 });
    expect(list.secrets.map((s) => s.name)).toContain('ANTHROPIC_KEY');
    expect(list.total_count).toBe(list.secrets.length);

    const value2 = `sk-live-${randomBytes(16).toString('hex')}`;
    const updated = await a.secrets.update('ANTHROPIC_KEY', { value: value2 });
    expect(updated.id).toBe(created.id);
    expect(updated.update_time_ms).toBeGreaterThanOrEqual(created.update_time_ms);

    const deleted = await a.secrets.delete('ANTHROPIC_KEY');
    expect(deleted.id).toBe(created.id);
    await expect(a.secrets.retrieve('ANTHROPIC_KEY')).rejects.toMatchObject({ status: 404 });

    for (const body of bodies) {
      expect(body).not.toContain(value);
      expect(body).not.toContain(value2);
    }
  });

  it('never writes a value to a log line or to the database in plaintext', async () => {
    const value = `needle-${randomBytes(16).toString('hex')}`;
    await a.secrets.create({ name: 'DB_PASSWORD', value });
    const next = `needle-${randomBytes(16).toString('hex')}`;
    await a.secrets.update('DB_PASSWORD', { value: next });
    // A refused write carrying a value must not echo it either.
    const dup = await call(api, 'POST', '/v1/secrets', { body: { name: 'DB_PASSWORD', value } });
    expect(errorOf(dup, 400)).toMatch(/already exists/);
    expect(dup.text).not.toContain(value);

    expect(logLines.some((l) => l.includes('secret_created'))).toBe(true);
    for (const l of logLines) {
      expect(l).not.toContain(value);
      expect(l).not.toContain(next);
    }
    const stored = await storedText();
    expect(stored).toContain('DB_PASSWORD');
    expect(stored).not.toContain(value);
    expect(stored).not.toContain(next);
  });

  it('creates the key file with mode 0600 on first start', () => {
    const key = join(api.dir, 'secrets.key');
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(readFileSync(key, 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
  });

  it("another account's secret is not found (404) for retrieve, update and delete, and names are per account", async () => {
    await a.secrets.create({ name: 'ONLY_A', value: 'a-value' });
    await expect(b.secrets.retrieve('ONLY_A')).rejects.toMatchObject({ status: 404 });
    await expect(b.secrets.update('ONLY_A', { value: 'overwritten' })).rejects.toMatchObject({ status: 404 });
    await expect(b.secrets.delete('ONLY_A')).rejects.toMatchObject({ status: 404 });
    expect((await b.secrets.list()).secrets.map((s) => s.name)).not.toContain('ONLY_A');
    const mine = await b.secrets.create({ name: 'ONLY_A', value: 'b-value' });
    expect(mine.id).not.toBe((await a.secrets.retrieve('ONLY_A')).id);
  });

  it('refuses names that are not environment variable names, empty values and unknown fields', async () => {
    for (const name of ['1ABC', 'WITH-DASH', 'with space', 'A\nB', '']) {
      const r = await call(api, 'POST', '/v1/secrets', { body: { name, value: 'v' } });
      expect(r.status, name).toBe(400);
    }
    expect(errorOf(await call(api, 'POST', '/v1/secrets', { body: { name: 'OK_NAME', value: '' } }), 400)).toMatch(/value/);
    expect(errorOf(await call(api, 'POST', '/v1/secrets', { body: { name: 'OK_NAME', value: 'v', extra: 1 } }), 400)).toMatch(/extra/);
    expect(errorOf(await call(api, 'POST', '/v1/secrets/NOPE', { body: { value: 'v' } }), 404)).toMatch(/NOPE/);
  });
});
