/**
 * What every store backend (sqlite, PostgreSQL) shares: the resources' inputs, queries and
 * pages, the refusals a write can meet (StoreError), and the storage fault that makes the API
 * answer 503 (StorageUnavailable). Nothing here names a CLI flag.
 */
import { createHash } from 'node:crypto';
import { type DevboxStatus, type EgressRules, type Enforcement, LIST_FIELDS } from '../policy/model.js';
import type { BlueprintParameters, BlueprintStatus } from './blueprints.js';

/** A token given in the configuration, and the account it authenticates. */
export interface ConfiguredToken {
  token: string;
  accountId: string;
}

export const DEFAULT_ACCOUNT = 'default';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** What `tokens list` shows of a token: at most 12 characters and at most a quarter of it. */
export function tokenPrefix(token: string): string {
  return token.slice(0, Math.min(12, Math.floor(token.length / 4)));
}

/** A row's size as stored (its text columns), close to the size of its JSON view. */
export function rowBytes(r: unknown): number {
  let n = 64;
  for (const v of Object.values(r as Record<string, unknown>)) if (typeof v === 'string') n += v.length;
  return n;
}

export type StoreErrorCode =
  | 'not_found'
  | 'duplicate_name'
  | 'policy_in_use'
  | 'policy_not_found'
  | 'address_in_use'
  | 'address_unavailable'
  | 'quota_exceeded'
  | 'blueprint_not_found'
  | 'blueprint_not_ready'
  | 'invalid_transition'
  | 'ambiguous'
  | 'secret_in_use'
  | 'devbox_not_running'
  | 'secrets_unavailable'
  | 'too_large';

/** What one account may store (the API's settings; none by default, e.g. for `apply`). */
export interface Quotas {
  policiesPerAccount: number;
  entriesPerPolicy: number;
  entriesPerAccount: number;
  devboxesPerAccount: number;
  addressesPerAccount: number;
  /** Stored blueprints (every status: each row is storage). */
  blueprintsPerAccount: number;
}

/** A second network policy of the same name in one account. */
export function duplicateName(name: string): StoreError {
  return new StoreError('duplicate_name', `a network policy named ${JSON.stringify(name)} already exists in this account; names must be unique`, { name });
}

/** The quota refusal both backends give (403 quota_exceeded, naming the quota, its limit and setting). */
export function quotaExceeded(quota: string, setting: string, limit: number, what: string): StoreError {
  return new StoreError('quota_exceeded', `quota ${quota} exceeded: ${what}; the limit is ${limit} (--${setting})`, { quota, limit });
}

/** Active builds hold their addresses as running devboxes do: both count toward one quota. */
export function addressQuotaExceeded(q: Quotas, wouldHold: number): StoreError {
  return quotaExceeded('addresses_per_account', 'max-addresses-per-account', q.addressesPerAccount, `this account's running devboxes and active blueprint builds would hold ${wouldHold} addresses`);
}

export function policyQuotaExceeded(q: Quotas): StoreError {
  return quotaExceeded('policies_per_account', 'max-policies-per-account', q.policiesPerAccount, 'this account already holds that many network policies');
}

/** `entries`: what the one policy would hold (the sum of its list fields). */
export function entriesPerPolicyExceeded(q: Quotas, entries: number): StoreError {
  return quotaExceeded('entries_per_policy', 'max-entries-per-policy', q.entriesPerPolicy, `the policy would hold ${entries} ${LIST_FIELDS.join(' and ')} entries`);
}

/** `entries`: what all the account's policies would hold. */
export function entriesPerAccountExceeded(q: Quotas, entries: number): StoreError {
  return quotaExceeded('entries_per_account', 'max-entries-per-account', q.entriesPerAccount, `this account's policies would hold ${entries} entries`);
}

export function devboxQuotaExceeded(q: Quotas): StoreError {
  return quotaExceeded('devboxes_per_account', 'max-devboxes-per-account', q.devboxesPerAccount, 'this account already has that many running devboxes');
}

export function blueprintQuotaExceeded(q: Quotas): StoreError {
  return quotaExceeded('blueprints_per_account', 'max-blueprints-per-account', q.blueprintsPerAccount, 'this account already holds that many blueprints');
}

/** A policy a write names (in `field`) that the account does not have. */
export function policyNotFound(policyId: string, field = 'launch_parameters.network_policy_id'): StoreError {
  return new StoreError('policy_not_found', `${field}: network policy ${policyId} does not exist in this account`);
}

/** The refusal for an address the account's own running devbox or active build (`owner`) holds. */
export function addressInUse(address: string, owner: string): StoreError {
  return new StoreError('address_in_use', `network.addresses: ${address} is already the address of ${owner.startsWith('bpt_') ? 'blueprint build' : 'running devbox'} ${owner}`, { address, devbox_id: owner });
}

/** The refusal for an address another account holds: the same words as for a reserved one. */
export function addressUnavailable(address: string): StoreError {
  return new StoreError('address_unavailable', `network.addresses: ${address} cannot be registered by this account`, { address });
}

/** A write the data forbids; the API turns it into a 400 or 404 with this message. */
export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/**
 * The database cannot be used: disk full, read-only, I/O error, locked. The API answers
 * 503 storage_unavailable with this message; nothing the client sent is wrong.
 */
export class StorageUnavailable extends Error {
  constructor(
    readonly reason: string,
    readonly code: string,
  ) {
    super(`the policy store is unavailable: ${reason}`);
  }
}

/** The storage fault behind an error thrown by better-sqlite3 or the file system, or null. */
export function storageFault(e: unknown): StorageUnavailable | null {
  if (e instanceof StorageUnavailable) return e;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  let why: string;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') why = 'the database or its disk is full';
  else if (code.startsWith('SQLITE_READONLY') || code === 'EROFS') why = 'the database is read-only';
  else if (code.startsWith('SQLITE_IOERR') || code === 'EIO') why = 'disk I/O error';
  else if (code === 'SQLITE_CANTOPEN') why = 'the database file cannot be opened';
  else if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') why = 'the database file is corrupt';
  else if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) why = 'the database is locked by another process';
  else if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH') why = 'the database server cannot be reached';
  else if (code === 'PG_CONNECTION') why = 'the connection to the database server was lost';
  // PostgreSQL SQLSTATE classes: 08 connection, 53 insufficient resources, 57P admin shutdown / cannot connect now, 58 system error.
  else if (/^(08|53|57P|58)[0-9A-Z]{2,3}$/.test(code)) why = 'the database server refused or dropped the request';
  else return null;
  return new StorageUnavailable(`${why} (${code})`, code);
}

export type TokenOrigin = 'configured' | 'created' | 'first-start';

/** A stored API token as `egress-gateway tokens list` shows it; the token itself is never stored. */
export interface TokenInfo {
  id: string;
  /** The first characters of the token (at most a quarter of it); null for tokens stored before they were kept. */
  prefix: string | null;
  accountId: string;
  origin: TokenOrigin;
  createTimeMs: number;
  /** Updated at most once a minute; null when never used since it was stored. */
  lastUsedMs: number | null;
}

export interface PageQuery {
  /** Items to return (the API checks 1..5000). */
  limit: number;
  /** Only items whose id sorts after this one. */
  startingAfter?: string | null;
  /** Stop the page early (has_more) once its rows' stored bytes pass this (at least one row is returned). */
  maxBytes?: number;
  includeTotalCount?: boolean;
}

export interface PolicyQuery extends PageQuery {
  /** Case-insensitive substring of the name. */
  name?: string | null;
  id?: string | null;
}

export interface DevboxQuery extends PageQuery {
  status?: DevboxStatus | null;
  /** Only devboxes placed on this host (`network.host_id`). */
  hostId?: string | null;
}

export interface Page<T> {
  items: T[];
  hasMore: boolean;
  /** Items matching the filters (ignoring starting_after and limit); null when not asked for. */
  totalCount: number | null;
}

/** A batch row of the denial record (see DenialRecorder): counts over one flush interval. */
export interface DenialEventBatchRow {
  accountId: string;
  devboxId: string;
  policyId: string | null;
  host: string;
  port: number;
  door: string;
  reason: string;
  decision: 'deny' | 'would_deny';
  count: number;
  firstSeenMs: number;
  lastSeenMs: number;
}

export interface DenialLimits {
  retentionMs: number;
  maxPerDevbox: number;
  now: number;
}

export interface DenialEventQuery extends PageQuery {
  devboxId?: string | null;
  decision?: 'deny' | 'would_deny' | null;
  /** Only rows last seen at or after this time (ms since the epoch). */
  sinceMs?: number | null;
}

/** One row of the per-devbox denial record. */
export interface DenialEvent {
  id: string;
  account_id: string;
  devbox_id: string;
  policy_id: string | null;
  host: string;
  port: number;
  door: string;
  reason: string;
  decision: 'deny' | 'would_deny';
  count: number;
  first_seen_ms: number;
  last_seen_ms: number;
}

export interface PolicyInput {
  name: string;
  description?: string | null;
  egress?: Partial<EgressRules>;
  enforcement?: Enforcement;
}

/** Fields present replace; absent (undefined) fields keep their values. */
export interface PolicyPatch {
  name?: string;
  description?: string | null;
  egress?: Partial<EgressRules>;
  enforcement?: Enforcement;
}

export interface DevboxInput {
  name?: string | null;
  metadata?: Record<string, string>;
  networkPolicyId?: string | null;
  /** Canonical IP literals (the API canonicalises). */
  addresses?: string[];
  /** Created from this blueprint: its launch policy applies unless networkPolicyId is given. */
  blueprintId?: string | null;
  /** The host whose sidecar serves it (fleet mode); null: not placed. */
  hostId?: string | null;
  /** Agent gateway and MCP specs: a token is minted for each in the same transaction. */
  agents?: AgentSpecsInput | null;
}

export interface BlueprintInput {
  name: string;
  networkPolicyId?: string | null;
  launchNetworkPolicyId?: string | null;
  addresses?: string[];
  metadata?: Record<string, string>;
  parameters: BlueprintParameters;
}

export interface BlueprintQuery extends PageQuery {
  name?: string | null;
  status?: BlueprintStatus | null;
}

/** undefined keeps; networkPolicyId null detaches the policy (the default, deny all, applies). */
export interface DevboxPatch {
  name?: string | null;
  metadata?: Record<string, string>;
  networkPolicyId?: string | null;
}

/** A gateway or MCP spec of a devbox create (`gateways` / `mcp`): config and secret by id or name. */
export interface AgentSpecInput {
  env: string;
  config: string;
  secret: string;
}

export interface AgentSpecsInput {
  gateways: AgentSpecInput[];
  mcp: AgentSpecInput[];
}
