/**
 * Threat: the raw front (http-front.ts) frames origin responses itself. If ChunkedScanner or
 * parseResponseHead misplaces the end of a response, bytes of one response are relayed as
 * the start of the next (response splitting / desync through the keep-alive pool); if
 * parseRequestHead accepts a head node:http would read differently, a request smuggles
 * past the front. These tests pin http-framing.ts on its own, byte by byte.
 */
import { describe, expect, it } from 'vitest';
import { ChunkedScanner, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from '../../src/doors/http/framing.js';

const b = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s);

/** Feeds `parts` to one scanner; the absolute end offset, -1 if it never ends, -2 if malformed. */
function scanParts(parts: Buffer[]): number {
  const s = new ChunkedScanner();
  let base = 0;
  for (const p of parts) {
    const r = s.scan(p, 0);
    if (r === -2) return -2;
    if (r >= 0) return base + r;
    expect(r).toBe(-1);
    base += p.length;
  }
  return -1;
}

function oneByteParts(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

/** Scans buf whole, fed one byte at a time, and split in two at every position: the results. */
function everySplit(buf: Buffer): { whole: number; bytes: number; splits: number[] } {
  const splits: number[] = [];
  for (let k = 1; k < buf.length; k++) splits.push(scanParts([buf.subarray(0, k), buf.subarray(k)]));
  return { whole: scanParts([buf]), bytes: scanParts(oneByteParts(buf)), splits };
}

/** A chunked encoding of `pieces`, sizes in the given hex case, with optional extensions and trailer. */
function chunked(pieces: Buffer[], opts: { upper?: boolean; ext?: (i: number) => string; trailer?: string } = {}): Buffer {
  const parts: Buffer[] = [];
  pieces.forEach((p, i) => {
    const size = p.length.toString(16);
    parts.push(b(`${opts.upper ? size.toUpperCase() : size}${opts.ext?.(i) ?? ''}\r\n`), p, b('\r\n'));
  });
  parts.push(b(`0${opts.ext?.(pieces.length) ?? ''}\r\n${opts.trailer ?? ''}\r\n`));
  return Buffer.concat(parts);
}

/** Deterministic bytes (CR, LF and "0\r\n\r\n" included, to look like framing). */
function noisy(n: number, seed: number): Buffer {
  const alphabet = b('ab\r\n0;:\t \x00\xff9fF');
  const out = Buffer.alloc(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = alphabet[(x >>> 16) % alphabet.length]!;
  }
  return out;
}

const NEXT_RESPONSE = b('HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED');

const VALID: Array<[string, Buffer]> = [
  ['one chunk', b('5\r\nhello\r\n0\r\n\r\n')],
  ['only the last chunk', b('0\r\n\r\n')],
  ['data that looks like the last chunk', b('7\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n')],
  ['extensions on data chunks and on the last chunk', b('5;name=value\r\nhello\r\n3;a;b="q s"\r\nabc\r\n0;last=1\r\n\r\n')],
  ['whitespace and a tab before an extension, a tab inside it', b('5 ;x\r\nhello\r\n3\t;y=\tz\r\nabc\r\n0\r\n\r\n')],
  ['a trailer section', b('5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n')],
  ['extension and trailer together', b('4;k=v\r\nwiki\r\n0;end\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n')],
  ['upper-case hex sizes', chunked([noisy(10, 1), noisy(0xab, 2), noisy(0xff, 3), noisy(0x1f0, 4)], { upper: true })],
  ['lower-case hex sizes', chunked([noisy(10, 1), noisy(0xab, 2), noisy(0xff, 3), noisy(0x1f0, 4)])],
  ['mixed-case hex and leading zeros', b(`00Ab\r\n${'x'.repeat(0xab)}\r\n000000000000005\r\nhello\r\naB\r\n${'y'.repeat(0xab)}\r\n0\r\n\r\n`)],
  [
    'many chunks with noisy data',
    chunked(
      Array.from({ length: 60 }, (_, i) => noisy(1 + ((i * 37) % 90), i)),
      { ext: (i) => (i % 3 === 0 ? `;i=${i}` : ''), trailer: 'X-Count: 60\r\nX-More: yes\r\n' },
    ),
  ],
];

const MALFORMED: Array<[string, Buffer]> = [
  ['bare LF after the size', b('5\nhello\r\n0\r\n\r\n')],
  ['bare LF after the data', b('5\r\nhello\n0\r\n\r\n')],
  ['bare CR after the size', b('5\rhello\r\n0\r\n\r\n')],
  ['data longer than its size (no CRLF after the data)', b('5\r\nhelloX\r\n0\r\n\r\n')],
  ['next size right after the data', b('5\r\nhello0\r\n\r\n')],
  ['non-hex size', b('zz\r\nhello\r\n0\r\n\r\n')],
  ['hex then garbage in the size', b('5g\r\nhello\r\n0\r\n\r\n')],
  ['0x prefix', b('0x5\r\nhello\r\n0\r\n\r\n')],
  ['negative size', b('-5\r\nhello\r\n0\r\n\r\n')],
  ['sixteen hex digits', b('0000000000000005\r\nhello\r\n0\r\n\r\n')],
  ['empty size', b('\r\nhello\r\n0\r\n\r\n')],
  ['extension without a size', b(';ext\r\nhello\r\n0\r\n\r\n')],
  ['leading whitespace before the size', b(' 5\r\nhello\r\n0\r\n\r\n')],
  ['CTL in an extension', b('5;a=\x01b\r\nhello\r\n0\r\n\r\n')],
  ['DEL in an extension', b('5;a=\x7f\r\nhello\r\n0\r\n\r\n')],
  ['bare LF ending an extension', b('5;a=b\nhello\r\n0\r\n\r\n')],
  ['bare LF in the trailer section', b('5\r\nhello\r\n0\r\nX-A: b\n\r\n')],
  ['CTL in a trailer line', b('0\r\nX-A: \x02\r\n\r\n')],
  ['last chunk followed by CR CR', b('0\r\n\r\r')],
];

describe('ChunkedScanner: the end of a valid chunked body', () => {
  for (const [name, body] of VALID) {
    it(`${name}: found at every split, with nothing after it`, () => {
      const r = everySplit(body);
      expect(r.whole).toBe(body.length);
      expect(r.bytes).toBe(body.length);
      expect(r.splits.filter((e) => e !== body.length)).toEqual([]);
    });

    it(`${name}: found at every split when a next response follows (bytes after the end left over)`, () => {
      const buf = Buffer.concat([body, NEXT_RESPONSE]);
      const r = everySplit(buf);
      expect(r.whole).toBe(body.length);
      expect(r.bytes).toBe(body.length);
      // Wherever the split falls, the end is the body's end: never inside the next response.
      expect(r.splits.filter((e) => e !== body.length)).toEqual([]);
    });

    it(`${name}: any strict prefix is still going on (-1)`, () => {
      for (let k = 0; k < body.length; k++) expect(scanParts([body.subarray(0, k)])).toBe(-1);
    });
  }

  it('scan(buf, from) reads from `from` and returns an offset in buf (a body after a response head)', () => {
    const head = b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    const body = b('3\r\nabc\r\n0\r\n\r\n');
    const buf = Buffer.concat([head, body, NEXT_RESPONSE]);
    expect(new ChunkedScanner().scan(buf, head.length)).toBe(head.length + body.length);
  });

  it('a chunk of fifteen hex digits is accepted (its data simply goes on)', () => {
    const s = new ChunkedScanner();
    expect(s.scan(b('fffffffffffffff\r\n'), 0)).toBe(-1);
    expect(s.scan(Buffer.alloc(100_000, 0x41), 0)).toBe(-1);
  });

  it('the declared size is honoured exactly: a body with CRLF in the data ends only at the real last chunk', () => {
    const data = b('\r\n0\r\n\r\n');
    const body = b(`${data.length.toString(16)}\r\n`);
    const full = Buffer.concat([body, data, b('\r\n0\r\n\r\n')]);
    expect(scanParts([full])).toBe(full.length);
    expect(scanParts([Buffer.concat([body, data])])).toBe(-1);
  });
});

describe('ChunkedScanner: malformed bodies are -2', () => {
  for (const [name, body] of MALFORMED) {
    it(`${name}: -2 whole, byte by byte and at every split, never an end`, () => {
      const r = everySplit(body);
      expect(r.whole).toBe(-2);
      expect(r.bytes).toBe(-2);
      expect(r.splits.filter((e) => e !== -2)).toEqual([]);
    });
  }

  it('an extension longer than its bound is -2', () => {
    expect(scanParts([b(`5;${'a'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`)])).toBe(-2);
  });

  it('a trailer line longer than its bound is -2', () => {
    expect(scanParts([b(`0\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`)])).toBe(-2);
  });
});

function resp(text: string, from = 0, max = 64 * 1024): ResponseHead | 'incomplete' | 'malformed' {
  return parseResponseHead(b(text), from, max);
}

function head(text: string): ResponseHead {
  const h = resp(text);
  if (typeof h === 'string') throw new Error(`expected a head, got ${h}`);
  return h;
}

describe('parseResponseHead', () => {
  it('status, reason, raw headers and the offset past the blank line', () => {
    const text = 'HTTP/1.1 404 Not Found Here\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc';
    const h = head(text);
    expect(h.status).toBe(404);
    expect(h.reason).toBe('Not Found Here');
    expect(h.headers).toEqual(['Content-Type', 'text/plain', 'Content-Length', '3']);
    expect(h.length).toBe(3);
    expect(h.close).toBe(false);
    expect(h.end).toBe(text.length - 3);
  });

  it('a status line without a reason phrase', () => {
    const h = head('HTTP/1.1 204\r\n\r\n');
    expect(h.status).toBe(204);
    expect(h.reason).toBe('');
  });

  it('reads a head that starts at `from` (a final response after a 100 Continue)', () => {
    const interim = 'HTTP/1.1 100 Continue\r\n\r\n';
    const text = `${interim}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`;
    const first = head(text);
    expect(first.status).toBe(100);
    expect(first.end).toBe(interim.length);
    const h = resp(text, first.end);
    expect(h).toMatchObject({ status: 200, length: 2, end: text.length - 2 });
  });

  describe('Content-Length', () => {
    it('a list of equal values is that length', () => {
      expect(head('HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n').length).toBe(5);
      expect(head('HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n').length).toBe(5);
    });

    it('differing values are malformed (list or repeated header)', () => {
      expect(resp('HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n')).toBe('malformed');
      expect(resp('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n')).toBe('malformed');
    });

    for (const v of ['abc', '+5', '-1', '0x5', '5a', '5 5', '', '5,', '1e3', '1234567890123456']) {
      it(`non-digit or oversized value ${JSON.stringify(v)} is malformed`, () => {
        expect(resp(`HTTP/1.1 200 OK\r\nContent-Length: ${v}\r\n\r\n`)).toBe('malformed');
      });
    }

    it('zero is a length of 0', () => {
      expect(head('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').length).toBe(0);
    });
  });

  describe('Transfer-Encoding', () => {
    it('chunked', () => {
      const h = head('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      expect(h.length).toBe('chunked');
      expect(h.close).toBe(false);
    });

    it('chunked in any case', () => {
      expect(head('HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n').length).toBe('chunked');
    });

    it('chunked beside a Content-Length: chunked wins', () => {
      expect(head('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n').length).toBe('chunked');
      expect(head('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n').length).toBe('chunked');
    });

    it('`gzip, chunked` (chunked last) is chunked', () => {
      expect(resp('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n')).toMatchObject({ length: 'chunked' });
    });

    it('`gzip` then `chunked` in two headers (chunked last) is chunked', () => {
      expect(resp('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({ length: 'chunked' });
    });

    it('`chunked, gzip` (chunked not last) is malformed', () => {
      expect(resp('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n')).toBe('malformed');
      expect(resp('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n')).toBe('malformed');
    });

    it('a coding without chunked is read until the origin closes', () => {
      const h = head('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 10\r\n\r\n');
      expect(h.length).toBe('close');
      expect(h.te).toBe('gzip');
      // close is the Connection header's word only; a body until close is the framing's.
      expect(h.close).toBe(false);
    });
  });

  describe('connection close', () => {
    it('no length and no chunked: the body runs until the origin closes (framing, not the Connection header)', () => {
      const h = head('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n');
      expect(h.length).toBe('close');
      expect(h.close).toBe(false);
    });

    it('HTTP/1.0 closes', () => {
      const h = head('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n');
      expect(h.length).toBe(2);
      expect(h.close).toBe(true);
    });

    it('HTTP/1.0 with Connection: keep-alive stays open', () => {
      expect(head('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n').close).toBe(false);
    });

    it('Connection: close (also inside a list, any case)', () => {
      expect(head('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n').close).toBe(true);
      expect(head('HTTP/1.1 200 OK\r\nconnection: X-Foo, Close\r\nContent-Length: 2\r\n\r\n').close).toBe(true);
      expect(head('HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 2\r\n\r\n').close).toBe(false);
    });
  });

  describe('malformed heads', () => {
    const cases: Array<[string, string]> = [
      ['garbage instead of a status line', 'garbage\r\n\r\n'],
      ['garbage not even starting like HTTP (rejected before the blank line)', 'SSH-2.0-OpenSSH'],
      ['HTTP/2 status line', 'HTTP/2 200 OK\r\n\r\n'],
      ['HTTP/1.2', 'HTTP/1.2 200 OK\r\n\r\n'],
      ['two-digit status', 'HTTP/1.1 20 OK\r\n\r\n'],
      ['status starting with 0', 'HTTP/1.1 099 Odd\r\n\r\n'],
      ['lower-case protocol', 'http/1.1 200 OK\r\n\r\n'],
      ['obs-fold continuation line', 'HTTP/1.1 200 OK\r\nX-A: b\r\n  c\r\nContent-Length: 0\r\n\r\n'],
      ['tab-folded continuation line', 'HTTP/1.1 200 OK\r\nX-A: b\r\n\tc\r\nContent-Length: 0\r\n\r\n'],
      ['a header line without a colon', 'HTTP/1.1 200 OK\r\ngarbage line\r\nContent-Length: 0\r\n\r\n'],
      ['whitespace before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n'],
      ['bare LF inside the head', 'HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 5\r\n\r\n'],
      ['NUL in a value', 'HTTP/1.1 200 OK\r\nX-A: b\x00c\r\n\r\n'],
      ['empty header name', 'HTTP/1.1 200 OK\r\n: x\r\n\r\n'],
    ];
    for (const [name, text] of cases) {
      it(name, () => {
        expect(resp(text)).toBe('malformed');
      });
    }
  });

  describe('incomplete and oversize', () => {
    it('a head without its blank line yet is incomplete (also the first bytes of "HTTP/")', () => {
      expect(resp('')).toBe('incomplete');
      expect(resp('HT')).toBe('incomplete');
      expect(resp('HTTP/1.1 200 OK\r\nContent-Le')).toBe('incomplete');
      expect(resp('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r')).toBe('incomplete');
    });

    it('more than `max` bytes without a blank line is malformed', () => {
      const text = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(2000)}`;
      expect(resp(text, 0, 4096)).toBe('incomplete');
      expect(resp(text, 0, 1024)).toBe('malformed');
    });

    it('a complete head longer than `max` is malformed; one exactly `max` long is read', () => {
      const text = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(1000)}\r\nContent-Length: 0\r\n\r\n`;
      expect(resp(text, 0, text.length - 1)).toBe('malformed');
      expect(resp(text, 0, text.length)).toMatchObject({ status: 200, length: 0, end: text.length });
    });
  });
});

function req(text: string, max = 32 * 1024): RequestHead | 'incomplete' | 'other' {
  return parseRequestHead(b(text), max);
}

describe('parseRequestHead', () => {
  const GET = 'GET http://allowed.test:8080/a?b=c HTTP/1.1\r\nHost: allowed.test:8080\r\nAccept: */*\r\n\r\n';

  it('accepts an absolute-form GET: method, target, host, raw headers, end', () => {
    const r = req(`${GET}GET http://next`);
    expect(r).toEqual({
      method: 'GET',
      target: 'http://allowed.test:8080/a?b=c',
      headers: ['Host', 'allowed.test:8080', 'Accept', '*/*'],
      host: 'allowed.test:8080',
      hosts: 1,
      proxyAuthorization: undefined,
      close: false,
      end: GET.length,
    });
  });

  it('accepts HEAD, OPTIONS and DELETE without a body', () => {
    for (const m of ['HEAD', 'OPTIONS', 'DELETE']) {
      expect(req(`${m} http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n`)).toMatchObject({ method: m });
    }
  });

  it('Connection: close is noted', () => {
    expect(req('GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, Close\r\n\r\n')).toMatchObject({ close: true });
  });

  it('one Proxy-Authorization is kept; two Host headers are counted (the front answers 400)', () => {
    expect(req('GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nProxy-Authorization: Basic eDp5\r\n\r\n')).toMatchObject({ proxyAuthorization: 'Basic eDp5' });
    expect(req('GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n')).toMatchObject({ host: 'a.test', hosts: 2 });
  });

  it('CONNECT without a Host header is accepted', () => {
    expect(req('CONNECT allowed.test:443 HTTP/1.1\r\n\r\n')).toMatchObject({ method: 'CONNECT', target: 'allowed.test:443', hosts: 0, host: undefined });
  });

  const OTHER: Array<[string, string]> = [
    ['POST', 'POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n'],
    ['POST even without a body header', 'POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n'],
    ['PUT', 'PUT http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n'],
    ['a GET with Content-Length', 'GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n'],
    ['a GET with Transfer-Encoding', 'GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['a DELETE with Content-Length (any case)', 'DELETE http://a.test/ HTTP/1.1\r\nHost: a.test\r\ncontent-LENGTH: 5\r\n\r\n'],
    ['Upgrade', 'GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'],
    ['Expect', 'GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n\r\n'],
    ['HTTP/1.0', 'GET http://a.test/ HTTP/1.0\r\nHost: a.test\r\n\r\n'],
    ['lower-case method', 'get http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n'],
    ['missing Host (not CONNECT)', 'GET http://a.test/ HTTP/1.1\r\nAccept: */*\r\n\r\n'],
    ['a space before a header colon', 'GET http://a.test/ HTTP/1.1\r\nHost : a.test\r\n\r\n'],
    ['a space before the Host header name (obs-fold-like)', 'GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n Host: b.test\r\n\r\n'],
    ['two Proxy-Authorization headers', 'GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nProxy-Authorization: Basic eDp5\r\nproxy-authorization: Basic YTpi\r\n\r\n'],
    ['a bare LF inside the head', 'GET http://a.test/ HTTP/1.1\r\nHost: a.test\nX-A: b\r\n\r\n'],
    ['two spaces in the request line', 'GET  http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n'],
    ['an unknown method', 'PROPFIND http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n'],
  ];
  for (const [name, text] of OTHER) {
    it(`'other' for ${name}`, () => {
      expect(req(text)).toBe('other');
    });
  }

  describe("'incomplete' vs 'other' at the max size", () => {
    const max = 1024;
    const start = 'GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nX-Pad: ';

    it('no blank line yet and under max: incomplete', () => {
      expect(req(start.padEnd(max - 1, 'a'), max)).toBe('incomplete');
    });

    it('no blank line and max bytes already: other (node:http answers the oversize)', () => {
      expect(req(start.padEnd(max, 'a'), max)).toBe('other');
      expect(req(start.padEnd(max + 500, 'a'), max)).toBe('other');
    });

    it('a whole head of exactly max bytes is read; one byte more is other', () => {
      const exact = `${start.padEnd(max - 4, 'a')}\r\n\r\n`;
      expect(exact.length).toBe(max);
      expect(req(exact, max)).toMatchObject({ method: 'GET', end: max });
      const over = `${start.padEnd(max - 3, 'a')}\r\n\r\n`;
      expect(req(over, max)).toBe('other');
    });
  });
});
