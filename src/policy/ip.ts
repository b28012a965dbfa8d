/**
 * IP literals and CIDR ranges. IPv4 is a uint32; IPv6 is four uint32 words. IPv4-mapped
 * IPv6 (::ffff:a.b.c.d) is treated as the IPv4 address it carries, so it cannot dodge a rule.
 */
import { isIPv6 } from 'node:net';

export interface IpLiteral {
  ip: string;
  family: 4 | 6;
}

function parseV4Part(p: string): number {
  if (p.length === 0) return NaN;
  let radix = 10;
  let digits = p;
  if (p.length > 1 && (p.startsWith('0x') || p.startsWith('0X'))) {
    radix = 16;
    digits = p.slice(2);
    if (digits.length === 0) return 0;
  } else if (p.length > 1 && p.charCodeAt(0) === 48) {
    radix = 8;
    digits = p.slice(1);
  }
  const re = radix === 16 ? /^[0-9a-fA-F]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!re.test(digits)) return NaN;
  return parseInt(digits, radix);
}

/**
 * A canonical dotted quad (four decimal parts ≤ 255, no leading zeros) as a uint32, else
 * null. One pass, no allocation: the spelling almost every client uses.
 */
export function parseDottedQuad(s: string): number | null {
  const n = s.length;
  if (n < 7 || n > 15) return null;
  let v = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) return null;
      v = v * 256 + part;
      part = 0;
      digits = 0;
      dots++;
      continue;
    }
    const d = c - 48;
    if (d < 0 || d > 9) return null;
    if (digits > 0 && part === 0) return null; // a leading zero
    part = part * 10 + d;
    if (part > 255) return null;
    digits++;
  }
  if (dots !== 3 || digits === 0) return null;
  return (v * 256 + part) >>> 0;
}

/** Parses IPv4 in every spelling a WHATWG URL parser accepts: 127.1, 0x7f.1, 2130706433, 0177.0.0.1. */
export function parseIPv4Whatwg(s: string): number | null {
  const quad = parseDottedQuad(s);
  if (quad !== null) return quad;
  const parts = s.split('.');
  if (parts.length > 4 || parts.length === 0) return null;
  const nums = parts.map(parseV4Part);
  if (nums.some((n) => Number.isNaN(n))) return null;
  for (let i = 0; i < nums.length - 1; i++) if (nums[i]! > 255) return null;
  const last = nums[nums.length - 1]!;
  if (last >= 256 ** (5 - nums.length)) return null;
  let v = last;
  for (let i = 0; i < nums.length - 1; i++) v += nums[i]! * 256 ** (3 - i);
  return v >>> 0;
}

export function v4ToString(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** Expands an IPv6 text into four uint32 words, or null. */
export function parseIPv6Words(s: string): Uint32Array | null {
  if (!isIPv6(s)) return null;
  let text = s;
  const groups: number[] = [];
  const lastColon = text.lastIndexOf(':');
  let tailV4: number | null = null;
  if (text.indexOf('.', lastColon) !== -1) {
    tailV4 = parseStrictV4(text.slice(lastColon + 1));
    if (tailV4 === null) return null;
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, null];
  const headGroups = head ? head.split(':').map((g) => parseInt(g, 16)) : [];
  const tailGroups = tail ? tail.split(':').map((g) => parseInt(g, 16)) : [];
  const fill = 8 - headGroups.length - tailGroups.length;
  if (tail === null && fill !== 0) return null;
  groups.push(...headGroups, ...new Array<number>(Math.max(fill, 0)).fill(0), ...tailGroups);
  if (groups.length !== 8) return null;
  const w = new Uint32Array(4);
  for (let i = 0; i < 4; i++) w[i] = ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
  if (tailV4 !== null) w[3] = tailV4;
  return w;
}

/** Strict dotted-quad IPv4 (the canonical form, as inside IPv6 text and CIDRs), or null. */
export function parseStrictV4(s: string): number | null {
  return parseDottedQuad(s);
}

function wordsToV6String(w: Uint32Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 4; i++) groups.push(w[i]! >>> 16, w[i]! & 0xffff);
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function isV4Mapped(w: Uint32Array): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
}

/**
 * The one formatter of address bytes (a DNS answer's A/AAAA data, a SOCKS5 request's
 * address): the canonical text parseIpLiteral returns and the engine matches, so an
 * address learned from DNS is the same string as the one a client later dials. IPv4 as
 * a dotted quad; IPv6 lower-case with RFC 5952 compression; IPv4-mapped IPv6
 * (::ffff:a.b.c.d) as the IPv4 address it carries.
 */
export function ipBytesToText(b: Uint8Array, at: number, length: 4 | 16): string {
  if (length === 4) return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
  const w = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    const o = at + 4 * i;
    w[i] = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }
  return isV4Mapped(w) ? v4ToString(w[3]!) : wordsToV6String(w);
}

/**
 * Parses an IP literal as a client may spell it: any WHATWG IPv4 form, or IPv6 with or
 * without brackets. Returns the canonical text; IPv4-mapped IPv6 comes back as IPv4.
 */
export function parseIpLiteral(input: string): IpLiteral | null {
  let s = input;
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) return null;
    s = s.slice(1, -1);
  }
  if (s.includes(':')) {
    if (s.includes('%')) return null;
    const w = parseIPv6Words(s.toLowerCase());
    if (!w) return null;
    if (isV4Mapped(w)) return { ip: v4ToString(w[3]!), family: 4 };
    return { ip: wordsToV6String(w), family: 6 };
  }
  // Already canonical: the text is its own canonical form.
  if (parseDottedQuad(s) !== null) return { ip: s, family: 4 };
  const v4 = parseIPv4Whatwg(s);
  return v4 === null ? null : { ip: v4ToString(v4), family: 4 };
}

/** A parsed CIDR range. IPv4 ranges use words[0] only. */
export interface Cidr {
  family: 4 | 6;
  prefix: number;
  words: Uint32Array;
  text: string;
}

function maskWord(word: number, bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return word >>> 0;
  return (word & (~0 << (32 - bits))) >>> 0;
}

/**
 * Parses `a.b.c.d/n` or `v6/n` (a bare address means a single host). With `strict`, host
 * bits must be zero (the API's canonical form); otherwise they are masked off.
 */
export function parseCidr(text: string, strict = false): Cidr | { error: string } {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? null : text.slice(slash + 1);
  if (prefixText !== null && !/^\d{1,3}$/.test(prefixText)) return { error: 'prefix length must be a number' };
  if (addr.includes(':')) {
    const w = parseIPv6Words(addr.toLowerCase());
    if (!w) return { error: 'not an IPv6 address' };
    const prefix = prefixText === null ? 128 : Number(prefixText);
    if (prefix > 128) return { error: 'IPv6 prefix length must be 0-128' };
    const masked = new Uint32Array(4);
    for (let i = 0; i < 4; i++) masked[i] = maskWord(w[i]!, prefix - 32 * i);
    if (strict && masked.some((v, i) => v !== w[i])) return { error: 'host bits must be zero' };
    return { family: 6, prefix, words: masked, text: `${wordsToV6String(masked)}/${prefix}` };
  }
  const v = parseStrictV4(addr);
  if (v === null) return { error: 'not an IPv4 address in dotted-quad form' };
  const prefix = prefixText === null ? 32 : Number(prefixText);
  if (prefix > 32) return { error: 'IPv4 prefix length must be 0-32' };
  const m = maskWord(v, prefix);
  if (strict && m !== v) return { error: 'host bits must be zero' };
  return { family: 4, prefix, words: Uint32Array.of(m), text: `${v4ToString(m)}/${prefix}` };
}

/** A canonical IP (as returned by parseIpLiteral) as words for matching. */
export interface IpWords {
  family: 4 | 6;
  words: Uint32Array;
}

export function ipToWords(ip: string): IpWords | null {
  if (ip.includes(':')) {
    const w = parseIPv6Words(ip);
    if (!w) return null;
    if (isV4Mapped(w)) return { family: 4, words: Uint32Array.of(w[3]!) };
    return { family: 6, words: w };
  }
  const v = parseStrictV4(ip);
  return v === null ? null : { family: 4, words: Uint32Array.of(v) };
}

export function cidrContains(c: Cidr, a: IpWords): boolean {
  if (c.family !== a.family) return false;
  for (let i = 0; i < c.words.length; i++) {
    const bits = c.prefix - 32 * i;
    if (bits <= 0) return true;
    if (maskWord(a.words[i]!, bits) !== c.words[i]) return false;
  }
  return true;
}

/**
 * A fixed set of ranges, searched in order: IPv4 ranges as parallel base/mask arrays (a
 * mask-and-compare each, no per-range object walk), IPv6 ones with cidrContains.
 */
export class CidrSet {
  private readonly v4Base: Uint32Array;
  private readonly v4Mask: Uint32Array;
  private readonly v4: Cidr[];
  private readonly v6: Cidr[];

  constructor(cidrs: readonly Cidr[]) {
    this.v4 = cidrs.filter((c) => c.family === 4);
    this.v6 = cidrs.filter((c) => c.family === 6);
    this.v4Base = Uint32Array.from(this.v4, (c) => c.words[0]!);
    this.v4Mask = Uint32Array.from(this.v4, (c) => maskWord(0xffffffff, c.prefix));
  }

  /** The first range holding the address, or null. */
  find(a: IpWords): Cidr | null {
    if (a.family === 4) {
      const w = a.words[0]!;
      const base = this.v4Base;
      const mask = this.v4Mask;
      for (let i = 0; i < base.length; i++) if ((w & mask[i]!) >>> 0 === base[i]) return this.v4[i]!;
      return null;
    }
    for (const c of this.v6) if (cidrContains(c, a)) return c;
    return null;
  }
}
