/**
 * The policy compiler (CompiledPolicy, src/policy/compiler.ts) against a brute-force
 * matcher. The input is a policy, one line each: `?name` or `?ip` is a query, a line with a
 * `/` an allowed_cidrs entry (`cidr [port[-end] [TCP|UDP]]`), anything else an
 * allowed_hostnames entry as stored. Properties: no throw; entries that do not normalise are
 * listed in `rejected` and the rest counted once; every query (those given, and names
 * derived from each entry: itself, a child, a grandchild, its parent) matches exactly what
 * the brute force finds (exact name first, else the longest `*.` parent, never the apex,
 * reporting the entry as written), and every IP query the most specific CIDR with a
 * matching port and protocol.
 */
import { CompiledPolicy } from '../../../src/policy/compiler.js';
import { normalizeAllowedHostname, normalizeHost } from '../../../src/policy/hostname.js';
import { type Cidr, cidrContains, ipToWords, parseCidr } from '../../../src/policy/ip.js';
import type { AllowedCidr, NetworkPolicy } from '../../../src/policy/model.js';
import { check, same, timed } from '../support/harness.js';

const NO_TOGGLES = { agentGateway: [], mcpGateway: [], mirrors: [] };
const PORTS: ReadonlyArray<readonly [number, 'TCP' | 'UDP']> = [
  [443, 'TCP'],
  [53, 'UDP'],
  [8080, 'TCP'],
  [1, 'UDP'],
];

function cidrEntry(line: string): AllowedCidr {
  const [cidr, range, proto] = line.split(' ');
  const c: AllowedCidr = { cidr: cidr! };
  if (range !== undefined) {
    const [a, b] = range.split('-').map(Number);
    c.ports = [{ port: a! }];
    if (b !== undefined) c.ports[0]!.end_port = b;
    if (proto === 'TCP' || proto === 'UDP') c.ports[0]!.protocol = proto;
  }
  return c;
}

/** What the compiled matcher must answer, by walking the entries. */
function bruteName(name: string, exact: Set<string>, wild: Set<string>): { reason: string; entry: string } | undefined {
  if (exact.has(name)) return { reason: 'hostname', entry: name };
  const labels = name.split('.');
  for (let k = 1; k < labels.length - 1; k++) {
    const suffix = labels.slice(k).join('.');
    if (wild.has(suffix)) return { reason: 'hostname', entry: `*.${suffix}` };
  }
  return undefined;
}

function bruteCidr(ip: string, port: number, proto: 'TCP' | 'UDP', rules: Array<{ c: Cidr; e: AllowedCidr }>): string | null {
  const w = ipToWords(ip)!;
  let best: { prefix: number; text: string } | null = null;
  for (const { c, e } of rules) {
    if (!cidrContains(c, w)) continue;
    const ports = e.ports ?? [];
    const ok = ports.length === 0 || ports.some((r) => port >= r.port && port <= (r.end_port ?? r.port) && (r.protocol === undefined || r.protocol === proto));
    if (ok && (best === null || c.prefix > best.prefix)) best = { prefix: c.prefix, text: c.text };
  }
  return best?.text ?? null;
}

export function fuzz(data: Buffer): void {
  const lines = data.toString('utf8').split('\n');
  const hostnames: string[] = [];
  const cidrs: AllowedCidr[] = [];
  const queries: string[] = [];
  for (const l of lines) {
    if (l.startsWith('?')) queries.push(l.slice(1));
    else if (l.includes('/')) cidrs.push(cidrEntry(l));
    else hostnames.push(l);
  }
  const policy = {
    id: 'np_fuzz',
    account_id: 'acc_fuzz',
    name: 'fuzz',
    description: null,
    version: 1,
    egress: { allow_all: false, allow_devbox_to_devbox: false, allow_agent_gateway: false, allow_mcp_gateway: false, allow_runloop_mirrors: false, allowed_hostnames: hostnames, allowed_cidrs: cidrs },
  } as unknown as NetworkPolicy;
  const compiled = timed('compile', () => new CompiledPolicy(policy, NO_TOGGLES));

  const exact = new Set<string>();
  const wild = new Set<string>();
  let bad = 0;
  // A stored entry already in canonical shape is taken as it is (docs/matching.md): one with an
  // xn-- label that is not valid punycode is kept, and can match no validated name.
  let inert = 0;
  for (const h of hostnames) {
    const r = normalizeAllowedHostname(h);
    if (!r.ok && /^(\*\.)?[a-z0-9_.-]+$/.test(h) && /(^|\.)xn--/.test(h)) inert++;
    if (!r.ok) bad++;
    else if (r.entry.startsWith('*.')) wild.add(r.entry.slice(2));
    else exact.add(r.entry);
  }
  const rules: Array<{ c: Cidr; e: AllowedCidr }> = [];
  for (const e of cidrs) {
    const c = parseCidr(e.cidr);
    if ('error' in c) bad++;
    else rules.push({ c, e });
  }
  if (compiled.rejected.length > bad || compiled.rejected.length < bad - inert) same(compiled.rejected.length, bad, 'rejected entries');
  const counted = exact.size + wild.size;
  if (compiled.nameCount < counted || compiled.nameCount > counted + inert) same(compiled.nameCount, counted, 'name entries counted');

  const names = new Set<string>();
  for (const n of [...exact, ...wild]) {
    names.add(n).add(`a.${n}`).add(`b.a.${n}`);
    const dot = n.indexOf('.');
    if (dot > 0) names.add(n.slice(dot + 1));
  }
  for (const q of queries) {
    const n = normalizeHost(q);
    if (n.kind === 'name') names.add(n.name);
    else if (n.kind === 'ip') {
      for (const [port, proto] of PORTS) {
        const got = timed('matchCidr', () => compiled.matchCidr(ipToWords(n.ip)!, port, proto));
        same(got, bruteCidr(n.ip, port, proto, rules), `matchCidr ${n.ip}:${port}/${proto}`);
      }
    }
  }
  for (const name of names) {
    if (name.length > 253 || normalizeHost(name).kind !== 'name') continue;
    const got = timed('matchName', () => compiled.matchName(name));
    same(got === undefined ? undefined : { reason: got.reason, entry: got.entry }, bruteName(name, exact, wild), `matchName ${name}`);
  }
  check(compiled.matchName('') === undefined, 'the empty name matched');
}
