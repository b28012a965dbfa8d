/**
 * Checks the schema cannot express: allowlist entries, CIDRs, port ranges, addresses.
 * Every failure is a 400 naming the field and the offending entry.
 */
import type { AllowedCidr, EgressRules } from '../policy/model.js';
import { parseIpLiteral } from '../policy/ip.js';
import { RuleError, validateCidrs, validateEgress, validateHostnames } from '../policy/validate.js';
import { badRequest } from './errors.js';
import { addressUnavailable } from '../store/index.js';

const show = (v: unknown) => JSON.stringify(v);

export function checkName(field: string, name: string): string {
  if (name.trim().length === 0) throw badRequest(`field "${field}" must not be empty or blank`);
  if (/[\u0000-\u001f\u007f]/.test(name)) throw badRequest(`field "${field}" must not contain control characters (got ${show(name)})`);
  return name;
}

/** The shared rule checks, as 400s. */
function asBadRequest<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof RuleError) throw badRequest(e.message);
    throw e;
  }
}

export function checkHostnames(raw: readonly string[]): string[] {
  return asBadRequest(() => validateHostnames(raw));
}

export function checkCidrs(raw: readonly AllowedCidr[]): AllowedCidr[] {
  return asBadRequest(() => validateCidrs(raw));
}

/** The egress fields a body gives (null and absent: keep or default), each through its rule check. */
export function checkEgress(body: Parameters<typeof validateEgress>[0]): Partial<EgressRules> {
  return asBadRequest(() => validateEgress(body));
}

/**
 * Addresses no devbox may register, refused with the same words as an address another
 * account holds: unspecified (0.0.0.0/8, ::), limited broadcast, multicast (224.0.0.0/4, ff00::/8).
 */
export function isReservedSource(ip: string): boolean {
  if (ip.includes(':')) return ip === '::' || /^ff[0-9a-f]{0,2}:/.test(ip);
  const first = Number(ip.slice(0, ip.indexOf('.')));
  return first === 0 || (first >= 224 && first <= 239) || ip === '255.255.255.255';
}

export function checkAddresses(raw: readonly string[]): string[] {
  const out: string[] = [];
  raw.forEach((a, i) => {
    const ip = a.includes('/') ? null : parseIpLiteral(a);
    if (!ip) throw badRequest(`network.addresses[${i}]: ${show(a)} is not an IPv4 or IPv6 address`);
    if (isReservedSource(ip.ip)) throw addressUnavailable(ip.ip);
    if (!out.includes(ip.ip)) out.push(ip.ip);
  });
  return out;
}
