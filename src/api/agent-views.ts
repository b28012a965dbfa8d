/** Agent resources → the JSON the API returns (the SDK's views). Never a secret value or a token hash. */
import type { AgentGatewayConfig, McpConfig } from '../policy/credentials.js';
import type { Devbox } from '../policy/model.js';
import { type GatewayConfig, formatHostPort } from '../config.js';
import type { MintedToken, SecretInfo } from '../store/agents.js';

export function secretView(s: SecretInfo) {
  return { id: s.id, name: s.name, create_time_ms: s.create_time_ms, update_time_ms: s.update_time_ms };
}

export function gatewayConfigView(c: AgentGatewayConfig) {
  return {
    id: c.id,
    name: c.name,
    endpoint: c.endpoint,
    auth_mechanism: c.auth_mechanism.type === 'header' ? { type: 'header', key: c.auth_mechanism.key } : { type: c.auth_mechanism.type },
    custom_headers: c.custom_headers.map((h) => (h.secret_id !== undefined ? { name: h.name, secret: h.secret_id } : { name: h.name, value: h.value ?? '' })),
    description: c.description,
    account_id: c.account_id,
    create_time_ms: c.create_time_ms,
  };
}

export function mcpConfigView(c: McpConfig) {
  return { ...gatewayConfigView(c), allowed_tools: c.allowed_tools };
}

export function gatewayTokenView(t: MintedToken, url: string) {
  return { token: t.token, url, devbox_id: t.devboxId, endpoint: t.config.endpoint, gateway_config_id: t.config.id, auth_mechanism: gatewayConfigView(t.config).auth_mechanism };
}

export function mcpTokenView(t: MintedToken, url: string) {
  return { token: t.token, url, devbox_id: t.devboxId, endpoint: t.config.endpoint, mcp_config_id: t.config.id, allowed_tools: (t.config as McpConfig).allowed_tools };
}

/** The devbox view's gateway_specs / mcp_specs (only when it was created with some). */
export function devboxAgentSpecs(d: Devbox) {
  if (!d.agent_specs) return {};
  return { gateway_specs: d.agent_specs.gateways, mcp_specs: d.agent_specs.mcp };
}

/**
 * The environment a devbox created with gateways / mcp gets, returned once by the create call:
 * per gateway prefix P, P_URL (the agent gateway) and P_KEY (its token); per MCP env name E,
 * E (its token); and RL_MCP_URL (the MCP hub) when there is one.
 */
export function agentEnvironment(tokens: readonly MintedToken[], urls: { gateway: string; mcp: string }): Record<string, string> {
  const env: Record<string, string> = {};
  for (const t of tokens) {
    if (t.env === null) continue;
    if (t.kind === 'gateway') {
      env[`${t.env}_URL`] = urls.gateway;
      env[`${t.env}_KEY`] = t.token;
    } else {
      env[t.env] = t.token;
      env.RL_MCP_URL = urls.mcp;
    }
  }
  return env;
}

/** Where devboxes reach the agent gateway and the MCP hub: --agent-gateway-url / --mcp-hub-url, else http:// + the listen address; null when off. */
export function agentUrls(c: Pick<GatewayConfig, 'agentGateway' | 'agentGatewayUrl' | 'mcpHub' | 'mcpHubUrl'>): { gateway: string | null; mcp: string | null } {
  return {
    gateway: c.agentGatewayUrl ?? (c.agentGateway ? `http://${formatHostPort(c.agentGateway)}` : null),
    mcp: c.mcpHubUrl ?? (c.mcpHub ? `http://${formatHostPort(c.mcpHub)}` : null),
  };
}
