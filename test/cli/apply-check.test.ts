/**
 * `apply` and `check` as an operator runs them: the real gateway in-process (real sqlite
 * store, real API), the CLI as a child process.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestGateway, TOKEN_A, startTestGateway } from '../support/gateway.js';
import { runCli } from '../support/run-cli.js';
import { tempDir } from '../support/temp.js';

let gw: TestGateway;
let dir: string;

beforeAll(async () => {
  gw = await startTestGateway();
  dir = tempDir('apply');
  cpSync('policies', dir, { recursive: true });
});
afterAll(async () => {
  await gw?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function listed(): Promise<Map<string, any>> {
  const r = await gw.api.call('GET', '/v1/network-policies?limit=100');
  expect(r.status).toBe(200);
  return new Map((r.body.network_policies as any[]).map((p) => [p.name, p]));
}

describe('egress-gateway apply', () => {
  it('--dry-run prints the plan and changes nothing', async () => {
    const r = await runCli(['apply', dir, '--dry-run', '--api-url', gw.apiUrl, '--token', TOKEN_A]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('create package-registries (dry run)');
    expect(r.stdout).toContain('dry run, nothing sent: 5 to create, 0 to update, 0 to delete, 0 unchanged');
    expect((await listed()).size).toBe(0);
  });

  it('creates every policy in the folder, stored as the files say', async () => {
    const r = await runCli(['apply', dir, '--api-url', gw.apiUrl], { RUNLOOP_API_KEY: TOKEN_A });
    expect(r.code, r.stderr).toBe(0);
    expect(
      r.stdout
        .split('\n')
        .filter((l) => l.startsWith('create '))
        .sort(),
    ).toEqual(['create agent-gateway-only', 'create allow-all', 'create deny-all', 'create package-registries', 'create public-dns-and-cidrs']);
    const all = await listed();
    expect(all.get('allow-all').egress).toMatchObject({ allow_all: true, allow_devbox_to_devbox: true });
    expect(all.get('deny-all').egress).toMatchObject({ allow_all: false, allowed_hostnames: [] });
    expect(all.get('package-registries').egress.allowed_hostnames).toContain('*.githubusercontent.com');
    expect(all.get('agent-gateway-only').egress).toMatchObject({ allow_agent_gateway: true, allow_mcp_gateway: true, allowed_hostnames: [] });
    expect(all.get('public-dns-and-cidrs').egress.allowed_cidrs).toContainEqual({ cidr: '1.1.1.1/32', ports: [{ port: 53 }, { port: 853, protocol: 'TCP' }] });
  });

  it('a second run changes nothing', async () => {
    const r = await runCli(['apply', dir, '--api-url', gw.apiUrl, '--token', TOKEN_A]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('0 created, 0 updated, 0 deleted, 5 unchanged');
  });

  it('an edited file is an update, seen by the running gateway’s next decision', async () => {
    const id = (await listed()).get('deny-all').id as string;
    const before = await gw.api.call('POST', '/v1/egress/check', { network_policy_id: id, host: 'example.com', port: 443 });
    expect(before.body).toMatchObject({ decision: 'deny', reason: 'not_allowlisted' });
    const file = join(dir, 'deny-all.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('allowed_hostnames: []', 'allowed_hostnames: [example.com, "*.example.org"]'));
    const r = await runCli(['apply', dir, '--api-url', gw.apiUrl, '--token', TOKEN_A]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('update deny-all (allowed_hostnames +2)');
    const after = await gw.api.call('POST', '/v1/egress/check', { network_policy_id: id, host: 'example.com', port: 443 });
    expect(after.body).toMatchObject({ decision: 'allow', reason: 'hostname', matched: 'example.com' });
  });

  it('--prune deletes policies no file names; without it they stay', async () => {
    await gw.api.policy('made-by-hand', { allowed_hostnames: ['x.example.com'] });
    let r = await runCli(['apply', dir, '--api-url', gw.apiUrl, '--token', TOKEN_A]);
    expect(r.stdout).not.toMatch(/^delete /m);
    expect((await listed()).has('made-by-hand')).toBe(true);
    r = await runCli(['apply', dir, '--prune', '--dry-run', '--api-url', gw.apiUrl, '--token', TOKEN_A]);
    expect(r.stdout).toContain('delete made-by-hand (dry run)');
    expect((await listed()).has('made-by-hand')).toBe(true);
    r = await runCli(['apply', dir, '--prune', '--api-url', gw.apiUrl, '--token', TOKEN_A]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('delete made-by-hand');
    expect((await listed()).has('made-by-hand')).toBe(false);
  });

  it('a bad file stops everything before any call, naming file and entry', async () => {
    const bad = tempDir('bad');
    writeFileSync(join(bad, 'good.yaml'), 'name: would-be-created\n');
    writeFileSync(join(bad, 'wild.yaml'), 'name: wild\nallowed_hostnames: ["*.com"]\n');
    const r = await runCli(['apply', bad, '--api-url', gw.apiUrl, '--token', TOKEN_A]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/wild\.yaml: allowed_hostnames\[0\]: entry "\*\.com" is rejected/);
    expect((await listed()).has('would-be-created')).toBe(false);
    rmSync(bad, { recursive: true, force: true });
  });

  it('a wrong token or an unreachable API is exit code 1 with a message', async () => {
    let r = await runCli(['apply', dir, '--api-url', gw.apiUrl, '--token', 'wrong']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/401/);
    r = await runCli(['apply', dir, '--api-url', 'http://127.0.0.1:9', '--token', TOKEN_A]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach/);
    r = await runCli(['apply', dir, '--api-url', gw.apiUrl]);
    expect(r.code).toBe(2);
  });
});

describe('egress-gateway check', () => {
  const db = () => gw.gw.config.db;

  it('explains allow and deny from the store, with exit codes 0 and 1', async () => {
    const id = (await listed()).get('package-registries').id as string;
    let r = await runCli(['check', '--policy', id, '--db', db(), 'a.b.githubusercontent.com']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^allow\\s+hostname\\s+matched=\\*\\.githubusercontent\\.com\\s+policy=${id} v\\d+\\s+host=a\\.b\\.githubusercontent\\.com:443`));
    r = await runCli(['check', '--policy', id, '--db', db(), 'github.com.evil.com:443']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^deny\s+not_allowlisted\s+matched=-/);
    r = await runCli(['check', '--policy', id, '--db', db(), '--json', '0x7f.1:22']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'deny', reason: 'private_address', host: '127.0.0.1', port: 22, network_policy_id: id });
  });

  it('agrees with POST /v1/egress/check', async () => {
    const id = (await listed()).get('public-dns-and-cidrs').id as string;
    for (const [host, port] of [
      ['8.8.8.8', 853],
      ['8.8.8.8', 443],
      ['dns.google', 443],
      ['EXAMPLE.com.', 443],
    ] as const) {
      const api = await gw.api.call('POST', '/v1/egress/check', { network_policy_id: id, host, port });
      const cli = await runCli(['check', '--policy', id, '--db', db(), '--json', `${host}:${port}`]);
      expect(JSON.parse(cli.stdout)).toMatchObject({ decision: api.body.decision, reason: api.body.reason, matched: api.body.matched, policy_version: api.body.policy_version });
    }
  });

  it('checks a policy file without any store', async () => {
    let r = await runCli(['check', '--policy', 'policies/package-registries.yaml', 'registry.npmjs.org', '--db', '/nonexistent/x.db']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^allow\s+hostname\s+matched=registry\.npmjs\.org/);
    r = await runCli(['check', '--policy', 'policies/package-registries.yaml', 'npmjs.org']);
    expect(r.code).toBe(1);
  });

  it('usage errors are exit code 2', async () => {
    expect((await runCli(['check', 'github.com'])).code).toBe(2);
    expect((await runCli(['check', '--policy', 'npol_x', '--db', db()])).code).toBe(2);
    expect((await runCli(['check', '--policy', 'npol_x', '--db', '/nonexistent/x.db', 'a.com'])).code).toBe(2);
    expect((await runCli(['check', '--policy', 'npol_x', '--db', db(), 'a.com:99999'])).code).toBe(2);
  });

  it('an unknown policy id is a deny (policy_missing)', async () => {
    const r = await runCli(['check', '--policy', 'npol_nope', '--db', db(), 'a.com']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^deny\s+policy_missing/);
  });
});
