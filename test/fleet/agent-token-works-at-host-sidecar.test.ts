/**
 * Fleet mode for the agent gateway (issue 21), with real processes: a secret, a gateway config
 * (pointing at a local HTTPS fake upstream, a custom header from a second secret) and a token
 * for a devbox on h1 are created through the control plane's API; h1's sidecar then admits the
 * token from the devbox's address and applies the real secret (which it opens with the same
 * --secrets-key-file), h2 and the bucket hold nothing of it in plaintext or for h2, a rotated
 * value applies at the next request through the sidecar, and a deleted secret makes the
 * sidecar refuse the token (401) without reaching the upstream. No log line carries a value.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm-upstream.js';
import { type McpUpstream, startMcpUpstream } from '../support/mcp-upstream.js';
import { curl } from '../support/proxy.js';
import { type TestCa, makeTestCa } from '../support/test-ca.js';
import { type FleetBase, type Node, api, fleetBase, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let ca: TestCa;
let fake: FakeLlm;
let mcp: McpUpstream;
let cp: Node;
let h1: Node;
let h2: Node;
let keyFile: string;

/** The devbox's source address on h1 (loopback: the sidecar's doors identify devboxes by it). */
const DEVBOX_ADDR = '127.0.0.7';
const API_KEY_1 = `sk-real-${randomBytes(8).toString('hex')}`;
const API_KEY_2 = `sk-rotated-${randomBytes(8).toString('hex')}`;
const ORG = `org-${randomBytes(8).toString('hex')}`;

function doorPort(n: Node, door: 'agent-gateway' | 'mcp-hub'): number {
  const line = n
    .out()
    .split('\n')
    .find((l) => l.includes('egress-gateway listening'))!;
  const addr = (JSON.parse(line) as { listeners: Record<string, string> }).listeners[door]!;
  return Number(addr.slice(addr.lastIndexOf(':') + 1));
}
const agentPort = (n: Node) => doorPort(n, 'agent-gateway');

/** What the devbox's client does: its gateway token to the sidecar's agent gateway, from its own address. */
function ask(sidecar: Node, token: string) {
  return curl([
    '--interface',
    DEVBOX_ADDR,
    '-H',
    `x-api-key: ${token}`,
    '-H',
    'anthropic-version: 2023-06-01',
    '-H',
    'content-type: application/json',
    '--data',
    '{"model":"fake","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}',
    `http://127.0.0.1:${agentPort(sidecar)}/v1/messages`,
  ]);
}

async function post<T = Record<string, unknown>>(path: string, body: unknown): Promise<T> {
  const r = await api<T>(cp.apiUrl, 'POST', path, body);
  if (r.status !== 200) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** The agent rows a sidecar's local snapshot holds. */
function snapshotRows(db: string): { secrets: Array<{ id: string; ciphertext: string }>; configs: number; tokens: Array<{ token_hash: string }> } {
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return {
      secrets: d.prepare('SELECT id, ciphertext FROM secrets').all() as Array<{ id: string; ciphertext: string }>,
      configs: (d.prepare('SELECT count(*) AS n FROM agent_configs').get() as { n: number }).n,
      tokens: d.prepare('SELECT token_hash FROM agent_tokens').all() as Array<{ token_hash: string }>,
    };
  } finally {
    d.close();
  }
}

/** Every agent key in the bucket with its value's text. */
async function agentKeys(): Promise<Map<string, string>> {
  const nc = await connect({ servers: base.nats.url });
  try {
    const kv = await new Kvm(nc).open('egress-policy');
    const out = new Map<string, string>();
    for await (const key of await kv.keys('agent.>')) {
      const e = await kv.get(key);
      if (e) out.set(key, new TextDecoder().decode(e.value));
    }
    return out;
  } finally {
    await nc.close();
  }
}

beforeAll(async () => {
  base = await fleetBase();
  ca = makeTestCa();
  fake = await startFakeLlm(ca);
  mcp = await startMcpUpstream(ca, 'json');
  // The control plane's secrets key, given to every sidecar too (docs/deployment.md).
  keyFile = join(base.dir, 'secrets.key');
  writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const doors = ['--agent-gateway', '127.0.0.1:0', '--mcp-hub', '127.0.0.1:0', '--upstream-ca-file', ca.caFile, '--secrets-key-file', keyFile];
  [cp, h1, h2] = await Promise.all([
    startReplica(base.controlDb, base.nats.url, {}, ['--allow-private', '127.0.0.0/8', ...doors]),
    startSidecar(base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port, doors),
    startSidecar(base.nats.url, 'h2', join(base.dir, 'h2.db'), base.dns.port, doors),
  ]);
}, 300_000);

afterAll(async () => {
  await base?.close([cp, h1, h2]);
  await fake?.close();
  await mcp?.close();
  ca?.remove();
});

describe("fleet: a gateway token minted at the control plane works at its devbox's sidecar", () => {
  it('h1 applies the real secret; h2 and the bucket hold none of it in plaintext; a rotated value applies next; a deleted secret is refused', async () => {
    await post('/v1/secrets', { name: 'API_KEY', value: API_KEY_1 });
    await post('/v1/secrets', { name: 'ORG_ID', value: ORG });
    const cfg = await post<{ id: string }>('/v1/gateway-configs', { name: 'fake-llm', endpoint: fake.url, auth_mechanism: { type: 'header', key: 'x-api-key' }, custom_headers: [{ name: 'x-org', secret: 'ORG_ID' }] });
    const policy = await post<{ id: string }>('/v1/network-policies', { name: 'agents', allow_agent_gateway: true });
    const box = await post<{ id: string }>('/v1/devboxes', { name: 'agent-box', network: { host_id: 'h1', addresses: [DEVBOX_ADDR] }, launch_parameters: { network_policy_id: policy.id } });
    const { token } = await post<{ token: string }>(`/v1/devboxes/${box.id}/create_gateway_token`, { gateway: cfg.id, secret: 'API_KEY' });

    // The sidecar admits the token once the entries arrived (401 until then).
    await until(async () => (await ask(h1, token)).status === 200, 60_000, "h1's agent gateway to admit the token");
    const first = fake.received.at(-1)!;
    expect(first.url).toBe('/v1/messages');
    expect(first.headers['x-api-key']).toBe(API_KEY_1);
    expect(first.headers['x-org']).toBe(ORG);
    expect(JSON.stringify(first.rawHeaders)).not.toContain(token);

    // The bucket: agent keys only under h1, secrets sealed, the token only as its hash.
    const keys = await agentKeys();
    expect([...keys.keys()].length).toBeGreaterThanOrEqual(4);
    for (const [key, value] of keys) {
      expect(key.startsWith('agent.h1.')).toBe(true);
      for (const plain of [API_KEY_1, ORG, token]) expect(value).not.toContain(plain);
    }
    const h1Rows = snapshotRows(join(base.dir, 'h1.db'));
    expect(h1Rows.secrets).toHaveLength(2);
    for (const s of h1Rows.secrets) expect(s.ciphertext).toMatch(/^v1\./);
    expect(h1Rows.configs).toBe(1);
    expect(h1Rows.tokens).toHaveLength(1);
    for (const f of ['h1.db', 'h1.db-wal'].map((n) => join(base.dir, n)).filter((f) => existsSync(f))) {
      const bytes = readFileSync(f).toString('latin1');
      for (const plain of [API_KEY_1, ORG, token]) expect(bytes).not.toContain(plain);
    }
    // h2 holds nothing of it, and its agent gateway does not know the token.
    expect(snapshotRows(join(base.dir, 'h2.db'))).toEqual({ secrets: [], configs: 0, tokens: [] });
    expect((await ask(h2, token)).status).toBe(401);

    // Rotated on the control plane: the next requests through h1 carry the new value, no new token.
    await post('/v1/secrets/API_KEY', { value: API_KEY_2 });
    await until(
      async () => {
        const r = await ask(h1, token);
        return r.status === 200 && fake.received.at(-1)!.headers['x-api-key'] === API_KEY_2;
      },
      60_000,
      'h1 to apply the rotated secret',
    );

    // Deleted: the sidecar refuses the token and nothing more reaches the upstream.
    await post('/v1/secrets/API_KEY/delete', {});
    await until(async () => (await ask(h1, token)).status === 401, 60_000, 'h1 to refuse the token of a deleted secret');
    const seen = fake.received.length;
    expect((await ask(h1, token)).status).toBe(401);
    expect(fake.received.length).toBe(seen);
    await until(async () => snapshotRows(join(base.dir, 'h1.db')).tokens.length === 0, 30_000, "h1's snapshot to drop the token");
    expect(snapshotRows(join(base.dir, 'h1.db')).secrets.map((s) => s.id)).toHaveLength(0);
    // No log line of either role carries a secret value or the token.
    for (const n of [cp, h1, h2]) for (const plain of [API_KEY_1, API_KEY_2, ORG, token]) expect(n.out() + n.err()).not.toContain(plain);
  }, 300_000);

  it("an MCP token minted at the control plane is admitted by h1's MCP hub, which sends the real secret upstream", async () => {
    const MCP_KEY = `ghp-real-${randomBytes(8).toString('hex')}`;
    const from = '127.0.0.8';
    await post('/v1/secrets', { name: 'GITHUB_TOKEN', value: MCP_KEY });
    const cfg = await post<{ id: string }>('/v1/mcp-configs', { name: 'github-readonly', endpoint: `${mcp.url}/mcp`, auth_mechanism: { type: 'bearer' }, allowed_tools: ['search_*'] });
    const policy = await post<{ id: string }>('/v1/network-policies', { name: 'mcp-agents', allow_mcp_gateway: true });
    const box = await post<{ id: string }>('/v1/devboxes', { name: 'mcp-box', network: { host_id: 'h1', addresses: [from] }, launch_parameters: { network_policy_id: policy.id } });
    const { token } = await post<{ token: string }>(`/v1/devboxes/${box.id}/create_mcp_token`, { mcp_config: cfg.id, secret: 'GITHUB_TOKEN' });
    const initialize = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'fleet-test', version: '1' } } });
    const ask = () => curl(['--interface', from, '-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json', '-H', 'accept: application/json, text/event-stream', '--data', initialize, `http://127.0.0.1:${doorPort(h1, 'mcp-hub')}/mcp`]);
    await until(async () => (await ask()).status === 200, 60_000, "h1's MCP hub to admit the token");
    const init = mcp.seen.filter((x) => x.messages.some((m) => m.method === 'initialize')).at(-1)!;
    expect(init.headers.authorization).toBe(`Bearer ${MCP_KEY}`);
    expect(snapshotRows(join(base.dir, 'h2.db'))).toEqual({ secrets: [], configs: 0, tokens: [] });
  }, 300_000);
});
