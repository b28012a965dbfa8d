/**
 * What the credential doors write about a request (log lines, /metrics, the denial record)
 * names the devbox, the config and the token's id, never the token, the real secret, a custom
 * header's secret or the query string: requests allowed and refused through both doors, read
 * back from a logger of the test's own.
 */
import { Writable } from 'node:stream';
import Anthropic from '@anthropic-ai/sdk';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm-upstream.js';
import { type McpUpstream, startMcpUpstream } from '../support/mcp-upstream.js';
import { curl } from '../support/proxy.js';
import { waitFor } from '../support/wait.js';

const lines: string[] = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    done();
  },
});

let rig: AgentRig;
let fake: FakeLlm;
let mcp: McpUpstream;
let box: string;
const SECRETS = ['sk-ant-NEVER-LOGGED', 'hdr-secret-NEVER-LOGGED', 'ghp_NEVER_LOGGED', 'q-secret-NEVER-LOGGED'];
const tokens: string[] = [];

beforeAll(async () => {
  rig = await startAgentRig({ logger: pino({ level: 'info' }, sink), flags: { 'events-flush-ms': '50' } });
  fake = await startFakeLlm(rig.ca);
  mcp = await startMcpUpstream(rig.ca, 'sse');
  box = await rig.devbox(await rig.policy({ allow_agent_gateway: true, allow_mcp_gateway: true }), ['127.0.0.1']);
}, 60_000);

afterAll(async () => {
  await mcp?.close();
  await fake?.close();
  await rig?.close();
});

describe('logs, metrics and events', () => {
  it('carry ids, never a token or a secret', async () => {
    const g = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: SECRETS[0]!, customHeaders: [{ name: 'X-Org', secretValue: SECRETS[1] }] });
    tokens.push(g.token);
    await new Anthropic({ baseURL: g.url, apiKey: g.token, maxRetries: 0 }).messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] });
    await curl(['-H', `x-api-key: ${g.token}`, `${g.url}/v1/models?key=${SECRETS[3]}`]);
    // Refused: from another address, and an unknown token that looks like a key.
    await curl(['--interface', '127.0.0.41', '-H', `x-api-key: ${g.token}`, `${g.url}/v1/models`]);
    await curl(['-H', `authorization: Bearer ${SECRETS[0]}`, `${g.url}/v1/models`]);

    const m = await rig.mintMcpToken({ devboxId: box, name: 'github-ro', endpoint: mcp.url, secret: SECRETS[2]!, allowedTools: ['github.search_*'] });
    tokens.push(m.token);
    const transport = new StreamableHTTPClientTransport(new URL(`${m.url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${m.token}` } } });
    const client = new Client({ name: 'a', version: '1' });
    await client.connect(transport);
    await client.callTool({ name: 'github.search_code', arguments: { q: 'x' } });
    await client.callTool({ name: 'github.delete_repo', arguments: { repo: 'x' } }).catch(() => {});
    await client.close();

    await waitFor(() => lines.some((l) => l.includes('"event":"mcp_tool_call"') && l.includes('"decision":"deny"')), 10_000, 'the refused tool call logged');
    const requests = lines.filter((l) => l.includes('"event":"agent_request"')).map((l) => JSON.parse(l));
    expect(requests.some((r) => r.door === 'agent-gateway' && r.status === 200 && r.devbox === box && r.config === g.configId && typeof r.token === 'string')).toBe(true);
    expect(requests.some((r) => r.door === 'agent-gateway' && r.status === 401)).toBe(true);
    expect(requests.some((r) => r.door === 'mcp-hub' && r.config === m.configId)).toBe(true);
    expect(requests.find((r) => r.path === '/v1/models' && r.status === 200)).toBeDefined();

    const metrics = await (await fetch(`${rig.tg.apiUrl}/metrics`, { headers: { authorization: 'Bearer tok-a' } })).text();
    expect(metrics).toContain(`egress_agent_requests_total{door="agent-gateway",devbox="${box}",config="${g.configId}",status="200"}`);
    const events = await rig.tg.api.call('GET', `/v1/egress/events?devbox_id=${box}`);
    const everything = [lines.join('\n'), metrics, JSON.stringify(events.body)].join('\n');
    for (const secret of [...SECRETS, ...tokens]) expect(everything.includes(secret), `found ${secret.slice(0, 12)}…`).toBe(false);
  });
});
