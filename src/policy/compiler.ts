/**
 * Turns a stored policy into a matcher:
 * - an exact-name hash table;
 * - a suffix hash table for `*.` entries, keyed by the part after `*.`. The queried name
 *   is walked once from its right end computing a rolling hash; at each dot the hash of
 *   the suffix to its right is probed (reverse-label walk), so the cost follows the
 *   name's length and label count, never the list's length, and nothing is allocated.
 *   A probe hit is confirmed by comparing the strings;
 * - CIDR rules bucketed by prefix length (one hash probe per distinct prefix length), with
 *   port ranges and protocol, IPv4 and IPv6;
 * - the toggles resolved against the configured service hosts (names and IP addresses).
 * No regular expression and no glob runs at decision time.
 *
 * Entries are normalised again here with the same function the API validates with, so a
 * row written by an older version or a fleet source cannot match loosely; an entry that
 * does not normalise admits nothing and is listed in `rejected`.
 */
import type { NetworkPolicy } from './model.js';
import type { Decision, Reason } from './decision.js';
import { type Cidr, type IpWords, parseCidr, parseIpLiteral } from './ip.js';
import { type HostScan, POW31, SCAN_OTHER, hostScan, nameHash, normalizeAllowedHostname, scanHost } from './hostname.js';
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

/** Keeps hashes in V8's small-integer range so they are stored unboxed. */
const HASH_MASK = 0x3fffffff;

/** One name entry: what matchName returns. `key` is the exact name, or the part after `*.`. */
class NameEntry implements NameMatch {
  constructor(
    readonly hash: number,
    readonly key: string,
    readonly reason: Reason,
    readonly entry: string,
  ) {}
}

/**
 * Open-addressing hash table (linear probing, load ≤ 1/2) of NameEntry objects keyed by
 * their hash: a hit touches the slot array, the entry and its key string, nothing more.
 */
class NameTable {
  slots: Array<NameEntry | null>;
  /** hashes[i] = slots[i].hash, or -1 for an empty slot: probing reads only this array until a hash matches. */
  hashes: Int32Array;
  mask: number;
  size = 0;

  constructor(expected = 8) {
    let n = 16;
    while (n < expected * 2) n *= 2;
    this.slots = NameTable.empty(n);
    this.hashes = new Int32Array(n).fill(-1);
    this.mask = n - 1;
  }

  private static empty(n: number): Array<NameEntry | null> {
    const a: Array<NameEntry | null> = [];
    for (let i = 0; i < n; i++) a.push(null);
    return a;
  }

  find(hash: number, key: string): NameEntry | null {
    const hashes = this.hashes;
    const mask = this.mask;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const h = hashes[i]!;
      if (h === -1) return null;
      if (h === hash) {
        const e = this.slots[i]!;
        if (e.key === key) return e;
      }
    }
  }

  /** The entry whose key equals name's last len characters. */
  findSuffix(hash: number, name: string, len: number): NameEntry | null {
    const hashes = this.hashes;
    const mask = this.mask;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const h = hashes[i]!;
      if (h === -1) return null;
      if (h === hash) {
        const e = this.slots[i]!;
        if (e.key.length === len && name.endsWith(e.key)) return e;
      }
    }
  }

  /** Adds unless the key is present (the first entry wins); true when added. */
  add(e: NameEntry): boolean {
    if (this.find(e.hash, e.key) !== null) return false;
    if ((this.size + 1) * 2 > this.slots.length) this.grow();
    this.place(e);
    this.size++;
    return true;
  }

  private place(e: NameEntry): void {
    const mask = this.mask;
    let i = e.hash & mask;
    while (this.hashes[i] !== -1) i = (i + 1) & mask;
    this.slots[i] = e;
    this.hashes[i] = e.hash;
  }

  private grow(): void {
    const old = this.slots;
    this.slots = NameTable.empty(old.length * 2);
    this.hashes = new Int32Array(old.length * 2).fill(-1);
    this.mask = this.slots.length - 1;
    for (const e of old) if (e !== null) this.place(e);
  }

  *values(): IterableIterator<NameEntry> {
    for (const e of this.slots) if (e !== null) yield e;
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
    let wild = 0;
    for (const h of e?.allowed_hostnames ?? []) if (typeof h === 'string' && h.charCodeAt(0) === 42) wild++;
    this.exact = new NameTable((e?.allowed_hostnames?.length ?? 0) - wild + 8);
    this.suffixes = new NameTable(wild + 8);
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
      for (const { hash: h } of table.values()) filter[(h & mask) >>> 5]! |= 1 << (h & 31);
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
    for (const table of [this.exact, this.suffixes]) {
      for (const e of table.values()) yield { reason: e.reason, entry: e.entry };
    }
  }

  private addName(raw: string, reason: Reason): void {
    const r = normalizeAllowedHostname(raw);
    if (!r.ok) {
      this.rejected.push({ entry: String(raw), why: r.why });
      return;
    }
    const entry = r.entry;
    if (entry.charCodeAt(0) === 42 /* * */) {
      const suffix = entry.slice(2);
      if (this.suffixes.add(new NameEntry(nameHash(suffix) & HASH_MASK, suffix, reason, entry))) {
        if (suffix.length > this.maxSuffixLength) this.maxSuffixLength = suffix.length;
      }
    } else {
      this.exact.add(new NameEntry(nameHash(entry) & HASH_MASK, entry, reason, entry));
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

  /**
   * matchName for a name scanHost() has just scanned (the engine's fast path: the one pass
   * that validated the name also hashed it). Allocation-free: the hash of the suffix after
   * each dot comes from the prefix hashes, and a hit is confirmed by comparing strings.
   */
  matchScanned(name: string, scan: HostScan): NameMatch | undefined {
    const n = name.length;
    const h = scan.hash;
    const filter = this.filter;
    const fm = this.filterMask;
    if ((filter[(h & fm) >>> 5]! >>> (h & 31)) & 1) {
      const e = this.exact.find(h & HASH_MASK, name);
      if (e !== null) return e;
    }
    if (this.suffixes.size === 0) return undefined;
    const maxSuffix = this.maxSuffixLength;
    // Dots left to right = suffixes longest first; the last dot leaves a single label.
    for (let k = 0; k < scan.dots - 1; k++) {
      const len = n - scan.dotAt[k]! - 1;
      if (len > maxSuffix) continue;
      const sh = ((h - Math.imul(scan.prefixHash[k]!, POW31[len]!)) | 0) & HASH_MASK;
      if (((filter[(sh & fm) >>> 5]! >>> (sh & 31)) & 1) === 0) continue;
      const e = this.suffixes.findSuffix(sh, name, len);
      if (e !== null) return e;
    }
    return undefined;
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
