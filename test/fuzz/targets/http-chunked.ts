/**
 * Chunked body framing (ChunkedScanner, src/doors/http/framing.ts): where an origin's
 * chunked body ends, found as the bytes are relayed. Properties: no throw; the end, "goes
 * on" or "malformed" agree with an independent line-by-line reading of RFC 9112 §7.1 with
 * the same limits; and feeding the body in random chunks (a fresh scan of each, as the
 * front relays them), or from an offset, finds the same end.
 */
import { ChunkedScanner } from '../../../src/doors/http/framing.js';
import { chunks, same, timed } from '../support/harness.js';

const GOES_ON = -1;
const MALFORMED = -2;

const hex = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1);
const ctl = (c: number) => (c < 32 && c !== 9) || c === 127;

/** The reference: reads size lines, data and trailer lines in turn. */
function reference(b: Buffer): number {
  const n = b.length;
  let p = 0;
  /** CRLF at p: 0 ok, GOES_ON when cut short, MALFORMED otherwise. */
  const crlf = (): number => {
    if (p >= n) return GOES_ON;
    if (b[p] !== 13) return MALFORMED;
    if (++p >= n) return GOES_ON;
    if (b[p] !== 10) return MALFORMED;
    p++;
    return 0;
  };
  for (;;) {
    let digits = 0;
    let size = 0;
    while (p < n && hex(b[p]!) >= 0) {
      if (++digits > 15) return MALFORMED;
      size = size * 16 + hex(b[p]!);
      p++;
    }
    if (p >= n) return GOES_ON;
    if (digits === 0) return MALFORMED;
    if (b[p] === 59 || b[p] === 32 || b[p] === 9) {
      p++;
      for (let len = 0; p < n && b[p] !== 13; p++) if (ctl(b[p]!) || ++len > 4096) return MALFORMED;
    }
    let r = crlf();
    if (r !== 0) return r;
    if (size === 0) break;
    if (n - p < size) return GOES_ON;
    p += size;
    r = crlf();
    if (r !== 0) return r;
  }
  for (;;) {
    let len = 0;
    for (; p < n && b[p] !== 13; p++) if (ctl(b[p]!) || ++len > 8192) return MALFORMED;
    const r = crlf();
    if (r !== 0) return r;
    if (len === 0) return p;
  }
}

function relayed(parts: Buffer[]): number {
  const s = new ChunkedScanner();
  let offset = 0;
  for (const part of parts) {
    const end = s.scan(part, 0);
    if (end === MALFORMED) return MALFORMED;
    if (end >= 0) return offset + end;
    offset += part.length;
  }
  return GOES_ON;
}

export function fuzz(data: Buffer): void {
  const whole = timed('ChunkedScanner.scan', () => new ChunkedScanner().scan(data, 0));
  same(whole, reference(data), 'scanner and reference disagree');
  same(
    timed('ChunkedScanner by chunks', () => relayed(chunks(data))),
    whole,
    'chunked relaying differs from whole',
  );
  const lead = Buffer.from('HTTP/1.1 200 OK\r\n\r\n');
  const at = new ChunkedScanner().scan(Buffer.concat([lead, data]), lead.length);
  same(at < 0 ? at : at - lead.length, whole, 'scan from an offset differs');
}
