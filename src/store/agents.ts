/**
 * Agent gateway and MCP hub resources, shared by both backends (issue 21): secrets (values
 * sealed by SecretBox, never stored or returned in plaintext), gateway configs (`gwc_`, two
 * system configs every account sees), MCP configs (`mcp_`), and minted agent tokens (stored as
 * the SHA-256 of their text only). Here: the stored rows and what they are, the system configs,
 * the per-account limits, the inputs and the repositories the API uses.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AgentGatewayConfig, AgentToken, AuthMechanism, CustomHeaderSpec, McpConfig } from '../policy/credentials.js';
import type { Page, PageQuery } from './types.js';
import { StoreError } from './types.js';

export type AgentKind = 'gateway' | 'mcp';

/**
 * Fixed limits (not settings): what one account may hold, and tokens per devbox. A devbox's
 * tokens go when it shuts down, so tokens are bounded by the running-devbox quota times this.
 */
export const AGENT_LIMITS = {
  secretsPerAccount: 1000,
  gatewayConfigsPerAccount: 200,
  mcpConfigsPerAccount: 200,
  tokensPerDevbox: 64,
} as const;

/** A secret as the API shows it: never its value. */
export interface SecretInfo {
  id: string;
  account_id: string;
  name: string;
  create_time_ms: number;
  update_time_ms: number;
}

/** The stored row: the value only as SecretBox sealed it (also what the change feed carries). */
export interface SecretRow extends SecretInfo {
  ciphertext: string;
}

export function toSecretInfo(r: SecretRow): SecretInfo {
  return { id: r.id, account_id: r.account_id, name: r.name, create_time_ms: r.create_time_ms, update_time_ms: r.update_time_ms };
}

/** gateway configs and MCP configs share one table (`kind`); JSON columns are text. */
export interface AgentConfigRow {
  id: string;
  kind: AgentKind;
  account_id: string;
  name: string;
  endpoint: string;
  auth_mechanism: string;
  custom_headers: string;
  allowed_tools: string | null;
  description: string | null;
  create_time_ms: number;
  update_time_ms: number;
}

export function toGatewayConfig(r: AgentConfigRow): AgentGatewayConfig {
  return {
    id: r.id,
    account_id: r.account_id,
    name: r.name,
    endpoint: r.endpoint,
    auth_mechanism: JSON.parse(r.auth_mechanism) as AuthMechanism,
    custom_headers: JSON.parse(r.custom_headers) as CustomHeaderSpec[],
    description: r.description,
    create_time_ms: r.create_time_ms,
  };
}

export function toMcpConfig(r: AgentConfigRow): McpConfig {
  return { ...toGatewayConfig(r), allowed_tools: JSON.parse(r.allowed_tools ?? '[]') as string[] };
}

export function toAgentConfig(r: AgentConfigRow): AgentGatewayConfig | McpConfig {
  return r.kind === 'mcp' ? toMcpConfig(r) : toGatewayConfig(r);
}

export interface AgentTokenRow {
  id: string;
  token_hash: string;
  kind: AgentKind;
  account_id: string;
  devbox_id: string;
  config_id: string;
  secret_id: string;
  /** The environment variable it was minted for at devbox creation; null for create_*_token. */
  env_name: string | null;
  create_time_ms: number;
}

export function toAgentToken(r: AgentTokenRow): AgentToken {
  return { kind: r.kind, id: r.id, account_id: r.account_id, devbox_id: r.devbox_id, config_id: r.config_id, secret_id: r.secret_id };
}

/** System gateway configs: listed for every account, never written. Their ids sort after every generated one. */
export const SYSTEM_GATEWAY_CONFIGS: readonly AgentGatewayConfig[] = [
  { id: 'gwc_anthropic', account_id: null, name: 'anthropic', endpoint: 'https://api.anthropic.com', auth_mechanism: { type: 'header', key: 'x-api-key' }, custom_headers: [], description: 'Anthropic API (system config)', create_time_ms: 0 },
  { id: 'gwc_openai', account_id: null, name: 'openai', endpoint: 'https://api.openai.com', auth_mechanism: { type: 'bearer' }, custom_headers: [], description: 'OpenAI API (system config)', create_time_ms: 0 },
];

export function systemGatewayConfig(idOrName: string): AgentGatewayConfig | undefined {
  return SYSTEM_GATEWAY_CONFIGS.find((c) => c.id === idOrName || c.name === idOrName);
}

/** The MCP hub's service name of a config: its name's first segment before `-` (`github-readonly` → `github`). */
export function mcpServiceName(name: string): string {
  const i = name.indexOf('-');
  return i < 0 ? name : name.slice(0, i);
}

/** SHA-256 hex of an agent token's text: how it is stored and looked up. */
export function hashAgentToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A new token: 256 random bits, with a prefix naming its kind (grep-able in leak scanners). */
export function newAgentToken(kind: AgentKind): string {
  return `${kind === 'gateway' ? 'egw_gt_' : 'egw_mt_'}${randomBytes(32).toString('base64url')}`;
}

// ── inputs ─────────────────────────────────────────────────────────────────

/** A custom header as a write gives it: a literal value, or a secret by name or `sec_` id. */
export interface HeaderInput {
  name: string;
  value?: string;
  secret?: string;
}

export interface AgentConfigInput {
  name: string;
  endpoint: string;
  auth_mechanism: AuthMechanism;
  custom_headers: HeaderInput[];
  description: string | null;
  /** MCP configs only. */
  allowed_tools?: string[];
}

/** Fields present replace (custom_headers entirely); absent fields keep their values. */
export type AgentConfigPatch = Partial<AgentConfigInput>;

export interface ConfigQuery extends PageQuery {
  /** Case-insensitive substring of the name. */
  name?: string | null;
  id?: string | null;
  /** Substring of the id or the name. */
  search?: string | null;
}

export type { AgentSpecInput, AgentSpecsInput } from './types.js';

/** What a devbox keeps of its specs (its view's gateway_specs / mcp_specs), ids resolved. */
export interface AgentSpecs {
  gateways: Record<string, { gateway_config_id: string; secret_id: string }>;
  mcp: Record<string, { mcp_config_id: string; secret_id: string }>;
}

export interface MintInput {
  kind: AgentKind;
  devboxId: string;
  config: string;
  secret: string;
}

/** A minted token: its text is here once and never again. */
export interface MintedToken {
  token: string;
  kind: AgentKind;
  /** The env var (devbox create) or null (create_*_token). */
  env: string | null;
  devboxId: string;
  secretId: string;
  config: AgentGatewayConfig | McpConfig;
}

// ── repositories (the API's view; both backends) ───────────────────────────

export interface SecretRepository {
  create(accountId: string, name: string, value: string): Promise<SecretInfo>;
  get(accountId: string, name: string): Promise<SecretInfo | undefined>;
  /** A new value; tokens naming the secret use it from their next request. */
  update(accountId: string, name: string, value: string): Promise<SecretInfo>;
  /** Deletes it and the tokens bound to it; refused while a config's custom header uses it. */
  delete(accountId: string, name: string): Promise<SecretInfo>;
  list(accountId: string, query: PageQuery): Promise<Page<SecretInfo>>;
}

export interface AgentConfigRepository<T extends AgentGatewayConfig> {
  create(accountId: string, input: AgentConfigInput): Promise<T>;
  /** The account's config or (gateway) a system config. */
  get(accountId: string, id: string): Promise<T | undefined>;
  update(accountId: string, id: string, patch: AgentConfigPatch): Promise<T>;
  /** Deletes it and the tokens bound to it. */
  delete(accountId: string, id: string): Promise<T>;
  /** The account's configs, then (gateway) the system configs. */
  list(accountId: string, query: ConfigQuery): Promise<Page<T>>;
}

export interface AgentTokenRepository {
  /** A token for a running devbox of the account, bound to config and secret (each by id or name). */
  mint(accountId: string, input: MintInput): Promise<MintedToken>;
}

// ── rules both backends apply ──────────────────────────────────────────────

export const configWord = (kind: AgentKind) => (kind === 'gateway' ? 'gateway config' : 'MCP config');
export const configPrefix = (kind: AgentKind) => (kind === 'gateway' ? 'gwc_' : 'mcp_');

export function secretNotFound(ref: string, field?: string): StoreError {
  return new StoreError('not_found', `${field ? `${field}: ` : ''}secret ${JSON.stringify(ref)} not found`);
}

export function configNotFound(kind: AgentKind, ref: string, field?: string): StoreError {
  return new StoreError('not_found', `${field ? `${field}: ` : ''}${configWord(kind)} ${JSON.stringify(ref)} not found`);
}

export function duplicateSecret(name: string): StoreError {
  return new StoreError('duplicate_name', `a secret named ${JSON.stringify(name)} already exists in this account; names must be unique`, { name });
}

export function duplicateConfig(kind: AgentKind, name: string): StoreError {
  return new StoreError('duplicate_name', `a ${configWord(kind)} named ${JSON.stringify(name)} already exists in this account${kind === 'gateway' && systemGatewayConfig(name) ? ' (a system config)' : ''}; names must be unique`, { name });
}

export function agentQuotaExceeded(what: string, limit: number): StoreError {
  return new StoreError('quota_exceeded', `quota ${what} exceeded: the limit is ${limit} (fixed; see docs/api.md)`, { quota: what, limit });
}

export function secretInUse(name: string, configIds: string[]): StoreError {
  return new StoreError('secret_in_use', `secret ${JSON.stringify(name)} is used by the custom headers of ${configIds.join(', ')}; change or delete those configs first`, { config_ids: configIds });
}

export function devboxNotRunning(id: string): StoreError {
  return new StoreError('devbox_not_running', `devbox ${id} is not running; tokens are minted only for running devboxes`);
}

/** Page over the account's rows (already a page of query.limit + the has-more flag), then the system configs after them. */
export function withSystemConfigs<T extends AgentGatewayConfig>(page: Page<T>, query: ConfigQuery, system: readonly T[]): Page<T> {
  const matching = system.filter((c) => {
    if (query.id && c.id !== query.id) return false;
    if (query.name && !c.name.toLowerCase().includes(query.name.toLowerCase())) return false;
    if (query.search && !c.id.includes(query.search) && !c.name.toLowerCase().includes(query.search.toLowerCase())) return false;
    return true;
  });
  const totalCount = page.totalCount === null ? null : page.totalCount + matching.length;
  if (page.hasMore) return { ...page, totalCount };
  const after = query.startingAfter ?? '';
  const rest = matching.filter((c) => c.id > after);
  const room = Math.max(0, query.limit - page.items.length);
  return { items: [...page.items, ...rest.slice(0, room)], hasMore: rest.length > room, totalCount };
}
