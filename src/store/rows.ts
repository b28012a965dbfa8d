/**
 * The stored rows of policies and devboxes (JSON columns as text, times as integers) and
 * the resources they are, shared by both backends.
 */
import type { TokenInfo, TokenOrigin } from './types.js';
import { type Devbox, type DevboxStatus, type EgressRules, type NetworkPolicy, DEFAULT_EGRESS, completeEgress } from '../policy/model.js';

export interface PolicyRow {
  id: string;
  account_id: string;
  name: string;
  description: string | null;
  egress: string;
  enforcement: string;
  version: number;
  create_time_ms: number;
  update_time_ms: number;
}

export interface DevboxRow {
  id: string;
  account_id: string;
  name: string | null;
  status: string;
  network_policy_id: string | null;
  addresses: string;
  metadata: string;
  tunnel_key: string;
  password_hash: string;
  create_time_ms: number;
  end_time_ms: number | null;
  blueprint_id: string | null;
  host_id: string | null;
  /** JSON AgentSpecs, or null when the devbox was created without gateways or mcp. */
  agent_specs?: string | null;
}

export function toPolicy(r: PolicyRow): NetworkPolicy {
  return {
    id: r.id,
    account_id: r.account_id,
    name: r.name,
    description: r.description,
    egress: completeEgress(DEFAULT_EGRESS, JSON.parse(r.egress) as Partial<EgressRules>),
    enforcement: r.enforcement === 'report' ? 'report' : 'enforce',
    create_time_ms: r.create_time_ms,
    update_time_ms: r.update_time_ms,
    version: r.version,
  };
}

export function toDevbox(r: DevboxRow): Devbox {
  return {
    id: r.id,
    account_id: r.account_id,
    name: r.name,
    status: r.status as DevboxStatus,
    network_policy_id: r.network_policy_id,
    addresses: JSON.parse(r.addresses) as string[],
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    tunnel_key: r.tunnel_key,
    password_hash: r.password_hash,
    create_time_ms: r.create_time_ms,
    end_time_ms: r.end_time_ms,
    blueprint_id: r.blueprint_id,
    host_id: r.host_id,
    ...(r.agent_specs ? { agent_specs: JSON.parse(r.agent_specs) as NonNullable<Devbox['agent_specs']> } : {}),
  };
}

/** An api_tokens row, the same in both backends. */
export interface TokenRow {
  id: string;
  token_hash: string;
  prefix: string | null;
  account_id: string;
  origin: TokenOrigin;
  create_time_ms: number;
  last_used_ms: number | null;
}

/** What listing a token shows (never its hash). */
export function toTokenInfo(r: TokenRow): TokenInfo {
  return { id: r.id, prefix: r.prefix, accountId: r.account_id, origin: r.origin, createTimeMs: r.create_time_ms, lastUsedMs: r.last_used_ms };
}
