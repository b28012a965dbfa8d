/**
 * Minted agent tokens in sqlite: the SHA-256 of the text only, bound to a running devbox of the
 * account, a config and a secret. Minted by create_*_token, or at devbox creation in the
 * devbox's own transaction (its specs kept on the devbox row for its view).
 */
import type { AgentSpecs, AgentSpecsInput, AgentTokenRow, MintInput, MintedToken } from '../agents.js';
import { AGENT_LIMITS, agentQuotaExceeded, configNotFound, devboxNotRunning, hashAgentToken, newAgentToken, secretNotFound } from '../agents.js';
import { newId } from '../ids.js';
import { StoreError } from '../types.js';
import type { AgentConfigsByKind } from './agent-configs.js';
import type { SqliteContext, StoreChange } from './context.js';
import type { SqliteSecrets } from './secrets.js';

export class SqliteAgentTokens {
  private readonly q;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly secrets: SqliteSecrets,
    private readonly configs: AgentConfigsByKind,
  ) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      devbox: p('SELECT account_id, status FROM devboxes WHERE id = ?'),
      count: p('SELECT count(*) FROM agent_tokens WHERE devbox_id = ?').pluck(),
      insert: p(`INSERT INTO agent_tokens (id, token_hash, kind, account_id, devbox_id, config_id, secret_id, env_name, create_time_ms)
                 VALUES (@id, @token_hash, @kind, @account_id, @devbox_id, @config_id, @secret_id, @env_name, @create_time_ms)`),
      setSpecs: p('UPDATE devboxes SET agent_specs = ? WHERE id = ?'),
      deleteForDevbox: p('DELETE FROM agent_tokens WHERE devbox_id = ?'),
    };
  }

  mint(accountId: string, input: MintInput): MintedToken {
    return this.ctx.write((changes) => {
      const d = this.q.devbox.get(input.devboxId) as { account_id: string; status: string } | undefined;
      if (!d || d.account_id !== accountId) throw new StoreError('not_found', `devbox ${input.devboxId} not found`);
      if (d.status !== 'running') throw devboxNotRunning(input.devboxId);
      return this.insert(accountId, input.kind, input.devboxId, input.config, input.secret, null, changes, '');
    });
  }

  /** Inside the devbox create's transaction: one token per spec, and the specs on the devbox row. */
  mintAtCreate(accountId: string, devboxId: string, specs: AgentSpecsInput, changes: StoreChange[]): MintedToken[] {
    const out: MintedToken[] = [];
    const kept: AgentSpecs = { gateways: {}, mcp: {} };
    for (const s of specs.gateways) {
      const t = this.insert(accountId, 'gateway', devboxId, s.config, s.secret, s.env, changes, `gateways.${s.env}.`);
      kept.gateways[s.env] = { gateway_config_id: t.config.id, secret_id: t.secretId };
      out.push(t);
    }
    for (const s of specs.mcp) {
      const t = this.insert(accountId, 'mcp', devboxId, s.config, s.secret, s.env, changes, `mcp.${s.env}.`);
      kept.mcp[s.env] = { mcp_config_id: t.config.id, secret_id: t.secretId };
      out.push(t);
    }
    if (out.length > 0) this.q.setSpecs.run(JSON.stringify(kept), devboxId);
    return out;
  }

  /** A devbox that stopped running takes its tokens with it (followers drop them on the devbox's record). */
  devboxStopped(devboxId: string): void {
    this.q.deleteForDevbox.run(devboxId);
  }

  private insert(accountId: string, kind: 'gateway' | 'mcp', devboxId: string, configRef: string, secretRef: string, env: string | null, changes: StoreChange[], field: string): MintedToken {
    const config = this.configs[kind].resolve(accountId, configRef);
    if (!config) throw configNotFound(kind, configRef, `${field}${kind === 'gateway' ? 'gateway' : 'mcp_config'}`);
    const secret = this.secrets.resolve(accountId, secretRef);
    if (!secret) throw secretNotFound(secretRef, `${field}secret`);
    if ((this.q.count.get(devboxId) as number) >= AGENT_LIMITS.tokensPerDevbox) throw agentQuotaExceeded('tokens_per_devbox', AGENT_LIMITS.tokensPerDevbox);
    const token = newAgentToken(kind);
    const now = Date.now();
    const row: AgentTokenRow = { id: newId('agt_', now), token_hash: hashAgentToken(token), kind, account_id: accountId, devbox_id: devboxId, config_id: config.id, secret_id: secret.id, env_name: env, create_time_ms: now };
    this.q.insert.run(row);
    changes.push({ kind: 'agent_token', id: row.id, accountId, value: row });
    return { token, kind, env, devboxId, secretId: secret.id, config };
  }
}
