/**
 * Gateway and MCP configs in sqlite (one table, `kind`): one repository per kind over it;
 * gateway configs also answer with the system configs.
 */
import type { AgentGatewayConfig, CustomHeaderSpec, McpConfig } from '../../policy/credentials.js';
import { newId } from '../ids.js';
import {
  AGENT_LIMITS,
  type AgentConfigInput,
  type AgentConfigRepository,
  type AgentConfigPatch,
  type AgentConfigRow,
  type AgentKind,
  type ConfigQuery,
  type HeaderInput,
  SYSTEM_GATEWAY_CONFIGS,
  agentQuotaExceeded,
  configNotFound,
  configPrefix,
  duplicateConfig,
  systemGatewayConfig,
  toAgentConfig,
  withSystemConfigs,
  secretNotFound,
} from '../agents.js';
import type { Page } from '../types.js';
import type { SqliteContext, StoreChange, Sync } from './context.js';
import type { SqliteSecrets } from './secrets.js';

type Config = AgentGatewayConfig | McpConfig;

/** Both kinds' repositories (what agent tokens and the doors' lookups resolve a config in). */
export interface AgentConfigsByKind {
  readonly gateway: SqliteAgentConfigs<AgentGatewayConfig>;
  readonly mcp: SqliteAgentConfigs<McpConfig>;
}

export class SqliteAgentConfigs<T extends Config> implements Sync<AgentConfigRepository<T>> {
  private readonly q;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly secrets: SqliteSecrets,
    readonly kind: AgentKind,
  ) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      byId: p('SELECT * FROM agent_configs WHERE id = ? AND kind = ?'),
      byName: p('SELECT * FROM agent_configs WHERE kind = ? AND account_id = ? AND name = ?'),
      count: p('SELECT count(*) FROM agent_configs WHERE kind = ? AND account_id = ?').pluck(),
      insert: p(`INSERT INTO agent_configs (id, kind, account_id, name, endpoint, auth_mechanism, custom_headers, allowed_tools, description, create_time_ms, update_time_ms)
                 VALUES (@id, @kind, @account_id, @name, @endpoint, @auth_mechanism, @custom_headers, @allowed_tools, @description, @create_time_ms, @update_time_ms)`),
      update: p(`UPDATE agent_configs SET name = @name, endpoint = @endpoint, auth_mechanism = @auth_mechanism, custom_headers = @custom_headers,
                 allowed_tools = @allowed_tools, description = @description, update_time_ms = @update_time_ms WHERE id = @id`),
      delete: p('DELETE FROM agent_configs WHERE id = ?'),
      deleteTokens: p('DELETE FROM agent_tokens WHERE config_id = ?'),
    };
  }

  /** Any account's config of this kind by id, or a system gateway config (the doors' lookup). */
  byId(id: string): T | undefined {
    const kind = this.kind;
    const sys = kind === 'gateway' ? SYSTEM_GATEWAY_CONFIGS.find((c) => c.id === id) : undefined;
    if (sys) return sys as T;
    const r = this.q.byId.get(id, kind) as AgentConfigRow | undefined;
    return r && (toAgentConfig(r) as T);
  }

  get(accountId: string, id: string): T | undefined {
    const c = this.byId(id);
    return c && (c.account_id === accountId || c.account_id === null) ? c : undefined;
  }

  /** The account's config (or a system config) by id or name; the account's own name wins. */
  resolve(accountId: string, ref: string): T | undefined {
    const kind = this.kind;
    if (ref.startsWith(configPrefix(kind))) {
      const c = this.get(accountId, ref);
      if (c) return c;
    }
    const r = this.q.byName.get(kind, accountId, ref) as AgentConfigRow | undefined;
    if (r) return toAgentConfig(r) as T;
    return kind === 'gateway' ? (systemGatewayConfig(ref) as T | undefined) : undefined;
  }

  /** Header secrets by name or id → `sec_` ids of the account. */
  private headers(accountId: string, input: readonly HeaderInput[]): CustomHeaderSpec[] {
    return input.map((h, i) => {
      if (h.secret === undefined) return { name: h.name, value: h.value ?? '' };
      const s = this.secrets.resolve(accountId, h.secret);
      if (!s) throw secretNotFound(h.secret, `custom_headers[${i}].secret`);
      return { name: h.name, secret_id: s.id };
    });
  }

  private nameTaken(accountId: string, name: string, self: string | null): boolean {
    const kind = this.kind;
    if (kind === 'gateway' && systemGatewayConfig(name)?.name === name) return true;
    const r = this.q.byName.get(kind, accountId, name) as AgentConfigRow | undefined;
    return r !== undefined && r.id !== self;
  }

  create(accountId: string, input: AgentConfigInput): T {
    const kind = this.kind;
    return this.ctx.write((changes) => {
      if (this.nameTaken(accountId, input.name, null)) throw duplicateConfig(kind, input.name);
      const limit = kind === 'gateway' ? AGENT_LIMITS.gatewayConfigsPerAccount : AGENT_LIMITS.mcpConfigsPerAccount;
      if ((this.q.count.get(kind, accountId) as number) >= limit) throw agentQuotaExceeded(`${kind}_configs_per_account`, limit);
      const now = Date.now();
      const id = newId(configPrefix(kind), now);
      this.q.insert.run({
        id,
        kind,
        account_id: accountId,
        name: input.name,
        endpoint: input.endpoint,
        auth_mechanism: JSON.stringify(input.auth_mechanism),
        custom_headers: JSON.stringify(this.headers(accountId, input.custom_headers)),
        allowed_tools: kind === 'mcp' ? JSON.stringify(input.allowed_tools ?? []) : null,
        description: input.description,
        create_time_ms: now,
        update_time_ms: now,
      });
      return this.logged(id, accountId, changes);
    });
  }

  private logged(id: string, accountId: string, changes: StoreChange[]): T {
    const c = this.byId(id)!;
    changes.push(this.kind === 'gateway' ? { kind: 'gateway_config', id, accountId, value: c } : { kind: 'mcp_config', id, accountId, value: c as McpConfig });
    return c;
  }

  /** The account's own (writable) row, or not_found (system configs are not the account's to change). */
  private own(accountId: string, id: string): AgentConfigRow {
    const r = this.q.byId.get(id, this.kind) as AgentConfigRow | undefined;
    if (!r || r.account_id !== accountId) throw configNotFound(this.kind, id);
    return r;
  }

  update(accountId: string, id: string, patch: AgentConfigPatch): T {
    const kind = this.kind;
    return this.ctx.write((changes) => {
      const cur = this.own(accountId, id);
      const name = patch.name ?? cur.name;
      if (name !== cur.name && this.nameTaken(accountId, name, id)) throw duplicateConfig(kind, name);
      this.q.update.run({
        id,
        name,
        endpoint: patch.endpoint ?? cur.endpoint,
        auth_mechanism: patch.auth_mechanism ? JSON.stringify(patch.auth_mechanism) : cur.auth_mechanism,
        custom_headers: patch.custom_headers ? JSON.stringify(this.headers(accountId, patch.custom_headers)) : cur.custom_headers,
        allowed_tools: kind === 'mcp' ? (patch.allowed_tools ? JSON.stringify(patch.allowed_tools) : cur.allowed_tools) : null,
        description: patch.description === undefined ? cur.description : patch.description,
        update_time_ms: Math.max(Date.now(), cur.update_time_ms),
      });
      return this.logged(id, accountId, changes);
    });
  }

  delete(accountId: string, id: string): T {
    const kind = this.kind;
    return this.ctx.write((changes) => {
      const cur = toAgentConfig(this.own(accountId, id)) as T;
      this.q.deleteTokens.run(id);
      this.q.delete.run(id);
      changes.push({ kind: kind === 'gateway' ? 'gateway_config' : 'mcp_config', id, accountId, value: null });
      return cur;
    });
  }

  list(accountId: string, query: ConfigQuery): Page<T> {
    const kind = this.kind;
    const where = ['kind = @kind', 'account_id = @account'];
    const params: Record<string, unknown> = { kind, account: accountId };
    if (query.name) {
      where.push('instr(casefold(name), @name) > 0');
      params.name = query.name.toLowerCase();
    }
    if (query.id) {
      where.push('id = @id');
      params.id = query.id;
    }
    if (query.search) {
      where.push('(instr(id, @search) > 0 OR instr(casefold(name), @searchName) > 0)');
      params.search = query.search;
      params.searchName = query.search.toLowerCase();
    }
    const page = this.ctx.page<AgentConfigRow, T>('agent_configs', where, params, query, (r) => toAgentConfig(r) as T);
    return kind === 'gateway' ? (withSystemConfigs(page as Page<AgentGatewayConfig>, query, SYSTEM_GATEWAY_CONFIGS) as Page<T>) : page;
  }
}
