/**
 * Origin response heads (parseResponseHead, src/doors/http/framing.ts), read by the raw
 * front and the forward path. Properties: no throw; a head stays inside the limit and ends
 * at the blank line; status 100–999; framing is a safe integer length, 'chunked' or
 * 'close', chunked only as the last coding, and a Transfer-Encoding never yields a length;
 * the head rebuilt from what was read parses to the same; read from an offset (pipelined
 * bytes before it) the same; and read chunk by chunk as the front does, the same as whole.
 */
import { parseResponseHead, type ResponseHead } from '../../../src/doors/http/framing.js';
import { check, chunks, same, stretched, timed } from '../support/harness.js';

const MAX = 16384;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function checkHead(buf: Buffer, from: number, h: ResponseHead): void {
  const blank = buf.indexOf('\r\n\r\n', from);
  check(h.end === blank + 4 && h.end - from <= MAX, `end ${h.end} vs blank ${blank}`);
  check(Number.isInteger(h.status) && h.status >= 100 && h.status <= 999, `status ${h.status}`);
  check(!/[\x00-\x08\x0a-\x1f\x7f]/.test(h.reason), 'control byte in reason');
  check(h.headers.length % 2 === 0, 'odd header list');
  for (let i = 0; i < h.headers.length; i += 2) {
    check(TOKEN.test(h.headers[i]!), `header name ${JSON.stringify(h.headers[i])}`);
    check(!/[\x00-\x08\x0a-\x1f\x7f]/.test(h.headers[i + 1]!), 'control byte in a value');
  }
  if (typeof h.length === 'number') {
    check(Number.isSafeInteger(h.length) && h.length >= 0, `length ${h.length}`);
    check(h.te === null, 'a length beside Transfer-Encoding');
  } else check(h.length === 'chunked' || h.length === 'close', `length ${String(h.length)}`);
  if (h.length === 'chunked') {
    const codings = h.te!.split(',').map((c) => c.trim().toLowerCase());
    check(codings[codings.length - 1] === 'chunked' && codings.indexOf('chunked') === codings.length - 1, `chunked not last once: ${h.te}`);
  }
}

function rebuild(h: ResponseHead, version: string): Buffer {
  let s = `${version} ${h.status}${h.reason === '' ? '' : ` ${h.reason}`}\r\n`;
  for (let i = 0; i < h.headers.length; i += 2) s += `${h.headers[i]}: ${h.headers[i + 1]}\r\n`;
  return Buffer.from(s + '\r\n', 'latin1');
}

/** As http-front.ts readHead does: append each chunk, parse what is buffered. */
function byChunks(parts: Buffer[]): ReturnType<typeof parseResponseHead> {
  let buf = Buffer.alloc(0);
  for (const p of parts) {
    buf = Buffer.concat([buf, p]);
    const r = parseResponseHead(buf, 0, MAX);
    if (r !== 'incomplete') return r;
  }
  return 'incomplete';
}

export function fuzz(data: Buffer): void {
  const whole = timed('parseResponseHead', () => parseResponseHead(data, 0, MAX));
  if (typeof whole === 'object') {
    checkHead(data, 0, whole);
    const again = parseResponseHead(rebuild(whole, data.toString('latin1', 0, 8)), 0, MAX);
    check(typeof again === 'object', 'rebuilt head not taken');
    same({ ...again, end: 0, reason: again.reason.trimEnd() }, { ...whole, end: 0, reason: whole.reason.trimEnd() }, 'rebuilt head reads differently');
  }
  // The same bytes after a pipelined prefix, read from its offset.
  const prefix = Buffer.from('HTTP/1.1 204 No Content\r\n\r\n');
  const shifted = timed('parseResponseHead at offset', () => parseResponseHead(Buffer.concat([prefix, data]), prefix.length, MAX));
  same(typeof shifted === 'object' ? { ...shifted, end: shifted.end - prefix.length } : shifted, whole, 'offset reading differs');
  // The front reads origin heads up to 64 KB: the input stretched to that size.
  const big = stretched(data, 65536 - 4);
  if (big !== null) timed(`parseResponseHead stretched to ${big.length} bytes`, () => parseResponseHead(big, 0, 65536));
  const split = timed('parseResponseHead by chunks', () => byChunks(chunks(data)));
  same(split, whole, 'chunked reading differs from whole');
}
