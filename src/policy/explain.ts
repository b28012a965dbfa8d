/**
 * What a denial says, in one place for every door's answer (403 body and headers, the DNS
 * EDE text) and the log line: the reason in words, the detail that makes it actionable (the
 * address and the named guardrail range, or that no rule matched) and the remedy (the setting
 * or entry that would allow it). Only text the gateway made goes in: names are normalised,
 * addresses canonical, ranges and their names from the guardrail's own table.
 */
import type { Decision } from './decision.js';

export interface Explanation {
  /** A sentence: why. */
  readonly text: string;
  /** Short: the address and range, or the rule (null when the reason says it all). */
  readonly detail: string | null;
  /** What would allow it (null when nothing a policy or setting does would). */
  readonly remedy: string | null;
}

const REASON_TEXT: Record<string, string> = {
  not_allowlisted: 'the destination is not in the network policy',
  private_address: 'the destination is a private, loopback, link-local or metadata address',
  ip_literal: 'IP-address destinations are only allowed by allowed_cidrs',
  unknown_client: 'this client is not a running devbox (or gave no valid proxy credentials)',
  invalid_host: 'the destination is not a valid host name',
  policy_missing: "the devbox's network policy does not exist",
  policy_stale: "the gateway's policy snapshot is older than --max-staleness and it fails closed (--stale fail-closed): new connections are refused until the control plane is heard from again",
  sni_mismatch: 'the TLS server name does not match the requested host',
  ech_refused: 'the TLS ClientHello uses Encrypted ClientHello, which hides the server name',
  host_mismatch: 'the Host header does not match the request URL',
};

/** Name decisions are shared and cached per policy, so each one's explanation is built once. */
const memo = new WeakMap<Decision, Explanation>();

export function explainDenial(d: Decision): Explanation {
  let e = memo.get(d);
  if (e === undefined) memo.set(d, (e = explain(d)));
  return e;
}

function explain(d: Decision): Explanation {
  const x = d.detail;
  switch (d.reason) {
    case 'private_address':
      if (x?.address === undefined) break;
      if (x.range === null || x.range === undefined) return { text: `the address ${x.address} does not parse`, detail: `${x.address}: ${x.rangeName ?? 'unparseable address'}`, remedy: null };
      return {
        text: `${x.address} is in ${x.range} "${x.rangeName}", a range the private-address guardrail refuses`,
        detail: `${x.address} in ${x.range} (${x.rangeName})`,
        remedy: `--allow-private ${x.range}`,
      };
    case 'not_allowlisted': {
      if (d.policyId === null) return { text: 'the devbox has no network policy, which denies all egress', detail: 'no rule matched (no network policy)', remedy: 'attach a network policy to the devbox' };
      const near = x?.near;
      const apex = near?.slice(2);
      return {
        text: near === undefined ? 'no rule of the network policy matched' : `no rule of the network policy matched: ${near} admits names under ${apex}, not ${apex} itself`,
        detail: near === undefined ? 'no rule matched' : `no rule matched (${near} does not admit ${apex})`,
        remedy: `add ${d.host} to allowed_hostnames`,
      };
    }
    case 'ip_literal':
      return { text: 'IP-address destinations are only allowed by allowed_cidrs, and no allowed_cidrs entry matched', detail: 'no allowed_cidrs entry matched', remedy: `add a CIDR holding ${d.host} to allowed_cidrs` };
  }
  return { text: REASON_TEXT[d.reason] ?? d.reason, detail: null, remedy: null };
}
