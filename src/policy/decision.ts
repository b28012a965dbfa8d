/** What decide() answers, and the vocabulary every door, metric and log line shares. */

export type Door = 'http' | 'connect' | 'socks5' | 'transparent-tls' | 'transparent-http' | 'dns' | 'agent-gateway' | 'mcp-hub' | 'check';

export type Reason =
  | 'allow_all'
  | 'hostname'
  | 'cidr'
  | 'agent_gateway'
  | 'mcp_gateway'
  | 'mirrors'
  | 'devbox_to_devbox'
  | 'dns_learned'
  | 'not_allowlisted'
  | 'private_address'
  | 'ip_literal'
  | 'unknown_client'
  | 'invalid_host'
  | 'policy_missing'
  | 'policy_stale'
  | 'sni_mismatch'
  | 'ech_refused'
  | 'host_mismatch'
  // The agent gateway and MCP hub (docs/agent-gateway.md):
  | 'bad_token'
  | 'gateway_disabled'
  | 'tool_refused'
  | 'method_refused';

export interface Decision {
  readonly allow: boolean;
  readonly reason: Reason;
  /** The allowlist entry, CIDR or toggle host that admitted the destination. */
  readonly matched: string | null;
  readonly policyId: string | null;
  readonly policyVersion: number | null;
  /** The destination as normalised (a name, or a canonical IP). */
  readonly host: string;
  readonly hostKind: 'name' | 'ip' | 'invalid';
  /**
   * Set on a decision a report-only policy let through: `allow` is true, `reason` is the
   * denial the policy would have enforced.
   */
  readonly wouldDeny?: true;
  /** Why, beyond the reason, on a denial (see explain.ts): what a refusal says to the client and the log. */
  readonly detail?: DenialDetail;
}

export interface DenialDetail {
  /** private_address: the address refused (the one dialled, or the literal asked for). */
  readonly address?: string;
  /** private_address: the guardrail range it is in (null when it did not parse) and the range's name. */
  readonly range?: string | null;
  readonly rangeName?: string;
  /** not_allowlisted: an entry that nearly matched (`*.example.com` asked as `example.com`). */
  readonly near?: string;
}

/**
 * Denials a report-only policy lets through: the policy's own verdicts. Never relaxed:
 * guardrails (private_address), unknown clients, a missing policy, unreadable names and
 * protocol refusals (SNI/Host mismatch, ECH), which are not the policy's to waive.
 */
const REPORTABLE: ReadonlySet<Reason> = new Set<Reason>(['not_allowlisted', 'ip_literal']);

/** The decision a report-only policy enforces for `d`: a reportable denial becomes a would_deny allow. */
export function reportOnly(d: Decision): Decision {
  if (d.allow || !REPORTABLE.has(d.reason)) return d;
  return { ...d, allow: true, wouldDeny: true };
}

/** The `decision` label of metrics, logs and events: allow, deny or would_deny. */
export type DecisionLabel = 'allow' | 'deny' | 'would_deny';

export function decisionLabel(d: Pick<Decision, 'allow' | 'wouldDeny'>): DecisionLabel {
  return d.wouldDeny === true ? 'would_deny' : d.allow ? 'allow' : 'deny';
}

/** Admitted by the policy itself (not merely reported): what SNI/Host agreement checks require. */
export function strictlyAllowed(d: Pick<Decision, 'allow' | 'wouldDeny'>): boolean {
  return d.allow && d.wouldDeny !== true;
}

/**
 * Decisions are shared (the cache hands the same object to every caller), so they are
 * immutable by type. They are not Object.freeze()d: freezing costs ~30 ns, more than a
 * cached decision takes in all.
 */
export function denial(reason: Reason, host: string, base?: Pick<Decision, 'policyId' | 'policyVersion'>, hostKind: Decision['hostKind'] = 'name'): Decision {
  return {
    allow: false,
    reason,
    matched: null,
    policyId: base?.policyId ?? null,
    policyVersion: base?.policyVersion ?? null,
    host,
    hostKind,
  };
}
