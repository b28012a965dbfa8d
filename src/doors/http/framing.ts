/**
 * HTTP/1.1 message heads and body framing, read strictly, for the HTTP doors' raw front
 * (front.ts). A request head this parser does not fully accept is not an error here:
 * it is 'other', and the connection goes to the node:http server behind the front, which
 * answers it. An origin's response head that it does not accept is a 502.
 */

/** The head of a request the front handles itself. */
export interface RequestHead {
  method: string;
  /** The request target as sent. */
  target: string;
  /** Raw header pairs [name, value, …], as sent. */
  headers: string[];
  /** First Host header value, and how many there were. */
  host: string | undefined;
  hosts: number;
  proxyAuthorization: string | undefined;
  /** The client asked to close after this request (Connection: close). */
  close: boolean;
  /** Offset just past the head's blank line. */
  end: number;
}

/** Whether a comma-separated header value (Connection, …) lists `token` (lower case). */
function hasToken(value: string, token: string): boolean {
  for (const t of value.split(',')) if (t.trim().toLowerCase() === token) return true;
  return false;
}

/** Methods the front forwards itself: they carry no body here (no Content-Length, no Transfer-Encoding). */
const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);

const REQUEST_LINE = /^([A-Z]{1,16}) ([\x21-\x7e]{1,8192}) HTTP\/1\.1$/;
const STATUS_LINE = /^HTTP\/1\.[01] ([1-9]\d\d)(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?$/;
/**
 * Header lines the front reads in one head (node:http keeps 2,000; real heads have tens).
 * A request with more goes to node:http; a response with more is malformed. Bounds the
 * strings one head can allocate, whatever its byte size.
 */
const MAX_HEADER_LINES = 1000;
/** RFC 9110 token characters (a header name). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A control character other than HTAB: not allowed in a field value. */
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * `name: value` → [name, value] with the optional whitespace around the value removed, or
 * null. Scanned by hand: a regex with runs of whitespace on both sides of a lazy value
 * backtracks polynomially on a value of spaces ending in a bad byte (seconds per 32 KB).
 */
export function parseHeaderLine(line: string): [string, string] | null {
  const colon = line.indexOf(':');
  if (colon <= 0) return null;
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) return null;
  let start = colon + 1;
  let end = line.length;
  while (start < end && isOws(line.charCodeAt(start))) start++;
  while (end > start && isOws(line.charCodeAt(end - 1))) end--;
  const value = line.slice(start, end);
  if (BAD_VALUE_CHAR.test(value)) return null;
  return [name, value];
}

function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * A request head at the start of `buf`: 'incomplete' while it could still fit in `max`
 * bytes, 'other' for anything the front leaves to node:http (a body, an upgrade, HTTP/1.0,
 * an unusual method, a line this strict reading does not accept, a head over `max`).
 * `searched`: how far an earlier call with a prefix of `buf` already looked for the blank
 * line (blankSearched() of that prefix), so a head arriving byte by byte is scanned once.
 */
export function parseRequestHead(buf: Buffer, max: number, searched = 0): RequestHead | 'incomplete' | 'other' {
  const blank = buf.indexOf('\r\n\r\n', searched, 'latin1');
  if (blank < 0) return buf.length >= max ? 'other' : 'incomplete';
  const end = blank + 4;
  if (end > max) return 'other';
  const lines = buf.toString('latin1', 0, blank).split('\r\n', MAX_HEADER_LINES + 2);
  if (lines.length > MAX_HEADER_LINES + 1) return 'other';
  const m = REQUEST_LINE.exec(lines[0]!);
  if (m === null) return 'other';
  const method = m[1]!;
  if (method !== 'CONNECT' && !BODYLESS.has(method)) return 'other';
  const headers: string[] = [];
  let host: string | undefined;
  let hosts = 0;
  let proxyAuthorization: string | undefined;
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const h = parseHeaderLine(lines[i]!);
    if (h === null) return 'other';
    const [name, value] = h;
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') {
          hosts++;
          host ??= value;
        }
        break;
      case 6:
        if (name.toLowerCase() === 'expect') return 'other';
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') return 'other';
        break;
      case 10:
        if (name.toLowerCase() === 'connection' && hasToken(value, 'close')) close = true;
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') return 'other';
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return 'other';
        break;
      case 19:
        if (name.toLowerCase() === 'proxy-authorization') {
          if (proxyAuthorization !== undefined) return 'other';
          proxyAuthorization = value;
        }
        break;
    }
    headers.push(name, value);
  }
  // HTTP/1.1 requires Host: node:http answers its absence (400).
  if (hosts === 0 && method !== 'CONNECT') return 'other';
  return { method, target: m[2]!, headers, host, hosts, proxyAuthorization, close, end };
}

/** The head of an origin's response, as the front relays it. */
export interface ResponseHead {
  status: number;
  reason: string;
  headers: string[];
  /** Body framing: a length, chunked, or until the origin closes. */
  length: number | 'chunked' | 'close';
  /** The codings of Transfer-Encoding as the origin sent them (several headers joined), or null. */
  te: string | null;
  /** The origin will close after this response (Connection: close, or HTTP/1.0 without keep-alive). */
  close: boolean;
  end: number;
}

/** Where the next search for a head's blank line may start, once `buf` was found 'incomplete'. */
export function blankSearched(buf: Buffer, from = 0): number {
  return Math.max(from, buf.length - 3);
}

/**
 * A response head starting at `from`: 'incomplete', or 'malformed' (bad syntax, or longer
 * than `max`). `searched` as for parseRequestHead (at least `from`).
 */
export function parseResponseHead(buf: Buffer, from: number, max: number, searched = from): ResponseHead | 'incomplete' | 'malformed' {
  const prefix = Math.min(buf.length - from, 5);
  if (buf.toString('latin1', from, from + prefix) !== 'HTTP/'.slice(0, prefix)) return 'malformed';
  const blank = buf.indexOf('\r\n\r\n', Math.max(from, searched), 'latin1');
  if (blank < 0) return buf.length - from > max ? 'malformed' : 'incomplete';
  const end = blank + 4;
  if (end - from > max) return 'malformed';
  const lines = buf.toString('latin1', from, blank).split('\r\n', MAX_HEADER_LINES + 2);
  if (lines.length > MAX_HEADER_LINES + 1) return 'malformed';
  const m = STATUS_LINE.exec(lines[0]!);
  if (m === null) return 'malformed';
  const headers: string[] = [];
  let contentLength: number | null = null;
  let te: string | null = null;
  let close = lines[0]!.charCodeAt(7) === 48; // HTTP/1.0: closes unless it says otherwise
  for (let i = 1; i < lines.length; i++) {
    const h = parseHeaderLine(lines[i]!);
    if (h === null) return 'malformed';
    const [name, value] = h;
    const lower = name.length === 14 || name.length === 17 || name.length === 10 ? name.toLowerCase() : '';
    if (lower === 'transfer-encoding') te = te === null ? value : `${te}, ${value}`;
    else if (lower === 'content-length') {
      for (const v of value.split(',')) {
        const text = v.trim();
        if (!/^\d{1,15}$/.test(text)) return 'malformed';
        const n = Number(text);
        if (contentLength !== null && contentLength !== n) return 'malformed';
        contentLength = n;
      }
    } else if (lower === 'connection') {
      if (hasToken(value, 'close')) close = true;
      else if (hasToken(value, 'keep-alive')) close = false;
    }
    headers.push(name, value);
  }
  let length: ResponseHead['length'];
  if (te !== null) {
    // Chunked, when there, must be the last coding and appear once; without it the body runs
    // until the origin closes (RFC 9112 §6.3). A Content-Length beside it means nothing.
    const codings = te.split(',').map((c) => c.trim().toLowerCase());
    const chunkedAt = codings.indexOf('chunked');
    if (chunkedAt >= 0 && (chunkedAt !== codings.length - 1 || codings.lastIndexOf('chunked') !== chunkedAt)) return 'malformed';
    if (codings.some((c) => c === '')) return 'malformed';
    length = chunkedAt >= 0 ? 'chunked' : 'close';
  } else length = contentLength ?? 'close';
  return { status: Number(m[1]), reason: m[2] ?? '', headers, length, te, close, end };
}

// biome-ignore lint/suspicious/noConstEnum: file-local, never exported; inlined in the chunk scanner's hot loop
const enum Chunk {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  Trailer,
  TrailerLf,
  Done,
}

/**
 * Finds where a chunked body ends, reading the bytes as they are relayed (they are not
 * decoded: the front passes chunked bodies on as they are). Strict: hex sizes of at most
 * 15 digits, CRLF line ends, extensions and trailers of bounded size.
 */
export class ChunkedScanner {
  private state = Chunk.Size;
  private digits = 0;
  private left = 0;
  /** Bytes of the current extension or trailer line, or 0 at the start of a trailer line. */
  private line = 0;

  /** Offset in buf just past the body's end, -1 if it goes on, -2 if malformed. */
  scan(buf: Buffer, from: number): number {
    let i = from;
    const n = buf.length;
    while (i < n) {
      const c = buf[i]!;
      switch (this.state) {
        case Chunk.Size: {
          const v = c >= 48 && c <= 57 ? c - 48 : (c | 0x20) >= 97 && (c | 0x20) <= 102 ? (c | 0x20) - 87 : -1;
          if (v >= 0) {
            if (++this.digits > 15) return -2;
            this.left = this.left * 16 + v;
            i++;
            continue;
          }
          if (this.digits === 0) return -2;
          if (c === 13) this.state = Chunk.SizeLf;
          else if (c === 59 /* ; */ || c === 32 || c === 9) {
            this.state = Chunk.Ext;
            this.line = 0;
          } else return -2;
          i++;
          continue;
        }
        case Chunk.Ext:
          if (c === 13) this.state = Chunk.SizeLf;
          else if ((c < 32 && c !== 9) || c === 127 || ++this.line > 4096) return -2;
          i++;
          continue;
        case Chunk.SizeLf:
          if (c !== 10) return -2;
          i++;
          this.digits = 0;
          if (this.left === 0) {
            this.state = Chunk.Trailer;
            this.line = 0;
          } else this.state = Chunk.Data;
          continue;
        case Chunk.Data: {
          const take = Math.min(this.left, n - i);
          this.left -= take;
          i += take;
          if (this.left === 0) this.state = Chunk.DataCr;
          continue;
        }
        case Chunk.DataCr:
          if (c !== 13) return -2;
          this.state = Chunk.DataLf;
          i++;
          continue;
        case Chunk.DataLf:
          if (c !== 10) return -2;
          this.state = Chunk.Size;
          i++;
          continue;
        case Chunk.Trailer:
          if (c === 13) this.state = Chunk.TrailerLf;
          else if ((c < 32 && c !== 9) || c === 127 || ++this.line > 8192) return -2;
          i++;
          continue;
        case Chunk.TrailerLf:
          if (c !== 10) return -2;
          i++;
          if (this.line === 0) {
            this.state = Chunk.Done;
            return i;
          }
          this.state = Chunk.Trailer;
          this.line = 0;
          continue;
        case Chunk.Done:
          return i;
      }
    }
    return this.state === Chunk.Done ? i : -1;
  }
}
