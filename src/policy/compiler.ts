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
import { type HostScan, MAX_NAME_LENGTH, POW31, SCAN_IDNA, SCAN_OK, SCAN_OTHER, hostScan, nameHash, normalizeAllowedHostname, scanHost } from './hostname.js';
import { DecisionCache } from './cache.js';

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

/** Filter hashes are 27 bits (the polynomial hash scanHost computes, masked). */
const TAG_HASH = 0x7ffffff;
/** The reasons a name entry can carry, by the code kept per slot. */
const NAME_REASONS: readonly Reason[] = ['hostname', 'agent_gateway', 'mcp_gateway', 'mirrors'];

/**
 * A name table on attacker-chosen keys: V8's own Map (string hashes seeded at random per
 * process) from key to slot, and the slot's reason, entry and filter hash in flat arrays.
 * The polynomial hash scanHost computes is unseeded, so names can be built to share it
 * (`an`/`c0` blocks); it only feeds the bit filter, where a collision costs one extra
 * Map lookup, never a probe run through other entries. The Map is what makes a probe
 * O(1) whatever the keys are.
 */
class NameTable {
  private readonly index = new Map<string, number>();
  private readonly keys: string[] = [];
  private readonly written: string[] = [];
  private readonly reasons: number[] = [];
  private readonly hashList: number[] = [];

  constructor(readonly wildcard: boolean) {}

  get size(): number {
    return this.keys.length;
  }

  /** Slot of key, or -1. */
  find(key: string): number {
    const c = this.index.get(key);
    return c === undefined ? -1 : c;
  }

  /** Slot of the key equal to name's suffix from `start`, or -1. */
  findSuffix(name: string, start: number): number {
    const c = this.index.get(name.slice(start));
    return c === undefined ? -1 : c;
  }

  reason(c: number): Reason {
    return NAME_REASONS[this.reasons[c]!]!;
  }

  key(c: number): string {
    return this.keys[c]!;
  }

  /** The entry as written: the key itself, or `*.key`. */
  entry(c: number): string {
    return this.written[c]!;
  }

  /** Adds unless the key is present (the first entry wins); true when added. */
  add(h: number, key: string, reason: Reason, entry: string): boolean {
    if (this.index.has(key)) return false;
    this.index.set(key, this.keys.length);
    this.keys.push(key);
    this.written.push(entry);
    this.reasons.push(NAME_REASONS.indexOf(reason));
    this.hashList.push(h);
    return true;
  }

  /** Filter hashes (27-bit) of every key. */
  hashes(): readonly number[] {
    return this.hashList;
  }

  *matches(): IterableIterator<NameMatch> {
    for (let c = 0; c < this.keys.length; c++) yield { reason: this.reason(c), entry: this.entry(c) };
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
  readonly devboxToDevbox: boolean;
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
    this.exact = new NameTable(false);
    this.suffixes = new NameTable(true);
    this.allowAll = e?.allow_all ?? false;
    this.devboxToDevbox = (e?.allow_devbox_to_devbox ?? false) || this.allowAll;
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

  /** Number of name entries (exact + wildcard) after de-duplication. */
  get nameCount(): number {
    return this.exact.size + this.suffixes.size;
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
      const c = this.exact.find(name);
      if (c !== -1) return c;
    }
    if (this.suffixes.size === 0) return NO_MATCH;
    const maxSuffix = this.maxSuffixLength;
    // Dots left to right = suffixes longest first; the last dot leaves a single label.
    for (let k = 0; k < scan.dots - 1; k++) {
      const len = n - scan.dotAt[k]! - 1;
      if (len > maxSuffix) continue;
      const sh = (h - Math.imul(scan.prefixHash[k]!, POW31[len]!)) & TAG_HASH;
      if (((filter[(sh & fm) >>> 5]! >>> (sh & 31)) & 1) === 0) continue;
      const c = this.suffixes.findSuffix(name, n - len);
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
