/**
 * The doors' CredentialSource over the sqlite file, read per request (a worker process opens
 * the same file): a token counts only while its devbox runs and its config and secret exist,
 * and a secret's value is read (and opened) at each lookup, so a new value applies at once.
 */
import type { AgentGatewayConfig, AgentToken, CredentialSource, McpConfig } from '../../policy/credentials.js';
import { type AgentTokenRow, SYSTEM_GATEWAY_CONFIGS, toAgentToken } from '../agents.js';
import type { AgentConfigsByKind } from './agent-configs.js';
import type { SqliteContext } from './context.js';

const SYSTEM_IDS = SYSTEM_GATEWAY_CONFIGS.map((c) => `'${c.id}'`).join(', ');

export class SqliteCredentials implements CredentialSource {
  private readonly q;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly configs: AgentConfigsByKind,
  ) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      token: p(`SELECT t.* FROM agent_tokens t
                JOIN devboxes d ON d.id = t.devbox_id AND d.account_id = t.account_id AND d.status = 'running'
                JOIN secrets s ON s.id = t.secret_id AND s.account_id = t.account_id
                WHERE t.token_hash = ?
                  AND ((t.kind = 'gateway' AND t.config_id IN (${SYSTEM_IDS}))
                       OR EXISTS (SELECT 1 FROM agent_configs c WHERE c.id = t.config_id AND c.kind = t.kind AND c.account_id = t.account_id))`),
      secret: p('SELECT ciphertext FROM secrets WHERE id = ? AND account_id = ?').pluck(),
    };
  }

  agentToken(hash: string): AgentToken | undefined {
    if (!/^[0-9a-f]{64}$/.test(hash)) return undefined;
    const r = this.q.token.get(hash) as AgentTokenRow | undefined;
    return r && toAgentToken(r);
  }

  gatewayConfig(id: string): AgentGatewayConfig | undefined {
    return this.configs.gateway.byId(id);
  }

  mcpConfig(id: string): McpConfig | undefined {
    return this.configs.mcp.byId(id);
  }

  secretValue(accountId: string, secretId: string): string | undefined {
    const sealed = this.q.secret.get(secretId, accountId) as string | undefined;
    if (sealed === undefined || !this.ctx.box) return undefined;
    try {
      return this.ctx.box.open(accountId, secretId, sealed);
    } catch {
      return undefined; // no key yet, another key, or a damaged row: no credential (never a wrong one)
    }
  }
}
