/** Everything survives a restart on the same sqlite file; the store creates its folder and refuses a corrupt file. */
import { writeFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import Runloop from '@runloop/api-client';
import { ConfigError } from '../../src/config.js';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { hashToken, openStore } from '../../src/store/index.js';
import { call, startTestApi, tempDir, TOKEN_A } from '../support/api.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('restart', () => {
  it('keeps policies, versions, devboxes, credentials and tokens', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const first = await startTestApi({ dir });
    expect(existsSync(first.dbPath)).toBe(true); // folder db/ was created
    const sdk = new Runloop({ bearerToken: TOKEN_A, baseURL: first.base });
    const p = await sdk.networkPolicies.create({ name: 'persisted', allowed_hostnames: ['github.com'], allowed_cidrs: [{ cidr: '10.0.0.0/8' }] });
    await sdk.networkPolicies.update(p.id, { allow_mcp_gateway: true });
    const d = (await call(first, 'POST', '/v1/devboxes', { body: { name: 'keep', launch_parameters: { network_policy_id: p.id }, network: { addresses: ['10.77.0.1'] } } })).body;
    const gone = (await call(first, 'POST', '/v1/devboxes', { body: { name: 'gone' } })).body;
    await call(first, 'POST', `/v1/devboxes/${gone.id}/shutdown`);
    const before = await sdk.networkPolicies.retrieve(p.id);
    await first.stop();

    const second = await startTestApi({ dir });
    try {
      const sdk2 = new Runloop({ bearerToken: TOKEN_A, baseURL: second.base });
      expect(await sdk2.networkPolicies.retrieve(p.id)).toEqual(before);
      expect(second.store.getPolicy(p.id)!.version).toBe(2);
      const d2 = (await call(second, 'GET', `/v1/devboxes/${d.id}`)).body;
      const { proxy_credentials: _c, ...view } = d;
      expect(d2).toEqual(view);
      expect((await call(second, 'GET', `/v1/devboxes/${gone.id}`)).body.status).toBe('shutdown');
      // The engine rebuilt its view from the store: address, credentials and policy still apply.
      expect(second.engine.identifyByAddress('10.77.0.1').devboxId).toBe(d.id);
      expect(second.engine.identifyByCredentials(d.id, d.proxy_credentials.password, '10.77.0.1')?.devboxId).toBe(d.id);
      expect((await call(second, 'POST', '/v1/egress/check', { body: { devbox_id: d.id, host: 'github.com' } })).body).toMatchObject({ decision: 'allow', policy_version: 2 });
      // The address is still taken by the running devbox.
      expect((await call(second, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.77.0.1'] } } })).status).toBe(400);
      // A name stays unique across the restart; new ids still sort after old ones.
      expect((await call(second, 'POST', '/v1/network-policies', { body: { name: 'persisted' } })).status).toBe(400);
      const newer = (await call(second, 'POST', '/v1/network-policies', { body: { name: 'newer' } })).body;
      expect(newer.id > p.id).toBe(true);
    } finally {
      await second.stop();
    }
  });
});

describe('store file', () => {
  it('a file that is not a database is a --db configuration error', () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'garbage.db');
    writeFileSync(path, 'this is not sqlite, just some text that is long enough to have a header'.repeat(100));
    expect(() => openStore(path)).toThrow(ConfigError);
    try {
      openStore(path);
    } catch (e) {
      expect((e as ConfigError).setting).toBe('--db');
      expect((e as Error).message).toContain(path);
    }
  });

  it('a path that cannot be created is a --db configuration error', () => {
    const dir = tempDir();
    dirs.push(dir);
    writeFileSync(join(dir, 'file'), 'x');
    expect(() => openStore(join(dir, 'file', 'sub', 'x.db'))).toThrow(/--db/);
  });

  it('creates a first token only when none is configured or stored', () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'tokens.db');
    const s = openStore(path);
    const token = s.tokens.ensure([]);
    expect(token).toMatch(/^egw_[A-Za-z0-9_-]{43}$/);
    expect(s.tokens.accountFor(token!)).toBe('default');
    expect(s.tokens.ensure([])).toBeNull();
    s.close();
    const again = openStore(path);
    expect(again.tokens.ensure([])).toBeNull();
    expect(again.tokens.accountFor(token!)).toBe('default');
    // Configured tokens are used as given; one removed from the configuration stops working.
    expect(
      again.tokens.ensure([
        { token: 'cfg-1', accountId: 'a1' },
        { token: 'cfg-2', accountId: 'a2' },
      ]),
    ).toBeNull();
    expect(again.tokens.accountFor('cfg-2')).toBe('a2');
    again.tokens.ensure([{ token: 'cfg-1', accountId: 'a1' }]);
    expect(again.tokens.accountFor('cfg-2')).toBeNull();
    expect(again.tokens.accountFor('cfg-1')).toBe('a1');
    expect(again.tokens.accountFor('nope')).toBeNull();
    again.close();
  });

  it('a version 1 database keeps its tokens through the upgrade, with their origins and new ids', () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'v1.db');
    const db = new Database(path);
    db.exec(MIGRATIONS[0]!);
    db.pragma('user_version = 1');
    const ins = db.prepare('INSERT INTO api_tokens (token_hash, account_id, source, create_time_ms) VALUES (?, ?, ?, ?)');
    ins.run(hashToken('old-configured'), 'acct-c', 'config', 1000);
    ins.run(hashToken('egw_old-generated'), 'default', 'generated', 2000);
    db.close();

    const s = openStore(path);
    expect(s.tokens.accountFor('old-configured')).toBe('acct-c');
    expect(s.tokens.accountFor('egw_old-generated')).toBe('default');
    const list = s.tokens.list();
    expect(list.map((t) => [t.accountId, t.origin, t.prefix, t.createTimeMs])).toEqual([
      ['acct-c', 'configured', null, 1000],
      ['default', 'first-start', null, 2000],
    ]);
    for (const t of list) expect(t.id).toMatch(/^tok_[0-9a-f]{22}$/);
    // The first-start token of a version 1 database is revocable like any other.
    expect(s.tokens.revoke(list[1]!.id).accountId).toBe('default');
    expect(s.tokens.accountFor('egw_old-generated')).toBeNull();
    s.close();
  });
});
