/**
 * Host name normalisation and allowlist-entry validation: the one place that decides
 * what a name is. Entries and queried names go through the same steps (lower-case,
 * IDNA to punycode, one trailing dot stripped), so they can be compared as strings.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { isIP } from 'node:net';
import { randomBytes } from 'node:crypto';
import { parseIpLiteral } from './ip.js';

export const MAX_NAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

export type NormalizedHost = { kind: 'name'; name: string } | { kind: 'ip'; ip: string; family: 4 | 6 } | { kind: 'invalid'; why: string };

const C_DOT = 46;
const C_DASH = 45;
const C_UNDERSCORE = 95;

/** True when every char is [a-z0-9._-]; the common case, checked without allocating. */
function isPlainLowerAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === C_DOT || c === C_DASH || c === C_UNDERSCORE) continue;
    return false;
  }
  return true;
}

/** True when every char is [A-Za-z0-9._-] (plain ASCII host name in any case). */
function isPlainAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // No `| 0x20` case fold: it would also pass CR, 0x0e, 0x10–0x19 and DEL (found by fuzzing).
    if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === C_DOT || c === C_DASH || c === C_UNDERSCORE) continue;
    return false;
  }
  return true;
}

/** Checks label lengths and emptiness of an already lower-case ASCII name. */
function labelProblem(name: string): string | null {
  if (name.length === 0) return 'empty name';
  if (name.length > MAX_NAME_LENGTH) return `name longer than ${MAX_NAME_LENGTH} characters`;
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    if (i === name.length || name.charCodeAt(i) === C_DOT) {
      const len = i - start;
      if (len === 0) return 'empty label';
      if (len > MAX_LABEL_LENGTH) return `label longer than ${MAX_LABEL_LENGTH} characters`;
      start = i + 1;
    }
  }
  return null;
}

/** The label separators IDNA maps to '.' (UTS #46: full stop, ideographic, full-width, half-width). */
function isIdnaDot(c: number): boolean {
  return c === C_DOT || c === 0x3002 || c === 0xff0e || c === 0xff61;
}

/**
 * Label and name lengths in code points, checked before any IDNA work: punycode costs
 * grow with the square of a label's length, and a label of more than 63 code points
 * cannot encode to 63 characters (punycode spends at least one character per code
 * point; only the ignored or composing code points IDNA would drop could shrink it, and
 * such a name is refused rather than mapped). Linear, allocation-free.
 */
function lengthBeforeIdna(s: string): string | null {
  let label = 0;
  let total = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff && i > 0 && (s.charCodeAt(i - 1) & 0xfc00) === 0xd800) continue; // low half of a pair
    total++;
    if (isIdnaDot(c)) label = 0;
    else if (++label > MAX_LABEL_LENGTH) return `label longer than ${MAX_LABEL_LENGTH} characters`;
  }
  return total > MAX_NAME_LENGTH ? `name longer than ${MAX_NAME_LENGTH} characters` : null;
}

/** WHATWG treats a name whose last label is numeric (decimal, 0x hex, octal) as IPv4. */
function lastLabelLooksNumeric(name: string): boolean {
  const start = name.lastIndexOf('.') + 1;
  const n = name.length;
  if (start >= n) return false;
  let i = start;
  if (n - start >= 2 && name.charCodeAt(start) === 48 && name.charCodeAt(start + 1) === 120 /* 0x */) {
    for (i = start + 2; i < n; i++) {
      const c = name.charCodeAt(i);
      if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
    }
    return true;
  }
  for (; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Punycode labels (`xn--`) are validated by the IDNA step, not waved through. */
function hasAceLabel(s: string): boolean {
  return s.indexOf('xn--') !== -1;
}

/**
 * Every `xn--` label must decode to a non-ASCII label that encodes back to itself
 * (UTS #46 4.1). Node 20's domainToASCII fails on bad punycode; Node 24's passes such a
 * label through unchanged, so check it here rather than trust either.
 */
function aceLabelsValid(ascii: string): boolean {
  // One round trip for the whole name (two native calls, not two per label): every label
  // must come back as it was, and each `xn--` label must have decoded to non-ASCII.
  const unicode = domainToUnicode(ascii);
  if (unicode === '' || domainToASCII(unicode) !== ascii) return false;
  const a = ascii.split('.');
  const u = unicode.split('.');
  if (a.length !== u.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.startsWith('xn--') && /^[\x00-\x7f]*$/.test(u[i]!)) return false;
  }
  return true;
}

function finishAscii(s: string): NormalizedHost {
  if (lastLabelLooksNumeric(s)) {
    const ip = parseIpLiteral(s);
    if (ip) return { kind: 'ip', ip: ip.ip, family: ip.family };
    return { kind: 'invalid', why: 'malformed IPv4 literal' };
  }
  const problem = labelProblem(s);
  if (problem) return { kind: 'invalid', why: problem };
  return { kind: 'name', name: s };
}

/**
 * Normalises a destination as a client names it (Host header, SNI, CONNECT target,
 * SOCKS domain, DNS question). IP literals in every spelling come back as canonical IPs.
 * Steps, identical for allowlist entries: strip one trailing dot, lower-case, IDNA
 * (UTS #46, as WHATWG URL) to punycode, reject empty or over-long labels and names.
 */
export function normalizeHost(input: string): NormalizedHost {
  let s = input;
  if (s.length > 0 && s.charCodeAt(s.length - 1) === C_DOT) s = s.slice(0, -1);
  if (s.length === 0) return { kind: 'invalid', why: 'empty name' };
  if (s.length > 1024) return { kind: 'invalid', why: 'name too long' };
  // Fast path: one pass over plain lower-case ASCII with no punycode label to validate.
  const fast = scanHost(s);
  if (fast === SCAN_OK) return { kind: 'name', name: s };
  if (fast === SCAN_CHECK) return finishAscii(s);
  if (s.charCodeAt(0) === 91 /* [ */ || s.includes(':')) {
    const ip = parseIpLiteral(s);
    return ip ? { kind: 'ip', ip: ip.ip, family: ip.family } : { kind: 'invalid', why: 'malformed IPv6 literal' };
  }
  const tooLong = lengthBeforeIdna(s);
  if (tooLong !== null) return { kind: 'invalid', why: tooLong };
  if (isPlainAscii(s)) {
    const lower = s.toLowerCase();
    if (!hasAceLabel(lower)) return finishAscii(lower);
  }
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c === 127 || c === 37 /* % */ || c === 47 /* / */ || c === 64 /* @ */ || c === 92 /* \\ */) {
      return { kind: 'invalid', why: 'forbidden character in name' };
    }
    // C1 controls, and the invisible/format characters IDNA would silently drop.
    if ((c >= 0x80 && c <= 0x9f) || c === 0xad || (c >= 0x200b && c <= 0x200f) || c === 0xfeff) {
      return { kind: 'invalid', why: 'forbidden character in name' };
    }
  }
  const ascii = domainToASCII(s);
  if (ascii === '' || !isPlainLowerAscii(ascii)) return { kind: 'invalid', why: 'not a valid host name' };
  if (hasAceLabel(ascii) && !aceLabelsValid(ascii)) return { kind: 'invalid', why: 'invalid punycode label' };
  // IDNA may map a full-width dot at the end to a trailing '.', strip that once too.
  return finishAscii(ascii.endsWith('.') ? ascii.slice(0, -1) : ascii);
}

/** Plain lower-case ASCII, good labels, non-numeric last label: already normalised. */
export const SCAN_OK = 0;
/** Plain lower-case ASCII, but label lengths or a numeric last label need the full checks. */
export const SCAN_CHECK = 1;
/** Plain lower-case ASCII with a punycode (`xn--`) label the IDNA step must validate. */
export const SCAN_IDNA = 2;
/** Anything else (upper case, non-ASCII, IP literal forms, forbidden characters). */
export const SCAN_OTHER = 3;

const MAX_SCAN_DOTS = 128;
const MAX_SCAN_LENGTH = 1024;

/**
 * What scanHost() learnt about the string it last scanned: a polynomial hash (base
 * HASH_BASE, mod 2^32) of the whole string and of each prefix ending at a dot, from which the
 * compiler derives the hash of every suffix without slicing. Valid until the next call;
 * JavaScript runs one decision at a time, so one shared scratch suffices.
 */
export interface HostScan {
  /** Hash of the whole string. */
  hash: number;
  /** Lengths, empty labels or a numeric-looking last label need the full checks (SCAN_CHECK's condition, also set under SCAN_IDNA). */
  check: boolean;
  /** Number of dots recorded. */
  dots: number;
  /** Index of each dot, left to right. */
  readonly dotAt: Int32Array;
  /** Hash of the prefix up to and including each dot. */
  readonly prefixHash: Int32Array;
}

export const hostScan: HostScan = { hash: 0, check: false, dots: 0, dotAt: new Int32Array(MAX_SCAN_DOTS), prefixHash: new Int32Array(MAX_SCAN_DOTS) };

/**
 * The hash's base: odd and drawn at random per process, so which names share a hash
 * cannot be known in advance (with a fixed base, "an" and "c0" hash alike under 31 and
 * 14 such blocks give 16,384 names with one hash). The compiled tables add their own
 * random mixing and a bound on probe runs (compiler.ts NameTable).
 */
export const HASH_BASE: number = (() => {
  const b = randomBytes(4).readUInt32LE(0) | 0x10001 | 0; // odd, and never a tiny base
  return b;
})();

/** HASH_POW[k] = HASH_BASE^k mod 2^32: hash(s[j..n)) = hash(s) − hash(s[0..j)) · HASH_BASE^(n−j). */
export const HASH_POW: Int32Array = (() => {
  const p = new Int32Array(MAX_SCAN_LENGTH + 1);
  p[0] = 1;
  for (let i = 1; i <= MAX_SCAN_LENGTH; i++) p[i] = Math.imul(p[i - 1]!, HASH_BASE);
  return p;
})();

/** The same hash scanHost computes, for a whole string (used to index entries). */
export function nameHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, HASH_BASE) + s.charCodeAt(i)) | 0;
  return h;
}

/**
 * One pass over a host as given: classifies it (SCAN_*) and, unless SCAN_OTHER, fills
 * hostScan. Does not strip a trailing dot (a trailing dot makes an empty last label →
 * SCAN_CHECK). No allocation.
 */
export function scanHost(s: string): number {
  const n = s.length;
  if (n === 0 || n > MAX_SCAN_LENGTH) return SCAN_OTHER;
  const scan = hostScan;
  let labelStart = 0;
  let check = n > MAX_NAME_LENGTH;
  let idna = false;
  let dots = 0;
  let h = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    h = (Math.imul(h, HASH_BASE) + c) | 0;
    if (c === C_DOT) {
      const len = i - labelStart;
      if (len === 0 || len > MAX_LABEL_LENGTH) check = true;
      labelStart = i + 1;
      if (dots < MAX_SCAN_DOTS) {
        scan.dotAt[dots] = i;
        scan.prefixHash[dots] = h;
        dots++;
      } else check = true;
    } else if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === C_UNDERSCORE) {
      // letter, digit or underscore: nothing more to check
    } else if (c === C_DASH) {
      // `xn--` at the start of a label: punycode, which the IDNA step must validate.
      if (i === labelStart + 3 && s.charCodeAt(i - 1) === C_DASH && s.charCodeAt(labelStart) === 120 && s.charCodeAt(labelStart + 1) === 110) {
        idna = true;
      }
    } else {
      return SCAN_OTHER;
    }
  }
  scan.hash = h;
  scan.dots = dots;
  const last = n - labelStart;
  if (last === 0 || last > MAX_LABEL_LENGTH) check = true;
  // WHATWG: a numeric last label (decimal, or 0x hex) makes the whole host an IPv4 literal.
  const c0 = s.charCodeAt(labelStart);
  if (c0 >= 48 && c0 <= 57) check = true;
  scan.check = check;
  return idna ? SCAN_IDNA : check ? SCAN_CHECK : SCAN_OK;
}

export type EntryResult = { ok: true; entry: string } | { ok: false; why: string };

/**
 * Validates and normalises one `allowed_hostnames` entry: `name` or `*.name`, where the
 * wildcard is the whole first label and at least two labels follow it.
 */
export function normalizeAllowedHostname(raw: unknown): EntryResult {
  if (typeof raw !== 'string') return { ok: false, why: 'must be a string' };
  // Fast path for the stored, already-normalised form (compiling 100,000 entries).
  const w = raw.length > 2 && raw.charCodeAt(0) === 42 /* * */ && raw.charCodeAt(1) === C_DOT;
  const plain = w ? raw.slice(2) : raw;
  if (plain.length > 0 && plain.charCodeAt(plain.length - 1) !== C_DOT && isPlainLowerAscii(plain) && !hasAceLabel(plain)) {
    return entryFrom(w, finishAscii(plain));
  }
  const entry = raw.trim();
  if (entry !== raw) return { ok: false, why: 'has leading or trailing spaces' };
  if (entry.length === 0) return { ok: false, why: 'is empty' };
  if (entry.includes('://') || entry.includes('/')) return { ok: false, why: 'is a URL; give the host name only' };
  if (entry === '*' || entry === '*.') return { ok: false, why: 'a bare wildcard would allow everything; use allow_all' };
  const wildcard = entry.startsWith('*.');
  const rest = wildcard ? entry.slice(2) : entry;
  if (rest.includes('*')) return { ok: false, why: 'a wildcard may only be the whole first label, once (*.example.com)' };
  if (isIP(rest.replace(/^\[|\]$/g, '')) !== 0) return { ok: false, why: 'is an IP address; put addresses in allowed_cidrs' };
  if (/:\d*$/.test(rest)) return { ok: false, why: 'has a port; entries are host names only' };
  return entryFrom(wildcard, normalizeHost(rest));
}

function entryFrom(wildcard: boolean, n: NormalizedHost): EntryResult {
  if (n.kind === 'ip') return { ok: false, why: 'is an IP address; put addresses in allowed_cidrs' };
  if (n.kind === 'invalid') return { ok: false, why: `is not a valid host name (${n.why})` };
  if (wildcard) {
    if (!n.name.includes('.')) return { ok: false, why: 'a wildcard needs at least two labels after it (*.example.com, not *.com)' };
    if (n.name.length + 2 > MAX_NAME_LENGTH) return { ok: false, why: `is longer than ${MAX_NAME_LENGTH} characters` };
    return { ok: true, entry: `*.${n.name}` };
  }
  return { ok: true, entry: n.name };
}

/** Normalises a list of entries, de-duplicated in first-seen order; the first bad one is reported. */
export function normalizeAllowedHostnames(raw: readonly unknown[]): { ok: true; entries: string[] } | { ok: false; entry: unknown; why: string } {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const item of raw) {
    const r = normalizeAllowedHostname(item);
    if (!r.ok) return { ok: false, entry: item, why: r.why };
    if (!seen.has(r.entry)) {
      seen.add(r.entry);
      out.push(r.entry);
    }
  }
  return { ok: true, entries: out };
}
