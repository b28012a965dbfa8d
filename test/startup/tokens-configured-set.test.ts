/**
 * Issue #11 case 6, with the real CLI: the configured tokens (--api-token, EGRESS_API_TOKENS,
 * the config file) are exactly the set given — one taken out stops working at the next start,
 * also when none remain (before: it kept working unless another configured token remained);
 * the first-start token can be listed and revoked (before: never); `tokens create|list|revoke`
 * work on the db file while serve runs, and a revoke is refused by the running API at once.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAll, startServe } from '../support/serve-process.js';
import { runCli } from '../support/run-cli.js';
import { tempDir } from '../support/temp.js';

afterAll(() => killAll());

const status = async (apiUrl: string, token: string) => (await fetch(`${apiUrl}/v1/network-policies`, { headers: { authorization: `Bearer ${token}` } })).status;

/** Polls until the API answers this status for the token (a revoke must show within the deadline). */
async function expectStatus(apiUrl: string, token: string, want: number, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  let got = await status(apiUrl, token);
  while (got !== want && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 25));
    got = await status(apiUrl, token);
  }
  expect(got, `token ${token.slice(0, 8)}…`).toBe(want);
}

describe('configured tokens are exactly the set given', { timeout: 240_000 }, () => {
  it('removing one revokes it on restart (flag, then env, then a config file), also the last one', async () => {
    const dir = tempDir('tokens');
    const db = join(dir, 'egress.db');

    const one = await startServe(['--db', db, '--api-token', 'cfg-alpha-0001:acme', '--api-token', 'cfg-bravo-0002:acme']);
    await expectStatus(one.apiUrl, 'cfg-alpha-0001', 200);
    await expectStatus(one.apiUrl, 'cfg-bravo-0002', 200);
    expect(one.printedToken()).toBeNull();
    expect(await one.stop()).toBe(0);

    const two = await startServe(['--db', db], { EGRESS_API_TOKENS: 'cfg-alpha-0001:acme' });
    await expectStatus(two.apiUrl, 'cfg-alpha-0001', 200);
    await expectStatus(two.apiUrl, 'cfg-bravo-0002', 401);
    expect(await two.stop()).toBe(0);

    // None configured (a config file without tokens): the last configured token goes too, and
    // with no token left the gateway makes a first-start token and prints it once.
    const cfg = join(dir, 'gateway.yaml');
    writeFileSync(cfg, 'log_level: info\n');
    const three = await startServe(['--db', db, '--config', cfg]);
    await expectStatus(three.apiUrl, 'cfg-alpha-0001', 401);
    const first = await three.firstStartToken();
    await expectStatus(three.apiUrl, first, 200);
    expect(await three.stop()).toBe(0);
  });

  it('tokens create|list|revoke on the db while serve runs: a revoke is refused at once, the first-start token too', async () => {
    const dir = tempDir('tokens');
    const db = join(dir, 'egress.db');
    const serve = await startServe(['--db', db]);
    const first = await serve.firstStartToken();
    await expectStatus(serve.apiUrl, first, 200);

    const created = await runCli(['tokens', 'create', '--db', db, '--account', 'ops']);
    expect(created.code).toBe(0);
    const opsToken = created.stdout.trim();
    expect(opsToken).toMatch(/^egw_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/Created API token tok_\w+ for account "ops" \(shown once/);
    await expectStatus(serve.apiUrl, opsToken, 200);

    const list = await runCli(['tokens', 'list', '--db', db, '--json']);
    expect(list.code).toBe(0);
    expect(list.stdout).not.toContain(opsToken);
    expect(list.stdout).not.toContain(first);
    const rows = JSON.parse(list.stdout) as Array<{ id: string; prefix: string; account_id: string; origin: string; last_used_ms: number | null }>;
    expect(rows.map((r) => [r.account_id, r.origin, r.prefix])).toEqual([
      ['default', 'first-start', first.slice(0, 11)],
      ['ops', 'created', opsToken.slice(0, 11)],
    ]);
    expect(rows[1]!.last_used_ms).toBeGreaterThan(Date.now() - 120_000);

    const table = await runCli(['tokens', 'list', '--db', db]);
    expect(table.stdout).toMatch(/^ID\s+PREFIX\s+ACCOUNT\s+ORIGIN\s+CREATED\s+LAST USED$/m);
    expect(table.stdout).toMatch(new RegExp(`^${rows[0]!.id}\\s+${first.slice(0, 11)}…\\s+default\\s+first-start\\s+\\d{4}-\\d\\d-\\d\\dT`, 'm'));

    // By the prefix `list` shows, and the first-start token by id.
    const byPrefix = await runCli(['tokens', 'revoke', rows[1]!.prefix, '--db', db]);
    expect(byPrefix.code).toBe(0);
    expect(byPrefix.stdout).toContain(`revoked ${rows[1]!.id}`);
    await expectStatus(serve.apiUrl, opsToken, 401);
    const byId = await runCli(['tokens', 'revoke', rows[0]!.id, '--db', db]);
    expect(byId.code).toBe(0);
    await expectStatus(serve.apiUrl, first, 401);
    expect(await serve.stop()).toBe(0);
  });

  it('revoke refuses an ambiguous or unknown reference, and usage errors are exit 2', async () => {
    const dir = tempDir('tokens');
    const db = join(dir, 'egress.db');
    expect((await runCli(['tokens', 'list', '--db', db])).code).toBe(2); // no store yet: not created by list
    for (let i = 0; i < 2; i++) expect((await runCli(['tokens', 'create', '--db', db])).code).toBe(0);
    const amb = await runCli(['tokens', 'revoke', 'egw_', '--db', db]);
    expect(amb.code).toBe(2);
    expect(amb.stderr).toMatch(/matches 2 tokens/);
    const none = await runCli(['tokens', 'revoke', 'tok_nothing', '--db', db]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no token/);
    expect((await runCli(['tokens', 'rotate', '--db', db])).code).toBe(2);
    expect((await runCli(['tokens', 'create', '--db', db, '--account', 'has space'])).code).toBe(2);
    expect(JSON.parse((await runCli(['tokens', 'list', '--db', db, '--json'])).stdout)).toHaveLength(2);
  });
});
