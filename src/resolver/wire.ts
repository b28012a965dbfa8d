/**
 * DNS wire format on the hot path, by hand: read a query's header, question and EDNS OPT
 * without decoding the rest, walk an answer's records to find TTLs and addresses, and
 * build the few small replies the door makes itself. dns-packet is kept for the rare
 * paths (rewriting HTTPS/SVCB records); nothing here allocates more than the reply.
 */
import { ipBytesToText } from '../policy/ip.js';

export const QR = 0x8000;
export const AA = 0x0400;
export const TC = 0x0200;
export const RD = 0x0100;
export const RA = 0x0080;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

export const T = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  HINFO: 13,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  SVCB: 64,
  HTTPS: 65,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;
const TYPE_NAMES = new Map<number, string>(Object.entries(T).map(([k, v]) => [v, k]));
export function typeName(t: number): string {
  return TYPE_NAMES.get(t) ?? 'other';
}

export const CLASS_IN = 1;
/** The UDP payload size the door advertises and asks upstreams for (DNS Flag Day 2020). */
export const EDNS_UDP_SIZE = 1232;
export const MAX_NAME_WIRE = 255;

export interface Query {
  id: number;
  flags: number;
  /** Lower-case, no trailing dot; '' for the root. */
  name: string;
  /** False when a label holds a byte outside [A-Za-z0-9_-]: such a name is never forwarded. */
  plain: boolean;
  qtype: number;
  qclass: number;
  /** Offset just past the question (the wire name starts at 12). */
  qEnd: number;
  edns: boolean;
  /** The client's advertised UDP size (512 without EDNS). */
  udpSize: number;
}

/** Why a query was not parsed: drop it silently, or answer with an rcode (header readable). */
export type QueryProblem = { drop: true } | { drop: false; rcode: number /** End of a readable question, else 12. */; qEnd: number };

const scratch = Buffer.allocUnsafe(MAX_NAME_WIRE);
const DROP: QueryProblem = { drop: true };

/** Parses what the door needs of a query. Never throws. */
export function parseQuery(msg: Buffer): Query | QueryProblem {
  const len = msg.length;
  if (len < 12) return DROP;
  const flags = (msg[2]! << 8) | msg[3]!;
  if (flags & QR) return DROP; // a response: never answer one (no loops, no reflection)
  if (((flags >> 11) & 0xf) !== 0) return { drop: false, rcode: RCODE.NOTIMP, qEnd: 12 };
  if (msg[4] !== 0 || msg[5] !== 1) return { drop: false, rcode: RCODE.FORMERR, qEnd: 12 };
  // Question name: labels only (a pointer in a question is refused), lower-cased into scratch.
  let p = 12;
  let n = 0; // bytes written to scratch (dotted form)
  let plain = true;
  for (;;) {
    if (p >= len) return { drop: false, rcode: RCODE.FORMERR, qEnd: 12 };
    const l = msg[p]!;
    p++;
    if (l === 0) break;
    if (l > 63) return { drop: false, rcode: RCODE.FORMERR, qEnd: 12 };
    if (p + l > len || p + l - 12 >= MAX_NAME_WIRE) return { drop: false, rcode: RCODE.FORMERR, qEnd: 12 };
    if (n > 0) scratch[n++] = 46;
    for (let i = 0; i < l; i++) {
      let c = msg[p + i]!;
      if (c >= 65 && c <= 90) c += 32;
      else if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95)) {
        plain = false;
        if (c < 33 || c > 126) c = 63; // '?': the text form is for logs only when not plain
      }
      scratch[n++] = c;
    }
    p += l;
  }
  if (p + 4 > len) return { drop: false, rcode: RCODE.FORMERR, qEnd: 12 };
  const qtype = (msg[p]! << 8) | msg[p + 1]!;
  const qclass = (msg[p + 2]! << 8) | msg[p + 3]!;
  const qEnd = p + 4;
  const name = scratch.toString('latin1', 0, n);
  let edns = false;
  let udpSize = 512;
  const an = (msg[6]! << 8) | msg[7]!;
  const ns = (msg[8]! << 8) | msg[9]!;
  const ar = (msg[10]! << 8) | msg[11]!;
  if (an + ns + ar > 0) {
    let q = qEnd;
    const total = an + ns + ar;
    for (let i = 0; i < total; i++) {
      const e = skipName(msg, q);
      if (e < 0 || e + 10 > len) return { drop: false, rcode: RCODE.FORMERR, qEnd };
      const type = (msg[e]! << 8) | msg[e + 1]!;
      const rdlen = (msg[e + 8]! << 8) | msg[e + 9]!;
      if (e + 10 + rdlen > len) return { drop: false, rcode: RCODE.FORMERR, qEnd };
      if (type === T.OPT) {
        if (edns || i < an + ns || e !== q + 1) return { drop: false, rcode: RCODE.FORMERR, qEnd };
        edns = true;
        const size = (msg[e + 2]! << 8) | msg[e + 3]!;
        udpSize = Math.max(size, 512);
      }
      q = e + 10 + rdlen;
    }
  }
  return { id: (msg[0]! << 8) | msg[1]!, flags, name, plain, qtype, qclass, qEnd, edns, udpSize };
}

/** Offset just past a (possibly compressed) name at p, or -1 when malformed. */
export function skipName(msg: Buffer, p: number): number {
  const len = msg.length;
  for (let guard = 0; guard < 128; guard++) {
    if (p >= len) return -1;
    const l = msg[p]!;
    if (l === 0) return p + 1;
    if ((l & 0xc0) === 0xc0) return p + 2 <= len ? p + 2 : -1;
    if (l & 0xc0) return -1;
    p += 1 + l;
  }
  return -1;
}

/** Writes a dotted name as wire labels at p; returns the offset past it. The name must be valid. */
export function writeName(buf: Buffer, p: number, name: string): number {
  if (name.length > 0) {
    let start = 0;
    for (let i = 0; i <= name.length; i++) {
      if (i === name.length || name.charCodeAt(i) === 46) {
        buf[p++] = i - start;
        p += buf.write(name.slice(start, i), p, 'latin1');
        start = i + 1;
      }
    }
  }
  buf[p++] = 0;
  return p;
}

export function nameWireLength(name: string): number {
  return name.length === 0 ? 1 : name.length + 2;
}

/** A query the door sends upstream: RD, one question, EDNS with our UDP size. */
export function buildQuery(id: number, name: string, qtype: number, qclass: number): Buffer {
  const buf = Buffer.allocUnsafe(12 + nameWireLength(name) + 4 + 11);
  buf.writeUInt16BE(id, 0);
  buf.writeUInt16BE(RD, 2);
  buf.writeUInt32BE(0x00010000, 4); // qd 1, an 0
  buf.writeUInt32BE(0x00000001, 8); // ns 0, ar 1
  let p = writeName(buf, 12, name);
  buf.writeUInt16BE(qtype, p);
  buf.writeUInt16BE(qclass, p + 2);
  p += 4;
  writeOpt(buf, p);
  return buf;
}

/** Writes an empty OPT record (11 bytes) at p. */
export function writeOpt(buf: Buffer, p: number): number {
  buf[p] = 0;
  buf.writeUInt16BE(T.OPT, p + 1);
  buf.writeUInt16BE(EDNS_UDP_SIZE, p + 3);
  buf.writeUInt32BE(0, p + 5);
  buf.writeUInt16BE(0, p + 9);
  return p + 11;
}

/** Flags of a reply the door makes: QR, RA, the client's opcode and RD, and the rcode. */
export function replyFlags(queryFlags: number, rcode: number, extra = 0): number {
  return QR | RA | (queryFlags & (RD | 0x7800)) | extra | (rcode & 0xf);
}

/**
 * A reply with no records: the client's header and (when readable) question, the rcode,
 * and optionally an OPT record given as raw bytes (its ARCOUNT is set to 1).
 */
export function emptyReply(msg: Buffer, qEnd: number, rcode: number, opt: Buffer | null, extraFlags = 0): Buffer {
  const qlen = qEnd > 12 ? qEnd - 12 : 0;
  const out = Buffer.allocUnsafe(12 + qlen + (opt ? opt.length : 0));
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  out.writeUInt16BE(replyFlags(msg.length >= 4 ? (msg[2]! << 8) | msg[3]! : 0, rcode, extraFlags), 2);
  out.writeUInt16BE(qlen > 0 ? 1 : 0, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(opt ? 1 : 0, 10);
  if (qlen > 0) msg.copy(out, 12, 12, qEnd);
  if (opt) opt.copy(out, 12 + qlen);
  return out;
}

export interface AnswerInfo {
  rcode: number;
  tc: boolean;
  an: number;
  ns: number;
  /** Additional records other than OPT. */
  ar: number;
  /** Offset just past the question section. */
  qEnd: number;
  /** Offsets of each non-OPT record's TTL field. */
  ttlOffsets: number[];
  /** Offset and length of the OPT record, when there is one. */
  optAt: number;
  optLen: number;
  /** Lowest TTL among answer and authority records (or -1 with none). */
  minTtl: number;
  /** TTL and MINIMUM of an SOA in the authority section (-1 without one). */
  soaTtl: number;
  soaMinimum: number;
  /** A and AAAA addresses in the answer section, as text (the first maxAddresses of them). */
  addresses: string[];
  /** A and AAAA records in the answer section, all of them (addresses may hold fewer). */
  addressCount: number;
  /** An HTTPS or SVCB record carries the `ech` parameter. */
  hasEch: boolean;
}

/**
 * Walks an upstream answer. Returns null when it is malformed. Only the first `maxAddresses`
 * addresses are turned into text (an answer of thousands costs no more than its bytes).
 */
export function inspectAnswer(msg: Buffer, maxAddresses = Number.MAX_SAFE_INTEGER): AnswerInfo | null {
  const len = msg.length;
  if (len < 12) return null;
  const flags = (msg[2]! << 8) | msg[3]!;
  const qd = (msg[4]! << 8) | msg[5]!;
  const an = (msg[6]! << 8) | msg[7]!;
  const ns = (msg[8]! << 8) | msg[9]!;
  const ar = (msg[10]! << 8) | msg[11]!;
  let p = 12;
  for (let i = 0; i < qd; i++) {
    const e = skipName(msg, p);
    if (e < 0 || e + 4 > len) return null;
    p = e + 4;
  }
  const info: AnswerInfo = {
    rcode: flags & 0xf,
    tc: (flags & TC) !== 0,
    an,
    ns,
    ar: 0,
    qEnd: p,
    ttlOffsets: [],
    optAt: -1,
    optLen: 0,
    minTtl: -1,
    soaTtl: -1,
    soaMinimum: -1,
    addresses: [],
    addressCount: 0,
    hasEch: false,
  };
  const total = an + ns + ar;
  for (let i = 0; i < total; i++) {
    const start = p;
    const e = skipName(msg, p);
    if (e < 0 || e + 10 > len) return null;
    const type = (msg[e]! << 8) | msg[e + 1]!;
    const cls = (msg[e + 2]! << 8) | msg[e + 3]!;
    const ttl = msg.readUInt32BE(e + 4);
    const rdlen = (msg[e + 8]! << 8) | msg[e + 9]!;
    const rd = e + 10;
    if (rd + rdlen > len) return null;
    p = rd + rdlen;
    if (type === T.OPT) {
      if (i < an + ns || info.optAt >= 0) return null;
      info.optAt = start;
      info.optLen = p - start;
      continue;
    }
    if (i >= an + ns) info.ar++;
    info.ttlOffsets.push(e + 4);
    if (i < an + ns && (info.minTtl < 0 || ttl < info.minTtl)) info.minTtl = ttl;
    if (i < an && cls === CLASS_IN && ((type === T.A && rdlen === 4) || (type === T.AAAA && rdlen === 16))) {
      if (info.addressCount++ < maxAddresses) info.addresses.push(ipBytesToText(msg, rd, rdlen));
    }
    if (type === T.SOA && i >= an && i < an + ns && rdlen >= 22) {
      info.soaTtl = ttl;
      info.soaMinimum = msg.readUInt32BE(rd + rdlen - 4);
    }
    if ((type === T.HTTPS || type === T.SVCB) && svcbHasKey(msg, rd, rdlen, SVC_ECH)) info.hasEch = true;
  }
  return info;
}

export const SVC_MANDATORY = 0;
export const SVC_ECH = 5;

/** True when SVCB rdata at rd carries SvcParamKey key. Unparseable rdata counts as true (fail closed). */
export function svcbHasKey(msg: Buffer, rd: number, rdlen: number, key: number): boolean {
  const end = rd + rdlen;
  let p = rd + 2;
  // TargetName: never compressed (RFC 9460 §2.2).
  for (;;) {
    if (p >= end) return true;
    const l = msg[p]!;
    if (l === 0) {
      p++;
      break;
    }
    if (l & 0xc0) return true;
    p += 1 + l;
  }
  while (p < end) {
    if (p + 4 > end) return true;
    const k = msg.readUInt16BE(p);
    const vlen = msg.readUInt16BE(p + 2);
    if (k === key) return true;
    p += 4 + vlen;
  }
  return p !== end;
}

/**
 * SVCB/HTTPS rdata without the `ech` parameter (also dropped from `mandatory`), or null
 * when the rdata cannot be parsed (the caller drops such a record).
 */
export function stripSvcbEch(rdata: Buffer): Buffer | null {
  const end = rdata.length;
  let p = 2;
  for (;;) {
    if (p >= end) return null;
    const l = rdata[p]!;
    if (l === 0) {
      p++;
      break;
    }
    if (l & 0xc0) return null;
    p += 1 + l;
  }
  const parts: Buffer[] = [rdata.subarray(0, p)];
  while (p < end) {
    if (p + 4 > end) return null;
    const k = rdata.readUInt16BE(p);
    const vlen = rdata.readUInt16BE(p + 2);
    if (p + 4 + vlen > end) return null;
    if (k === SVC_MANDATORY) {
      const keys: number[] = [];
      for (let i = 0; i + 1 < vlen; i += 2) {
        const mk = rdata.readUInt16BE(p + 4 + i);
        if (mk !== SVC_ECH) keys.push(mk);
      }
      if (keys.length > 0) {
        const v = Buffer.allocUnsafe(4 + keys.length * 2);
        v.writeUInt16BE(SVC_MANDATORY, 0);
        v.writeUInt16BE(keys.length * 2, 2);
        for (let i = 0; i < keys.length; i++) v.writeUInt16BE(keys[i]!, 4 + i * 2);
        parts.push(v);
      }
    } else if (k !== SVC_ECH) {
      parts.push(rdata.subarray(p, p + 4 + vlen));
    }
    p += 4 + vlen;
  }
  return Buffer.concat(parts);
}
