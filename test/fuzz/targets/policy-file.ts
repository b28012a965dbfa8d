/**
 * Policy files (src/cli/policy-file.ts): the input is the file's text, read as YAML and as
 * JSON (the two formats loadPolicyFile accepts), then checked by parsePolicySpec.
 * Properties: the only error is PolicyFileError, naming the file; an accepted spec has a
 * name, every field present, hostnames normalised and de-duplicated, CIDRs canonical with
 * valid port ranges, allow_all implying devbox-to-devbox; and the spec written back as a
 * file loads to exactly itself (what `apply` stores is what the next load reads).
 */
import { parse as parseYaml } from 'yaml';
import { PolicyFileError, type PolicySpec, parsePolicySpec } from '../../../src/cli/policy-file.js';
import { normalizeAllowedHostname } from '../../../src/policy/hostname.js';
import { parseCidr } from '../../../src/policy/ip.js';
import { PropertyViolation, check, same, timed } from '../support/harness.js';

const FILE = 'fuzz.yaml';

function spec(data: unknown): PolicySpec | null {
  try {
    return timed('parsePolicySpec', () => parsePolicySpec(FILE, data));
  } catch (e) {
    if (e instanceof PropertyViolation) throw e;
    check(e instanceof PolicyFileError && e.file === FILE && e.message.startsWith(`${FILE}: `), `unexpected error ${String(e)}`);
    return null;
  }
}

function checkSpec(s: PolicySpec): void {
  check(typeof s.name === 'string' && s.name.trim().length > 0, 'name');
  for (const k of ['allow_all', 'allow_devbox_to_devbox', 'allow_agent_gateway', 'allow_mcp_gateway', 'allow_runloop_mirrors'] as const) {
    check(typeof s[k] === 'boolean', `${k} not a boolean`);
  }
  check(!s.allow_all || s.allow_devbox_to_devbox, 'allow_all without devbox-to-devbox');
  check(new Set(s.allowed_hostnames).size === s.allowed_hostnames.length, 'duplicate hostnames');
  for (const h of s.allowed_hostnames) {
    const r = normalizeAllowedHostname(h);
    check(r.ok && r.entry === h, `hostname ${JSON.stringify(h)} not normalised`);
  }
  for (const c of s.allowed_cidrs) {
    const p = parseCidr(c.cidr, true);
    check(!('error' in p) && p.text === c.cidr, `cidr ${c.cidr} not canonical`);
    for (const r of c.ports ?? []) {
      check(Number.isInteger(r.port) && r.port >= 1 && r.port <= 65535, `port ${r.port}`);
      check(r.end_port == null || (r.end_port > r.port && r.end_port <= 65535), `end_port ${r.end_port}`);
      check(r.protocol === undefined || r.protocol === 'TCP' || r.protocol === 'UDP', `protocol ${r.protocol}`);
    }
  }
}

function roundTrip(s: PolicySpec): void {
  const written = JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
  if (written.description === null) delete written.description;
  const again = spec(written);
  check(again !== null, 'a loaded spec written back is refused');
  same(again, s, 'a loaded spec written back loads differently');
}

export function fuzz(data: Buffer): void {
  const text = data.toString('utf8');
  const docs: unknown[] = [];
  try {
    // (warnings such as unresolved tags do not change what is parsed: not printed)
    docs.push(timed('yaml parse', () => parseYaml(text, { logLevel: 'error' })));
  } catch (e) {
    if (e instanceof PropertyViolation) throw e;
  }
  try {
    docs.push(JSON.parse(text));
  } catch {
    // not JSON: loadPolicyFile reports it as such
  }
  for (const d of docs) {
    const s = spec(d);
    if (s === null) continue;
    checkSpec(s);
    roundTrip(s);
  }
}
