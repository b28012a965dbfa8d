/**
 * Request heads of the proxy's raw front (parseRequestHead, src/doors/http/framing.ts).
 * Properties: no throw; 'incomplete' only without a blank line under the limit; a head it
 * takes is what the front relies on (one of the methods it handles, a printable target, a
 * token name and a trimmed, control-free value per header, no body or upgrade headers,
 * Host counted and first kept, one Proxy-Authorization at most, Connection: close seen);
 * the head rebuilt from what was read parses to the same; and reading the input as the
 * front does, chunk by chunk, gives the same answer as reading it whole. The input with its
 * longest byte run stretched to the door's head limit is read within the CPU budget.
 */
import { parseRequestHead, type RequestHead } from '../../../src/doors/http/framing.js';
import { check, chunks, same, stretched, timed } from '../support/harness.js';

const MAX = 8192;
/** The door's default head limit (max-header-bytes): stretched inputs are read up to it. */
const DOOR_MAX = 32768;
const METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE', 'CONNECT']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect']);

function checkHead(buf: Buffer, h: RequestHead): void {
  const blank = buf.indexOf('\r\n\r\n');
  check(h.end === blank + 4 && h.end <= MAX, `end ${h.end} vs blank ${blank}`);
  check(METHODS.has(h.method), `method ${h.method}`);
  check(h.target.length >= 1 && h.target.length <= 8192 && /^[\x21-\x7e]+$/.test(h.target), 'target not printable');
  check(h.headers.length % 2 === 0, 'odd header list');
  let hosts = 0;
  let firstHost: string | undefined;
  let auths = 0;
  let close = false;
  for (let i = 0; i < h.headers.length; i += 2) {
    const name = h.headers[i]!;
    const value = h.headers[i + 1]!;
    const lower = name.toLowerCase();
    check(TOKEN.test(name), `header name ${JSON.stringify(name)}`);
    check(!/[\x00-\x08\x0a-\x1f\x7f]/.test(value), `control byte in value of ${name}`);
    check(!/^[ \t]|[ \t]$/.test(value), `untrimmed value of ${name}`);
    check(!FORBIDDEN.has(lower), `front took a head with ${name}`);
    if (lower === 'host') {
      hosts++;
      firstHost ??= value;
    }
    if (lower === 'proxy-authorization') auths++;
    if (lower === 'connection' && value.split(',').some((t) => t.trim().toLowerCase() === 'close')) close = true;
  }
  check(hosts === h.hosts && firstHost === h.host, 'Host count or first Host wrong');
  check(h.method === 'CONNECT' || hosts >= 1, 'no Host on a non-CONNECT request');
  check(auths <= 1 && (auths === 0) === (h.proxyAuthorization === undefined), 'Proxy-Authorization');
  check(close === h.close, 'Connection: close');
}

/** The head as the front would forward it: same method, target and headers. */
function rebuild(h: RequestHead): Buffer {
  let s = `${h.method} ${h.target} HTTP/1.1\r\n`;
  for (let i = 0; i < h.headers.length; i += 2) s += `${h.headers[i]}: ${h.headers[i + 1]}\r\n`;
  return Buffer.from(s + '\r\n', 'latin1');
}

/** As http-front.ts reads: append each chunk, parse what is buffered, stop at the first answer. */
function byChunks(parts: Buffer[]): ReturnType<typeof parseRequestHead> {
  let buf = Buffer.alloc(0);
  for (const p of parts) {
    buf = Buffer.concat([buf, p]);
    const r = parseRequestHead(buf, MAX);
    if (r !== 'incomplete') return r;
  }
  return 'incomplete';
}

export function fuzz(data: Buffer): void {
  const whole = timed('parseRequestHead', () => parseRequestHead(data, MAX));
  if (whole === 'incomplete') check(data.indexOf('\r\n\r\n') < 0 && data.length < MAX, 'incomplete with a blank line or at the limit');
  if (typeof whole === 'object') {
    checkHead(data, whole);
    const again = parseRequestHead(rebuild(whole), MAX);
    check(typeof again === 'object', 'rebuilt head not taken');
    same({ ...again, end: 0 }, { ...whole, end: 0 }, 'rebuilt head reads differently');
  }
  const big = stretched(data, DOOR_MAX - 4);
  if (big !== null) timed(`parseRequestHead stretched to ${big.length} bytes`, () => parseRequestHead(big, DOOR_MAX));
  const split = timed('parseRequestHead by chunks', () => byChunks(chunks(data)));
  same(split, whole, 'chunked reading differs from whole');
}
