/**
 * The handshake window of a TLS tunnel: from the client's first ClientHello until the
 * server's real ServerHello. A TLS 1.3 server that answers hello 1 with a HelloRetryRequest
 * acts on hello 2, so every ClientHello in that window must be judged like the first
 * (docs/doors.md, "Every ClientHello before the ServerHello").
 *
 * Two incremental readers, one per direction, fed the bytes as they arrive (a record may be
 * split over reads and a handshake message over records): each byte is looked at once, a
 * ClientHello is gathered once (bounded by MAX_CLIENT_HELLO), the server's messages are
 * skipped after the 38 bytes that tell a ServerHello from a HelloRetryRequest. Neither
 * throws, whatever bytes it is given.
 */
import { type ClientHelloInfo, MAX_CLIENT_HELLO, parseClientHelloBody } from './clienthello.js';

const REC_CCS = 20;
const REC_ALERT = 21;
const REC_HANDSHAKE = 22;
const REC_APPDATA = 23;
const HS_CLIENT_HELLO = 1;
const HS_SERVER_HELLO = 2;
const MAX_RECORD = 16384 + 2048;

/** RFC 8446 §4.1.3: a ServerHello whose random is SHA-256("HelloRetryRequest") is a HelloRetryRequest. */
export const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

/**
 * Walks the TLS records of one direction, gathering handshake messages (their first `keep`
 * bytes) across records. Subclasses say what a record type or a whole message means.
 * `walk` returns null while all is well, 'stop' when the subclass is done, else a reason.
 */
abstract class RecordWalker {
  /** Stream bytes walked so far. */
  pos = 0;
  private readonly hdr = new Uint8Array(5);
  private hdrHave = 0;
  private recType = 0;
  private recLeft = 0;
  private readonly mhdr = new Uint8Array(4);
  private mhdrHave = 0;
  /** Type of the handshake message being gathered, -1 between messages. */
  private msgType = -1;
  private msgLen = 0;
  private msgLeft = 0;
  private body: Uint8Array | null = null;
  private bodyHave = 0;
  /** Stream offset where the message being read began. */
  protected msgStart = 0;

  /** A handshake message is partly read (its bytes are not judged yet). */
  get midMessage(): boolean {
    return this.mhdrHave > 0 || this.msgType >= 0;
  }

  /** How many bytes of a message body of this type and length to keep (the rest is skipped); -1 refuses the message. */
  protected abstract keep(type: number, len: number): number;
  /** A record header was read; null to go on. */
  protected abstract record(type: number): string | null;
  /** A whole handshake message; `body` holds its first keep() bytes. */
  protected abstract message(type: number, body: Uint8Array, len: number): string | null;

  walk(buf: Uint8Array, from: number, to: number): string | null {
    let p = from;
    while (p < to) {
      if (this.recLeft === 0) {
        const n = Math.min(5 - this.hdrHave, to - p);
        this.hdr.set(buf.subarray(p, p + n), this.hdrHave);
        this.hdrHave += n;
        p += n;
        this.pos += n;
        if (this.hdrHave < 5) return null;
        this.hdrHave = 0;
        const h = this.hdr;
        const type = h[0]!;
        const len = (h[3]! << 8) | h[4]!;
        if (h[1] !== 0x03 || type < REC_CCS || type > REC_APPDATA || len > MAX_RECORD) return 'malformed_record';
        if (len === 0 && type !== REC_APPDATA) return 'malformed_record';
        // RFC 8446 §5.1: handshake messages may not be interleaved with other record types.
        if (type !== REC_HANDSHAKE && this.midMessage) return 'malformed_record';
        this.recType = type;
        this.recLeft = len;
        const r = this.record(type);
        if (r !== null) return r;
        continue;
      }
      const n = Math.min(this.recLeft, to - p);
      if (this.recType === REC_HANDSHAKE) {
        const r = this.handshake(buf, p, p + n);
        if (r !== null) return r;
      } else {
        this.pos += n;
      }
      p += n;
      this.recLeft -= n;
    }
    return null;
  }

  private handshake(buf: Uint8Array, from: number, to: number): string | null {
    let p = from;
    while (p < to) {
      if (this.msgType < 0) {
        if (this.mhdrHave === 0) this.msgStart = this.pos;
        const n = Math.min(4 - this.mhdrHave, to - p);
        this.mhdr.set(buf.subarray(p, p + n), this.mhdrHave);
        this.mhdrHave += n;
        p += n;
        this.pos += n;
        if (this.mhdrHave < 4) return null;
        this.mhdrHave = 0;
        const m = this.mhdr;
        const type = m[0]!;
        const len = (m[1]! << 16) | (m[2]! << 8) | m[3]!;
        const keep = this.keep(type, len);
        if (keep < 0) return 'malformed_handshake';
        this.msgType = type;
        this.msgLen = len;
        this.msgLeft = len;
        this.body = keep > 0 ? new Uint8Array(keep) : null;
        this.bodyHave = 0;
      } else {
        const n = Math.min(this.msgLeft, to - p);
        const body = this.body;
        if (body !== null && this.bodyHave < body.length) {
          const k = Math.min(n, body.length - this.bodyHave);
          body.set(buf.subarray(p, p + k), this.bodyHave);
          this.bodyHave += k;
        }
        p += n;
        this.pos += n;
        this.msgLeft -= n;
      }
      if (this.msgType >= 0 && this.msgLeft === 0) {
        const type = this.msgType;
        const body = this.body ?? new Uint8Array(0);
        this.msgType = -1;
        this.body = null;
        const r = this.message(type, body, this.msgLen);
        if (r !== null) return r;
      }
    }
    return null;
  }
}

/**
 * The server's side: 'stop' at the first ServerHello that is not a HelloRetryRequest (the
 * window is over), or at anything that shows the server does not speak TLS 1.x handshakes
 * (it will act on no ClientHello): 'not_tls'. Alerts and ChangeCipherSpec go on.
 */
export class ServerHelloWatch extends RecordWalker {
  /** HelloRetryRequests seen. */
  retries = 0;

  /** Walks a chunk; 'stop' / 'not_tls' end the window, null: still in it. */
  push(buf: Uint8Array, from = 0, to = buf.length): 'stop' | 'not_tls' | null {
    if (this.pos === 0 && from < to && buf[from] !== REC_HANDSHAKE && buf[from] !== REC_ALERT) return 'not_tls';
    const r = this.walk(buf, from, to);
    if (r === null) return null;
    return r === 'stop' ? 'stop' : 'not_tls';
  }

  protected keep(type: number, len: number): number {
    // The server's first handshake message is a ServerHello; version (2) + random (32) tell HRR apart.
    if (type !== HS_SERVER_HELLO || len < 38) return -1;
    return 34;
  }

  protected record(type: number): string | null {
    return type === REC_APPDATA ? 'not_tls' : null;
  }

  protected message(_type: number, body: Uint8Array): string | null {
    for (let i = 0; i < 32; i++) if (body[2 + i] !== HRR_RANDOM[i]) return 'stop';
    this.retries++;
    return null;
  }
}

/** What the client-side reader asks of the rule for each further ClientHello. */
export type HelloJudge = (hello: ClientHelloInfo) => string | null;

/**
 * The client's side after its first ClientHello: every further ClientHello is gathered whole
 * and handed to the judge; `judged` is how far the stream may be relayed (all bytes but
 * those of a handshake message still being read). Before the server's real ServerHello, a
 * client sends only ChangeCipherSpec, early data, alerts and ClientHellos: another handshake
 * message there is 'malformed_handshake'.
 */
export class ClientHelloWatch extends RecordWalker {
  hellos = 0;

  constructor(
    private readonly judge: HelloJudge,
    private readonly maxBytes = MAX_CLIENT_HELLO,
  ) {
    super();
  }

  /** Stream offset up to which bytes are judged and may be relayed. */
  get judged(): number {
    return this.midMessage ? this.msgStart : this.pos;
  }

  /** Walks a chunk: null while all passes, else the refusal (a HelloRefusal or a malformed_* reason). */
  push(buf: Uint8Array, from = 0, to = buf.length): string | null {
    return this.walk(buf, from, to);
  }

  protected keep(type: number, len: number): number {
    if (type !== HS_CLIENT_HELLO || len < 38 || len + 4 > this.maxBytes) return -1;
    return len;
  }

  protected record(): string | null {
    return null;
  }

  protected message(_type: number, body: Uint8Array): string | null {
    this.hellos++;
    const info = parseClientHelloBody(body);
    if (info === null) return 'malformed_handshake';
    return this.judge({ sni: info.sni, ech: info.ech, length: 0 });
  }
}
