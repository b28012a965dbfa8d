/**
 * What the agent-gateway and MCP-hub doors read to admit a request and apply the real
 * credential: tokens by hash, the configs they name, secret values. The store implements it
 * (sqlite directly; PostgreSQL and fleet sidecars from their in-memory copy); `MemoryCredentials`
 * holds it in memory for unit tests. Synchronous, like PolicySource: a door asks per request.
 */

/** How the real credential is applied upstream (Runloop's AuthMechanism). */
export type AuthMechanism = { type: 'header'; key: string } | { type: 'bearer' } | { type: 'basic' };

/** One extra header sent upstream: a literal value or a secret's value (by secret id). */
export interface CustomHeaderSpec {
  name: string;
  value?: string;
  secret_id?: string;
}

/** A `gwc_` gateway config. account_id null: a system config listed for every account. */
export interface AgentGatewayConfig {
  id: string;
  account_id: string | null;
  name: string;
  endpoint: string;
  auth_mechanism: AuthMechanism;
  custom_headers: CustomHeaderSpec[];
  description: string | null;
  create_time_ms: number;
}

/** An `mcp_` MCP config: the upstream MCP server and the tool globs a token may call. */
export interface McpConfig extends AgentGatewayConfig {
  allowed_tools: string[];
}

/** A minted gateway or MCP token, found by the SHA-256 of its text; the text is never stored. */
export interface AgentToken {
  kind: 'gateway' | 'mcp';
  /** Opaque id for logs and metrics (never the token text). */
  id: string;
  account_id: string;
  devbox_id: string;
  /** `gwc_…` for kind gateway, `mcp_…` for kind mcp. */
  config_id: string;
  /** `sec_…`: the secret whose value is the credential. */
  secret_id: string;
}

export interface CredentialSource {
  /** The token whose SHA-256 (lower-case hex) of its text is `hash`; undefined when unknown or revoked. */
  agentToken(hash: string): AgentToken | undefined;
  gatewayConfig(id: string): AgentGatewayConfig | undefined;
  mcpConfig(id: string): McpConfig | undefined;
  /** The secret's plaintext value (decrypted); undefined once deleted or not the account's. Never logged. */
  secretValue(accountId: string, secretId: string): string | undefined;
}
