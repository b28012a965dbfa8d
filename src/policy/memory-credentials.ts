/**
 * A CredentialSource held in memory: tokens, configs and secrets put in by code, including
 * combinations the API never lets the store hold (a token of one account naming another's
 * secret), so the unit tests of the doors' own checks (test/agent/agent-admission.test.ts) can
 * pin them. The store's implementation answers the same four questions.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AgentGatewayConfig, AgentToken, AuthMechanism, CredentialSource, CustomHeaderSpec, McpConfig } from './credentials.js';

/** SHA-256 (lower-case hex) of a token's text: how tokens are found (`agentToken(hash)`). */
export function tokenHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export interface ConfigInput {
  id?: string;
  account_id?: string | null;
  name: string;
  endpoint: string;
  auth_mechanism: AuthMechanism;
  custom_headers?: CustomHeaderSpec[];
  description?: string | null;
}

export class MemoryCredentials implements CredentialSource {
  private readonly tokens = new Map<string, AgentToken>();
  private readonly gateways = new Map<string, AgentGatewayConfig>();
  private readonly mcps = new Map<string, McpConfig>();
  /** account → secret id → value. */
  private readonly secrets = new Map<string, Map<string, string>>();
  private seq = 0;

  agentToken(hash: string): AgentToken | undefined {
    return this.tokens.get(hash);
  }

  gatewayConfig(id: string): AgentGatewayConfig | undefined {
    return this.gateways.get(id);
  }

  mcpConfig(id: string): McpConfig | undefined {
    return this.mcps.get(id);
  }

  secretValue(accountId: string, secretId: string): string | undefined {
    return this.secrets.get(accountId)?.get(secretId);
  }

  /** Creates or replaces a secret's value; returns its id. */
  putSecret(accountId: string, value: string, id = `sec_mem${++this.seq}`): string {
    let m = this.secrets.get(accountId);
    if (!m) this.secrets.set(accountId, (m = new Map()));
    m.set(id, value);
    return id;
  }

  deleteSecret(accountId: string, id: string): void {
    this.secrets.get(accountId)?.delete(id);
  }

  putGatewayConfig(c: ConfigInput): AgentGatewayConfig {
    const cfg = this.config(c, 'gwc');
    this.gateways.set(cfg.id, cfg);
    return cfg;
  }

  putMcpConfig(c: ConfigInput & { allowed_tools: string[] }): McpConfig {
    const cfg: McpConfig = { ...this.config(c, 'mcp'), allowed_tools: [...c.allowed_tools] };
    this.mcps.set(cfg.id, cfg);
    return cfg;
  }

  deleteConfig(id: string): void {
    this.gateways.delete(id);
    this.mcps.delete(id);
  }

  /** Mints a token (≥ 128 bits, stored only as its hash); returns its text. */
  mint(t: Omit<AgentToken, 'id'> & { id?: string }): string {
    const text = `${t.kind === 'gateway' ? 'gwt' : 'mct'}_${randomBytes(24).toString('base64url')}`;
    this.tokens.set(tokenHash(text), { ...t, id: t.id ?? `tok_mem${++this.seq}` });
    return text;
  }

  revoke(text: string): void {
    this.tokens.delete(tokenHash(text));
  }

  private config(c: ConfigInput, prefix: string): AgentGatewayConfig {
    return {
      id: c.id ?? `${prefix}_mem${++this.seq}`,
      account_id: c.account_id === undefined ? 'acct-a' : c.account_id,
      name: c.name,
      endpoint: c.endpoint,
      auth_mechanism: c.auth_mechanism,
      custom_headers: c.custom_headers ?? [],
      description: c.description ?? null,
      create_time_ms: Date.now(),
    };
  }
}
