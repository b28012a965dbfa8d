/**
 * Turns a stored policy into a matcher: an exact-name map, a suffix map for `*.` entries
 * (walked label by label from the left of the queried name, so cost follows the name's
 * label count, not the list's length), CIDR rules with port ranges, and the toggles
 * resolved against the configured service hosts.
 */
import { LRUCache } from 'lru-cache';
import type { NetworkPolicy } from './model.js';
import type { Decision, Reason } from './decision.js';
import { type Cidr, type IpWords, cidrContains, parseCidr } from './ip.js';

export interface ToggleHosts {
  agentGateway: readonly string[];
  mcpGateway: readonly string[];
  mirrors: readonly string[];
}

export interface NameMatch {
  readonly reason: Reason;
  readonly entry: string;
}

interface CidrRule {
  cidr: Cidr;
  /** [from, to, protocol|null] triples; empty means every port and protocol. */
  ports: Array<[number, number, 'TCP' | 'UDP' | null]>;
}

export const DECISION_CACHE_MAX = 4096;

export class CompiledPolicy {
  readonly id: string | null;
  readonly accountId: string | null;
  readonly version: number;
  readonly allowAll: boolean;
  readonly devboxToDevbox: boolean;
  readonly exact = new Map<string, NameMatch>();
  readonly suffixes = new Map<string, NameMatch>();
  readonly cidrs: CidrRule[] = [];
  /** Name decisions only (they do not depend on port). A new compile starts empty. */
  private cacheStore: LRUCache<string, Decision> | null = null;

  constructor(policy: NetworkPolicy | null, toggles: ToggleHosts) {
    this.id = policy?.id ?? null;
    this.accountId = policy?.account_id ?? null;
    this.version = policy?.version ?? 0;
    const e = policy?.egress;
    this.allowAll = e?.allow_all ?? false;
    this.devboxToDevbox = (e?.allow_devbox_to_devbox ?? false) || this.allowAll;
    if (!e) return;
    for (const entry of e.allowed_hostnames) this.addName(entry, 'hostname');
    if (e.allow_agent_gateway) for (const h of toggles.agentGateway) this.addName(h, 'agent_gateway');
    if (e.allow_mcp_gateway) for (const h of toggles.mcpGateway) this.addName(h, 'mcp_gateway');
    if (e.allow_runloop_mirrors) for (const h of toggles.mirrors) this.addName(h, 'mirrors');
    for (const c of e.allowed_cidrs ?? []) {
      const cidr = parseCidr(c.cidr);
      if ('error' in cidr) continue; // validated at write time; a stored bad row admits nothing
      this.cidrs.push({
        cidr,
        ports: (c.ports ?? []).map((p) => [p.port, p.end_port ?? p.port, p.protocol ?? null]),
      });
    }
  }

  private addName(entry: string, reason: Reason): void {
    const m: NameMatch = Object.freeze({ reason, entry });
    if (entry.startsWith('*.')) {
      const suffix = entry.slice(2);
      if (!this.suffixes.has(suffix)) this.suffixes.set(suffix, m);
    } else if (!this.exact.has(entry)) {
      this.exact.set(entry, m);
    }
  }

  get cache(): LRUCache<string, Decision> {
    return (this.cacheStore ??= new LRUCache<string, Decision>({ max: DECISION_CACHE_MAX }));
  }

  clearCache(): void {
    this.cacheStore?.clear();
  }

  /** Matches a normalised name: exact first, then each strict parent suffix. */
  matchName(name: string): NameMatch | undefined {
    const m = this.exact.get(name);
    if (m !== undefined) return m;
    if (this.suffixes.size === 0) return undefined;
    let dot = name.indexOf('.');
    while (dot !== -1) {
      const s = this.suffixes.get(name.slice(dot + 1));
      if (s !== undefined) return s;
      dot = name.indexOf('.', dot + 1);
    }
    return undefined;
  }

  matchCidr(ip: IpWords, port: number, protocol: 'TCP' | 'UDP'): string | null {
    for (const rule of this.cidrs) {
      if (!cidrContains(rule.cidr, ip)) continue;
      if (rule.ports.length === 0) return rule.cidr.text;
      for (const [from, to, proto] of rule.ports) {
        if (port >= from && port <= to && (proto === null || proto === protocol)) return rule.cidr.text;
      }
    }
    return null;
  }
}
