/**
 * CONNECT lines: the request line the front reads (parseRequestHead) and its authority
 * (parseAuthority, src/doors/floor/authority.ts), then the host as the gate normalises it.
 * Properties: no throw; a CONNECT head carries the authority exactly as sent; an accepted
 * authority has a non-empty host free of spaces, controls and URL delimiters, a port
 * 1–65535 (required for CONNECT), and `host:port` rebuilt from it reads the same; the
 * host's normalisation is a fixed point.
 */
import { parseAuthority } from '../../../src/doors/floor/authority.js';
import { parseRequestHead } from '../../../src/doors/http/framing.js';
import { normalizeHost } from '../../../src/policy/hostname.js';
import { check, chunks, same, timed } from '../support/harness.js';

const BAD_HOST_CHARS = /[\x00-\x20\x7f@/\\?#]/;

function checkAuthority(text: string): void {
  for (const dflt of [null, 443] as const) {
    const a = timed('parseAuthority', () => parseAuthority(text, dflt));
    if (a === null) continue;
    check(a.host.length > 0 && !BAD_HOST_CHARS.test(a.host), `host ${JSON.stringify(a.host)}`);
    check(Number.isInteger(a.port) && a.port >= 1 && a.port <= 65535, `port ${a.port}`);
    if (dflt === null) check(/:\d{1,5}$/.test(text), 'CONNECT authority accepted without a port');
    const v6 = a.host.includes(':');
    if (v6) check(text.startsWith('['), 'a bare IPv6 host accepted');
    const again = parseAuthority(`${v6 ? `[${a.host}]` : a.host}:${a.port}`, null);
    same(again, a, 'rebuilt authority reads differently');
    const n = timed('normalizeHost', () => normalizeHost(a.host));
    if (n.kind === 'name') same(normalizeHost(n.name), n, 'normalised name is not a fixed point');
    if (n.kind === 'ip') same(normalizeHost(n.ip), n, 'normalised IP is not a fixed point');
  }
}

export function fuzz(data: Buffer): void {
  const text = data.toString('latin1');
  checkAuthority(text);
  const line = Buffer.concat([Buffer.from('CONNECT '), data, Buffer.from(' HTTP/1.1\r\nProxy-Authorization: Basic eDp5\r\n\r\n')]);
  const head = timed('parseRequestHead', () => parseRequestHead(line, 8192));
  // (an authority with a space or line break makes a different line, or ends the head early)
  if (typeof head === 'object' && !/[\r\n ]/.test(text)) {
    check(head.method === 'CONNECT', `method ${head.method}`);
    check(head.target === text, 'target differs from the authority sent');
    check(head.proxyAuthorization === 'Basic eDp5', 'Proxy-Authorization lost');
  }
  // The same line arriving in pieces.
  let buf = Buffer.alloc(0);
  let split: ReturnType<typeof parseRequestHead> = 'incomplete';
  for (const p of chunks(line)) {
    buf = Buffer.concat([buf, p]);
    split = parseRequestHead(buf, 8192);
    if (split !== 'incomplete') break;
  }
  same(split, head, 'chunked CONNECT line differs from whole');
}
