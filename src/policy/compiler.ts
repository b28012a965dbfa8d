/**
 * Turns a stored policy into a matcher:
 * - an exact-name table and a suffix table for `*.` entries, keyed by the part after
 *   `*.`, both V8 Maps (seeded string hash: attacker-chosen names cannot be made to
 *   collide, see NameTable);
 * - a bit filter over the polynomial hashes scanHost computes: the queried name is
 *   scanned once, the hash of the suffix after each dot follows from the prefix hashes,
 *   and only a suffix whose bit is set is looked up in the Map, so the cost follows the
 *   name's length and label count, never the list's length or its contents;
 * - CIDR rules bucketed by prefix length (one hash probe per distinct prefix length), with
 *   port ranges and protocol, IPv4 and IPv6;
 * - the toggles resolved against the configured service hosts (names and IP addresses).
 * No regular expression and no glob runs at decision time.
 *
 * Entries are stored normalised (the API and policy files normalise once, on write); an
 * entry already in canonical form is taken as it is, `xn--` labels included, with no
 * IDNA work. A row in any other form (an older version, a hand edit) is normalised here
 * with the same function the API validates with, so it cannot match loosely; an entry
 * that does not normalise admits nothing and is listed in `rejected`.
 */
import type { NetworkPolicy } from './model.js';
import type { Decision, Reason } from './decision.js';
import { type Cidr, type IpWords, parseCidr, parseIpLiteral } from './ip.js';
import { type HostScan, MAX_NAME_LENGTH, HASH_POW, SCAN_IDNA, SCAN_OK, SCAN_OTHER, hostScan, nameHash, normalizeAllowedHostname, scanHost } from './hostname.js';
import { DecisionCache } from './cache.js';
import { randomBytes } from 'node:crypto';

export interface ToggleHosts {
  agentGateway: readonly string[];
  mcpGateway: readonly string[];
  mirrors: readonly string[];
}

export interface NameMatch {
  readonly reason: Reason;
  readonly entry: string;
}

export interface CidrRule {
  readonly cidr: Cidr;
  /** [from, to, protocol|null] triples; empty means every port and protocol. */
  readonly ports: ReadonlyArray<readonly [number, number, 'TCP' | 'UDP' | null]>;
}

interface V4Bucket {
  prefix: number;
  mask: number;
  rules: Map<number, CidrRule[]>;
}

interface V6Bucket {
  prefix: number;
  rules: Map<string, CidrRule[]>;
}

export const DECISION_CACHE_MAX = 4096;

/** findScanned() found nothing. */
export const NO_MATCH = -1;

/** Table hashes are 27 bits, so a cell tag (reason code, hash + 1) is always a small integer. */
const TAG_HASH = 0x7ffffff;
/** The reasons a name entry can carry, by the code kept in a cell tag (bits 28-29). */
const NAME_REASONS: readonly Reason[] = ['hostname', 'agent_gateway', 'mcp_gateway', 'mirrors'];
/** Random odd multiplier per process: a key's home slot is the top bits of hash × MIX. */
const MIX = randomBytes(4).readUInt32LE(0) | 1 | 0;

/** Home slot of a 27-bit hash in a table of 2^(32 − shift) slots (multiply-shift). */
export function homeSlot(h: number, shift: number): number {
  return Math.imul(h, MIX) >>> shift;
}
/**
 * Longest run of occupied slots a table may keep. At load ≤ 1/2 random keys make runs
 * of ~ln(slots)/0.19 (about 60 at a million slots); a longer run means keys that were
 * chosen to collide, and the table then answers from a Map instead.
 */
export const MAX_PROBE_RUN = 128;

/**
 * Open-addressing hash table (linear probing, load ≤ 1/2) laid out in one flat array of
 * cells, `stride` per slot: [tag, key] for exact names, [tag, key, entry] for `*.`
 * entries (key is the part after `*.`). tag = reason code << 28 | (hash + 1), 0 when
 * empty. A probe reads one cell run; a hit adds only the key string it is confirmed
 * against — two cache lines, which is what a 100,000-entry policy costs per lookup.
 *
 * The keys are chosen by tenants, so the table must not be floodable: the hash's base
 * is random per process (hostname.ts HASH_BASE), the home slot is the top bits of the
 * hash times a random odd MIX (multiply-shift), and a placement or build-time probe that would walk more
 * than MAX_PROBE_RUN cells, or a longer run found by seal(), switches the table to a Map
 * (flood()), so neither the build nor any lookup ever walks more than MAX_PROBE_RUN cells.
 */
class NameTable {
  cells: Array<number | string>;
  mask: number;
  shift: number;
  size = 0;
  /** Set when probe runs grew too long (flood()): key → cell index. */
  private byKey: Map<string, number> | null = null;

  constructor(
    readonly stride: 2 | 3,
    expected = 8,
  ) {
    let n = 16;
    while (n < expected * 2) n *= 2;
    this.cells = NameTable.empty(n * stride);
    this.mask = n - 1;
    this.shift = 32 - Math.log2(n);
  }

  private static empty(n: number): Array<number | string> {
    const a: Array<number | string> = [];
    for (let i = 0; i < n; i++) a.push(0);
    return a;
  }

  get slots(): number {
    return this.mask + 1;
  }

  /** True when seal() found flooding and lookups go through the Map. */
  get flooded(): boolean {
    return this.byKey !== null;
  }

  /** Cell index of key's slot, or -1. `h` is the 27-bit hash. */
  find(h: number, key: string): number {
    if (this.byKey !== null) return this.byKey.get(key) ?? -1;
    const cells = this.cells;
    const mask = this.mask;
    const stride = this.stride;
    const want = h + 1;
    for (let i = homeSlot(h, this.shift); ; i = (i + 1) & mask) {
      const c = i * stride;
      const tag = cells[c] as number;
      if (tag === 0) return -1;
      if ((tag & TAG_HASH) === want && cells[c + 1] === key) return c;
    }
  }

  /** Cell index of the slot whose key equals the last `len` characters of name, or -1. */
  findSuffix(h: number, name: string, len: number): number {
    if (this.byKey !== null) return this.byKey.get(name.slice(name.length - len)) ?? -1;
    const cells = this.cells;
    const mask = this.mask;
    const stride = this.stride;
    const want = h + 1;
    for (let i = homeSlot(h, this.shift); ; i = (i + 1) & mask) {
      const c = i * stride;
      const tag = cells[c] as number;
      if (tag === 0) return -1;
      if ((tag & TAG_HASH) === want) {
        const key = cells[c + 1] as string;
        if (key.length === len && name.endsWith(key)) return c;
      }
    }
  }

  reason(c: number): Reason {
    return NAME_REASONS[(this.cells[c] as number) >>> 28]!;
  }

  key(c: number): string {
    return this.cells[c + 1] as string;
  }

  /** The entry as written: the key itself, or `*.key`. */
  entry(c: number): string {
    return (this.stride === 3 ? this.cells[c + 2] : this.cells[c + 1]) as string;
  }

  /** Adds unless the key is present (the first entry wins); true when added. */
  add(h: number, key: string, reason: Reason, entry: string): boolean {
    const tag = (NAME_REASONS.indexOf(reason) << 28) | (h + 1);
    if (this.byKey === null) {
      const c = this.probe(h, key);
      if (c >= 0) return false;
      if (c === -1) {
        if ((this.size + 1) * 2 > this.slots) this.grow();
        if (this.byKey === null && !this.place(tag, key, entry)) this.flood();
        if (this.byKey === null) {
          this.size++;
          return true;
        }
      } else {
        this.flood(); // the run to walk was longer than MAX_PROBE_RUN
      }
    }
    if (this.byKey!.has(key)) return false;
    this.append(tag, key, entry);
    this.size++;
    return true;
  }

  /** find() for the build: -1 when absent, -2 when the run is longer than MAX_PROBE_RUN. */
  private probe(h: number, key: string): number {
    const cells = this.cells;
    const want = h + 1;
    let i = homeSlot(h, this.shift);
    for (let steps = 0; steps <= MAX_PROBE_RUN; steps++, i = (i + 1) & this.mask) {
      const c = i * this.stride;
      const tag = cells[c] as number;
      if (tag === 0) return -1;
      if ((tag & TAG_HASH) === want && cells[c + 1] === key) return c;
    }
    return -2;
  }

  /** Places a cell at its home slot or after it; false (nothing written) past MAX_PROBE_RUN. */
  private place(tag: number, key: string, entry: string): boolean {
    const mask = this.mask;
    const stride = this.stride;
    let i = homeSlot((tag & TAG_HASH) - 1, this.shift);
    for (let steps = 0; this.cells[i * stride] !== 0; steps++) {
      if (steps === MAX_PROBE_RUN) return false;
      i = (i + 1) & mask;
    }
    const c = i * stride;
    this.cells[c] = tag;
    this.cells[c + 1] = key;
    if (stride === 3) this.cells[c + 2] = entry;
    return true;
  }

  private grow(): void {
    const old = this.cells;
    const { mask, shift, stride } = this;
    this.cells = NameTable.empty(old.length * 2);
    this.mask = this.cells.length / stride - 1;
    this.shift = 32 - Math.log2(this.mask + 1);
    for (let c = 0; c < old.length; c += stride) {
      if (old[c] !== 0 && !this.place(old[c] as number, old[c + 1] as string, (stride === 3 ? old[c + 2] : old[c + 1]) as string)) {
        Object.assign(this, { cells: old, mask, shift });
        this.flood();
        return;
      }
    }
  }

  /**
   * Keys chosen to collide: from now on the cells are a dense list in insertion order and
   * lookups go through a Map of key → cell (V8's string hash, seeded per process).
   */
  private flood(): void {
    const old = this.cells;
    this.cells = [];
    this.byKey = new Map();
    for (let c = 0; c < old.length; c += this.stride) {
      if (old[c] !== 0) this.append(old[c] as number, old[c + 1] as string, (this.stride === 3 ? old[c + 2] : old[c + 1]) as string);
    }
  }

  private append(tag: number, key: string, entry: string): void {
    const c = this.cells.length;
    this.byKey!.set(key, c);
    this.cells.push(tag, key);
    if (this.stride === 3) this.cells.push(entry);
  }

  /**
   * Ends the build: a run of occupied slots longer than MAX_PROBE_RUN (clusters can merge
   * without any single placement walking far) also switches the table to the Map.
   */
  seal(): void {
    if (this.byKey === null && this.longestRun() > MAX_PROBE_RUN) this.flood();
  }

  /** Longest run of occupied slots, wrapping around the end. */
  private longestRun(): number {
    const slots = this.slots;
    const stride = this.stride;
    let longest = 0;
    let run = 0;
    for (let k = 0; k < 2 * slots; k++) {
      if (this.cells[(k & this.mask) * stride] !== 0) {
        if (++run > longest) longest = run;
        if (run >= slots) return run;
      } else {
        run = 0;
        if (k >= slots) break;
      }
    }
    return longest;
  }

  /** Hashes (27-bit) of every key, for the filter. */
  *hashes(): IterableIterator<number> {
    for (let c = 0; c < this.cells.length; c += this.stride) if (this.cells[c] !== 0) yield ((this.cells[c] as number) & TAG_HASH) - 1;
  }

  *matches(): IterableIterator<NameMatch> {
    for (let c = 0; c < this.cells.length; c += this.stride) if (this.cells[c] !== 0) yield { reason: this.reason(c), entry: this.entry(c) };
  }
}

function v4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
}

function v6Key(words: Uint32Array, prefix: number): string {
  let key = '';
  for (let i = 0; i < 4; i++) {
    const bits = prefix - 32 * i;
    const w = bits <= 0 ? 0 : bits >= 32 ? words[i]! : (words[i]! & (~0 << (32 - bits))) >>> 0;
    key += i === 0 ? w.toString(16) : `:${w.toString(16)}`;
  }
  return key;
}

export class CompiledPolicy {
  readonly id: string | null;
  readonly accountId: string | null;
  readonly version: number;
  readonly allowAll: boolean;
  /** Report-only: the policy's own denials are let through as would_deny (see reportOnly). */
  readonly report: boolean;
  readonly devboxToDevbox: boolean;
  /** allow_agent_gateway / allow_mcp_gateway: also what the agent gateway and MCP hub doors ask per request. */
  readonly agentGateway: boolean;
  readonly mcpGateway: boolean;
  /** Exact names. */
  private readonly exact: NameTable;
  /** `*.` entries, keyed by the part after `*.`. */
  private readonly suffixes: NameTable;
  /**
   * One bit per hash (of exact names and of suffixes), at least 8 bits per entry: a probe
   * whose bit is clear cannot hit, and this array stays in the CPU cache where the hash
   * tables of a 100,000-entry policy do not. Most probes are misses.
   */
  private filter: Int32Array = new Int32Array(1);
  private filterMask = 0;
  readonly cidrs: CidrRule[] = [];
  /** Toggle hosts configured as IP addresses (canonical text) → reason. */
  readonly toggleIps = new Map<string, NameMatch>();
  /** Stored entries that did not normalise (they admit nothing). */
  readonly rejected: Array<{ entry: string; why: string }> = [];
  /** Name decisions only (they do not depend on port). A new compile starts empty. */
  readonly cache: DecisionCache<Decision>;
  private readonly v4: V4Bucket[] = [];
  private readonly v6: V6Bucket[] = [];
  private maxSuffixLength = 0;

  constructor(policy: NetworkPolicy | null, toggles: ToggleHosts, cacheSize: number = DECISION_CACHE_MAX) {
    this.cache = new DecisionCache<Decision>(cacheSize);
    this.id = policy?.id ?? null;
    this.accountId = policy?.account_id ?? null;
    this.version = policy?.version ?? 0;
    const e = policy?.egress;
    let wild = 0;
    for (const h of e?.allowed_hostnames ?? []) if (typeof h === 'string' && h.charCodeAt(0) === 42) wild++;
    this.exact = new NameTable(2, (e?.allowed_hostnames?.length ?? 0) - wild + 8);
    this.suffixes = new NameTable(3, wild + 8);
    this.allowAll = e?.allow_all ?? false;
    this.report = policy?.enforcement === 'report';
    this.devboxToDevbox = (e?.allow_devbox_to_devbox ?? false) || this.allowAll;
    this.agentGateway = e?.allow_agent_gateway === true;
    this.mcpGateway = e?.allow_mcp_gateway === true;
    if (!e) return;
    for (const entry of e.allowed_hostnames ?? []) this.addName(entry, 'hostname');
    if (e.allow_agent_gateway) for (const h of toggles.agentGateway) this.addToggle(h, 'agent_gateway');
    if (e.allow_mcp_gateway) for (const h of toggles.mcpGateway) this.addToggle(h, 'mcp_gateway');
    if (e.allow_runloop_mirrors) for (const h of toggles.mirrors) this.addToggle(h, 'mirrors');
    for (const c of e.allowed_cidrs ?? []) {
      const cidr = parseCidr(c.cidr);
      if ('error' in cidr) {
        this.rejected.push({ entry: c.cidr, why: cidr.error }); // validated at write time; a bad row admits nothing
        continue;
      }
      const rule: CidrRule = {
        cidr,
        ports: (c.ports ?? []).map((p) => [p.port, p.end_port ?? p.port, p.protocol ?? null] as const),
      };
      this.cidrs.push(rule);
      this.addCidrRule(rule);
    }
    this.exact.seal();
    this.suffixes.seal();
    this.v4.sort((a, b) => b.prefix - a.prefix);
    this.v6.sort((a, b) => b.prefix - a.prefix);
    this.buildFilter();
  }

  private buildFilter(): void {
    let bits = 32;
    while (bits < this.nameCount * 8) bits *= 2;
    const filter = new Int32Array(bits >>> 5);
    const mask = bits - 1;
    for (const table of [this.exact, this.suffixes]) {
      for (const h of table.hashes()) filter[(h & mask) >>> 5]! |= 1 << (h & 31);
    }
    this.filter = filter;
    this.filterMask = mask;
  }

  /** True when a name table met keys built to collide and answers from a Map (NameTable.flood). */
  get flooded(): boolean {
    return this.exact.flooded || this.suffixes.flooded;
  }

  /** Number of name entries (exact + wildcard) after de-duplication. */
  get nameCount(): number {
    return this.exact.size + this.suffixes.size;
  }

  /**
   * The `*.name` entry when the policy has one, for a refusal of `name` itself to say that a
   * wildcard never admits its apex: one probe of the suffix table. `hash`: nameHash(name), when
   * the caller has it (scanHost just computed it).
   */
  wildcardOver(name: string, hash = nameHash(name)): string | null {
    if (this.suffixes.size === 0) return null;
    const c = this.suffixes.find(hash & TAG_HASH, name);
    return c === -1 ? null : this.suffixes.entry(c);
  }

  /** The normalised name entries this policy admits, in table order (for explain and tests). */
  *entries(): IterableIterator<NameMatch> {
    for (const table of [this.exact, this.suffixes]) yield* table.matches();
  }

  private addName(raw: string, reason: Reason): void {
    // The stored (already normalised) form, `xn--` labels included, is taken as it is:
    // one scan checks its shape and hashes it. Only a row in another form (written by an
    // older version, or by hand) is normalised here.
    if (typeof raw === 'string') {
      const wild = raw.length > 2 && raw.charCodeAt(0) === 42 /* * */ && raw.charCodeAt(1) === 46;
      const key = wild ? raw.slice(2) : raw;
      const shape = scanHost(key);
      // Its `xn--` labels are taken as stored: the API validated them when it wrote the
      // row, and a label that is not valid punycode can never equal a queried name (the
      // doors and the API validate those with normalizeHost), so it admits nothing anyway.
      const canonical = shape === SCAN_OK || (shape === SCAN_IDNA && !hostScan.check);
      if (canonical && (!wild || (hostScan.dots > 0 && raw.length <= MAX_NAME_LENGTH))) {
        this.insert(key, hostScan.hash & TAG_HASH, reason, raw, wild);
        return;
      }
    }
    const r = normalizeAllowedHostname(raw);
    if (!r.ok) {
      this.rejected.push({ entry: String(raw), why: r.why });
      return;
    }
    const wild = r.entry.charCodeAt(0) === 42;
    const key = wild ? r.entry.slice(2) : r.entry;
    this.insert(key, nameHash(key) & TAG_HASH, reason, r.entry, wild);
  }

  private insert(key: string, hash: number, reason: Reason, entry: string, wild: boolean): void {
    if (wild) {
      if (this.suffixes.add(hash, key, reason, entry) && key.length > this.maxSuffixLength) this.maxSuffixLength = key.length;
    } else {
      this.exact.add(hash, key, reason, entry);
    }
  }

  private addToggle(host: string, reason: Reason): void {
    const ip = parseIpLiteral(host);
    if (ip !== null) {
      if (!this.toggleIps.has(ip.ip)) this.toggleIps.set(ip.ip, Object.freeze({ reason, entry: ip.ip }));
      return;
    }
    this.addName(host, reason);
  }

  private addCidrRule(rule: CidrRule): void {
    const { cidr } = rule;
    if (cidr.family === 4) {
      let b = this.v4.find((x) => x.prefix === cidr.prefix);
      if (!b) this.v4.push((b = { prefix: cidr.prefix, mask: v4Mask(cidr.prefix), rules: new Map() }));
      const key = cidr.words[0]!;
      const list = b.rules.get(key);
      if (list) list.push(rule);
      else b.rules.set(key, [rule]);
    } else {
      let b = this.v6.find((x) => x.prefix === cidr.prefix);
      if (!b) this.v6.push((b = { prefix: cidr.prefix, rules: new Map() }));
      const key = v6Key(cidr.words, cidr.prefix);
      const list = b.rules.get(key);
      if (list) list.push(rule);
      else b.rules.set(key, [rule]);
    }
  }

  clearCache(): void {
    this.cache.clear();
  }

  /**
   * Matches a normalised name: exact first, else the longest `*.` suffix that is a strict
   * parent of the name (never the apex of a `*.` entry, never a single-label suffix).
   */
  matchName(name: string): NameMatch | undefined {
    if (scanHost(name) === SCAN_OTHER) return undefined; // not a normalised name: matches nothing
    return this.matchScanned(name, hostScan);
  }

  /** matchName for a name scanHost() has just scanned. */
  matchScanned(name: string, scan: HostScan): NameMatch | undefined {
    const r = this.findScanned(name, scan);
    return r === NO_MATCH ? undefined : { reason: this.matchReason(r), entry: this.matchEntry(r) };
  }

  /**
   * The engine's fast path: the one pass that validated the name (scanHost) also hashed
   * it. The hash of the suffix after each dot comes from the prefix hashes, and the
   * filter turns most probes away without touching the tables (or slicing the name); a
   * probe it lets through is one Map lookup. Returns a match handle for
   * matchReason/matchEntry, or NO_MATCH.
   */
  findScanned(name: string, scan: HostScan): number {
    const n = name.length;
    const h = scan.hash;
    const filter = this.filter;
    const fm = this.filterMask;
    const eh = h & TAG_HASH;
    if ((filter[(eh & fm) >>> 5]! >>> (eh & 31)) & 1) {
      const c = this.exact.find(eh, name);
      if (c !== -1) return c;
    }
    if (this.suffixes.size === 0) return NO_MATCH;
    const maxSuffix = this.maxSuffixLength;
    // Dots left to right = suffixes longest first; the last dot leaves a single label.
    for (let k = 0; k < scan.dots - 1; k++) {
      const len = n - scan.dotAt[k]! - 1;
      if (len > maxSuffix) continue;
      const sh = (h - Math.imul(scan.prefixHash[k]!, HASH_POW[len]!)) & TAG_HASH;
      if (((filter[(sh & fm) >>> 5]! >>> (sh & 31)) & 1) === 0) continue;
      const c = this.suffixes.findSuffix(sh, name, len);
      if (c !== -1) return -2 - c;
    }
    return NO_MATCH;
  }

  matchReason(r: number): Reason {
    return r >= 0 ? this.exact.reason(r) : this.suffixes.reason(-2 - r);
  }

  /** The entry as written in the policy (`github.com`, `*.npmjs.org`). */
  matchEntry(r: number): string {
    return r >= 0 ? this.exact.key(r) : this.suffixes.entry(-2 - r);
  }

  /** The CIDR entry admitting ip:port/protocol (most specific prefix first), or null. */
  matchCidr(ip: IpWords, port: number, protocol: 'TCP' | 'UDP'): string | null {
    if (ip.family === 4) {
      const w = ip.words[0]!;
      for (const b of this.v4) {
        const rules = b.rules.get((w & b.mask) >>> 0);
        if (rules !== undefined) {
          const hit = matchPorts(rules, port, protocol);
          if (hit !== null) return hit;
        }
      }
      return null;
    }
    for (const b of this.v6) {
      const rules = b.rules.get(v6Key(ip.words, b.prefix));
      if (rules !== undefined) {
        const hit = matchPorts(rules, port, protocol);
        if (hit !== null) return hit;
      }
    }
    return null;
  }

  /** The toggle that admits this canonical IP (a service host configured as an address). */
  matchToggleIp(ip: string): NameMatch | undefined {
    return this.toggleIps.size === 0 ? undefined : this.toggleIps.get(ip);
  }
}

function matchPorts(rules: readonly CidrRule[], port: number, protocol: 'TCP' | 'UDP'): string | null {
  for (const rule of rules) {
    if (rule.ports.length === 0) return rule.cidr.text;
    for (const [from, to, proto] of rule.ports) {
      if (port >= from && port <= to && (proto === null || proto === protocol)) return rule.cidr.text;
    }
  }
  return null;
}
