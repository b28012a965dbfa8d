/**
 * `egress-gateway apply DIR|FILE [--prune] [--dry-run] [--api-url URL] [--token TOKEN]`
 *
 * Makes the running gateway's policies match a folder of policy files (JSON or YAML, one
 * policy each, keyed by name), through its REST API so the change takes effect at once:
 * creates missing policies, updates changed ones, `--prune` deletes policies no file
 * names, `--dry-run` only prints. One line per policy:
 *
 *   create deny-all
 *   update package-registries (allowed_hostnames +2 −1)
 *   unchanged allow-all
 *   delete old-policy
 *
 * Every file is validated (with the API's own validators) before anything is sent.
 * Exit code: 0 done, 1 an API call failed, 2 usage or file error.
 */
import { type AllowedCidr, type EgressRules, type FieldKind, type FieldValues, EGRESS_FIELDS } from '../policy/model.js';
import { loadPolicyFolder, PolicyFileError, type PolicySpec } from './policy-file.js';

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

export interface PolicyView {
  id: string;
  name: string;
  description: string | null;
  enforcement?: string;
  /** Every field of EGRESS_FIELDS; one an older gateway does not know may be missing (its default). */
  egress: Partial<EgressRules>;
}

export type Change = { op: 'create'; name: string; spec: PolicySpec } | { op: 'update'; name: string; id: string; spec: PolicySpec; what: string[] } | { op: 'unchanged'; name: string; id: string } | { op: 'delete'; name: string; id: string };

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A small client for the gateway's API (apply, suggest). */
export class Api {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(0, `cannot reach ${this.base}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let msg = text;
      try {
        msg = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
      } catch {
        /* not JSON */
      }
      throw new ApiError(res.status, `${method} ${path}: ${res.status} ${msg}`);
    }
    return JSON.parse(text) as T;
  }

  async listPolicies(): Promise<PolicyView[]> {
    const out: PolicyView[] = [];
    let after: string | null = null;
    for (;;) {
      const q: string = `?limit=5000&include_total_count=false${after ? `&starting_after=${encodeURIComponent(after)}` : ''}`;
      const page: { network_policies: PolicyView[]; has_more: boolean } = await this.call('GET', `/v1/network-policies${q}`);
      out.push(...page.network_policies);
      if (!page.has_more || page.network_policies.length === 0) return out;
      after = page.network_policies.at(-1)!.id;
    }
  }
}

function cidrKey(c: AllowedCidr): string {
  const ports = (c.ports ?? []).map((p) => `${p.port}-${p.end_port ?? p.port}/${p.protocol ?? '*'}`).sort();
  return `${c.cidr}|${ports.join(',')}`;
}

/** A change of one field in words (e.g. `allowed_hostnames +2 −1`, `allow_all false→true`), or null. */
const FIELD_DIFFS: { [K in FieldKind]: (name: string, have: FieldValues[K], want: FieldValues[K]) => string | null } = {
  toggle: (name, have, want) => (have !== want ? `${name} ${have}→${want}` : null),
  hostnames: (name, have, want) => setDiff(name, have, want),
  cidrs: (name, have, want) => setDiff(name, have.map(cidrKey), want.map(cidrKey)),
};

function setDiff(label: string, have: readonly string[], wanted: readonly string[]): string | null {
  const h = new Set(have);
  const w = new Set(wanted);
  const added = [...w].filter((x) => !h.has(x)).length;
  const removed = [...h].filter((x) => !w.has(x)).length;
  if (!added && !removed) return null;
  return `${label} ${added ? `+${added}` : ''}${added && removed ? ' ' : ''}${removed ? `−${removed}` : ''}`;
}

/**
 * What differs between the stored policy and the file, in words; empty when nothing does.
 * Lists first, then toggles (each in table order), then description and enforcement.
 */
export function describeDiff(cur: PolicyView, want: PolicySpec): string[] {
  const what: string[] = [];
  const lists = EGRESS_FIELDS.filter((f) => f.kind !== 'toggle');
  const toggles = EGRESS_FIELDS.filter((f) => f.kind === 'toggle');
  for (const f of [...lists, ...toggles]) {
    const have = cur.egress[f.name] ?? f.default;
    const d = (FIELD_DIFFS[f.kind] as (n: string, h: unknown, w: unknown) => string | null)(f.name, have, want[f.name]);
    if (d !== null) what.push(d);
  }
  if ((cur.description ?? null) !== want.description) what.push('description');
  const enforcement = cur.enforcement ?? 'enforce';
  if (enforcement !== want.enforcement) what.push(`enforcement ${enforcement}→${want.enforcement}`);
  return what;
}

export function plan(current: readonly PolicyView[], wanted: readonly PolicySpec[], prune: boolean): Change[] {
  const byName = new Map(current.map((p) => [p.name, p]));
  const changes: Change[] = [];
  for (const spec of wanted) {
    const cur = byName.get(spec.name);
    if (!cur) changes.push({ op: 'create', name: spec.name, spec });
    else {
      const what = describeDiff(cur, spec);
      changes.push(what.length ? { op: 'update', name: spec.name, id: cur.id, spec, what } : { op: 'unchanged', name: spec.name, id: cur.id });
    }
  }
  if (prune) {
    const names = new Set(wanted.map((s) => s.name));
    for (const p of current) if (!names.has(p.name)) changes.push({ op: 'delete', name: p.name, id: p.id });
  }
  return changes;
}

function line(c: Change): string {
  switch (c.op) {
    case 'create':
      return `create ${c.name}`;
    case 'update':
      return `update ${c.name} (${c.what.join(', ')})`;
    case 'unchanged':
      return `unchanged ${c.name}`;
    case 'delete':
      return `delete ${c.name}`;
  }
}

function body(spec: PolicySpec): Record<string, unknown> {
  const { name, ...rest } = spec;
  return { name, ...rest };
}

export async function applyCommand(flags: Map<string, string[]>, positional: string[]): Promise<void> {
  const usage = 'usage: egress-gateway apply DIR|FILE [--prune] [--dry-run] [--api-url URL] [--token TOKEN]';
  if (positional.length !== 1) {
    process.stderr.write(`egress-gateway apply: give one folder (or file) of policies\n${usage}\n`);
    process.exitCode = 2;
    return;
  }
  let wanted: PolicySpec[];
  try {
    wanted = loadPolicyFolder(positional[0]!);
  } catch (e) {
    const msg = e instanceof PolicyFileError ? e.message : `${positional[0]}: ${(e as Error).message}`;
    process.stderr.write(`egress-gateway apply: ${msg}\nnothing was changed\n`);
    process.exitCode = 2;
    return;
  }
  if (wanted.length === 0) {
    process.stderr.write(`egress-gateway apply: no *.json, *.yaml or *.yml policy files in ${positional[0]}\n`);
    if (flags.has('prune')) {
      process.stderr.write('refusing to --prune every policy from an empty folder\n');
      process.exitCode = 2;
      return;
    }
  }
  const base = (flags.get('api-url')?.at(-1) ?? process.env.EGRESS_API_URL ?? DEFAULT_API_URL).replace(/\/+$/, '');
  const token = flags.get('token')?.at(-1) ?? process.env.RUNLOOP_API_KEY ?? '';
  if (!token) {
    process.stderr.write(`egress-gateway apply: give --token, or set RUNLOOP_API_KEY\n${usage}\n`);
    process.exitCode = 2;
    return;
  }
  const api = new Api(base, token);
  const dryRun = flags.has('dry-run') && flags.get('dry-run')!.at(-1) !== 'false';
  const prune = flags.has('prune') && flags.get('prune')!.at(-1) !== 'false';

  let changes: Change[];
  try {
    changes = plan(await api.listPolicies(), wanted, prune);
  } catch (e) {
    process.stderr.write(`egress-gateway apply: ${(e as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  let failed = 0;
  for (const c of changes) {
    if (dryRun || c.op === 'unchanged') {
      process.stdout.write(`${line(c)}${dryRun && c.op !== 'unchanged' ? ' (dry run)' : ''}\n`);
      continue;
    }
    try {
      let view: { warnings?: string[] };
      if (c.op === 'create') view = await api.call('POST', '/v1/network-policies', body(c.spec));
      else if (c.op === 'update') view = await api.call('POST', `/v1/network-policies/${encodeURIComponent(c.id)}`, body(c.spec));
      else view = await api.call('POST', `/v1/network-policies/${encodeURIComponent(c.id)}/delete`, {});
      process.stdout.write(`${line(c)}\n`);
      if (c.op !== 'delete') for (const w of view.warnings ?? []) process.stderr.write(`warning: ${c.name}: ${w}\n`);
    } catch (e) {
      failed++;
      process.stderr.write(`failed: ${line(c)}: ${(e as Error).message}\n`);
    }
  }
  const counts = (op: Change['op']) => changes.filter((c) => c.op === op).length;
  process.stdout.write(
    dryRun
      ? `dry run, nothing sent: ${counts('create')} to create, ${counts('update')} to update, ${counts('delete')} to delete, ${counts('unchanged')} unchanged\n`
      : `${counts('create')} created, ${counts('update')} updated, ${counts('delete')} deleted, ${counts('unchanged')} unchanged${failed ? `; ${failed} failed` : ''}\n`,
  );
  process.exitCode = failed ? 1 : 0;
}
