/**
 * A JSON-RPC batch cannot smuggle a refused tool call past the MCP hub: one refused message
 * (a tool not allowed, its unprefixed or look-alike name, a resources/* read, a refused
 * notification) and the hub answers the whole batch itself; the upstream (a real MCP SDK
 * server) receives none of it, not even the allowed calls beside it.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';
import { type McpUpstream, startMcpUpstream } from '../support/mcp-upstream.js';

let rig: AgentRig;
let up: McpUpstream;
let token: string;
let session: string;
let client: Client;

beforeAll(async () => {
  rig = await startAgentRig();
  up = await startMcpUpstream(rig.ca, 'json');
  const box = await rig.devbox(await rig.policy({ allow_mcp_gateway: true }), ['127.0.0.1']);
  const t = await rig.mintMcpToken({ devboxId: box, name: 'github-readonly', endpoint: up.url, secret: 'ghp_REAL', allowedTools: ['github.search_*'] });
  token = t.token;
  // A real session, opened by the official client; the batches below ride on it.
  const transport = new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${t.token}` } } });
  client = new Client({ name: 'devbox-agent', version: '1.0.0' });
  await client.connect(transport);
  session = transport.sessionId!;
}, 60_000);

afterAll(async () => {
  await client?.close();
  await up?.close();
  await rig?.close();
});

/** POSTs the upstream received (the client's own GET stream may open at any time; it carries nothing of ours). */
const posts = () => up.seen.filter((s) => s.httpMethod === 'POST').length;

const call = (id: number, name: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: { q: 'x', repo: 'x' } } });

async function post(body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${rig.mcpUrl}/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text === '' ? null : JSON.parse(text) };
}

describe('a batch with one refused message', () => {
  it.each([
    ['a tool not allowed', [call(1, 'github.search_issues'), call(2, 'github.delete_repo')]],
    ['the unprefixed name', [call(1, 'github.search_code'), call(2, 'delete_repo')]],
    ['a look-alike name', [call(1, 'github.search_issues'), call(2, 'github.search_\u0456ssues')]],
    ['a resources/read', [call(1, 'github.search_issues'), { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///secrets.txt' } }]],
    ['a refused notification', [call(1, 'github.search_issues'), { jsonrpc: '2.0', method: 'notifications/resources/updated', params: {} }]],
    ['a refused call last of many', [...Array.from({ length: 20 }, (_, i) => call(i + 1, 'github.search_issues')), call(99, 'github.delete_repo')]],
  ])('%s: every request answered with an error, none reaches the upstream', async (_what, batch) => {
    const before = posts();
    const r = await post(batch);
    expect(r.status).toBe(200);
    expect(Array.isArray(r.json)).toBe(true);
    const requests = (batch as Array<{ id?: number }>).filter((m) => m.id !== undefined);
    expect(r.json.map((m: any) => m.id).sort()).toEqual(requests.map((m) => m.id).sort());
    for (const m of r.json) expect(m.error).toBeDefined();
    expect(posts()).toBe(before);
  });

  it('a single refused call outside a batch: a JSON-RPC error, nothing upstream', async () => {
    const before = posts();
    const r = await post(call(7, 'github.delete_repo'));
    expect(r.json).toMatchObject({ jsonrpc: '2.0', id: 7, error: { code: -32602 } });
    expect(posts()).toBe(before);
  });

  it('a single allowed call on the same session reaches the upstream (control)', async () => {
    const before = up.toolCalls().length;
    const r = await post(call(8, 'github.search_issues'));
    expect(r.json.result.content[0].text).toBe('issues for x');
    expect(up.toolCalls().slice(before)).toEqual(['search_issues']);
  });

  it('a body that is not JSON is a JSON-RPC parse error, nothing upstream', async () => {
    const before = posts();
    const r = await fetch(`${rig.mcpUrl}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '[{"jsonrpc":"2.0",' });
    expect(r.status).toBe(400);
    expect(await r.json()).toMatchObject({ error: { code: -32700 } });
    expect(posts()).toBe(before);
  });
});
