/**
 * Checks the schema cannot express: allowlist entries, CIDRs, port ranges, addresses.
 * Every failure is a 400 naming the field and the offending entry.
 */
import type { AllowedCidr } from '../policy/model.js';
import { normalizeAllowedHostnames } from '../policy/hostname.js';
import { parseCidr, parseIpLiteral } from '../policy/ip.js';
import { badRequest } from './errors.js';

const show = (v: unknown) => JSON.stringify(v);

export function checkName(field: string, name: string): string {
  if (name.trim().length === 0) throw badRequest(`field "${field}" must not be empty or blank`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw badRequest(`field "${field}" must not contain control characters (got ${show(name)})`);
  return name;
}

export function checkHostnames(raw: readonly string[]): string[] {
  const r = normalizeAllowedHostnames(raw);
  if (!r.ok) {
    const i = raw.indexOf(r.entry as string);
    throw badRequest(`allowed_hostnames[${i}]: entry ${show(r.entry)} is rejected: ${r.why}`);
  }
  return r.entries;
}

export function checkCidrs(raw: readonly AllowedCidr[]): AllowedCidr[] {
  const out: AllowedCidr[] = [];
  const seen = new Set<string>();
  raw.forEach((c, i) => {
    if (!c.cidr.includes('/')) throw badRequest(`allowed_cidrs[${i}].cidr: entry ${show(c.cidr)} is rejected: give a CIDR with a prefix length, e.g. ${c.cidr}/32`);
    const p = parseCidr(c.cidr, true);
    if ('error' in p) throw badRequest(`allowed_cidrs[${i}].cidr: entry ${show(c.cidr)} is rejected: ${p.error}`);
    const ports = (c.ports ?? []).map((r, j) => {
      const end = r.end_port ?? null;
      if (end !== null && end < r.port) throw badRequest(`allowed_cidrs[${i}].ports[${j}].end_port: ${end} is below port ${r.port}`);
      const rule: { port: number; end_port?: number; protocol?: 'TCP' | 'UDP' } = { port: r.port };
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

export function checkAddresses(raw: readonly string[]): string[] {
  const out: string[] = [];
  raw.forEach((a, i) => {
    const ip = a.includes('/') ? null : parseIpLiteral(a);
    if (!ip) throw badRequest(`network.addresses[${i}]: ${show(a)} is not an IPv4 or IPv6 address`);
    if (!out.includes(ip.ip)) out.push(ip.ip);
  });
  return out;
}
