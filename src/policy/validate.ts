/**
 * The semantic checks on a policy's rules, shared by the API and policy files so both
 * accept and store exactly the same things. Messages name the field and the entry.
 */
import { parse as parseDomain } from 'tldts';
import { type AllowedCidr, type CidrPortRange, type EgressRules, type FieldKind, type FieldValues, EGRESS_FIELDS } from './model.js';
import { normalizeAllowedHostname } from './hostname.js';
import { parseCidr } from './ip.js';
import type { Guardrails } from './guardrails.js';

export class RuleError extends Error {}

const show = (v: unknown) => JSON.stringify(v);

/** `10.0.0.0/8`, `fd00::/8`: an address range given where a host name belongs. */
function looksLikeCidr(entry: string): boolean {
  const slash = entry.indexOf('/');
  return slash > 0 && !entry.includes('://') && !('error' in parseCidr(entry.trim()));
}

/**
 * True when the name is itself a public suffix of the ICANN section of the Public Suffix
 * List. `*.co.uk` would admit every company in the UK; `*.github.io` (a private-section
 * suffix) admits the pages of one hosting provider, which an operator may mean.
 */
export function icannSuffix(name: string): boolean {
  const d = parseDomain(name, { allowPrivateDomains: true, extractHostname: false, validateHostname: false });
  return d.publicSuffix === name && d.isIcann === true;
}

function checkEntry(item: unknown, i: number): string {
  const bad = (why: string): never => {
    throw new RuleError(`allowed_hostnames[${i}]: entry ${show(item)} is rejected: ${why}`);
  };
  if (typeof item === 'string' && looksLikeCidr(item)) bad('is a CIDR (an address range); use allowed_cidrs for addresses');
  const r = normalizeAllowedHostname(item);
  if (!r.ok) return bad(r.why);
  if (r.entry.startsWith('*.') && icannSuffix(r.entry.slice(2))) {
    bad(`${r.entry.slice(2)} is a public suffix (Public Suffix List): the wildcard would admit every domain registered under it`);
  }
  return r.entry;
}

/** Normalised, de-duplicated allowlist entries, or a RuleError naming the first bad one. */
export function validateHostnames(raw: readonly unknown[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  raw.forEach((item, i) => {
    const entry = checkEntry(item, i);
    if (seen.has(entry)) return;
    seen.add(entry);
    out.push(entry);
  });
  return out;
}

/** Canonical CIDRs (host bits zero) with normalised port ranges, de-duplicated. */
export function validateCidrs(raw: readonly AllowedCidr[]): AllowedCidr[] {
  const out: AllowedCidr[] = [];
  const seen = new Set<string>();
  raw.forEach((c, i) => {
    if (!c.cidr.includes('/')) throw new RuleError(`allowed_cidrs[${i}].cidr: entry ${show(c.cidr)} is rejected: give a CIDR with a prefix length, e.g. ${c.cidr}/32`);
    const p = parseCidr(c.cidr, true);
    if ('error' in p) throw new RuleError(`allowed_cidrs[${i}].cidr: entry ${show(c.cidr)} is rejected: ${p.error}`);
    const ports = (c.ports ?? []).map((r, j) => {
      const end = r.end_port ?? null;
      if (end !== null && end < r.port) throw new RuleError(`allowed_cidrs[${i}].ports[${j}].end_port: ${end} is below port ${r.port}`);
      const rule: CidrPortRange = { port: r.port };
      if (end !== null && end !== r.port) rule.end_port = end;
      if (r.protocol) rule.protocol = r.protocol;
      return rule;
    });
    const entry: AllowedCidr = ports.length > 0 ? { cidr: p.text, ports } : { cidr: p.text };
    const key = JSON.stringify(entry);
    if (seen.has(key)) return;
    seen.add(key);
    out.push(entry);
  });
  return out;
}

/** The rule check of each kind of policy field (the shape is the caller's: API schema, file reader). */
export const FIELD_RULES: { [K in FieldKind]: (v: FieldValues[K]) => FieldValues[K] } = {
  toggle: (v) => v,
  hostnames: validateHostnames,
  cidrs: validateCidrs,
};

/**
 * The given fields of a patch (null and absent: not given), each through its kind's rule
 * check, in table order; a RuleError names the first bad entry.
 */
export function validateEgress(patch: { readonly [K in keyof EgressRules]?: EgressRules[K] | null }): Partial<EgressRules> {
  const out: Record<string, unknown> = {};
  for (const f of EGRESS_FIELDS) {
    const v = patch[f.name];
    if (v !== undefined && v !== null) out[f.name] = (FIELD_RULES[f.kind] as (x: unknown) => unknown)(v);
  }
  return out as Partial<EgressRules>;
}

/**
 * Accepted but useless entries: CIDRs wholly inside a range the private-address guardrail
 * refuses (and not exempted by --allow-private), so every connection to them is denied.
 * Depends on the gateway's settings, so it is computed when a policy is shown, not stored.
 */
export function cidrWarnings(cidrs: readonly AllowedCidr[], guardrails: Guardrails): string[] {
  const out: string[] = [];
  cidrs.forEach((c, i) => {
    const range = guardrails.alwaysRefused(c.cidr);
    if (range !== null) {
      out.push(`allowed_cidrs[${i}]: ${c.cidr} lies inside ${range}, which the private-address guardrail always refuses; ` + 'connections to it are denied unless the gateway runs with --allow-private covering it');
    }
  });
  return out;
}
