/** What decide() answers, and the vocabulary every door, metric and log line shares. */

export type Door = 'http' | 'connect' | 'socks5' | 'tls' | 'transparent_http' | 'dns' | 'check';

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
  | 'sni_mismatch'
  | 'ech_refused'
  | 'host_mismatch';

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
