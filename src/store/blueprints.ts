/**
 * Blueprints (the seed subset of Runloop's Blueprint API): a build runs with its own
 * network policy (`network_policy_id`) while it is queued, provisioning or building, from
 * the source addresses it registered; devboxes created from the blueprint inherit
 * `launch_parameters.network_policy_id` unless they name their own. To the policy engine an
 * active build is one more running client (a Devbox-shaped runtime with the `bpt_` id).
 */
import type { Devbox } from '../policy/model.js';

export const BLUEPRINT_STATUSES = ['queued', 'provisioning', 'building', 'failed', 'build_complete'] as const;
export type BlueprintStatus = (typeof BLUEPRINT_STATUSES)[number];
/** While a build is in one of these, its addresses are registered and its build policy enforced. */
export const ACTIVE_BUILD: ReadonlySet<string> = new Set<BlueprintStatus>(['queued', 'provisioning', 'building']);
export const FAILURE_REASONS = ['out_of_memory', 'out_of_disk', 'build_failed'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** What the create call gave, echoed in the view's `parameters`. */
export interface BlueprintParameters {
  name: string;
  dockerfile?: string | null;
  system_setup_commands?: string[] | null;
  metadata?: Record<string, string> | null;
  network_policy_id?: string | null;
  launch_parameters?: { network_policy_id?: string | null } | null;
}

export interface Blueprint {
  id: string;
  account_id: string;
  name: string;
  status: BlueprintStatus;
  failure_reason: FailureReason | null;
  /** Enforced on the build's own traffic. */
  network_policy_id: string | null;
  /** Inherited by devboxes created from the blueprint. */
  launch_network_policy_id: string | null;
  addresses: string[];
  metadata: Record<string, string>;
  parameters: BlueprintParameters;
  password_hash: string;
  create_time_ms: number;
  build_finish_time_ms: number | null;
}

export interface BlueprintRow {
  id: string;
  account_id: string;
  name: string;
  status: string;
  failure_reason: string | null;
  network_policy_id: string | null;
  launch_network_policy_id: string | null;
  addresses: string;
  metadata: string;
  parameters: string;
  password_hash: string;
  create_time_ms: number;
  build_finish_time_ms: number | null;
}

export function toBlueprint(r: BlueprintRow): Blueprint {
  return {
    id: r.id,
    account_id: r.account_id,
    name: r.name,
    status: r.status as BlueprintStatus,
    failure_reason: r.failure_reason as FailureReason | null,
    network_policy_id: r.network_policy_id,
    launch_network_policy_id: r.launch_network_policy_id,
    addresses: JSON.parse(r.addresses) as string[],
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    parameters: JSON.parse(r.parameters) as BlueprintParameters,
    password_hash: r.password_hash,
    create_time_ms: r.create_time_ms,
    build_finish_time_ms: r.build_finish_time_ms,
  };
}

/** The build as the policy engine sees a client: running while the build is active. */
export function buildRuntime(b: Blueprint): Devbox {
  return {
    id: b.id,
    account_id: b.account_id,
    name: b.name,
    status: ACTIVE_BUILD.has(b.status) ? 'running' : 'shutdown',
    network_policy_id: b.network_policy_id,
    addresses: b.addresses,
    metadata: {},
    tunnel_key: '', // builds have no tunnels (an empty key never matches a tunnel hostname)
    password_hash: b.password_hash,
    create_time_ms: b.create_time_ms,
    end_time_ms: b.build_finish_time_ms,
  };
}

/** Status moves forward only: queued → provisioning → building → build_complete, or failed from any active step. */
export function canMove(from: BlueprintStatus, to: BlueprintStatus): boolean {
  if (!ACTIVE_BUILD.has(from)) return false;
  if (to === 'failed') return true;
  return BLUEPRINT_STATUSES.indexOf(to) > BLUEPRINT_STATUSES.indexOf(from);
}

export const BLUEPRINT_MIGRATION = `
  CREATE TABLE blueprints (
    id                       TEXT PRIMARY KEY,
    account_id               TEXT NOT NULL,
    name                     TEXT NOT NULL,
    status                   TEXT NOT NULL CHECK (status IN ('queued', 'provisioning', 'building', 'failed', 'build_complete')),
    failure_reason           TEXT,
    network_policy_id        TEXT,
    launch_network_policy_id TEXT,
    addresses                TEXT NOT NULL CHECK (json_valid(addresses)),
    metadata                 TEXT NOT NULL CHECK (json_valid(metadata)),
    parameters               TEXT NOT NULL CHECK (json_valid(parameters)),
    password_hash            TEXT NOT NULL,
    create_time_ms           INTEGER NOT NULL,
    build_finish_time_ms     INTEGER
  );
  CREATE INDEX blueprints_account ON blueprints (account_id, id);
  CREATE INDEX blueprints_active ON blueprints (status) WHERE status IN ('queued', 'provisioning', 'building');

  -- Addresses of active builds; unique together with running_addresses (checked on every registration).
  CREATE TABLE build_addresses (
    address      TEXT PRIMARY KEY,
    blueprint_id TEXT NOT NULL REFERENCES blueprints (id) ON DELETE CASCADE
  );

  ALTER TABLE devboxes ADD COLUMN blueprint_id TEXT;
`;
