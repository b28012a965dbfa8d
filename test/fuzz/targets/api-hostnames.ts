/**
 * The API's validation of allowed_hostnames (checkHostnames, src/api/validate.ts, over
 * src/policy/validate.ts): the input is a list, one entry per line. Properties: the only
 * error is the API's own 400 (ApiError invalid_request) naming the rejected entry by its
 * index; an accepted list is de-duplicated, normalised, in first-seen order, and validates
 * again to itself (what is stored is what a later read or compile accepts).
 */
import { ApiError } from '../../../src/api/errors.js';
import { checkHostnames } from '../../../src/api/validate.js';
import { normalizeAllowedHostname } from '../../../src/policy/hostname.js';
import { icannSuffix } from '../../../src/policy/validate.js';

/** Independently of the validator's own code path: what makes an entry invalid. */
function invalid(entry: string): boolean {
  const r = normalizeAllowedHostname(entry);
  if (!r.ok) return true;
  // a wildcard over an ICANN public suffix (*.co.uk, *.w.se) is refused by the API
  return r.entry.startsWith('*.') && icannSuffix(r.entry.slice(2));
}
import { PropertyViolation, check, same, timed } from '../support/harness.js';

export function fuzz(data: Buffer): void {
  const raw = data.toString('utf8').split('\n');
  let out: string[];
  try {
    out = timed('checkHostnames', () => checkHostnames(raw));
  } catch (e) {
    if (e instanceof PropertyViolation) throw e;
    check(e instanceof ApiError && e.status === 400 && e.code === 'invalid_request', `unexpected error ${String(e)}`);
    const m = /^allowed_hostnames\[(\d+)\]: entry /.exec(e.message);
    check(m !== null, `message does not name the entry: ${e.message}`);
    const i = Number(m[1]);
    check(i < raw.length && invalid(raw[i]!), `entry ${i} named but it is valid`);
    for (let j = 0; j < i; j++) check(normalizeAllowedHostname(raw[j]).ok, `entry ${j} is bad but ${i} was named`);
    return;
  }
  check(new Set(out).size === out.length, 'duplicates kept');
  const expected: string[] = [];
  for (const r of raw) {
    const n = normalizeAllowedHostname(r);
    check(n.ok, 'a bad entry was accepted');
    if (!expected.includes(n.entry)) expected.push(n.entry);
  }
  same(out, expected, 'not the normalised entries in first-seen order');
  let again: string[];
  try {
    again = checkHostnames(out);
  } catch (e) {
    throw new PropertyViolation(`stored entries are refused when validated again: ${(e as Error).message}`);
  }
  same(again, out, 'stored entries do not validate to themselves');
}
