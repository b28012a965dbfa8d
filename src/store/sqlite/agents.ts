/** The sqlite store's agent resources in one place: repositories, the doors' CredentialSource, the snapshot part. */
import type { AgentGatewayConfig, McpConfig } from '../../policy/credentials.js';
import { type AgentConfigRow, type AgentTokenRow, type SecretRow, toGatewayConfig, toMcpConfig } from '../agents.js';
import type { AgentSnapshot } from '../change-feed.js';
import { SqliteAgentConfigs } from './agent-configs.js';
import { SqliteAgentTokens } from './agent-tokens.js';
import type { SqliteContext } from './context.js';
import { SqliteCredentials } from './credentials.js';
import { SqliteSecrets } from './secrets.js';

export class SqliteAgents {
  readonly secrets: SqliteSecrets;
  readonly gatewayConfigs: SqliteAgentConfigs<AgentGatewayConfig>;
  readonly mcpConfigs: SqliteAgentConfigs<McpConfig>;
  readonly tokens: SqliteAgentTokens;
  readonly credentials: SqliteCredentials;

  constructor(private readonly ctx: SqliteContext) {
    this.secrets = new SqliteSecrets(ctx);
    this.gatewayConfigs = new SqliteAgentConfigs(ctx, this.secrets, 'gateway');
    this.mcpConfigs = new SqliteAgentConfigs(ctx, this.secrets, 'mcp');
    const configs = { gateway: this.gatewayConfigs, mcp: this.mcpConfigs };
    this.tokens = new SqliteAgentTokens(ctx, this.secrets, configs);
    this.credentials = new SqliteCredentials(ctx, configs);
  }

  /** Call inside a read transaction (the store's snapshot). */
  snapshot(): AgentSnapshot {
    const db = this.ctx.db;
    const configs = db.prepare('SELECT * FROM agent_configs ORDER BY id').all() as AgentConfigRow[];
    return {
      secrets: db.prepare('SELECT * FROM secrets ORDER BY id').all() as SecretRow[],
      gatewayConfigs: configs.filter((c) => c.kind === 'gateway').map(toGatewayConfig),
      mcpConfigs: configs.filter((c) => c.kind === 'mcp').map((c): McpConfig => toMcpConfig(c)),
      tokens: db.prepare(`SELECT t.* FROM agent_tokens t JOIN devboxes d ON d.id = t.devbox_id AND d.status = 'running' ORDER BY t.id`).all() as AgentTokenRow[],
    };
  }
}
