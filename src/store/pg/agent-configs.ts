/** Gateway and MCP configs in PostgreSQL (one table, `kind`); gateway configs also answer with the system configs. */
import type { AgentGatewayConfig, CustomHeaderSpec, McpConfig } from '../../policy/credentials.js';
import {
  AGENT_LIMITS,
  type AgentConfigRepository,
  type AgentConfigRow,
  type AgentKind,
  type HeaderInput,
  SYSTEM_GATEWAY_CONFIGS,
  agentQuotaExceeded,
  configNotFound,
  configPrefix,
  duplicateConfig,
  secretNotFound,
  systemGatewayConfig,
  toAgentConfig,
  withSystemConfigs,
} from '../agents.js';
import { newId } from '../ids.js';
import type { PgDb, Query } from './db.js';
import { Where, pageOf } from './page.js';
import { resolveSecret } from './secrets.js';

type Config = AgentGatewayConfig | McpConfig;

async function ownRow(q: Query, kind: AgentKind, accountId: string, id: string, lock = false): Promise<AgentConfigRow | undefined> {
  const [r] = await q<AgentConfigRow>(`SELECT * FROM agent_configs WHERE id = $1 AND kind = $2 AND account_id = $3${lock ? ' FOR UPDATE' : ''}`, [id, kind, accountId]);
  return r;
}

/** The account's config (or a system config) by id or name; the account's own name wins. */
export async function resolveConfig(q: Query, kind: AgentKind, accountId: string, ref: string): Promise<Config | undefined> {
  if (ref.startsWith(configPrefix(kind))) {
    const sys = kind === 'gateway' ? SYSTEM_GATEWAY_CONFIGS.find((c) => c.id === ref) : undefined;
    if (sys) return sys;
    const r = await ownRow(q, kind, accountId, ref);
    if (r) return toAgentConfig(r);
  }
  const [r] = await q<AgentConfigRow>('SELECT * FROM agent_configs WHERE kind = $1 AND account_id = $2 AND name = $3', [kind, accountId, ref]);
  if (r) return toAgentConfig(r);
  return kind === 'gateway' ? systemGatewayConfig(ref) : undefined;
}

async function headers(q: Query, accountId: string, input: readonly HeaderInput[]): Promise<CustomHeaderSpec[]> {
  const out: CustomHeaderSpec[] = [];
  for (const [i, h] of input.entries()) {
    if (h.secret === undefined) {
      out.push({ name: h.name, value: h.value ?? '' });
      continue;
    }
    const s = await resolveSecret(q, accountId, h.secret);
    if (!s) throw secretNotFound(h.secret, `custom_headers[${i}].secret`);
    out.push({ name: h.name, secret_id: s.id });
  }
  return out;
}

async function nameTaken(q: Query, kind: AgentKind, accountId: string, name: string, self: string | null): Promise<boolean> {
  if (kind === 'gateway' && systemGatewayConfig(name)?.name === name) return true;
  const [r] = await q<{ id: string }>('SELECT id FROM agent_configs WHERE kind = $1 AND account_id = $2 AND name = $3', [kind, accountId, name]);
  return r !== undefined && r.id !== self;
}

export function pgAgentConfigs<T extends Config>(db: PgDb, kind: AgentKind): AgentConfigRepository<T> {
  const q: Query = (sql, params) => db.query(sql, params);
  const feedKind = kind === 'gateway' ? 'gateway_config' : 'mcp_config';
  const push = (changes: Parameters<Parameters<PgDb['write']>[1]>[1], accountId: string, id: string, value: Config | null) => changes.push({ kind: feedKind, id, accountId, value } as (typeof changes)[number]);
  return {
    async get(accountId, id) {
      const sys = kind === 'gateway' ? SYSTEM_GATEWAY_CONFIGS.find((c) => c.id === id) : undefined;
      if (sys) return sys as T;
      const r = await ownRow(q, kind, accountId, id);
      return r && (toAgentConfig(r) as T);
    },

    create: (accountId, input) =>
      db.write(accountId, async (tq, changes) => {
        if (await nameTaken(tq, kind, accountId, input.name, null)) throw duplicateConfig(kind, input.name);
        const limit = kind === 'gateway' ? AGENT_LIMITS.gatewayConfigsPerAccount : AGENT_LIMITS.mcpConfigsPerAccount;
        const [{ n }] = (await tq<{ n: number }>('SELECT count(*)::bigint AS n FROM agent_configs WHERE kind = $1 AND account_id = $2', [kind, accountId])) as [{ n: number }];
        if (n >= limit) throw agentQuotaExceeded(`${kind}_configs_per_account`, limit);
        const now = Date.now();
        const id = newId(configPrefix(kind), now);
        const [r] = await tq<AgentConfigRow>(
          `INSERT INTO agent_configs (id, kind, account_id, name, endpoint, auth_mechanism, custom_headers, allowed_tools, description, create_time_ms, update_time_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING *`,
          [id, kind, accountId, input.name, input.endpoint, JSON.stringify(input.auth_mechanism), JSON.stringify(await headers(tq, accountId, input.custom_headers)), kind === 'mcp' ? JSON.stringify(input.allowed_tools ?? []) : null, input.description, now],
        );
        const c = toAgentConfig(r!);
        push(changes, accountId, id, c);
        return c as T;
      }),

    update: (accountId, id, patch) =>
      db.write(accountId, async (tq, changes) => {
        const cur = await ownRow(tq, kind, accountId, id, true);
        if (!cur) throw configNotFound(kind, id);
        const name = patch.name ?? cur.name;
        if (name !== cur.name && (await nameTaken(tq, kind, accountId, name, id))) throw duplicateConfig(kind, name);
        const [r] = await tq<AgentConfigRow>(
          `UPDATE agent_configs SET name = $2, endpoint = $3, auth_mechanism = $4, custom_headers = $5, allowed_tools = $6, description = $7, update_time_ms = $8
           WHERE id = $1 RETURNING *`,
          [
            id,
            name,
            patch.endpoint ?? cur.endpoint,
            patch.auth_mechanism ? JSON.stringify(patch.auth_mechanism) : cur.auth_mechanism,
            patch.custom_headers ? JSON.stringify(await headers(tq, accountId, patch.custom_headers)) : cur.custom_headers,
            kind === 'mcp' ? (patch.allowed_tools ? JSON.stringify(patch.allowed_tools) : cur.allowed_tools) : null,
            patch.description === undefined ? cur.description : patch.description,
            Math.max(Date.now(), cur.update_time_ms),
          ],
        );
        const c = toAgentConfig(r!);
        push(changes, accountId, id, c);
        return c as T;
      }),

    delete: (accountId, id) =>
      db.write(accountId, async (tq, changes) => {
        const cur = await ownRow(tq, kind, accountId, id, true);
        if (!cur) throw configNotFound(kind, id);
        await tq('DELETE FROM agent_tokens WHERE config_id = $1', [id]);
        await tq('DELETE FROM agent_configs WHERE id = $1', [id]);
        push(changes, accountId, id, null);
        return toAgentConfig(cur) as T;
      }),

    async list(accountId, query) {
      const w = Where.account(accountId, query.name).add((p) => `kind = ${p}`, kind);
      if (query.id) w.add((p) => `id = ${p}`, query.id);
      if (query.search) {
        w.add((p) => `(strpos(id, ${p}) > 0 OR strpos(lower(name), lower(${p})) > 0)`, query.search);
      }
      const page = await pageOf<AgentConfigRow, T>(db, 'agent_configs', w, query, (r) => toAgentConfig(r) as T);
      return kind === 'gateway' ? withSystemConfigs(page, query, SYSTEM_GATEWAY_CONFIGS as T[]) : page;
    },
  };
}
