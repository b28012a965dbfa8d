/** Two processes write the same sqlite file at once: nothing is lost, nothing is corrupt, and each sees the other's writes. */
import { runTree } from '../support/processes.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/index.js';
import { waitFor } from '../support/wait.js';
import { call, startTestApi, tempDir } from '../support/api.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const writer = fileURLToPath(new URL('../support/store-writer.ts', import.meta.url));

async function runWriter(path: string, count: number, tag: string): Promise<string[]> {
  const r = await runTree(process.execPath, ['--import', 'tsx', writer, path, String(count), tag], { cwd: process.cwd(), timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`the writer exited ${r.code}${r.timedOut ? ' (timed out)' : ''}\n${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}

describe('two processes, one db file', () => {
  it('interleaved writes from two child processes and this one all land', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'shared', 'egress.db');
    const here = openStore(path);
    const seen = new Map<string, number>();
    here.onChange((c) => seen.set(c.id, (seen.get(c.id) ?? 0) + 1));
    const children = Promise.all([runWriter(path, 150, 'left'), runWriter(path, 150, 'right')]);
    const mine: string[] = [];
    for (let i = 0; i < 100; i++) {
      mine.push(here.policies.create('shared', { name: `here-${i}` }).id);
      await new Promise((r) => setImmediate(r));
    }
    const [left, right] = await children;
    const all = [...left, ...right, ...mine];
    expect(new Set(all).size).toBe(400);

    const page = here.policies.list('shared', { limit: 5000 });
    expect(page.totalCount).toBe(400);
    expect(page.items.map((p) => p.id).sort()).toEqual([...all].sort());
    for (const id of left) {
      const p = here.getPolicy(id)!;
      expect(p.version).toBe(2);
      expect(p.description).toBe('updated by left');
    }
    expect(here.devboxes.list('shared', { limit: 100 }).totalCount).toBe(30);

    // Writes from the other processes reach this process's change listeners (the engine re-reads them).
    await waitFor(() => [...left, ...right].every((id) => seen.has(id)), 10_000, "the other processes' writes announced");
    // This process's own writes were announced once, at commit, not again by the poll.
    for (const id of mine) expect(seen.get(id)).toBe(1);
    here.close();

    const db = new Database(path, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  }, 60_000);

  it('two stores in one process interleave writes on one file', () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'two.db');
    const a = openStore(path);
    const b = openStore(path);
    for (let i = 0; i < 50; i++) {
      a.policies.create('acct', { name: `a-${i}` });
      b.policies.create('acct', { name: `b-${i}` });
    }
    expect(() => b.policies.create('acct', { name: 'a-3' })).toThrow(/already exists/);
    const p = a.policies.create('acct', { name: 'shared' });
    b.policies.update('acct', p.id, { egress: { allow_all: true } });
    expect(a.getPolicy(p.id)).toMatchObject({ version: 2, egress: { allow_all: true, allow_devbox_to_devbox: true } });
    expect(a.policies.list('acct', { limit: 1000 }).totalCount).toBe(101);
    a.close();
    b.close();
  });

  it('a second API process on the same file serves what the first one wrote', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const one = await startTestApi({ dir });
    const two = await startTestApi({ dir });
    try {
      const p = (await call(one, 'POST', '/v1/network-policies', { body: { name: 'from-one', allowed_hostnames: ['a.example.com'] } })).body;
      expect((await call(two, 'GET', `/v1/network-policies/${p.id}`)).body.name).toBe('from-one');
      await call(two, 'POST', `/v1/network-policies/${p.id}`, { body: { allowed_hostnames: ['b.example.com'] } });
      expect((await call(one, 'GET', `/v1/network-policies/${p.id}`)).body.egress.allowed_hostnames).toEqual(['b.example.com']);
      // The first process's engine learns of the change made through the second.
      await waitFor(async () => (await call(one, 'POST', '/v1/egress/check', { body: { network_policy_id: p.id, host: 'b.example.com' } })).body.decision === 'allow', 10_000, 'the first process deciding on the new list');
      expect((await call(two, 'POST', '/v1/network-policies', { body: { name: 'from-one' } })).status).toBe(400);
    } finally {
      await one.stop();
      await two.stop();
    }
  });
});
