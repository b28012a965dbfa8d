/**
 * TLS ClientHello reader: finds the SNI host name in a client's first flight, for the
 * CONNECT SNI check, SOCKS and the transparent TLS door.
 *
 * Incremental: a ClientHelloReader is given everything received so far and resumes where
 * it stopped; it answers 'incomplete' until the whole ClientHello (possibly split over
 * several handshake records) is there. Every read is bounds-checked and it never throws, whatever bytes it
 * is given. Anything ambiguous (two SNI extensions, two host names, odd characters in the
 * name, trailing bytes inside a structure) is 'malformed': a door refuses rather than
 * guessing which name a server would use.
 */

export interface ClientHelloInfo {
  /** The host_name of the server_name extension as sent (lower-cased), or null when absent. */
  sni: string | null;
  /** The hello carries an ECH or ESNI extension (ECH_EXTENSIONS: its real name may be hidden). */
  ech: boolean;
  /** Bytes of the stream the ClientHello occupied (whole records). */
  length: number;
}

export type ClientHelloResult = 'incomplete' | 'not_tls' | 'malformed' | ClientHelloInfo;

const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
/**
 * Extensions that hide the real name: encrypted_client_hello (0xfe0d, RFC 9849),
 * ech_outer_extensions (0xfd00, only meaningful inside an ECH inner hello), and the
 * pre-standard codepoints servers may still accept: ESNI drafts (0xffce, 0xff02) and
 * ECH drafts 8–12 (0xfe08, 0xfe0a, 0xfe0c).
 */
export const ECH_EXTENSIONS: ReadonlySet<number> = new Set([0xfe0d, 0xfd00, 0xffce, 0xff02, 0xfe08, 0xfe0a, 0xfe0c]);
const MAX_RECORD = 16384 + 256;
/** The largest ClientHello accepted (real ones are ~0.5–2 KB; post-quantum shares < 4 KB). */
export const MAX_CLIENT_HELLO = 65536;

/**
 * Parses the ClientHello at the start of `buf`.
 * 'not_tls': the stream does not start with a TLS handshake record.
 * 'incomplete': more bytes are needed (callers bound how many and for how long).
 * 'malformed': a TLS handshake record that is not a well-formed, unambiguous ClientHello.
 */
export function parseClientHello(buf: Uint8Array, maxBytes = MAX_CLIENT_HELLO): ClientHelloResult {
  return new ClientHelloReader(maxBytes).read(buf);
}

/**
 * The same parse, kept across reads of a growing stream: `read(all bytes so far)` resumes
 * where the previous call stopped (record headers are walked once, each handshake byte is
 * copied once), so a hello trickled one byte per packet in 1-byte records costs linear
 * time in all, not a walk from the start per byte. `buf` must extend the previous one.
 */
export class ClientHelloReader {
  /** Start of the record being read. */
  private off = 0;
  /** Bytes of that record's fragment already taken into `msg`. */
  private taken = 0;
  /** The handshake message gathered so far (capacity grows by doubling). */
  private msg = new Uint8Array(0);
  private have = 0;
  /** Body length from the handshake header, once known. */
  private msgLen = -1;
  private result: ClientHelloResult | null = null;

  constructor(private readonly maxBytes = MAX_CLIENT_HELLO) {}

  read(buf: Uint8Array): ClientHelloResult {
    if (this.result !== null) return this.result;
    const r = this.step(buf);
    if (r !== 'incomplete') this.result = r;
    return r;
  }

  private step(buf: Uint8Array): ClientHelloResult {
    if (buf.length === 0) return 'incomplete';
    if (buf[0] !== CONTENT_HANDSHAKE) return 'not_tls';
    if (buf.length >= 2 && buf[1] !== 0x03) return 'malformed';
    const maxBytes = this.maxBytes;
    for (;;) {
      const off = this.off;
      if (off + 5 > buf.length) return buf.length > maxBytes ? 'malformed' : 'incomplete';
      if (buf[off] !== CONTENT_HANDSHAKE || buf[off + 1] !== 0x03) return 'malformed';
      const recLen = (buf[off + 3]! << 8) | buf[off + 4]!;
      if (recLen === 0 || recLen > MAX_RECORD) return 'malformed';
      const start = off + 5;
      const end = start + recLen;
      const avail = Math.min(end, buf.length);
      if (avail > start + this.taken) {
        this.take(buf, start + this.taken, avail);
        this.taken = avail - start;
      }
      const have = this.have;
      if (this.msgLen < 0 && have >= 4) {
        const h = this.msg;
        if (h[0] !== HANDSHAKE_CLIENT_HELLO) return 'malformed';
        this.msgLen = (h[1]! << 16) | (h[2]! << 8) | h[3]!;
        if (this.msgLen + 4 > maxBytes || this.msgLen < 38) return 'malformed';
      }
      const msgLen = this.msgLen;
      if (msgLen >= 0 && have >= msgLen + 4) {
        // The hello must end exactly at a record boundary we have (no other message shares it).
        if (avail < end) return 'incomplete';
        if (have !== msgLen + 4) return 'malformed';
        const info = parseBody(this.msg, 4, msgLen + 4);
        if (info === null) return 'malformed';
        return { sni: info.sni, ech: info.ech, length: end };
      }
      if (avail < end) return buf.length > maxBytes ? 'malformed' : 'incomplete';
      this.off = end;
      this.taken = 0;
      if (end > maxBytes) return 'malformed';
    }
  }

  private take(buf: Uint8Array, from: number, to: number): void {
    const need = this.have + (to - from);
    if (need > this.msg.length) {
      const next = new Uint8Array(Math.max(need, this.msg.length * 2, 512));
      next.set(this.msg.subarray(0, this.have));
      this.msg = next;
    }
    this.msg.set(buf.subarray(from, to), this.have);
    this.have = need;
  }
}

/** A ClientHello body (after the 4-byte handshake header) read by the same rules; null when malformed. */
export function parseClientHelloBody(body: Uint8Array): { sni: string | null; ech: boolean } | null {
  return parseBody(body, 0, body.length);
}

/** Walks the ClientHello body in msg[from, to); null when anything is out of place. */
function parseBody(msg: Uint8Array, from: number, to: number): { sni: string | null; ech: boolean } | null {
  let p = from;
  const need = (n: number) => p + n <= to;
  // legacy_version (2) + random (32)
  if (!need(34)) return null;
  if (msg[p] !== 0x03) return null;
  p += 34;
  // legacy_session_id <0..32>
  if (!need(1)) return null;
  const sid = msg[p]!;
  p += 1;
  if (sid > 32 || !need(sid)) return null;
  p += sid;
  // cipher_suites <2..2^16-2>
  if (!need(2)) return null;
  const cs = (msg[p]! << 8) | msg[p + 1]!;
  p += 2;
  if (cs < 2 || cs % 2 !== 0 || !need(cs)) return null;
  p += cs;
  // legacy_compression_methods <1..2^8-1>
  if (!need(1)) return null;
  const cm = msg[p]!;
  p += 1;
  if (cm < 1 || !need(cm)) return null;
  p += cm;
  if (p === to) return { sni: null, ech: false }; // no extensions at all (old clients)
  if (!need(2)) return null;
  const extLen = (msg[p]! << 8) | msg[p + 1]!;
  p += 2;
  if (p + extLen !== to) return null;
  let sni: string | null = null;
  let sawSni = false;
  let ech = false;
  const seen = new Set<number>();
  while (p < to) {
    if (!need(4)) return null;
    const type = (msg[p]! << 8) | msg[p + 1]!;
    const len = (msg[p + 2]! << 8) | msg[p + 3]!;
    p += 4;
    if (!need(len)) return null;
    if (seen.has(type)) return null; // RFC 8446 §4.2: at most one extension of each type
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      sawSni = true;
      sni = parseServerName(msg, p, p + len);
      if (sni === null) return null;
    } else if (ECH_EXTENSIONS.has(type)) {
      ech = true;
    }
    p += len;
  }
  return { sni: sawSni ? sni : null, ech };
}

/** server_name extension data → the one host_name; null when malformed or ambiguous. */
function parseServerName(msg: Uint8Array, from: number, to: number): string | null {
  if (from + 2 > to) return null;
  const listLen = (msg[from]! << 8) | msg[from + 1]!;
  let p = from + 2;
  if (p + listLen !== to || listLen === 0) return null;
  let name: string | null = null;
  while (p < to) {
    if (p + 3 > to) return null;
    const kind = msg[p]!;
    const len = (msg[p + 1]! << 8) | msg[p + 2]!;
    p += 3;
    if (p + len > to) return null;
    if (kind === 0) {
      if (name !== null) return null; // two host names: which one would the server use?
      name = hostName(msg, p, p + len);
      if (name === null) return null;
    }
    p += len;
  }
  return name;
}

/** Host name bytes → lower-case string; only [A-Za-z0-9._-], 1..253 (+ one trailing dot). */
function hostName(msg: Uint8Array, from: number, to: number): string | null {
  const len = to - from;
  if (len < 1 || len > 254) return null;
  let s = '';
  for (let i = from; i < to; i++) {
    let c = msg[i]!;
    if (c >= 65 && c <= 90) c += 32;
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 46 || c === 45 || c === 95;
    if (!ok) return null;
    s += String.fromCharCode(c);
  }
  return s;
}

// ── TLS alerts ────────────────────────────────────────────────────────────────

export const ALERT_ACCESS_DENIED = 49;
export const ALERT_UNRECOGNIZED_NAME = 112;
export const ALERT_HANDSHAKE_FAILURE = 40;
export const ALERT_DECODE_ERROR = 50;

/** A fatal TLS alert record (plaintext, as before any handshake), to send before closing. */
export function tlsAlert(description: number): Buffer {
  return Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description & 0xff]);
}
