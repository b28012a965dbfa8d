/**
 * Minted agent tokens in PostgreSQL: the SHA-256 of the text only, bound to a running devbox of
 * the account, a config and a secret; minted by create_*_token or in the devbox create's transaction.
 */
import { AGENT_LIMITS, type AgentKind, type AgentSpecs, type AgentSpecsInput, type AgentTokenRepository, type AgentTokenRow, type MintedToken, agentQuotaExceeded, configNotFound, devboxNotRunning, hashAgentToken, newAgentToken, secretNotFound } from '../agents.js';
import { newId } from '../ids.js';
import { StoreError } from '../types.js';
import type { PendingChange, PgDb, Query } from './db.js';
import { resolveConfig } from './agent-configs.js';
import { resolveSecret } from './secrets.js';

async function insertToken(q: Query, accountId: string, kind: AgentKind, devboxId: string, configRef: string, secretRef: string, env: string | null, changes: PendingChange[], field: string): Promise<MintedToken> {
  const config = await resolveConfig(q, kind, accountId, configRef);
  if (!config) throw configNotFound(kind, configRef, `${field}${kind === 'gateway' ? 'gateway' : 'mcp_config'}`);
  const secret = await resolveSecret(q, accountId, secretRef);
  if (!secret) throw secretNotFound(secretRef, `${field}secret`);
  const [{ n }] = (await q<{ n: number }>('SELECT count(*)::bigint AS n FROM agent_tokens WHERE devbox_id = $1', [devboxId])) as [{ n: number }];
  if (n >= AGENT_LIMITS.tokensPerDevbox) throw agentQuotaExceeded('tokens_per_devbox', AGENT_LIMITS.tokensPerDevbox);
  const token = newAgentToken(kind);
  const now = Date.now();
  const row: AgentTokenRow = { id: newId('agt_', now), token_hash: hashAgentToken(token), kind, account_id: accountId, devbox_id: devboxId, config_id: config.id, secret_id: secret.id, env_name: env, create_time_ms: now };
  await q('INSERT INTO agent_tokens (id, token_hash, kind, account_id, devbox_id, config_id, secret_id, env_name, create_time_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', [row.id, row.token_hash, kind, accountId, devboxId, row.config_id, row.secret_id, env, now]);
  changes.push({ kind: 'agent_token', id: row.id, accountId, value: row });
  return { token, kind, env, devboxId, secretId: secret.id, config };
}

/** Inside the devbox create's transaction: one token per spec, and the specs on the devbox row. */
export async function mintAtCreate(q: Query, accountId: string, devboxId: string, specs: AgentSpecsInput, changes: PendingChange[]): Promise<MintedToken[]> {
  const out: MintedToken[] = [];
  const kept: AgentSpecs = { gateways: {}, mcp: {} };
  for (const s of specs.gateways) {
    const t = await insertToken(q, accountId, 'gateway', devboxId, s.config, s.secret, s.env, changes, `gateways.${s.env}.`);
    kept.gateways[s.env] = { gateway_config_id: t.config.id, secret_id: t.secretId };
    out.push(t);
  }
  for (const s of specs.mcp) {
    const t = await insertToken(q, accountId, 'mcp', devboxId, s.config, s.secret, s.env, changes, `mcp.${s.env}.`);
    kept.mcp[s.env] = { mcp_config_id: t.config.id, secret_id: t.secretId };
    out.push(t);
  }
  if (out.length > 0) await q('UPDATE devboxes SET agent_specs = $2 WHERE id = $1', [devboxId, JSON.stringify(kept)]);
  return out;
}

export function pgAgentTokens(db: PgDb): AgentTokenRepository {
  return {
    mint: (accountId, input) =>
      db.write(accountId, async (tq, changes) => {
        const [d] = await tq<{ status: string }>('SELECT status FROM devboxes WHERE id = $1 AND account_id = $2 FOR SHARE', [input.devboxId, accountId]);
        if (!d) throw new StoreError('not_found', `devbox ${input.devboxId} not found`);
        if (d.status !== 'running') throw devboxNotRunning(input.devboxId);
        return insertToken(tq, accountId, input.kind, input.devboxId, input.config, input.secret, null, changes, '');
      }),
  };
}
