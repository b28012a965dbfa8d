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

export interface NetworkPolicy {
  id: string;
  account_id: string;
  name: string;
  description: string | null;
  egress: EgressRules;
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
}
