/**
 * Policy files: one policy per JSON or YAML file, keyed by name. Validated with the same
 * functions the API uses (normalizeAllowedHostnames, parseCidr strict), so a file that
 * loads here is one the API accepts, stored the same way.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type AllowedCidr, type CidrPortRange, type EgressRules, type Enforcement, type FieldKind, type FieldValues, DEFAULT_EGRESS, EGRESS_FIELDS, ENFORCEMENTS, completeEgress } from '../policy/model.js';
import { FIELD_RULES, RuleError } from '../policy/validate.js';

/** The policy a file describes, normalised; every field present (defaults filled in). */
export interface PolicySpec extends EgressRules {
  name: string;
  description: string | null;
  enforcement: Enforcement;
}

export const POLICY_EXTENSIONS = ['.json', '.yaml', '.yml'];
const KEYS = new Set<string>(['name', 'description', 'enforcement', ...EGRESS_FIELDS.map((f) => f.name)]);

type Fail = (m: string) => never;

/** How a file spells each kind of field: its shape checked here, its rules by FIELD_RULES. */
const FILE_READERS: { [K in FieldKind]: (v: unknown, name: string, fail: Fail) => FieldValues[K] } = {
  toggle: (v, name, fail) => (typeof v === 'boolean' ? v : fail(`field "${name}" must be true or false`)),
  hostnames: (v, name, fail) => (Array.isArray(v) ? (v as string[]) : fail(`field "${name}" must be a list`)),
  cidrs: (v, name, fail) => {
    if (!Array.isArray(v)) return fail(`field "${name}" must be a list`);
    return v.map((c, i) => parseCidrEntry(c, `${name}[${i}]`, fail));
  },
};

/** One field as the file gives it: shape, then the rule check the API applies too. */
function readField(kind: FieldKind, v: unknown, name: string, fail: Fail): unknown {
  const shaped = (FILE_READERS[kind] as (x: unknown, n: string, f: Fail) => unknown)(v, name, fail);
  return rules(() => (FIELD_RULES[kind] as (x: unknown) => unknown)(shaped), fail);
}

export class PolicyFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

/** Policy files in a folder (sorted), or the one file given. */
export function policyFiles(path: string): string[] {
  const st = statSync(path);
  if (!st.isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => POLICY_EXTENSIONS.includes(extname(f).toLowerCase()) && !f.startsWith('.'))
    .sort()
    .map((f) => join(path, f));
}

export function loadPolicyFile(file: string): PolicySpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PolicyFileError(file, `cannot read: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new PolicyFileError(file, `not valid ${extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`);
  }
  return parsePolicySpec(file, data);
}

export function parsePolicySpec(file: string, data: unknown): PolicySpec {
  const fail = (m: string): never => {
    throw new PolicyFileError(file, m);
  };
  if (data === null || typeof data !== 'object' || Array.isArray(data)) fail('must hold one policy (an object with a "name")');
  const o = data as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) fail(`unknown field "${k}" (known: ${[...KEYS].join(', ')})`);
  if (typeof o.name !== 'string' || o.name.trim().length === 0) fail('field "name" must be a non-empty string');
  if (/[\u0000-\u001f\u007f]/.test(o.name as string)) fail('field "name" must not contain control characters');
  if (o.description != null && typeof o.description !== 'string') fail('field "description" must be a string');
  if (o.enforcement != null && !(ENFORCEMENTS as readonly unknown[]).includes(o.enforcement)) fail(`field "enforcement" must be one of ${ENFORCEMENTS.join(', ')}`);
  const patch: Record<string, unknown> = {};
  for (const f of EGRESS_FIELDS) {
    const v = o[f.name];
    if (v != null) patch[f.name] = readField(f.kind, v, f.name, fail);
  }
  const spec: PolicySpec = {
    name: o.name as string,
    description: (o.description as string | undefined) ?? null,
    enforcement: (o.enforcement as Enforcement | undefined) ?? 'enforce',
    ...completeEgress(DEFAULT_EGRESS, patch as Partial<EgressRules>), // allow_all implies allow_devbox_to_devbox, as the API stores it
  };
  return spec;
}

/** Runs a shared rule check, reporting its message as this file's problem. */
function rules<T>(check: () => T, fail: Fail): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof RuleError) return fail(e.message);
    throw e;
  }
}

/** Checks the shape a file's CIDR entry must have; the rule checks are validateCidrs'. */
function parseCidrEntry(raw: unknown, at: string, fail: Fail): AllowedCidr {
  const c = typeof raw === 'string' ? { cidr: raw } : raw;
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return fail(`${at}: must be a CIDR string or { cidr, ports? }`);
  const o = c as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'cidr' && k !== 'ports') fail(`${at}: unknown field "${k}"`);
  if (typeof o.cidr !== 'string') return fail(`${at}.cidr must be a string`);
  const out: AllowedCidr = { cidr: o.cidr };
  if (o.ports != null) {
    if (!Array.isArray(o.ports)) return fail(`${at}.ports must be a list`);
    const ports: CidrPortRange[] = o.ports.map((r: unknown, j: number) => {
      const pr = (typeof r === 'number' ? { port: r } : r) as Record<string, unknown> | null;
      const where = `${at}.ports[${j}]`;
      if (pr === null || typeof pr !== 'object') return fail(`${where}: must be a port number or { port, end_port?, protocol? }`);
      const okPort = (v: unknown) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
      if (!okPort(pr.port)) return fail(`${where}.port must be a whole number from 1 to 65535`);
      const rule: CidrPortRange = { port: pr.port as number };
      if (pr.end_port != null) {
        if (!okPort(pr.end_port)) return fail(`${where}.end_port must be a whole number from 1 to 65535`);
        rule.end_port = pr.end_port as number;
      }
      if (pr.protocol != null) {
        const proto = String(pr.protocol).toUpperCase();
        if (proto !== 'TCP' && proto !== 'UDP') return fail(`${where}.protocol must be TCP or UDP`);
        rule.protocol = proto;
      }
      return rule;
    });
    if (ports.length > 0) out.ports = ports;
  }
  return out;
}

/** Loads every file, requiring one policy per name. Throws the first problem, naming the file. */
export function loadPolicyFolder(path: string): PolicySpec[] {
  const byName = new Map<string, string>();
  const specs: PolicySpec[] = [];
  for (const file of policyFiles(path)) {
    const spec = loadPolicyFile(file);
    const prev = byName.get(spec.name);
    if (prev) throw new PolicyFileError(file, `policy name "${spec.name}" is also used by ${basename(prev)}`);
    byName.set(spec.name, file);
    specs.push(spec);
  }
  return specs;
}
