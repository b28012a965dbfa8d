/**
 * The doors' CredentialSource when they follow a change feed (PostgreSQL's follower; fleet
 * sidecars later): configs, sealed secrets and token hashes held in memory, kept current
 * by the feed's records. A token counts only while its devbox runs and its config and secret
 * are held; tokens bound to a devbox that stopped, or to a config or secret that went, are
 * dropped here (the feed carries no record of their deletion). Secret values stay sealed in
 * memory and are opened per lookup, so an updated value applies from the next request.
 */
import type { AgentGatewayConfig, AgentToken, CredentialSource, McpConfig } from '../policy/credentials.js';
import type { Devbox } from '../policy/model.js';
import { type AgentTokenRow, type SecretRow, SYSTEM_GATEWAY_CONFIGS, toAgentToken } from './agents.js';
import type { AgentChangeRecord, AgentSnapshot } from './change-feed.js';
import type { SecretBox } from './secret-box.js';

export class FollowedCredentials implements CredentialSource {
  private readonly secrets = new Map<string, SecretRow>();
  private readonly gateway = new Map<string, AgentGatewayConfig>();
  private readonly mcp = new Map<string, McpConfig>();
  /** token hash → row */
  private readonly tokens = new Map<string, AgentTokenRow>();

  constructor(
    private readonly box: SecretBox | null,
    private readonly devbox: (id: string) => Devbox | undefined,
  ) {}

  apply(c: AgentChangeRecord): void {
    switch (c.kind) {
      case 'secret':
        if (c.value === null) {
          this.secrets.delete(c.id);
          this.dropTokens((t) => t.secret_id === c.id);
        } else this.secrets.set(c.id, c.value);
        break;
      case 'gateway_config':
        if (c.value === null) {
          this.gateway.delete(c.id);
          this.dropTokens((t) => t.config_id === c.id);
        } else this.gateway.set(c.id, c.value);
        break;
      case 'mcp_config':
        if (c.value === null) {
          this.mcp.delete(c.id);
          this.dropTokens((t) => t.config_id === c.id);
        } else this.mcp.set(c.id, c.value);
        break;
      case 'agent_token':
        if (c.value === null) this.dropTokens((t) => t.id === c.id);
        else this.tokens.set(c.value.token_hash, c.value);
        break;
    }
  }

  /** A devbox record applied: one no longer running takes its tokens with it. */
  devboxChanged(id: string, value: Devbox | null): void {
    if (value === null || value.status !== 'running') this.dropTokens((t) => t.devbox_id === id);
  }

  /** Replaces everything with a snapshot's content. */
  load(snap: AgentSnapshot): void {
    this.secrets.clear();
    this.gateway.clear();
    this.mcp.clear();
    this.tokens.clear();
    for (const s of snap.secrets) this.secrets.set(s.id, s);
    for (const c of snap.gatewayConfigs) this.gateway.set(c.id, c);
    for (const c of snap.mcpConfigs) this.mcp.set(c.id, c);
    for (const t of snap.tokens) this.tokens.set(t.token_hash, t);
  }

  private dropTokens(match: (t: AgentTokenRow) => boolean): void {
    for (const [h, t] of this.tokens) if (match(t)) this.tokens.delete(h);
  }

  agentToken(hash: string): AgentToken | undefined {
    const t = this.tokens.get(hash);
    if (!t) return undefined;
    const d = this.devbox(t.devbox_id);
    if (d?.status !== 'running' || d.account_id !== t.account_id) return undefined;
    const config = t.kind === 'gateway' ? this.gatewayConfig(t.config_id) : this.mcpConfig(t.config_id);
    if (!config || (config.account_id !== null && config.account_id !== t.account_id)) return undefined;
    const s = this.secrets.get(t.secret_id);
    if (!s || s.account_id !== t.account_id) return undefined;
    return toAgentToken(t);
  }

  gatewayConfig(id: string): AgentGatewayConfig | undefined {
    return SYSTEM_GATEWAY_CONFIGS.find((c) => c.id === id) ?? this.gateway.get(id);
  }

  mcpConfig(id: string): McpConfig | undefined {
    return this.mcp.get(id);
  }

  secretValue(accountId: string, secretId: string): string | undefined {
    const s = this.secrets.get(secretId);
    if (!s || s.account_id !== accountId || !this.box) return undefined;
    try {
      return this.box.open(accountId, secretId, s.ciphertext);
    } catch {
      return undefined; // no key yet, another key, or a damaged row: no credential (never a wrong one)
    }
  }

  /** How many of each it holds (tests, metrics). */
  sizes(): { secrets: number; gatewayConfigs: number; mcpConfigs: number; tokens: number } {
    return { secrets: this.secrets.size, gatewayConfigs: this.gateway.size, mcpConfigs: this.mcp.size, tokens: this.tokens.size };
  }
}
