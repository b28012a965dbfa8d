/**
 * `egress-gateway suggest --devbox dbx_… [--since 1h] [--collapse N] [--api-url URL] [--token TOKEN]`
 *
 * Turns the devbox's recent denials and would-denials (GET /v1/egress/events) into a policy
 * file, the YAML `apply` reads: the devbox's current policy plus an allowed_hostnames entry
 * for every name refused as not_allowlisted, each with a comment saying how often and
 * through which doors it was seen. Siblings under one registrable domain (Public Suffix
 * List, private section included) are folded into one `*.domain` entry only when at least
 * --collapse (default 3) of them were seen, never into a wildcard over a public suffix or a
 * suffix the PSL does not list (`corp.internal`), and never at or below a shared out-of-band,
 * tunnel or hosting service (src/policy/shared-services.ts): those names are listed one by
 * one under a comment saying why. Refusals a policy cannot waive (guardrails, mismatches, IP
 * literals) are listed as comments, not entries.
 *
 * What devboxes sent is hostile: only destinations that read as a host name or IP address are
 * printed (in their normal form), the rest are counted and dropped, and every comment and
 * quoted string is printable ASCII, so the file `apply`s as printed.
 * Exit code: 0 printed, 1 an API call failed, 2 usage error.
 */
import { parse } from 'tldts';
import { normalizeAllowedHostname, normalizeHost } from '../policy/hostname.js';
import { sharedService } from '../policy/shared-services.js';
import { DEFAULT_EGRESS, EGRESS_FIELDS } from '../policy/model.js';
import { Api, DEFAULT_API_URL, type PolicyView } from './apply.js';

export const DEFAULT_COLLAPSE = 3;

/** What the events endpoint returns per row (the fields suggest reads). */
export interface EventRow {
  id: string;
  host: string;
  port: number;
  door: string;
  reason: string;
  decision: 'deny' | 'would_deny';
  count: number;
  last_seen_ms: number;
}

interface Seen {
  count: number;
  doors: Set<string>;
  hosts: Set<string>;
}

export interface Suggestion {
  /** The entry to add, its comment, and (first of a group) a comment line before it. */
  added: Array<{ entry: string; comment: string; before?: string }>;
  /** Refusals not turned into entries, one comment line each. */
  notes: string[];
}

/**
 * Text safe in a YAML comment or double-quoted scalar: printable ASCII only (anything else,
 * line breaks first, as a `\u`/`\U` escape), cut at `max` characters.
 */
export function printable(s: string, max = 200): string {
  let out = '';
  for (const ch of s) {
    if (out.length >= max) return `${out}...`;
    const c = ch.codePointAt(0)!;
    out += c >= 0x20 && c < 0x7f ? ch : c > 0xffff ? `\\U${c.toString(16).padStart(8, '0')}` : `\\u${c.toString(16).padStart(4, '0')}`;
  }
  return out;
}

/** A recorded destination in its normal form if it reads as a host name or IP address, else null. */
function readable(host: string): string | null {
  const n = normalizeHost(host);
  return n.kind === 'name' ? n.name : n.kind === 'ip' ? n.ip : null;
}

/** Why names under `domain` are not folded into `*.domain`, or null when they may be. */
function noWildcard(domain: string): string | null {
  const service = sharedService(domain);
  if (service !== null) return `${service} is a shared out-of-band, tunnel or hosting service (src/policy/shared-services.ts) where anyone can hold names`;
  const p = parse(domain, { allowPrivateDomains: true });
  if (!p.isIcann && !p.isPrivate) return `${p.publicSuffix ?? domain} is not in the Public Suffix List, so ${domain} is not a registrable domain`;
  return null;
}

/** Parses `90s`, `30m`, `1h`, `7d` (or plain seconds) into milliseconds; null if unreadable. */
export function parseDuration(text: string): number | null {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (m === null) return null;
  const unit = { '': 1000, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

function describe(s: Seen): string {
  const doors = [...s.doors]
    .sort()
    .map((d) => printable(d, 32))
    .join(', ');
  return `seen ${s.count} time${s.count === 1 ? '' : 's'} via ${doors}`;
}

function add(map: Map<string, Seen>, key: string, e: EventRow, host: string): void {
  let s = map.get(key);
  if (s === undefined) map.set(key, (s = { count: 0, doors: new Set(), hosts: new Set() }));
  s.count += e.count;
  s.doors.add(e.door);
  s.hosts.add(host);
}

/** Is `name` admitted by one of the policy's entries (exact, or a `*.` suffix)? */
function covered(name: string, entries: ReadonlySet<string>): boolean {
  if (entries.has(name)) return true;
  for (let i = name.indexOf('.'); i !== -1; i = name.indexOf('.', i + 1)) if (entries.has(`*${name.slice(i)}`)) return true;
  return false;
}

/** The entries to add for these events, given the policy's current allowed_hostnames. */
export function suggestEntries(events: readonly EventRow[], current: readonly string[], collapseAt = DEFAULT_COLLAPSE): Suggestion {
  const have = new Set(current);
  const names = new Map<string, Seen>();
  const refused = new Map<string, Seen>();
  let unreadable = 0;
  for (const e of events) {
    const host = readable(e.host);
    if (host === null) {
      unreadable += e.count;
      continue;
    }
    if (e.reason !== 'not_allowlisted') {
      const reason = printable(e.reason, 40);
      add(refused, `${host}:${e.port} (${reason}${reason === 'ip_literal' ? ': an IP literal, allow it in allowed_cidrs if meant' : ''})`, e, host);
      continue;
    }
    const n = normalizeAllowedHostname(e.host);
    if (!n.ok || n.entry.startsWith('*') || covered(n.entry, have)) continue;
    add(names, n.entry, e, n.entry);
  }
  // Group by registrable domain; a name that is itself a public suffix (or has none) stays alone.
  const groups = new Map<string, string[]>();
  for (const name of names.keys()) {
    const key = parse(name, { allowPrivateDomains: true }).domain ?? name;
    const g = groups.get(key) ?? [];
    g.push(name);
    groups.set(key, g);
  }
  const added: Suggestion['added'] = [];
  for (const [domain, members] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const below = members.filter((m) => m !== domain);
    const wildcard = `*.${domain}`;
    const why = below.length >= collapseAt ? noWildcard(domain) : null;
    if (why !== null) {
      const before = `${below.length} names under ${domain}, listed one by one rather than as ${wildcard}: ${why}`;
      for (const [i, m] of members.sort().entries()) added.push({ entry: m, comment: describe(names.get(m)!), ...(i === 0 ? { before } : {}) });
      continue;
    }
    if (below.length >= collapseAt && normalizeAllowedHostname(wildcard).ok && !covered(wildcard, have)) {
      const s: Seen = { count: 0, doors: new Set(), hosts: new Set() };
      for (const m of below) {
        const x = names.get(m)!;
        s.count += x.count;
        for (const d of x.doors) s.doors.add(d);
      }
      added.push({ entry: wildcard, comment: `${below.length} names under ${domain} (${below.sort().slice(0, 3).join(', ')}${below.length > 3 ? ', ...' : ''}), ${describe(s)}` });
      if (members.includes(domain)) added.push({ entry: domain, comment: describe(names.get(domain)!) });
      continue;
    }
    for (const m of members.sort()) added.push({ entry: m, comment: describe(names.get(m)!) });
  }
  const notes = [...refused].sort(([a], [b]) => a.localeCompare(b)).map(([what, s]) => `${what}: ${describe(s)}`);
  if (unreadable > 0) notes.push(`${unreadable} refusal${unreadable === 1 ? '' : 's'} of destinations that are not valid host names or addresses (not shown)`);
  return { added, notes };
}

/** A YAML double-quoted scalar: printable ASCII, with YAML's (JSON-like) escapes. */
const q = (s: string) =>
  `"${printable(
    s.replace(/["\\]/g, (c) => `\\${c}`),
    Number.POSITIVE_INFINITY,
  )}"`;

/** The policy file: the current policy with the suggested entries added, as YAML `apply` reads. */
export function renderPolicyFile(base: PolicyView, s: Suggestion, header: string[]): string {
  const e = base.egress;
  const out = header.map((h) => `# ${printable(h, 400)}`);
  out.push(`name: ${q(base.name)}`);
  if (base.description !== null) out.push(`description: ${q(base.description)}`);
  out.push(`enforcement: ${base.enforcement ?? 'enforce'}`);
  for (const f of EGRESS_FIELDS) if (f.kind === 'toggle') out.push(`${f.name}: ${e[f.name] ?? f.default}`);
  const hosts = (e.allowed_hostnames ?? []).map((h) => `  - ${q(h)}`);
  for (const a of s.added) {
    if (a.before !== undefined) hosts.push(`  # ${printable(a.before, 400)}`);
    hosts.push(`  - ${q(a.entry)}  # added: ${printable(a.comment, 400)}`);
  }
  out.push(hosts.length === 0 ? 'allowed_hostnames: []' : 'allowed_hostnames:', ...hosts);
  const cidrs = e.allowed_cidrs ?? [];
  out.push(cidrs.length === 0 ? 'allowed_cidrs: []' : `allowed_cidrs: ${JSON.stringify(cidrs)}`);
  if (s.notes.length > 0) {
    out.push('# Refused and not suggested (a policy entry would not change these):');
    for (const n of s.notes) out.push(`#   ${printable(n, 400)}`);
  }
  return `${out.join('\n')}\n`;
}

interface DevboxView {
  id: string;
  launch_parameters: { network_policy_id: string | null };
}

async function allEvents(api: Api, devbox: string, sinceMs: number): Promise<EventRow[]> {
  const out: EventRow[] = [];
  let after: string | null = null;
  for (;;) {
    const qs: string = `?devbox_id=${encodeURIComponent(devbox)}&since=${sinceMs}&limit=5000&include_total_count=false${after ? `&starting_after=${encodeURIComponent(after)}` : ''}`;
    const page: { events: EventRow[]; has_more: boolean } = await api.call('GET', `/v1/egress/events${qs}`);
    out.push(...page.events);
    if (!page.has_more || page.events.length === 0) return out;
    after = page.events.at(-1)!.id;
  }
}

export async function suggestCommand(flags: Map<string, string[]>, positional: string[]): Promise<void> {
  const usage = 'usage: egress-gateway suggest --devbox dbx_… [--since 1h] [--collapse N] [--api-url URL] [--token TOKEN]';
  const fail = (m: string) => {
    process.stderr.write(`egress-gateway suggest: ${m}\n${usage}\n`);
    process.exitCode = 2;
  };
  const devbox = flags.get('devbox')?.at(-1);
  if (!devbox || positional.length > 0) return fail('give --devbox and nothing else');
  const sinceText = flags.get('since')?.at(-1) ?? '24h';
  const since = parseDuration(sinceText);
  if (since === null) return fail(`--since ${JSON.stringify(sinceText)} is not a duration like 90s, 30m, 1h or 7d`);
  const collapseText = flags.get('collapse')?.at(-1) ?? String(DEFAULT_COLLAPSE);
  if (!/^\d{1,4}$/.test(collapseText) || Number(collapseText) < 2) return fail('--collapse must be a whole number, 2 or more');
  const token = flags.get('token')?.at(-1) ?? process.env.RUNLOOP_API_KEY ?? '';
  if (!token) return fail('give --token, or set RUNLOOP_API_KEY');
  const base = (flags.get('api-url')?.at(-1) ?? process.env.EGRESS_API_URL ?? DEFAULT_API_URL).replace(/\/+$/, '');
  const api = new Api(base, token);
  try {
    const d: DevboxView = await api.call('GET', `/v1/devboxes/${encodeURIComponent(devbox)}`);
    const policyId = d.launch_parameters.network_policy_id;
    const policy: PolicyView =
      policyId !== null ? await api.call('GET', `/v1/network-policies/${encodeURIComponent(policyId)}`) : { id: '', name: `${devbox}-suggested`, description: null, enforcement: 'enforce', egress: { ...DEFAULT_EGRESS, allowed_hostnames: [], allowed_cidrs: [] } };
    const sinceMs = Date.now() - since;
    const events = await allEvents(api, devbox, sinceMs);
    const s = suggestEntries(events, policy.egress.allowed_hostnames ?? [], Number(collapseText));
    const header = [
      `Suggested by egress-gateway suggest --devbox ${devbox} --since ${sinceText} at ${new Date().toISOString()}`,
      `from ${events.length} recorded denial${events.length === 1 ? '' : 's'} and would-denials; review before: egress-gateway apply FILE`,
      policyId !== null ? `base: network policy ${policyId} (the devbox's current policy)` : 'base: the devbox has no policy (deny all); this file creates a new one',
    ];
    process.stdout.write(renderPolicyFile(policy, s, header));
    process.exitCode = 0;
  } catch (e) {
    process.stderr.write(`egress-gateway suggest: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
