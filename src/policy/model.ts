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

/**
 * What a policy field holds. Each kind has one API schema (`api/schemas.ts`), one rule
 * check (`policy/validate.ts` FIELD_RULES), one policy-file reader (`cli/policy-file.ts`)
 * and one way `apply` describes a change (`cli/apply.ts`); a field of a known kind is one
 * row in EGRESS_FIELDS below and nothing more.
 */
export interface FieldValues {
  /** A boolean switch: true, false. */
  toggle: boolean;
  /** An allowlist of host names, `*.` wildcards allowed: normalised and de-duplicated. */
  hostnames: string[];
  /** Address ranges with optional port ranges: canonical CIDRs, de-duplicated. */
  cidrs: AllowedCidr[];
}
export type FieldKind = keyof FieldValues;

export interface EgressFieldRow {
  readonly name: string;
  readonly kind: FieldKind;
  /** The value a policy that never named the field has. */
  readonly default: boolean | readonly [];
  /** The API's description of the field (/openapi.json). */
  readonly description: string;
  /** Longest list a request may give (lists only; the rule check is the kind's). */
  readonly maxItems?: number;
  /** Not in Runloop's published API (the current SDK sends it). */
  readonly extension?: true;
}

/**
 * The one table of a policy's egress fields, in the order the API shows them. The stored
 * type (EgressRules), the defaults, completeEgress, the API schemas and views, the rule
 * checks, policy files and `apply` all derive from it. A field's meaning (what it admits)
 * is the compiler's (`policy/compiler.ts`).
 */
export const EGRESS_FIELDS = [
  {
    name: 'allow_all',
    kind: 'toggle',
    default: false,
    description: 'If true, all egress traffic is allowed and other fields are ignored. Used for ALLOW_ALL policies. Implies allow_devbox_to_devbox.',
  },
  {
    name: 'allow_devbox_to_devbox',
    kind: 'toggle',
    default: false,
    description: "If true, allows traffic between the account's own devboxes via tunnels.",
  },
  {
    name: 'allowed_hostnames',
    kind: 'hostnames',
    default: [],
    maxItems: 10000,
    description: 'DNS-based allow list with wildcard support, e.g. github.com, *.npmjs.org. Empty with allow_all=false means no network access (DENY_ALL).',
  },
  {
    name: 'allow_agent_gateway',
    kind: 'toggle',
    default: false,
    description: 'If true, allows devbox egress to the agent gateway for credential proxying.',
  },
  {
    name: 'allow_mcp_gateway',
    kind: 'toggle',
    default: false,
    description: 'If true, allows devbox egress to the MCP hub for MCP server access.',
  },
  {
    name: 'allow_runloop_mirrors',
    kind: 'toggle',
    default: false,
    extension: true,
    description: 'If true, allows devbox egress to the Runloop package mirrors.',
  },
  {
    name: 'allowed_cidrs',
    kind: 'cidrs',
    default: [],
    maxItems: 10000,
    extension: true,
    description: 'IP ranges allowed, each with optional port ranges: [{cidr, ports?: [{port, end_port?, protocol?}]}].',
  },
] as const satisfies readonly EgressFieldRow[];

export type EgressField = (typeof EGRESS_FIELDS)[number];
export type EgressFieldName = EgressField['name'];

/** A policy's egress rules: one property per row of EGRESS_FIELDS, typed by its kind. */
export type EgressRules = { [F in EgressField as F['name']]: FieldValues[F['kind']] };

/** The rows of one kind (e.g. every toggle). */
export function fieldsOfKind<K extends FieldKind>(kind: K): Extract<EgressField, { kind: K }>[] {
  return EGRESS_FIELDS.filter((f): f is Extract<EgressField, { kind: K }> => f.kind === kind);
}

/** The list fields (hostnames and CIDRs): what a policy's entry quota counts. */
export const LIST_FIELDS: readonly EgressFieldName[] = EGRESS_FIELDS.filter((f) => f.kind !== 'toggle').map((f) => f.name);

/** Entries a policy's egress holds: the sum of its list fields' lengths. */
export function entryCount(e: Partial<EgressRules>): number {
  let n = 0;
  for (const f of LIST_FIELDS) n += (e[f] as unknown[] | undefined | null)?.length ?? 0;
  return n;
}

/** The boolean switches, in table order. */
export const TOGGLES = fieldsOfKind('toggle').map((f) => f.name);
export type ToggleName = Extract<EgressField, { kind: 'toggle' }>['name'];

/** A fresh copy of a field's value that shares nothing with the input. */
const COPY: { [K in FieldKind]: (v: FieldValues[K]) => FieldValues[K] } = {
  toggle: (v) => v,
  hostnames: (v) => [...v],
  cidrs: (v) => v.map((c) => ({ ...c, ports: c.ports ? c.ports.map((p) => ({ ...p })) : c.ports })),
};

function copyValue(f: EgressField, v: unknown): unknown {
  return (COPY[f.kind] as (x: unknown) => unknown)(v);
}

/** A policy's egress when nothing was said: no network access (DENY_ALL). */
export const DEFAULT_EGRESS: Readonly<EgressRules> = Object.freeze(Object.fromEntries(EGRESS_FIELDS.map((f) => [f.name, copyValue(f, f.default)])) as EgressRules);

/**
 * Applies a patch (undefined or null fields keep their values; provided ones replace
 * entirely) and the one coupling rule: allow_all implies allow_devbox_to_devbox.
 * Returns a fresh object (fields in table order) that shares nothing with its inputs.
 */
export function completeEgress(base: Readonly<EgressRules>, patch?: Partial<EgressRules> | null): EgressRules {
  const out: Record<string, unknown> = {};
  for (const f of EGRESS_FIELDS) {
    const given = patch?.[f.name];
    out[f.name] = copyValue(f, given !== undefined && given !== null ? given : base[f.name]);
  }
  const e = out as EgressRules;
  if (e.allow_all) e.allow_devbox_to_devbox = true;
  return e;
}

/** The egress fields of `e` alone, in table order (what the API shows). */
export function egressFields(e: Readonly<EgressRules>): EgressRules {
  return Object.fromEntries(EGRESS_FIELDS.map((f) => [f.name, e[f.name]])) as EgressRules;
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

export const DEVBOX_STATUSES = ['provisioning', 'initializing', 'running', 'suspending', 'suspended', 'resuming', 'failure', 'shutdown'] as const;
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
  /** Agent gateway and MCP specs given at creation (env name → config and secret ids); absent when none. */
  agent_specs?: {
    gateways: Record<string, { gateway_config_id: string; secret_id: string }>;
    mcp: Record<string, { mcp_config_id: string; secret_id: string }>;
  };
}
