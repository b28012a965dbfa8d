/**
 * The semantic checks on a policy's rules, shared by the API and policy files so both
 * accept and store exactly the same things. Messages name the field and the entry.
 */
import type { AllowedCidr, CidrPortRange } from './model.js';
import { normalizeAllowedHostnames } from './hostname.js';
import { parseCidr } from './ip.js';

export class RuleError extends Error {}

const show = (v: unknown) => JSON.stringify(v);

/** Normalised, de-duplicated allowlist entries, or a RuleError naming the first bad one. */
export function validateHostnames(raw: readonly unknown[]): string[] {
  const r = normalizeAllowedHostnames(raw);
  if (!r.ok) throw new RuleError(`allowed_hostnames[${raw.indexOf(r.entry)}]: entry ${show(r.entry)} is rejected: ${r.why}`);
  return r.entries;
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
