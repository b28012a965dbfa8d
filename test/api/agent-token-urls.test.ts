/**
 * The `url` of a minted token: --agent-gateway-url / --mcp-hub-url when given, else http:// +
 * the listen address (IPv6 in brackets); with the door off and no URL, minting is refused
 * (400) before anything is written, also at devbox creation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import Runloop from '@runloop/api-client';
import { call, errorOf, startTestApi, TOKEN_A, type TestApi } from '../support/api.js';

let api: TestApi | null = null;
afterEach(async () => {
  await api?.close();
  api = null;
});

async function setUp(flags: [string, string[]][]): Promise<{ client: Runloop; devboxId: string }> {
  api = await startTestApi({ extraFlags: flags });
  const client = new Runloop({ bearerToken: TOKEN_A, baseURL: api.base, maxRetries: 0 });
  await client.secrets.create({ name: 'KEY', value: 'v' });
  await client.mcpConfigs.create({ name: 'svc', endpoint: 'https://mcp.example', allowed_tools: ['*'] });
  const d = (await client.devboxes.create({ network: { addresses: ['10.50.0.1'] } } as never)) as unknown as { id: string };
  return { client, devboxId: d.id };
}

describe('token urls', () => {
  it('derive from the listen addresses when no URL is set', async () => {
    const { client, devboxId } = await setUp([
      ['agent-gateway', ['[::1]:9081']],
      ['mcp-hub', ['127.0.0.2:9082']],
    ]);
    expect((await client.devboxes.createGatewayToken(devboxId, { gateway: 'openai', secret: 'KEY' })).url).toBe('http://[::1]:9081');
    expect((await client.devboxes.createMcpToken(devboxId, { mcp_config: 'svc', secret: 'KEY' })).url).toBe('http://127.0.0.2:9082');
  });

  it('are the configured URLs when given', async () => {
    const { client, devboxId } = await setUp([
      ['agent-gateway-url', ['https://gw.example:8443/base']],
      ['mcp-hub-url', ['https://mcp.example/hub']],
    ]);
    expect((await client.devboxes.createGatewayToken(devboxId, { gateway: 'openai', secret: 'KEY' })).url).toBe('https://gw.example:8443/base');
    expect((await client.devboxes.createMcpToken(devboxId, { mcp_config: 'svc', secret: 'KEY' })).url).toBe('https://mcp.example/hub');
  });

  it('with the door off and no URL, minting is refused and a devbox create with specs leaves nothing behind', async () => {
    const { devboxId } = await setUp([
      ['agent-gateway', ['off']],
      ['mcp-hub', ['off']],
    ]);
    expect(errorOf(await call(api!, 'POST', `/v1/devboxes/${devboxId}/create_gateway_token`, { body: { gateway: 'openai', secret: 'KEY' } }), 400)).toMatch(/--agent-gateway/);
    expect(errorOf(await call(api!, 'POST', `/v1/devboxes/${devboxId}/create_mcp_token`, { body: { mcp_config: 'svc', secret: 'KEY' } }), 400)).toMatch(/--mcp-hub/);
    const before = (await call(api!, 'GET', '/v1/devboxes')).body.total_count;
    const r = await call(api!, 'POST', '/v1/devboxes', { body: { network: { addresses: ['10.50.0.2'] }, mcp: { MCP_SVC: { mcp_config: 'svc', secret: 'KEY' } } } });
    expect(errorOf(r, 400)).toMatch(/--mcp-hub/);
    expect((await call(api!, 'GET', '/v1/devboxes')).body.total_count).toBe(before);
  });
});
