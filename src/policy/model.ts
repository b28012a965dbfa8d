/** The stored shapes of policies and devboxes, as the API and the store see them. */

export type CidrProtocol = 'TCP' | 'UDP';

export interface CidrPortRange {
  port: number;
  end_port?: number | null;
  protocol?: CidrProtocol | null;
}

export interface AllowedCidr {
  cidr: string;
  ports?: CidrPortRange[] | null;
}

export interface EgressRules {
  allow_all: boolean;
  allow_devbox_to_devbox: boolean;
  allowed_hostnames: string[];
  allow_agent_gateway: boolean;
  allow_mcp_gateway: boolean;
  allow_runloop_mirrors: boolean;
  allowed_cidrs: AllowedCidr[];
}

/** A policy's egress when nothing was said: no network access (DENY_ALL). */
export const DEFAULT_EGRESS: Readonly<EgressRules> = Object.freeze({
  allow_all: false,
  allow_devbox_to_devbox: false,
  allowed_hostnames: [],
  allow_agent_gateway: false,
  allow_mcp_gateway: false,
  allow_runloop_mirrors: false,
  allowed_cidrs: [],
});

/**
 * Applies a patch (undefined or null fields keep their values; provided ones replace
 * entirely) and the one coupling rule: allow_all implies allow_devbox_to_devbox.
 * Returns a fresh object that shares nothing with its inputs.
 */
export function completeEgress(base: Readonly<EgressRules>, patch?: Partial<EgressRules> | null): EgressRules {
  const e: EgressRules = { ...base };
  if (patch) {
    for (const k of Object.keys(patch) as (keyof EgressRules)[]) {
      const v = patch[k];
      if (v !== undefined && v !== null) (e as unknown as Record<string, unknown>)[k] = v;
    }
  }
  if (e.allow_all) e.allow_devbox_to_devbox = true;
  return {
    allow_all: e.allow_all,
    allow_devbox_to_devbox: e.allow_devbox_to_devbox,
    allowed_hostnames: [...e.allowed_hostnames],
    allow_agent_gateway: e.allow_agent_gateway,
    allow_mcp_gateway: e.allow_mcp_gateway,
    allow_runloop_mirrors: e.allow_runloop_mirrors,
    allowed_cidrs: e.allowed_cidrs.map((c) => ({ ...c, ports: c.ports ? c.ports.map((p) => ({ ...p })) : c.ports })),
  };
}

/**
 * `enforce`: denials are enforced. `report`: what the policy would deny is let through and
 * recorded as would_deny (guardrails, unknown clients and protocol refusals still apply).
 */
export const ENFORCEMENTS = ['enforce', 'report'] as const;
export type Enforcement = (typeof ENFORCEMENTS)[number];

export interface NetworkPolicy {
  id: string;
  account_id: string;
  name: string;
  description: string | null;
  egress: EgressRules;
  enforcement: Enforcement;
  create_time_ms: number;
  update_time_ms: number;
  /** Bumped on every update; part of every decision so a cached answer can be traced. */
  version: number;
}

export const DEVBOX_STATUSES = [
  'provisioning',
  'initializing',
  'running',
  'suspending',
  'suspended',
  'resuming',
  'failure',
  'shutdown',
] as const;
export type DevboxStatus = (typeof DEVBOX_STATUSES)[number];

export interface Devbox {
  id: string;
  account_id: string;
  name: string | null;
  status: DevboxStatus;
  network_policy_id: string | null;
  /** Source addresses this devbox's traffic comes from (canonical text form). */
  addresses: string[];
  metadata: Record<string, string>;
  /** Key of the devbox's tunnel hostnames: `{port}-{tunnel_key}.tunnel.runloop.ai`. */
  tunnel_key: string;
  /** sha256 hex of the proxy password handed out at creation. */
  password_hash: string;
  create_time_ms: number;
  end_time_ms: number | null;
  /** The blueprint it was created from, if any. */
  blueprint_id?: string | null;
  /** The host whose sidecar serves it in fleet mode (`network.host_id`); null: not placed. */
  host_id?: string | null;
}
