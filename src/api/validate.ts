/**
 * Checks the schema cannot express: allowlist entries, CIDRs, port ranges, addresses.
 * Every failure is a 400 naming the field and the offending entry.
 */
import type { AllowedCidr } from '../policy/model.js';
import { parseIpLiteral } from '../policy/ip.js';
import { RuleError, validateCidrs, validateHostnames } from '../policy/validate.js';
import { badRequest } from './errors.js';

const show = (v: unknown) => JSON.stringify(v);

export function checkName(field: string, name: string): string {
  if (name.trim().length === 0) throw badRequest(`field "${field}" must not be empty or blank`);
  // eslint-disable-next-line no-control-regex
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

export function checkAddresses(raw: readonly string[]): string[] {
  const out: string[] = [];
  raw.forEach((a, i) => {
    const ip = a.includes('/') ? null : parseIpLiteral(a);
    if (!ip) throw badRequest(`network.addresses[${i}]: ${show(a)} is not an IPv4 or IPv6 address`);
    if (!out.includes(ip.ip)) out.push(ip.ip);
  });
  return out;
}
