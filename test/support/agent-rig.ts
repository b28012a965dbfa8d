/**
 * The credential doors' test rig: an in-process gateway with the agent gateway and MCP hub on
 * loopback port 0, a test CA (`--upstream-ca-file`), and the one place tests get gateway and
 * MCP tokens. Today tokens, configs and secrets are put into a MemoryCredentials handed to the
 * gateway; when the store's CredentialSource is merged, `mintGatewayToken` / `mintMcpToken`
 * switch to the REST API (`/v1/secrets`, `/v1/gateway-configs`, `/v1/mcp-configs`,
 * `create_gateway_token` / `create_mcp_token`) and no test changes.
 */
import { rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { MemoryCredentials } from '../../src/policy/memory-credentials.js';
import type { AuthMechanism, CustomHeaderSpec } from '../../src/policy/credentials.js';
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
  /** Where the devbox sends it (the door's URL). */
  url: string;
  configId: string;
  secretId: string;
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
  /** Use this existing secret (by id, e.g. another account's) instead of creating one. */
  secretId?: string;
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
  updateSecret(secretId: string, value: string, as?: string): Promise<void>;
  deleteSecret(secretId: string, as?: string): Promise<void>;
  close(): Promise<void>;
}

const ACCOUNT: Record<string, string> = { [TOKEN_A]: 'acct-a', [TOKEN_B]: 'acct-b' };

export async function startAgentRig(opts: AgentRigOptions = {}): Promise<AgentRig> {
  const ca = makeTestCa();
  const creds = new MemoryCredentials();
  let tg: TestGateway;
  try {
    tg = await startTestGateway({ credentials: creds, upstreamDnsPort: opts.upstreamDnsPort, logger: opts.logger, flags: { 'upstream-ca-file': ca.caFile, ...opts.flags } });
  } catch (e) {
    ca.remove();
    throw e;
  }
  const agent = tg.addr('agent-gateway');
  const mcp = tg.addr('mcp-hub');
  const agentUrl = `http://127.0.0.1:${agent.port}`;
  const mcpUrl = `http://127.0.0.1:${mcp.port}`;
  let n = 0;
  const headers = (account: string, specs: GatewayTokenSpec['customHeaders']): CustomHeaderSpec[] => (specs ?? []).map((h) => (h.secretValue !== undefined ? { name: h.name, secret_id: creds.putSecret(account, h.secretValue) } : { name: h.name, value: h.value ?? '' }));
  return {
    tg,
    ca,
    agentUrl,
    mcpUrl,
    policy: (egress, as = TOKEN_A) => tg.api.as(as).policy(`agent-${++n}`, egress),
    updatePolicy: (id, egress, as = TOKEN_A) => tg.api.as(as).updatePolicy(id, egress),
    devbox: async (policyId, addresses, as = TOKEN_A) => (await tg.api.as(as).devbox(policyId, addresses, `box-${++n}`)).id,
    async mintGatewayToken(s) {
      const account = ACCOUNT[s.as ?? TOKEN_A]!;
      const secretId = s.secretId ?? creds.putSecret(account, s.secret);
      const cfg = creds.putGatewayConfig({ account_id: account, name: s.name ?? `gw-${++n}`, endpoint: s.endpoint, auth_mechanism: s.auth, custom_headers: headers(account, s.customHeaders) });
      const token = creds.mint({ kind: 'gateway', account_id: account, devbox_id: s.devboxId, config_id: cfg.id, secret_id: secretId });
      return { token, url: agentUrl, configId: cfg.id, secretId };
    },
    async mintMcpToken(s) {
      const account = ACCOUNT[s.as ?? TOKEN_A]!;
      const secretId = s.secretId ?? creds.putSecret(account, s.secret);
      const cfg = creds.putMcpConfig({ account_id: account, name: s.name ?? `svc-${++n}`, endpoint: s.endpoint, auth_mechanism: s.auth ?? { type: 'bearer' }, custom_headers: headers(account, s.customHeaders), allowed_tools: s.allowedTools });
      const token = creds.mint({ kind: 'mcp', account_id: account, devbox_id: s.devboxId, config_id: cfg.id, secret_id: secretId });
      return { token, url: mcpUrl, configId: cfg.id, secretId };
    },
    async updateSecret(secretId, value, as = TOKEN_A) {
      creds.putSecret(ACCOUNT[as]!, value, secretId);
    },
    async deleteSecret(secretId, as = TOKEN_A) {
      creds.deleteSecret(ACCOUNT[as]!, secretId);
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
