/**
 * SOCKS5 handshake parsing (RFC 1928 greeting and request, RFC 1929 username/password),
 * incremental: bytes are pushed as they arrive (one at a time, or greeting + auth +
 * request in one packet) and each read answers "need more", a message, or a protocol
 * error with the reply the door should send before closing. No I/O here.
 */

import { ByteAppender } from '../../byte-appender.js';
import { ipBytesToText } from '../../policy/ip.js';

export const SOCKS_VERSION = 0x05;
export const AUTH_VERSION = 0x01;

export const METHOD_NO_AUTH = 0x00;
export const METHOD_USER_PASS = 0x02;
export const METHOD_NONE_ACCEPTABLE = 0xff;

export const CMD_CONNECT = 0x01;
export const CMD_BIND = 0x02;
export const CMD_UDP_ASSOCIATE = 0x03;

export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

/** RFC 1928 §6 reply codes. */
export const Reply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;
export type ReplyCode = (typeof Reply)[keyof typeof Reply];

/** Largest well-formed messages: greeting 2+255, auth 3+255+255, request 4+1+255+2. */
export const MAX_GREETING_BYTES = 257;
export const MAX_AUTH_BYTES = 513;
export const MAX_REQUEST_BYTES = 262;
/** Default bound on bytes buffered before the request is complete (all three messages fit). */
export const DEFAULT_MAX_HANDSHAKE_BYTES = 2048;

export type ProtocolErrorKind = 'bad_version' | 'no_methods' | 'bad_auth_version' | 'empty_username' | 'unsupported_command' | 'bad_address_type' | 'empty_domain' | 'zero_port' | 'handshake_too_large' | 'handshake_timeout' | 'truncated';

export interface Greeting {
  methods: number[];
}

export interface Credentials {
  username: string;
  password: string;
}

export interface ConnectRequest {
  command: number;
  /** 'domain' hosts are the name as sent; ipv4/ipv6 are canonical text forms. */
  addressType: 'ipv4' | 'domain' | 'ipv6';
  host: string;
  port: number;
}

export type Step<T> =
  | { type: 'need' }
  | { type: 'message'; message: T }
  /** reply: the RFC 1928 reply to send before closing; null → close without a reply. */
  | { type: 'error'; kind: ProtocolErrorKind; reply: ReplyCode | null };

const NEED = Object.freeze({ type: 'need' as const });
const EMPTY = Buffer.alloc(0);

function fail(kind: ProtocolErrorKind, reply: ReplyCode | null = null): Step<never> {
  return { type: 'error', kind, reply };
}

/**
 * One client's handshake buffer. The door calls greeting(), then auth() if it chose
 * username/password, then request(); each consumes its message only when complete.
 */
export class Socks5Parser {
  private buf: Buffer = EMPTY;
  private readonly bytes = new ByteAppender();

  /**
   * Appends received bytes. The caller bounds the buffer (see DEFAULT_MAX_HANDSHAKE_BYTES):
   * a client may legitimately send data for the destination right after its request.
   */
  push(chunk: Buffer): void {
    this.buf = this.bytes.append(this.buf, chunk);
  }

  /** Bytes received but not consumed by a parsed message. */
  get buffered(): number {
    return this.buf.length;
  }

  /** Takes what follows the parsed messages (data a client sent before our reply). */
  takeRest(): Buffer {
    const r = this.buf;
    this.buf = EMPTY;
    return r;
  }

  private consume(n: number): void {
    this.buf = n >= this.buf.length ? EMPTY : this.buf.subarray(n);
  }

  /** VER NMETHODS METHODS… */
  greeting(): Step<Greeting> {
    const b = this.buf;
    if (b.length < 1) return NEED;
    if (b[0] !== SOCKS_VERSION) return fail('bad_version');
    if (b.length < 2) return NEED;
    const n = b[1]!;
    if (n === 0) return fail('no_methods');
    if (b.length < 2 + n) return NEED;
    const methods = [...b.subarray(2, 2 + n)];
    this.consume(2 + n);
    return { type: 'message', message: { methods } };
  }

  /** RFC 1929: VER(1) ULEN UNAME PLEN PASSWD. An empty password is parsed (and fails auth). */
  auth(): Step<Credentials> {
    const b = this.buf;
    if (b.length < 1) return NEED;
    if (b[0] !== AUTH_VERSION) return fail('bad_auth_version');
    if (b.length < 2) return NEED;
    const ulen = b[1]!;
    if (ulen === 0) return fail('empty_username');
    if (b.length < 3 + ulen) return NEED;
    const plen = b[2 + ulen]!;
    const total = 3 + ulen + plen;
    if (b.length < total) return NEED;
    const username = b.toString('utf8', 2, 2 + ulen);
    const password = b.toString('utf8', 3 + ulen, total);
    this.consume(total);
    return { type: 'message', message: { username, password } };
  }

  /**
   * VER CMD RSV ATYP DST.ADDR DST.PORT. Commands other than CONNECT are parsed to the
   * end and returned as errors with reply 0x07; an unknown ATYP cannot be framed, so it
   * is answered 0x08 at once. RSV is not checked (RFC 1928 gives it no meaning).
   */
  request(): Step<ConnectRequest> {
    const b = this.buf;
    if (b.length < 1) return NEED;
    if (b[0] !== SOCKS_VERSION) return fail('bad_version');
    if (b.length < 4) return NEED;
    const cmd = b[1]!;
    const atyp = b[3]!;
    let host: string;
    let addressType: ConnectRequest['addressType'];
    let end: number;
    if (atyp === ATYP_IPV4) {
      end = 4 + 4;
      if (b.length < end + 2) return NEED;
      host = ipBytesToText(b, 4, 4);
      addressType = 'ipv4';
    } else if (atyp === ATYP_IPV6) {
      end = 4 + 16;
      if (b.length < end + 2) return NEED;
      host = ipBytesToText(b, 4, 16);
      addressType = 'ipv6';
    } else if (atyp === ATYP_DOMAIN) {
      if (b.length < 5) return NEED;
      const len = b[4]!;
      if (len === 0) return fail('empty_domain', Reply.generalFailure);
      end = 5 + len;
      if (b.length < end + 2) return NEED;
      // UTF-8 decoding: control bytes stay visible to normalizeHost (which rejects them);
      // invalid sequences become U+FFFD, which is not a valid host name either.
      host = b.toString('utf8', 5, end);
      addressType = 'domain';
    } else {
      return fail('bad_address_type', Reply.addressTypeNotSupported);
    }
    const port = b.readUInt16BE(end);
    this.consume(end + 2);
    if (cmd !== CMD_CONNECT) return fail('unsupported_command', Reply.commandNotSupported);
    if (port === 0) return fail('zero_port', Reply.generalFailure);
    return { type: 'message', message: { command: cmd, addressType, host, port } };
  }
}

/** Server method selection: VER METHOD. */
export function methodReply(method: number): Buffer {
  return Buffer.from([SOCKS_VERSION, method]);
}

/** RFC 1929 status: VER STATUS (0 success). */
export function authReply(ok: boolean): Buffer {
  return Buffer.from([AUTH_VERSION, ok ? 0x00 : 0x01]);
}

/**
 * VER REP RSV ATYP BND.ADDR BND.PORT. The bound address is the gateway's side of the
 * upstream connection on success, 0.0.0.0:0 otherwise.
 */
export function replyMessage(code: ReplyCode, bound?: { address: string; port: number }): Buffer {
  const addr = bound?.address ?? '0.0.0.0';
  const port = bound?.port ?? 0;
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  if (v4 || !addr.includes(':')) {
    const parts = v4 ? v4.slice(1, 5).map(Number) : [0, 0, 0, 0];
    const out = Buffer.from([SOCKS_VERSION, code, 0x00, ATYP_IPV4, ...parts, 0, 0]);
    out.writeUInt16BE(port, 8);
    return out;
  }
  const out = Buffer.alloc(4 + 16 + 2);
  out[0] = SOCKS_VERSION;
  out[1] = code;
  out[3] = ATYP_IPV6;
  ipv6ToBytes(addr).copy(out, 4);
  out.writeUInt16BE(port, 20);
  return out;
}

function ipv6ToBytes(text: string): Buffer {
  const out = Buffer.alloc(16);
  const s = text.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, null];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16) & 0xffff));
  const hw = parse(head);
  const tw = tail === null ? [] : parse(tail);
  const words = tail === null ? hw : [...hw, ...new Array<number>(Math.max(0, 8 - hw.length - tw.length)).fill(0), ...tw];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(Number.isFinite(words[i]) ? words[i]! : 0, i * 2);
  return out;
}
