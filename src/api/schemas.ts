/**
 * JSON schemas of the API: request validation (Ajv, no coercion of bodies, unknown fields
 * rejected), response serialisation, and the source of /openapi.json. Shapes follow
 * Runloop's published network-policies OpenAPI plus the fields the current SDK sends
 * (allowed_cidrs, allow_runloop_mirrors).
 */
import { type EgressField, type FieldKind, DEVBOX_STATUSES, EGRESS_FIELDS, ENFORCEMENTS } from '../policy/model.js';
import { BLUEPRINT_STATUSES, FAILURE_REASONS } from '../store/blueprints.js';

export const MAX_NAME_LENGTH = 256;
export const MAX_DESCRIPTION_LENGTH = 4096;
export const MAX_LIST_LIMIT = 5000;
export const DEFAULT_LIST_LIMIT = 20;

export const nullable = <T extends object>(s: T) => ({ ...s, nullable: true });

export const errorSchema = {
  type: 'object',
  description: 'The one error shape every failing request gets.',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string', description: 'Stable machine-readable code, e.g. invalid_request, unauthorized, not_found.' },
        message: { type: 'string', description: 'What went wrong, naming the field and the offending value.' },
        status: { type: 'integer', description: 'The HTTP status code.' },
      },
      required: ['code', 'message', 'status'],
    },
  },
  required: ['error'],
} as const;

const portRule = {
  type: 'object',
  additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: 1, maximum: 65535, description: 'The allowed port, or the start of a range.' },
    end_port: nullable({ type: 'integer', minimum: 1, maximum: 65535, description: 'Inclusive end of the range (>= port).' }),
    protocol: nullable({ type: 'string', enum: ['TCP', 'UDP'], description: 'TCP or UDP; omitted means both.' }),
  },
  required: ['port'],
} as const;

const allowedCidr = {
  type: 'object',
  additionalProperties: false,
  properties: {
    cidr: { type: 'string', description: 'IPv4 or IPv6 CIDR in canonical form (host bits zero), e.g. 10.12.0.0/16.' },
    ports: nullable({ type: 'array', items: portRule, maxItems: 1000, description: 'Ports allowed; empty or omitted means all.' }),
  },
  required: ['cidr'],
} as const;

/** The JSON schema of each kind of policy field (EGRESS_FIELDS in policy/model.ts). */
const FIELD_SCHEMAS: Record<FieldKind, object> = {
  toggle: { type: 'boolean' },
  hostnames: { type: 'array', items: { type: 'string' } },
  cidrs: { type: 'array', items: allowedCidr },
};

/** One schema per row of EGRESS_FIELDS: in a view, or (`body`) as a request may give it. */
function egressProperties(body: boolean): Record<EgressField['name'], object> {
  return Object.fromEntries(
    EGRESS_FIELDS.map((f: EgressField) => {
      const s = { ...FIELD_SCHEMAS[f.kind], description: f.description };
      return [f.name, body ? nullable('maxItems' in f ? { ...s, maxItems: f.maxItems } : s) : s];
    }),
  ) as Record<EgressField['name'], object>;
}

const egressView = {
  type: 'object',
  additionalProperties: false,
  description: 'Egress (outbound) network rules for a NetworkPolicy.',
  properties: egressProperties(false),
  required: EGRESS_FIELDS.map((f) => f.name),
} as const;

export const policyView = {
  type: 'object',
  additionalProperties: false,
  description: 'A NetworkPolicy defines egress network access rules for devboxes.',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    description: nullable({ type: 'string' }),
    egress: egressView,
    enforcement: { type: 'string', enum: [...ENFORCEMENTS], description: 'enforce (default) or report: let through and record as would_deny what the policy would deny.' },
    create_time_ms: { type: 'integer' },
    update_time_ms: { type: 'integer' },
    warnings: {
      type: 'array',
      items: { type: 'string' },
      description: "Extension (not in Runloop's API): entries accepted but always refused by this gateway's private-address guardrail. Present only when non-empty.",
    },
  },
  required: ['id', 'name', 'egress', 'enforcement', 'create_time_ms', 'update_time_ms'],
} as const;

const policyFields = {
  description: nullable({ type: 'string', maxLength: MAX_DESCRIPTION_LENGTH }),
  ...egressProperties(true),
  enforcement: nullable({
    type: 'string',
    enum: [...ENFORCEMENTS],
    description: 'Extension: enforce (default) or report (report-only rollout: would-be denials are let through, counted and logged as would_deny).',
  }),
} as const;

export const policyCreateBody = {
  type: 'object',
  additionalProperties: false,
  description: 'Parameters required to create a new NetworkPolicy.',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH },
    ...policyFields,
  },
  required: ['name'],
} as const;

export const policyUpdateBody = {
  type: 'object',
  additionalProperties: false,
  description: 'All fields optional: omitted or null fields keep their values, provided fields replace entirely.',
  properties: {
    name: nullable({ type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH }),
    ...policyFields,
  },
} as const;

export const emptyBody = {
  type: 'object',
  additionalProperties: false,
  properties: {},
} as const;

/** A page of a list endpoint: `{ <key>: [...], has_more, total_count? }`. */
export function listView<K extends string, I extends object>(key: K, item: I) {
  return {
    type: 'object',
    additionalProperties: false,
    properties: {
      [key]: { type: 'array', items: item },
      has_more: { type: 'boolean' },
      total_count: nullable({ type: 'integer' }),
    },
    required: [key, 'has_more'],
  } as const;
}

export const pageQuery = {
  limit: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, default: DEFAULT_LIST_LIMIT, description: 'Items to return, 1 to 5000 (default 20).' },
  starting_after: { type: 'string', description: 'Load the page after the item with this id.' },
  include_total_count: { type: 'boolean', default: true, description: 'Include total_count (default true).' },
} as const;

export const policyListQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', description: 'Case-insensitive substring of the name.' },
    id: { type: 'string', description: 'Filter by id.' },
    ...pageQuery,
  },
} as const;

export const policyListView = listView('network_policies', policyView);

export const idParams = {
  type: 'object',
  properties: { id: { type: 'string', description: 'The resource id.' } },
  required: ['id'],
} as const;

// ── devboxes ───────────────────────────────────────────────────────────────

const metadata = {
  type: 'object',
  additionalProperties: { type: 'string', maxLength: 4096 },
  maxProperties: 256,
  description: 'User-defined string key/value tags.',
} as const;

/**
 * A host id (fleet mode: the host whose sidecar serves the devbox), as its sidecar's --host-id:
 * a node name. No wildcards; the publisher escapes it into one NATS subject token (src/fleet/keys.ts).
 */
const hostId = {
  type: 'string',
  minLength: 1,
  maxLength: 253,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
  description: "The host whose sidecar serves the devbox (fleet mode), as the sidecar's --host-id: a node name (letters, digits, . _ -), at most 253.",
} as const;

export const devboxView = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    name: nullable({ type: 'string' }),
    status: { type: 'string', enum: [...DEVBOX_STATUSES] },
    create_time_ms: { type: 'integer' },
    end_time_ms: nullable({ type: 'integer' }),
    launch_parameters: {
      type: 'object',
      additionalProperties: false,
      properties: { network_policy_id: nullable({ type: 'string' }) },
      required: ['network_policy_id'],
    },
    metadata,
    network: {
      type: 'object',
      additionalProperties: false,
      properties: {
        addresses: { type: 'array', items: { type: 'string' }, description: "Source addresses the devbox's traffic comes from." },
        host_id: nullable({ type: 'string', description: 'The host whose sidecar serves the devbox (fleet mode); null: not placed.' }),
      },
      required: ['addresses'],
    },
    tunnel_key: { type: 'string', description: 'Key of the devbox tunnel hostnames {port}-{tunnel_key}.<tunnel domain>.' },
    proxy_credentials: {
      type: 'object',
      additionalProperties: false,
      description: 'Only in the create response: proxy username (the devbox id) and password. The password is not shown again.',
      properties: { username: { type: 'string' }, password: { type: 'string' } },
      required: ['username', 'password'],
    },
    blueprint_id: nullable({ type: 'string', description: 'The blueprint the devbox was created from.' }),
  },
  required: ['id', 'name', 'status', 'create_time_ms', 'end_time_ms', 'launch_parameters', 'metadata', 'network', 'tunnel_key'],
} as const;

/** Fields a devbox create and update both take. */
const devboxEditable = {
  name: nullable({ type: 'string', maxLength: MAX_NAME_LENGTH }),
  metadata: nullable(metadata),
  launch_parameters: nullable({
    type: 'object',
    additionalProperties: false,
    properties: { network_policy_id: nullable({ type: 'string' }) },
  }),
} as const;

export const devboxCreateBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...devboxEditable,
    blueprint_id: nullable({ type: 'string', maxLength: 64, description: 'Create from this (built) blueprint: its launch_parameters.network_policy_id applies unless the devbox names its own.' }),
    network: nullable({
      type: 'object',
      additionalProperties: false,
      properties: { addresses: { type: 'array', items: { type: 'string' }, maxItems: 256 }, host_id: nullable(hostId) },
    }),
  },
} as const;

export const devboxUpdateBody = {
  type: 'object',
  additionalProperties: false,
  description: 'Omitted or null name/metadata keep their values; launch_parameters.network_policy_id null detaches the policy.',
  properties: devboxEditable,
} as const;

export const devboxListQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: [...DEVBOX_STATUSES] },
    host_id: hostId,
    ...pageQuery,
  },
} as const;

export const devboxListView = listView('devboxes', devboxView);

// ── egress check ───────────────────────────────────────────────────────────

export const egressCheckBody = {
  type: 'object',
  additionalProperties: false,
  description: 'Give exactly one of devbox_id or network_policy_id.',
  properties: {
    devbox_id: nullable({ type: 'string' }),
    network_policy_id: nullable({ type: 'string' }),
    host: { type: 'string', minLength: 1, maxLength: 1024, description: 'Host name or IP literal.' },
    port: { type: 'integer', minimum: 1, maximum: 65535, default: 443 },
    protocol: { type: 'string', enum: ['TCP', 'UDP'], default: 'TCP' },
  },
  required: ['host'],
} as const;

export const egressCheckView = {
  type: 'object',
  additionalProperties: false,
  properties: {
    decision: { type: 'string', enum: ['allow', 'deny', 'would_deny'], description: 'would_deny: the policy denies it but is report-only, so the doors let it through.' },
    enforcement: nullable({ type: 'string', enum: [...ENFORCEMENTS] }),
    reason: { type: 'string' },
    matched: nullable({ type: 'string' }),
    host: { type: 'string' },
    port: { type: 'integer' },
    protocol: { type: 'string' },
    devbox_id: nullable({ type: 'string' }),
    network_policy_id: nullable({ type: 'string' }),
    policy_version: nullable({ type: 'integer' }),
  },
  required: ['decision', 'reason', 'matched', 'host', 'port', 'network_policy_id', 'policy_version'],
} as const;

/** Standard error responses for the OpenAPI document. */
export function errorResponses(...codes: number[]): Record<number, typeof errorSchema> {
  return Object.fromEntries(codes.map((c) => [c, errorSchema]));
}

// ── egress events (the per-devbox denial record) ───────────────────────────

export const egressEventView = {
  type: 'object',
  additionalProperties: false,
  description: 'Denials (and report-only would-denials) of one devbox to one destination through one door, merged.',
  properties: {
    id: { type: 'string' },
    devbox_id: { type: 'string' },
    network_policy_id: nullable({ type: 'string', description: 'The policy that decided, when last seen.' }),
    host: { type: 'string' },
    port: { type: 'integer' },
    door: { type: 'string', description: 'http, connect, socks5, transparent-tls, transparent-http or dns.' },
    reason: { type: 'string' },
    decision: { type: 'string', enum: ['deny', 'would_deny'] },
    count: { type: 'integer' },
    first_seen_ms: { type: 'integer' },
    last_seen_ms: { type: 'integer' },
  },
  required: ['id', 'devbox_id', 'network_policy_id', 'host', 'port', 'door', 'reason', 'decision', 'count', 'first_seen_ms', 'last_seen_ms'],
} as const;

export const egressEventListQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    devbox_id: { type: 'string', description: 'Only this devbox.' },
    decision: { type: 'string', enum: ['deny', 'would_deny'] },
    since: { type: 'integer', minimum: 0, description: 'Only destinations last seen at or after this time (Unix ms).' },
    ...pageQuery,
  },
} as const;

export const egressEventListView = listView('events', egressEventView);

// ── blueprints (seed subset) ───────────────────────────────────────────────

const networkPolicyRef = nullable({ type: 'string', maxLength: 64 });
const addressesField = nullable({
  type: 'object',
  additionalProperties: false,
  description: "Extension: the source addresses the build's traffic comes from (enforced with network_policy_id while it builds).",
  properties: { addresses: { type: 'array', items: { type: 'string' }, maxItems: 256 } },
});

const blueprintParameters = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    dockerfile: nullable({ type: 'string' }),
    system_setup_commands: nullable({ type: 'array', items: { type: 'string' } }),
    metadata: nullable(metadata),
    network_policy_id: nullable({ type: 'string' }),
    launch_parameters: nullable({
      type: 'object',
      additionalProperties: false,
      properties: { network_policy_id: nullable({ type: 'string' }) },
    }),
  },
  required: ['name'],
} as const;

export const blueprintView = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    create_time_ms: { type: 'integer' },
    build_finish_time_ms: nullable({ type: 'integer' }),
    status: { type: 'string', enum: [...BLUEPRINT_STATUSES] },
    state: { type: 'string', enum: ['created', 'deleted'] },
    failure_reason: nullable({ type: 'string', enum: [...FAILURE_REASONS] }),
    parameters: blueprintParameters,
    metadata: nullable(metadata),
    network: {
      type: 'object',
      additionalProperties: false,
      properties: { addresses: { type: 'array', items: { type: 'string' } } },
      required: ['addresses'],
    },
  },
  required: ['id', 'name', 'create_time_ms', 'status', 'state', 'parameters'],
} as const;

export const blueprintCreateBody = {
  type: 'object',
  additionalProperties: false,
  description: "The seed subset of Runloop's BlueprintCreateParams: name, the build's network policy, the launch policy devboxes inherit.",
  properties: {
    name: { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH },
    dockerfile: nullable({ type: 'string', maxLength: 65536 }),
    system_setup_commands: nullable({ type: 'array', items: { type: 'string', maxLength: 4096 }, maxItems: 256 }),
    metadata: nullable(metadata),
    network_policy_id: networkPolicyRef,
    launch_parameters: nullable({
      type: 'object',
      additionalProperties: false,
      properties: { network_policy_id: networkPolicyRef },
    }),
    network: addressesField,
  },
  required: ['name'],
} as const;

export const blueprintStatusBody = {
  type: 'object',
  additionalProperties: false,
  description: 'Extension for the build orchestrator: move the build to its next status.',
  properties: {
    status: { type: 'string', enum: [...BLUEPRINT_STATUSES] },
    failure_reason: nullable({ type: 'string', enum: [...FAILURE_REASONS] }),
  },
  required: ['status'],
} as const;

export const blueprintListQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', description: 'Case-insensitive substring of the name.' },
    status: { type: 'string', enum: [...BLUEPRINT_STATUSES] },
    ...pageQuery,
  },
} as const;

export const blueprintListView = listView('blueprints', blueprintView);
