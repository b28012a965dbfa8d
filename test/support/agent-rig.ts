/**
 * The credential doors' test rig: an in-process gateway (the agent gateway and MCP hub on
 * loopback port 0, its store's credentials), a test CA given as `--upstream-ca-file`, and the
 * one place tests get gateway and MCP tokens: minted through the real REST API (`/v1/secrets`,
 * `/v1/gateway-configs`, `/v1/mcp-configs`, `create_gateway_token` / `create_mcp_token`), as an
 * orchestrator does.
 */
import { rmSync } from 'node:fs';
import type { Logger } from 'pino';
import type { AuthMechanism } from '../../src/policy/credentials.js';
import { type TestGateway, TOKEN_A, TOKEN_B, startTestGateway } from './gateway.js';
import { type TestCa, makeTestCa } from './test-ca.js';

export { TOKEN_A, TOKEN_B };

export interface AgentRigOptions {
  /** Extra flags (e.g. { 'allow-private': '10.0.0.0/8' } replaces the rig's 127.0.0.0/8). */
  flags?: Record<string, string | string[]>;
  /** Upstream DNS port on 127.0.0.1 (from startDnsUpstream), for endpoints given by name. */
  upstreamDnsPort?: number;
  /** The gateway's logger (a test that reads the log lines gives its own). */
  logger?: Logger;
}

export interface MintedToken {
  token: string;
  /**
   * Where the devbox sends it: the door's bound address (the mint answer's `url` is derived from
   * the configured listen address, which is port 0 here).
   */
  url: string;
  configId: string;
  /** The secret's id and name (the API takes either). */
  secretId: string;
  secretName: string;
}

export interface GatewayTokenSpec {
  devboxId: string;
  /** The API token of the account minting it (TOKEN_A: acct-a, TOKEN_B: acct-b). */
  as?: string;
  endpoint: string;
  auth: AuthMechanism;
  /** The real credential's value. */
  secret: string;
  customHeaders?: Array<{ name: string; value?: string; secretValue?: string }>;
  name?: string;
}

export interface McpTokenSpec extends Omit<GatewayTokenSpec, 'auth'> {
  auth?: AuthMechanism;
  allowedTools: string[];
}

export interface AgentRig {
  tg: TestGateway;
  ca: TestCa;
  agentUrl: string;
  mcpUrl: string;
  /** A policy with the given egress fields (allow_agent_gateway, allow_mcp_gateway…); its id. */
  policy(egress: Record<string, unknown>, as?: string): Promise<string>;
  updatePolicy(id: string, egress: Record<string, unknown>, as?: string): Promise<void>;
  /** A running devbox at these source addresses under the policy; its id. */
  devbox(policyId: string, addresses: string[], as?: string): Promise<string>;
  mintGatewayToken(spec: GatewayTokenSpec): Promise<MintedToken>;
  mintMcpToken(spec: McpTokenSpec): Promise<MintedToken>;
  /** Replaces a secret's value (takes effect on the next request). */
  updateSecret(secretName: string, value: string, as?: string): Promise<void>;
  deleteSecret(secretName: string, as?: string): Promise<void>;
  close(): Promise<void>;
}

export async function startAgentRig(opts: AgentRigOptions = {}): Promise<AgentRig> {
  const ca = makeTestCa();
  let tg: TestGateway;
  try {
    tg = await startTestGateway({ upstreamDnsPort: opts.upstreamDnsPort, logger: opts.logger, flags: { 'upstream-ca-file': ca.caFile, ...opts.flags } });
  } catch (e) {
    ca.remove();
    throw e;
  }
  const agentUrl = `http://127.0.0.1:${tg.addr('agent-gateway').port}`;
  const mcpUrl = `http://127.0.0.1:${tg.addr('mcp-hub').port}`;
  let n = 0;
  /** POSTs to the API as `as`; the answer's body, or a throw naming the status and body. */
  const post = async <T = any>(as: string, path: string, body: unknown): Promise<T> => {
    const r = await tg.api.as(as).call<T>('POST', path, body);
    if (r.status !== 200) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const secret = async (as: string, value: string) => {
    const name = `SECRET_${++n}`;
    const s = await post<{ id: string }>(as, '/v1/secrets', { name, value });
    return { id: s.id, name };
  };
  const headers = async (as: string, specs: GatewayTokenSpec['customHeaders']) => {
    const out: Array<{ name: string; value?: string; secret?: string }> = [];
    for (const h of specs ?? []) out.push(h.secretValue !== undefined ? { name: h.name, secret: (await secret(as, h.secretValue)).name } : { name: h.name, value: h.value ?? '' });
    return out;
  };
  return {
    tg,
    ca,
    agentUrl,
    mcpUrl,
    policy: (egress, as = TOKEN_A) => tg.api.as(as).policy(`agent-${++n}`, egress),
    updatePolicy: (id, egress, as = TOKEN_A) => tg.api.as(as).updatePolicy(id, egress),
    devbox: async (policyId, addresses, as = TOKEN_A) => (await tg.api.as(as).devbox(policyId, addresses, `box-${++n}`)).id,
    async mintGatewayToken(s) {
      const as = s.as ?? TOKEN_A;
      const sec = await secret(as, s.secret);
      const cfg = await post<{ id: string }>(as, '/v1/gateway-configs', { name: s.name ?? `gw-${++n}`, endpoint: s.endpoint, auth_mechanism: s.auth, custom_headers: await headers(as, s.customHeaders) });
      const t = await post<{ token: string }>(as, `/v1/devboxes/${s.devboxId}/create_gateway_token`, { gateway: cfg.id, secret: sec.name });
      return { token: t.token, url: agentUrl, configId: cfg.id, secretId: sec.id, secretName: sec.name };
    },
    async mintMcpToken(s) {
      const as = s.as ?? TOKEN_A;
      const sec = await secret(as, s.secret);
      // Config names are unique per account; the suffix keeps the service (the part before the first '-').
      const name = `${s.name ?? 'svc'}-${++n}`;
      const cfg = await post<{ id: string }>(as, '/v1/mcp-configs', { name, endpoint: s.endpoint, ...(s.auth ? { auth_mechanism: s.auth } : {}), custom_headers: await headers(as, s.customHeaders), allowed_tools: s.allowedTools });
      const t = await post<{ token: string }>(as, `/v1/devboxes/${s.devboxId}/create_mcp_token`, { mcp_config: cfg.id, secret: sec.name });
      return { token: t.token, url: mcpUrl, configId: cfg.id, secretId: sec.id, secretName: sec.name };
    },
    async updateSecret(secretName, value, as = TOKEN_A) {
      await post(as, `/v1/secrets/${secretName}`, { value });
    },
    async deleteSecret(secretName, as = TOKEN_A) {
      await post(as, `/v1/secrets/${secretName}/delete`, {});
    },
    async close() {
      try {
        await tg.close();
      } finally {
        ca.remove();
        rmSync(tg.dir, { recursive: true, force: true });
      }
    },
  };
}
