/**
 * Gateway and MCP configs through the official SDK (client.gatewayConfigs, client.mcpConfigs):
 * round trips, the system configs every account lists, custom headers (secret by name in,
 * sec_ id out; header injection and credential overrides refused), tool globs, and account
 * isolation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Runloop from '@runloop/api-client';
import { call, errorOf, startTestApi, TOKEN_A, TOKEN_B, type TestApi } from '../support/api.js';

let api: TestApi;
let a: Runloop;
let b: Runloop;

beforeAll(async () => {
  api = await startTestApi();
  a = new Runloop({ bearerToken: TOKEN_A, baseURL: api.base, maxRetries: 0 });
  b = new Runloop({ bearerToken: TOKEN_B, baseURL: api.base, maxRetries: 0 });
});
afterAll(async () => {
  await api.close();
});

async function all<T>(page: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of page) out.push(x);
  return out;
}

describe('gateway configs through @runloop/api-client', () => {
  it('lists the system configs anthropic and openai for every account, and retrieves them', async () => {
    for (const client of [a, b]) {
      const list = await all(client.gatewayConfigs.list());
      const anthropic = list.find((c) => c.name === 'anthropic')!;
      const openai = list.find((c) => c.name === 'openai')!;
      expect(anthropic).toMatchObject({ endpoint: 'https://api.anthropic.com', auth_mechanism: { type: 'header', key: 'x-api-key' }, account_id: null });
      expect(openai).toMatchObject({ endpoint: 'https://api.openai.com', auth_mechanism: { type: 'bearer' }, account_id: null });
      expect(await client.gatewayConfigs.retrieve(anthropic.id)).toEqual(anthropic);
    }
  });

  it('system configs cannot be changed or deleted, nor their names taken', async () => {
    await expect(a.gatewayConfigs.update('gwc_anthropic', { endpoint: 'https://evil.example' })).rejects.toMatchObject({ status: 404 });
    await expect(a.gatewayConfigs.delete('gwc_openai')).rejects.toMatchObject({ status: 404 });
    await expect(a.gatewayConfigs.create({ name: 'openai', endpoint: 'https://x.example', auth_mechanism: { type: 'bearer' } })).rejects.toMatchObject({ status: 400 });
  });

  it('creates, retrieves, updates and deletes a config; a secret header is given by name and read back as its sec_ id', async () => {
    const secret = await a.secrets.create({ name: 'DD_APP_KEY', value: 'dd-app-key-value' });
    const created = await a.gatewayConfigs.create({
      name: 'datadog',
      endpoint: 'https://api.datadoghq.com/',
      auth_mechanism: { type: 'header', key: 'DD-API-KEY' },
      custom_headers: [
        { name: 'DD-APPLICATION-KEY', secret: 'DD_APP_KEY' },
        { name: 'X-Team', value: 'infra' },
      ],
      description: 'metrics',
    });
    expect(created.id).toMatch(/^gwc_[0-9a-z]{22}$/);
    expect(created).toMatchObject({
      name: 'datadog',
      endpoint: 'https://api.datadoghq.com',
      auth_mechanism: { type: 'header', key: 'dd-api-key' },
      custom_headers: [
        { name: 'DD-APPLICATION-KEY', secret: secret.id },
        { name: 'X-Team', value: 'infra' },
      ],
      description: 'metrics',
      account_id: 'acct_alpha',
    });
    expect(JSON.stringify(created)).not.toContain('dd-app-key-value');
    expect(await a.gatewayConfigs.retrieve(created.id)).toEqual(created);

    const updated = await a.gatewayConfigs.update(created.id, { custom_headers: [], description: null, auth_mechanism: { type: 'bearer' } });
    expect(updated).toMatchObject({ name: 'datadog', custom_headers: [], description: 'metrics', auth_mechanism: { type: 'bearer' } });

    const listed = await all(a.gatewayConfigs.list({ name: 'DATA' }));
    expect(listed.map((c) => c.id)).toEqual([created.id]);
    expect(await a.gatewayConfigs.delete(created.id)).toMatchObject({ id: created.id });
    await expect(a.gatewayConfigs.retrieve(created.id)).rejects.toMatchObject({ status: 404 });
  });

  it('pages through the account configs, then the system configs', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await b.gatewayConfigs.create({ name: `page-${i}`, endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' } })).id);
    const first = await b.gatewayConfigs.list({ limit: 2 });
    expect(first.gateway_configs.map((c) => c.id)).toEqual(ids.slice(0, 2));
    expect(first.has_more).toBe(true);
    expect(first.total_count).toBe(5);
    const everything = await all(b.gatewayConfigs.list({ limit: 2 }));
    expect(everything.map((c) => c.id)).toEqual([...ids, 'gwc_anthropic', 'gwc_openai']);
    for (const id of ids) await b.gatewayConfigs.delete(id);
  });

  it("another account's config is not found (404) to retrieve, update, delete; a secret of another account cannot be named in a header", async () => {
    const mine = await a.gatewayConfigs.create({ name: 'a-only', endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' } });
    await expect(b.gatewayConfigs.retrieve(mine.id)).rejects.toMatchObject({ status: 404 });
    await expect(b.gatewayConfigs.update(mine.id, { endpoint: 'https://evil.example' })).rejects.toMatchObject({ status: 404 });
    await expect(b.gatewayConfigs.delete(mine.id)).rejects.toMatchObject({ status: 404 });
    expect((await all(b.gatewayConfigs.list())).map((c) => c.id)).not.toContain(mine.id);

    const aSecret = await a.secrets.create({ name: 'A_HEADER_SECRET', value: 'a-header-value' });
    for (const ref of ['A_HEADER_SECRET', aSecret.id]) {
      const r = await call(api, 'POST', '/v1/gateway-configs', { token: TOKEN_B, body: { name: `steal-${ref.length}`, endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' }, custom_headers: [{ name: 'X-Key', secret: ref }] } });
      expect(errorOf(r, 404)).toMatch(/secret/);
    }
  });

  it('a secret used by a custom header cannot be deleted until the config lets go of it', async () => {
    await a.secrets.create({ name: 'HEADER_IN_USE', value: 'v' });
    const c = await a.gatewayConfigs.create({ name: 'uses-secret', endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' }, custom_headers: [{ name: 'X-Extra', secret: 'HEADER_IN_USE' }] });
    const r = await call(api, 'POST', '/v1/secrets/HEADER_IN_USE/delete');
    expect(errorOf(r, 400)).toContain(c.id);
    expect(r.body.error.code).toBe('secret_in_use');
    await a.gatewayConfigs.update(c.id, { custom_headers: [] });
    await a.secrets.delete('HEADER_IN_USE');
  });
});

describe('custom header and endpoint validation (header injection, credential override)', () => {
  const base = { endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' } };
  const refused: [string, unknown][] = [
    ['CR/LF in a value', [{ name: 'X-A', value: 'ok\r\nX-Injected: 1' }]],
    ['LF in a value', [{ name: 'X-A', value: 'ok\nmore' }]],
    ['NUL in a value', [{ name: 'X-A', value: 'ok\u0000' }]],
    ['CR/LF in a name', [{ name: 'X-A\r\nX-B', value: 'v' }]],
    ['a colon in a name', [{ name: 'X-A:', value: 'v' }]],
    ['a second Authorization', [{ name: 'Authorization', value: 'Bearer mine' }]],
    ['authorization in another case', [{ name: 'AUTHORIZATION', value: 'Bearer mine' }]],
    ['Host', [{ name: 'Host', value: 'evil.example' }]],
    ['Content-Length', [{ name: 'Content-Length', value: '0' }]],
    ['Transfer-Encoding (hop-by-hop)', [{ name: 'Transfer-Encoding', value: 'chunked' }]],
    ['Connection (hop-by-hop)', [{ name: 'Connection', value: 'close' }]],
    ['Proxy-Authorization', [{ name: 'Proxy-Authorization', value: 'x' }]],
    [
      'a duplicate name',
      [
        { name: 'X-Dup', value: '1' },
        { name: 'x-dup', value: '2' },
      ],
    ],
    ['both value and secret', [{ name: 'X-A', value: 'v', secret: 'S' }]],
    ['neither value nor secret', [{ name: 'X-A' }]],
    ['nine headers', Array.from({ length: 9 }, (_, i) => ({ name: `X-${i}`, value: 'v' }))],
  ];
  for (const [what, headers] of refused) {
    it(`refuses ${what}`, async () => {
      const r = await call(api, 'POST', '/v1/gateway-configs', { body: { name: `h-${what}`, ...base, custom_headers: headers } });
      expect(errorOf(r, 400)).toMatch(/custom_headers/);
    });
  }

  it("refuses a custom header that is the mechanism's own credential header (x-api-key), on create and on a mechanism change", async () => {
    const r = await call(api, 'POST', '/v1/gateway-configs', { body: { name: 'override', endpoint: 'https://api.example.com', auth_mechanism: { type: 'header', key: 'x-api-key' }, custom_headers: [{ name: 'X-Api-Key', value: 'mine' }] } });
    expect(errorOf(r, 400)).toMatch(/credential/);
    const c = await a.gatewayConfigs.create({ name: 'switch', endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' }, custom_headers: [{ name: 'x-token', value: 'v' }] });
    const u = await call(api, 'POST', `/v1/gateway-configs/${c.id}`, { body: { auth_mechanism: { type: 'header', key: 'X-Token' } } });
    expect(errorOf(u, 400)).toMatch(/credential/);
  });

  it('refuses bad auth mechanisms and endpoints', async () => {
    const bad: [unknown, unknown, RegExp][] = [
      [{ type: 'header' }, 'https://a.example', /key/],
      [{ type: 'bearer', key: 'x' }, 'https://a.example', /key/],
      [{ type: 'header', key: 'Authorization' }, 'https://a.example', /auth_mechanism\.key/],
      [{ type: 'oauth' }, 'https://a.example', /type/],
      [{ type: 'bearer' }, 'ftp://a.example', /scheme/],
      [{ type: 'bearer' }, 'https://user:pw@a.example', /credentials/],
      [{ type: 'bearer' }, 'https://a.example/?q=1', /query/],
      [{ type: 'bearer' }, 'not a url', /not a URL/],
    ];
    for (const [auth_mechanism, endpoint, why] of bad) {
      const r = await call(api, 'POST', '/v1/gateway-configs', { body: { name: 'bad', endpoint, auth_mechanism } });
      expect(errorOf(r, 400), JSON.stringify([auth_mechanism, endpoint])).toMatch(why);
    }
  });
});

describe('MCP configs through @runloop/api-client', () => {
  it('creates, retrieves, updates, lists and deletes an MCP config (default auth bearer)', async () => {
    const created = await a.mcpConfigs.create({ name: 'github-readonly', endpoint: 'https://mcp.github.example/mcp', allowed_tools: ['search_*', 'get_issue'] });
    expect(created.id).toMatch(/^mcp_[0-9a-z]{22}$/);
    expect(created).toMatchObject({ name: 'github-readonly', allowed_tools: ['search_*', 'get_issue'], auth_mechanism: { type: 'bearer' }, custom_headers: [] });
    expect(await a.mcpConfigs.retrieve(created.id)).toEqual(created);
    const updated = await a.mcpConfigs.update(created.id, { allowed_tools: ['github.search_*'] });
    expect(updated.allowed_tools).toEqual(['github.search_*']);
    expect((await all(a.mcpConfigs.list())).map((c) => c.id)).toEqual([created.id]);
    expect((await all(b.mcpConfigs.list())).map((c) => c.id)).toEqual([]);
    await expect(b.mcpConfigs.retrieve(created.id)).rejects.toMatchObject({ status: 404 });
    await expect(b.mcpConfigs.delete(created.id)).rejects.toMatchObject({ status: 404 });
    await a.mcpConfigs.delete(created.id);
    await expect(a.mcpConfigs.retrieve(created.id)).rejects.toMatchObject({ status: 404 });
  });

  it('refuses tool globs that do not compile, empty lists, and names without a service segment', async () => {
    const body = (extra: object) => ({ body: { name: 'svc-x', endpoint: 'https://mcp.example', allowed_tools: ['*'], ...extra } });
    expect(errorOf(await call(api, 'POST', '/v1/mcp-configs', body({ allowed_tools: ['search_[a'] })), 400)).toMatch(/allowed_tools\[0\]/);
    expect(errorOf(await call(api, 'POST', '/v1/mcp-configs', body({ allowed_tools: ['ok', 'with space'] })), 400)).toMatch(/allowed_tools\[1\]/);
    expect(errorOf(await call(api, 'POST', '/v1/mcp-configs', body({ allowed_tools: [] })), 400)).toMatch(/allowed_tools/);
    expect(errorOf(await call(api, 'POST', '/v1/mcp-configs', body({ name: '-nameless' })), 400)).toMatch(/service/);
    expect(errorOf(await call(api, 'POST', '/v1/mcp-configs', body({ name: 'git.hub-x' })), 400)).toMatch(/service/);
  });
});
