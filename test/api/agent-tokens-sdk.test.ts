/**
 * Agent tokens through the official SDK (devboxes.createGatewayToken / createMcpToken, and
 * devbox create with gateways / mcp), checked where the doors read them: the CredentialSource
 * of an in-process gateway (`store.credentials`). A token is found by its SHA-256 only while its
 * devbox runs and its config and secret exist; a secret's new value applies without a new token.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Runloop from '@runloop/api-client';
import { startTestGateway, TOKEN_A, TOKEN_B, type TestGateway } from '../support/gateway.js';
import { TEST_BACKEND } from '../support/api.js';

let tg: TestGateway;
let a: Runloop;
let b: Runloop;
const GATEWAY_URL = 'https://agent-gateway.internal.example';
const MCP_URL = 'https://mcp-hub.internal.example/mcp';

const sha256 = (t: string) => createHash('sha256').update(t).digest('hex');
/** What the doors see now (PostgreSQL: after the follower took in the API's writes). */
async function creds() {
  await tg.gw.store.refresh();
  return tg.gw.store.credentials;
}

beforeAll(async () => {
  tg = await startTestGateway({ flags: { 'agent-gateway': '127.0.0.1:0', 'mcp-hub': '127.0.0.1:0', 'agent-gateway-url': GATEWAY_URL, 'mcp-hub-url': MCP_URL } });
  a = new Runloop({ bearerToken: TOKEN_A, baseURL: tg.apiUrl, maxRetries: 0 });
  b = new Runloop({ bearerToken: TOKEN_B, baseURL: tg.apiUrl, maxRetries: 0 });
});
afterAll(async () => {
  await tg.close();
});

let seq = 0;
async function devbox(client: Runloop, extra: object = {}) {
  seq++;
  return (await client.devboxes.create({ name: `agent-${seq}`, network: { addresses: [`10.77.${Math.floor(seq / 200)}.${(seq % 200) + 1}`] }, ...extra } as never)) as unknown as Record<string, any>;
}

describe('create_gateway_token and create_mcp_token', () => {
  it('mints a gateway token the doors find by its SHA-256, bound to devbox, config and secret', async () => {
    const d = await devbox(a);
    const secret = await a.secrets.create({ name: 'ANTHROPIC_API_KEY', value: 'sk-ant-real-1' });
    const t = await a.devboxes.createGatewayToken(d.id, { gateway: 'anthropic', secret: 'ANTHROPIC_API_KEY' });
    expect(t).toEqual({ token: t.token, url: GATEWAY_URL, devbox_id: d.id, endpoint: 'https://api.anthropic.com', gateway_config_id: 'gwc_anthropic', auth_mechanism: { type: 'header', key: 'x-api-key' } });
    expect(Buffer.from(t.token.replace(/^egw_gt_/, ''), 'base64url').length).toBeGreaterThanOrEqual(16);

    const c = await creds();
    expect(c.agentToken(sha256(t.token))).toMatchObject({ kind: 'gateway', account_id: 'acct-a', devbox_id: d.id, config_id: 'gwc_anthropic', secret_id: secret.id });
    expect(c.agentToken(sha256(`${t.token}x`))).toBeUndefined();
    expect(c.gatewayConfig('gwc_anthropic')?.endpoint).toBe('https://api.anthropic.com');
    expect(c.secretValue('acct-a', secret.id)).toBe('sk-ant-real-1');
    expect(c.secretValue('acct-b', secret.id)).toBeUndefined();

    // A new value applies from the next lookup, with the same token.
    await a.secrets.update('ANTHROPIC_API_KEY', { value: 'sk-ant-real-2' });
    const c2 = await creds();
    expect(c2.agentToken(sha256(t.token))).toBeDefined();
    expect(c2.secretValue('acct-a', secret.id)).toBe('sk-ant-real-2');
  });

  it('mints an MCP token whose config carries the allowed tools', async () => {
    const d = await devbox(a);
    await a.secrets.create({ name: 'GITHUB_TOKEN', value: 'ghp_real' });
    const cfg = await a.mcpConfigs.create({ name: 'github-readonly', endpoint: 'https://mcp.github.example/mcp', allowed_tools: ['search_*'] });
    const t = await a.devboxes.createMcpToken(d.id, { mcp_config: 'github-readonly', secret: 'GITHUB_TOKEN' });
    expect(t).toEqual({ token: t.token, url: MCP_URL, devbox_id: d.id, endpoint: 'https://mcp.github.example/mcp', mcp_config_id: cfg.id, allowed_tools: ['search_*'] });
    const c = await creds();
    const found = c.agentToken(sha256(t.token))!;
    expect(found).toMatchObject({ kind: 'mcp', config_id: cfg.id });
    expect(c.mcpConfig(found.config_id)?.allowed_tools).toEqual(['search_*']);
    expect(c.gatewayConfig(found.config_id)).toBeUndefined();
  });

  it('refuses a devbox, secret or config of another account (404), and a devbox that is not running', async () => {
    const theirs = await devbox(b);
    await b.secrets.create({ name: 'B_SECRET', value: 'b-value' });
    const bCfg = await b.gatewayConfigs.create({ name: 'b-api', endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' } });
    const mine = await devbox(a);
    await a.secrets.create({ name: 'A_SECRET', value: 'a-value' });
    const bSecretId = (await b.secrets.retrieve('B_SECRET')).id;

    await expect(a.devboxes.createGatewayToken(theirs.id, { gateway: 'openai', secret: 'A_SECRET' })).rejects.toMatchObject({ status: 404 });
    await expect(a.devboxes.createGatewayToken(mine.id, { gateway: 'openai', secret: 'B_SECRET' })).rejects.toMatchObject({ status: 404 });
    await expect(a.devboxes.createGatewayToken(mine.id, { gateway: 'openai', secret: bSecretId })).rejects.toMatchObject({ status: 404 });
    await expect(a.devboxes.createGatewayToken(mine.id, { gateway: bCfg.id, secret: 'A_SECRET' })).rejects.toMatchObject({ status: 404 });
    await expect(a.devboxes.createGatewayToken(mine.id, { gateway: 'b-api', secret: 'A_SECRET' })).rejects.toMatchObject({ status: 404 });
    await expect(a.devboxes.createMcpToken(theirs.id, { mcp_config: 'github-readonly', secret: 'A_SECRET' })).rejects.toMatchObject({ status: 404 });

    await a.devboxes.shutdown(mine.id);
    await expect(a.devboxes.createGatewayToken(mine.id, { gateway: 'openai', secret: 'A_SECRET' })).rejects.toMatchObject({ status: 400 });
  });
});

describe('limits', () => {
  it('a devbox holds at most 64 tokens (403 quota_exceeded past that)', async () => {
    const d = await devbox(a);
    await a.secrets.create({ name: 'MANY', value: 'v' });
    for (let i = 0; i < 64; i++) await a.devboxes.createGatewayToken(d.id, { gateway: 'openai', secret: 'MANY' });
    await expect(a.devboxes.createGatewayToken(d.id, { gateway: 'openai', secret: 'MANY' })).rejects.toMatchObject({ status: 403, error: { error: { code: 'quota_exceeded' } } });
  });
});

describe('a token stops counting', () => {
  it('when its secret is deleted', async () => {
    const d = await devbox(a);
    await a.secrets.create({ name: 'GOES_AWAY', value: 'v' });
    const t = await a.devboxes.createGatewayToken(d.id, { gateway: 'openai', secret: 'GOES_AWAY' });
    expect((await creds()).agentToken(sha256(t.token))).toBeDefined();
    await a.secrets.delete('GOES_AWAY');
    expect((await creds()).agentToken(sha256(t.token))).toBeUndefined();
    // A new secret of the same name is a new secret: the old token stays dead.
    await a.secrets.create({ name: 'GOES_AWAY', value: 'v2' });
    expect((await creds()).agentToken(sha256(t.token))).toBeUndefined();
  });

  it('when its config is deleted', async () => {
    const d = await devbox(a);
    await a.secrets.create({ name: 'CFG_GOES', value: 'v' });
    const cfg = await a.gatewayConfigs.create({ name: 'short-lived', endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' } });
    const t = await a.devboxes.createGatewayToken(d.id, { gateway: cfg.id, secret: 'CFG_GOES' });
    expect((await creds()).agentToken(sha256(t.token))).toBeDefined();
    await a.gatewayConfigs.delete(cfg.id);
    const c = await creds();
    expect(c.agentToken(sha256(t.token))).toBeUndefined();
    expect(c.gatewayConfig(cfg.id)).toBeUndefined();
  });

  it('when its devbox shuts down', async () => {
    const d = await devbox(a);
    await a.secrets.create({ name: 'DEVBOX_GOES', value: 'v' });
    const t = await a.devboxes.createMcpToken(d.id, { mcp_config: 'github-readonly', secret: 'DEVBOX_GOES' });
    expect((await creds()).agentToken(sha256(t.token))).toBeDefined();
    await a.devboxes.shutdown(d.id);
    expect((await creds()).agentToken(sha256(t.token))).toBeUndefined();
  });
});

describe('devbox create with gateways and mcp', () => {
  it('mints a token per spec in the same write, returns the environment once, and shows the specs', async () => {
    const s = await a.secrets.create({ name: 'CLAUDE_KEY', value: 'sk-ant-claude' });
    const gh = await a.secrets.create({ name: 'GH_MCP', value: 'ghp-mcp' });
    const d = await devbox(a, { gateways: { GWS_ANTHROPIC: { gateway: 'anthropic', secret: 'CLAUDE_KEY' } }, mcp: { MCP_GITHUB: { mcp_config: 'github-readonly', secret: gh.id } } });
    const mcpId = (await a.mcpConfigs.list()).mcp_configs.find((c) => c.name === 'github-readonly')!.id;
    expect(d.gateway_specs).toEqual({ GWS_ANTHROPIC: { gateway_config_id: 'gwc_anthropic', secret_id: s.id } });
    expect(d.mcp_specs).toEqual({ MCP_GITHUB: { mcp_config_id: mcpId, secret_id: gh.id } });
    const env = d.agent_environment as Record<string, string>;
    expect(Object.keys(env).sort()).toEqual(['GWS_ANTHROPIC_KEY', 'GWS_ANTHROPIC_URL', 'MCP_GITHUB', 'RL_MCP_URL']);
    expect(env.GWS_ANTHROPIC_URL).toBe(GATEWAY_URL);
    expect(env.RL_MCP_URL).toBe(MCP_URL);
    expect(JSON.stringify(d)).not.toContain('sk-ant-claude');

    const c = await creds();
    expect(c.agentToken(sha256(env.GWS_ANTHROPIC_KEY!))).toMatchObject({ kind: 'gateway', devbox_id: d.id, config_id: 'gwc_anthropic', secret_id: s.id });
    expect(c.agentToken(sha256(env.MCP_GITHUB!))).toMatchObject({ kind: 'mcp', devbox_id: d.id, config_id: mcpId, secret_id: gh.id });

    // Reads show the specs, never the environment.
    const got = (await a.devboxes.retrieve(d.id)) as unknown as Record<string, unknown>;
    expect(got.gateway_specs).toEqual(d.gateway_specs);
    expect(got.mcp_specs).toEqual(d.mcp_specs);
    expect(got.agent_environment).toBeUndefined();
    const listed = (await a.devboxes.list()).devboxes.find((x) => x.id === d.id) as unknown as Record<string, unknown>;
    expect(listed.gateway_specs).toEqual(d.gateway_specs);

    // The token text is nowhere in the database; its hash is.
    if (TEST_BACKEND === 'sqlite') {
      const file = tg.gw.config.db;
      const bytes = [file, `${file}-wal`]
        .filter((f) => existsSync(f))
        .map((f) => readFileSync(f).toString('latin1'))
        .join('');
      expect(bytes).toContain(sha256(env.GWS_ANTHROPIC_KEY!));
      expect(bytes).not.toContain(env.GWS_ANTHROPIC_KEY!);
      expect(bytes).not.toContain(env.MCP_GITHUB!);
    }
  });

  it("refuses the whole create when a spec names another account's secret or an unknown config (no devbox left behind)", async () => {
    await b.secrets.create({ name: 'B_ONLY', value: 'b' });
    const before = (await a.devboxes.list({ limit: 500 })).devboxes.length;
    await expect(devbox(a, { gateways: { GWS_X: { gateway: 'openai', secret: 'B_ONLY' } } })).rejects.toMatchObject({ status: 404 });
    await expect(devbox(a, { mcp: { MCP_X: { mcp_config: 'no-such-config', secret: 'CLAUDE_KEY' } } })).rejects.toMatchObject({ status: 404 });
    expect((await a.devboxes.list({ limit: 500 })).devboxes.length).toBe(before);
  });

  it('refuses env names that are not variable names or that collide', async () => {
    await expect(devbox(a, { gateways: { 'BAD-NAME': { gateway: 'openai', secret: 'CLAUDE_KEY' } } })).rejects.toMatchObject({ status: 400 });
    await expect(devbox(a, { gateways: { GWS: { gateway: 'openai', secret: 'CLAUDE_KEY' } }, mcp: { GWS_KEY: { mcp_config: 'github-readonly', secret: 'CLAUDE_KEY' } } })).rejects.toMatchObject({ status: 400 });
    await expect(devbox(a, { mcp: { RL_MCP_URL: { mcp_config: 'github-readonly', secret: 'CLAUDE_KEY' } } })).rejects.toMatchObject({ status: 400 });
  });
});
