/**
 * Destinations no policy may reach unless the operator exempts the range: loopback,
 * RFC 1918, CGNAT, link-local (cloud metadata), multicast, documentation and other
 * non-global ranges. Checked on the address actually dialled, after resolution.
 */
import { type Cidr, CidrSet, type IpWords, cidrContains, ipToWords, parseCidr } from './ip.js';

/** A range the guardrail refuses, with the name a refusal gives it. */
export interface GuardedRange {
  /** The CIDR (null: an address that does not parse). */
  readonly cidr: string | null;
  readonly name: string;
}

/** The non-global ranges and their names, as a refusal says them (RFC 6890 and the IANA special-purpose registries). */
export const NAMED_NON_GLOBAL_RANGES: readonly GuardedRange[] = [
  { cidr: '0.0.0.0/8', name: 'this network (unspecified)' },
  { cidr: '10.0.0.0/8', name: 'private (RFC 1918)' },
  { cidr: '100.64.0.0/10', name: 'shared address space (CGNAT, RFC 6598)' },
  { cidr: '127.0.0.0/8', name: 'loopback' },
  { cidr: '169.254.0.0/16', name: 'link-local (cloud metadata)' },
  { cidr: '172.16.0.0/12', name: 'private (RFC 1918)' },
  { cidr: '192.0.0.0/24', name: 'IETF protocol assignments' },
  { cidr: '192.0.2.0/24', name: 'documentation (TEST-NET-1)' },
  { cidr: '192.88.99.0/24', name: '6to4 relay anycast (deprecated)' },
  { cidr: '192.168.0.0/16', name: 'private (RFC 1918)' },
  { cidr: '198.18.0.0/15', name: 'benchmarking (RFC 2544)' },
  { cidr: '198.51.100.0/24', name: 'documentation (TEST-NET-2)' },
  { cidr: '203.0.113.0/24', name: 'documentation (TEST-NET-3)' },
  { cidr: '224.0.0.0/4', name: 'multicast' },
  { cidr: '240.0.0.0/4', name: 'reserved (and broadcast)' },
  // ::/96 holds ::, ::1 and the deprecated IPv4-compatible form (::a.b.c.d).
  { cidr: '::/96', name: 'unspecified, loopback and IPv4-compatible' },
  { cidr: '64:ff9b:1::/48', name: 'local-use NAT64 (RFC 8215)' },
  { cidr: '100::/64', name: 'discard-only (RFC 6666)' },
  { cidr: '2001::/23', name: 'IETF protocol assignments (Teredo, benchmarking, ORCHID)' },
  { cidr: '2001:db8::/32', name: 'documentation' },
  { cidr: '2002::/16', name: '6to4' },
  { cidr: 'fc00::/7', name: 'unique local (private)' },
  { cidr: 'fe80::/10', name: 'link-local' },
  { cidr: 'fec0::/10', name: 'site-local (deprecated)' },
  { cidr: 'ff00::/8', name: 'multicast' },
];

export const NON_GLOBAL_RANGES: readonly string[] = NAMED_NON_GLOBAL_RANGES.map((r) => r.cidr!);

const UNPARSEABLE: GuardedRange = { cidr: null, name: 'unparseable address' };

function compile(list: readonly string[]): Cidr[] {
  return list.map((t) => {
    const c = parseCidr(t);
    if ('error' in c) throw new Error(`bad built-in range ${t}: ${c.error}`);
    return c;
  });
}

const NON_GLOBAL_LIST = compile(NON_GLOBAL_RANGES);
const NON_GLOBAL = new CidrSet(NON_GLOBAL_LIST);
/** Each compiled range's named entry (CidrSet.find answers the Cidr object itself). */
const NAMED = new Map<Cidr, GuardedRange>(NON_GLOBAL_LIST.map((c, i) => [c, NAMED_NON_GLOBAL_RANGES[i]!]));

/**
 * Addresses that name the gateway's own host or its cloud's services, never another
 * devbox: loopback, unspecified, link-local (cloud metadata), multicast, reserved, and the
 * IPv6 metadata address. A devbox registration cannot make them peers (allow_devbox_to_devbox
 * exempts a peer only from the private-range part of the guardrail).
 */
export const HOST_LOCAL_RANGES: readonly string[] = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4', '::/96', 'fe80::/10', 'fec0::/10', 'ff00::/8', 'fd00:ec2::254/128'];

const HOST_LOCAL = new CidrSet(compile(HOST_LOCAL_RANGES));

export class Guardrails {
  private readonly exempt: CidrSet;
  private readonly exemptList: Cidr[];

  constructor(allowPrivate: readonly string[] = []) {
    this.exemptList = compile(allowPrivate);
    this.exempt = new CidrSet(this.exemptList);
  }

  /**
   * The non-global range (text) that holds the whole CIDR when no --allow-private range
   * overlaps it: every address in it is refused. null when some address may pass.
   */
  alwaysRefused(cidr: string): string | null {
    const c = parseCidr(cidr);
    if ('error' in c) return null;
    const base = { family: c.family, words: c.words };
    const overlaps = (e: Cidr) => cidrContains(e, base) || cidrContains(c, { family: e.family, words: e.words });
    if (this.exemptList.some(overlaps)) return null;
    const r = NON_GLOBAL_LIST.find((n) => n.prefix <= c.prefix && cidrContains(n, base));
    return r ? r.text : null;
  }

  /** True for host-local addresses (see HOST_LOCAL_RANGES) the operator has not exempted. */
  hostLocal(ip: string): boolean {
    return this.hostLocalWords(ipToWords(ip));
  }

  hostLocalWords(w: IpWords | null): boolean {
    if (!w) return true;
    if (this.exempt.find(w) !== null) return false;
    return HOST_LOCAL.find(w) !== null;
  }

  /** The range that makes this address refused (its CIDR and name), or null when it may be dialled. Unparseable addresses are refused. */
  blocked(ip: string): GuardedRange | null {
    return this.blockedWords(ipToWords(ip));
  }

  /** blocked() on an address already parsed (ipToWords). */
  blockedWords(w: IpWords | null): GuardedRange | null {
    if (!w) return UNPARSEABLE;
    if (this.exempt.find(w) !== null) return null;
    // NAT64 (64:ff9b::/96) carries an IPv4 address; judge the address it carries.
    if (w.family === 6 && w.words[0] === 0x0064ff9b && w.words[1] === 0 && w.words[2] === 0) {
      return this.blockedWords({ family: 4, words: Uint32Array.of(w.words[3]!) });
    }
    const c = NON_GLOBAL.find(w);
    return c === null ? null : NAMED.get(c)!;
  }
}
