/**
 * The official MCP SDK client through the MCP hub to a real MCP SDK server (Streamable HTTP,
 * HTTPS with the test CA), with upstream answers as JSON and as SSE: tools listed only when
 * allowed and renamed `<service>.<tool>`, calls mapped back to the upstream name with the real
 * credential, sessions kept, resources and prompts not offered, and refused calls (by exposed
 * name, unprefixed name, look-alike Unicode) answered by the hub, never reaching the upstream,
 * counted, logged and recorded in /v1/egress/events.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';
import { type McpUpstream, startMcpUpstream } from '../support/mcp-upstream.js';
import { waitFor } from '../support/wait.js';

let rig: AgentRig;
let devbox: string;

beforeAll(async () => {
  rig = await startAgentRig({ flags: { 'events-flush-ms': '50' } });
  const pol = await rig.policy({ allow_mcp_gateway: true });
  devbox = await rig.devbox(pol, ['127.0.0.1']);
}, 60_000);

afterAll(async () => {
  await rig?.close();
});

async function connect(token: string, url: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name: 'devbox-agent', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

describe.each(['json', 'sse'] as const)('upstream answering %s', (mode) => {
  let up: McpUpstream;
  let client: Client;
  let transport: StreamableHTTPClientTransport;
  let token: string;

  beforeAll(async () => {
    up = await startMcpUpstream(rig.ca, mode);
    const t = await rig.mintMcpToken({ devboxId: devbox, name: 'github-readonly', endpoint: up.url, secret: 'ghp_REAL_SECRET', allowedTools: ['github.search_*'] });
    token = t.token;
    ({ client, transport } = await connect(t.token, t.url));
  });

  afterAll(async () => {
    await client?.close();
    await up?.close();
  });

  it('lists only the allowed tools, named <service>.<tool>', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['github.search_code', 'github.search_issues']);
  });

  it('calls an allowed tool under its upstream name, with the real credential and the session, never the token', async () => {
    const r = await client.callTool({ name: 'github.search_issues', arguments: { q: 'bug' } });
    expect(r.content).toEqual([{ type: 'text', text: 'issues for bug' }]);
    expect(up.toolCalls()).toContain('search_issues');
    const post = up.seen.findLast((s) => s.messages.some((m) => m.method === 'tools/call'))!;
    expect(post.headers.authorization).toBe('Bearer ghp_REAL_SECRET');
    expect(post.headers['mcp-session-id']).toBe(transport.sessionId);
    for (const s of up.seen) for (const v of Object.values(s.headers)) expect(String(v).includes(token)).toBe(false);
  });

  it('does not offer resources or prompts: not in the capabilities, and refused when asked', async () => {
    const caps = client.getServerCapabilities();
    expect(caps?.tools).toBeDefined();
    expect(caps?.resources).toBeUndefined();
    expect(caps?.prompts).toBeUndefined();
    const before = up.seen.length;
    await expect(client.request({ method: 'resources/list', params: {} }, (await import('@modelcontextprotocol/sdk/types.js')).ListResourcesResultSchema)).rejects.toThrow(/not available through the MCP hub/);
    expect(up.seen.length).toBe(before);
  });

  it.each([
    ['a tool not allowed', 'github.delete_repo'],
    ['the unprefixed upstream name of a refused tool', 'delete_repo'],
    ['the unprefixed upstream name of an allowed tool', 'search_issues'],
    ['a Cyrillic look-alike letter', 'github.search_\u0456ssues'],
    ['full-width letters NFKC folds to an allowed name', '\uff47ithub.search_issues'],
    ['a combining mark', 'github.search_issue\u0301s'],
    ['another service prefix', 'gitlab.search_issues'],
  ])('refuses %s (%s) with a JSON-RPC error; nothing reaches the upstream', async (_what, name) => {
    const before = up.toolCalls().length;
    const r = client.callTool({ name, arguments: { q: 'x', repo: 'x' } });
    await expect(r).rejects.toThrow(/is not allowed/);
    expect(up.toolCalls().length).toBe(before);
  });

  it("relays the client's GET stream for server messages, on its session", async () => {
    await waitFor(() => up.seen.some((s) => s.httpMethod === 'GET' && s.headers['mcp-session-id'] === transport.sessionId), 10_000, 'the GET stream upstream');
    const get = up.seen.find((s) => s.httpMethod === 'GET')!;
    expect(get.headers.authorization).toBe('Bearer ghp_REAL_SECRET');
    expect(String(get.headers.accept)).toContain('text/event-stream');
  });

  it('ends the session with DELETE', async () => {
    const { client: c2, transport: t2 } = await connect(token, rig.mcpUrl);
    const sid = t2.sessionId;
    expect(sid).toBeTruthy();
    await t2.terminateSession();
    expect(up.seen.some((s) => s.httpMethod === 'DELETE' && s.headers['mcp-session-id'] === sid)).toBe(true);
    await c2.close();
  });
});

describe('accounting', () => {
  it('counts every call (allowed and refused) in the metrics and records refusals in /v1/egress/events', async () => {
    await waitFor(
      async () => {
        const r = await rig.tg.api.call('GET', `/v1/egress/events?devbox_id=${devbox}`);
        return r.body.events?.some((e: any) => e.door === 'mcp-hub' && e.reason === 'tool_refused' && e.host === 'github.delete_repo');
      },
      20_000,
      'the refused tool call in /v1/egress/events',
    );
    const metrics = await (await fetch(`${rig.tg.apiUrl}/metrics`, { headers: { authorization: 'Bearer tok-a' } })).text();
    expect(metrics).toMatch(new RegExp(`egress_mcp_tool_calls_total\\{devbox="${devbox}",config="[^"]+",tool="github.search_issues",decision="allow"\\} [1-9]`));
    expect(metrics).toMatch(new RegExp(`egress_mcp_tool_calls_total\\{devbox="${devbox}",config="[^"]+",tool="\\(refused\\)",decision="deny"\\} [1-9]`));
    expect(metrics).not.toContain('ghp_REAL_SECRET');
  });
});
