/**
 * The readers of the TLS handshake window (src/doors/floor/handshake-window.ts), fed as bytes
 * arrive: the server's side ends the window at the first ServerHello that is not a
 * HelloRetryRequest, whatever the record and read boundaries; the client's side hands every
 * further ClientHello to the judge, and never lets a byte of a hello go before it is judged.
 */
import { describe, expect, it } from 'vitest';
import { ClientHelloWatch, HRR_RANDOM, ServerHelloWatch } from '../../src/doors/floor/handshake-window.js';
import type { ClientHelloInfo } from '../../src/doors/floor/clienthello.js';
import { clientHelloMessage, records } from '../fixtures/clienthello.js';

const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number) => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
const record = (type: number, frag: Buffer) => Buffer.concat([Buffer.from([type, 3, 3]), u16(frag.length), frag]);

/** A ServerHello handshake message (HRR when `retry`), with `extra` bytes of extensions. */
function serverHello(retry: boolean, extra = 0): Buffer {
  const exts = Buffer.concat([u16(43), u16(2), u16(0x0304), ...(extra > 0 ? [u16(44), u16(extra), Buffer.alloc(extra, 3)] : [])]);
  const body = Buffer.concat([Buffer.from([3, 3]), retry ? HRR_RANDOM : Buffer.alloc(32, 1), Buffer.from([0]), u16(0x1301), Buffer.from([0]), u16(exts.length), exts]);
  return Buffer.concat([Buffer.from([2]), u24(body.length), body]);
}
const CCS = record(20, Buffer.from([1]));

/** Pushes `bytes` cut at `cuts`; the first non-null answer and the offset where it came. */
function serverRead(bytes: Buffer, cuts: number[]): { r: string | null; at: number } {
  const w = new ServerHelloWatch();
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    const r = w.push(bytes, from, to);
    if (r !== null) return { r, at: to };
    from = to;
  }
  return { r: null, at: bytes.length };
}

describe('ServerHelloWatch', () => {
  const hrr = records(serverHello(true, 40), 16384, 0x0303);
  const sh = records(serverHello(false), 16384, 0x0303);

  it('a HelloRetryRequest (and its ChangeCipherSpec) keeps the window open; the ServerHello after it ends it, at every read boundary', () => {
    const flight = Buffer.concat([hrr, CCS]);
    for (let cut = 0; cut <= flight.length; cut++) expect(serverRead(flight, [cut]).r).toBeNull();
    const both = Buffer.concat([hrr, CCS, sh]);
    for (let cut = 1; cut < both.length; cut++) {
      expect(serverRead(both, [cut]).r).toBe('stop');
    }
  });

  it('a ServerHello split over 1-byte records, fed one byte at a time, ends the window at its last byte', () => {
    const flight = records(serverHello(false), 1, 0x0303);
    const cuts = Array.from({ length: flight.length - 1 }, (_, i) => i + 1);
    expect(serverRead(flight, cuts)).toEqual({ r: 'stop', at: flight.length });
  });

  it('a TLS 1.2 ServerHello with the Certificate in the same record ends the window at once', () => {
    const cert = Buffer.concat([Buffer.from([11]), u24(3), Buffer.from([0, 0, 0])]);
    expect(serverRead(record(22, Buffer.concat([serverHello(false), cert])), []).r).toBe('stop');
  });

  it.each([
    ['an SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.6\r\n')],
    ['application data before any ServerHello', record(23, Buffer.alloc(20))],
    ['a handshake message that is not a ServerHello', record(22, Buffer.concat([Buffer.from([11]), u24(40), Buffer.alloc(40)]))],
    ['a record of an unknown type', Buffer.concat([record(22, serverHello(true)), record(99, Buffer.alloc(4))])],
  ])('%s: not a TLS server (the window ends; it will act on no hello)', (_n, bytes) => {
    expect(serverRead(bytes, []).r).toBe('not_tls');
  });

  it('an alert keeps the window open (the connection ends anyway)', () => {
    expect(serverRead(record(21, Buffer.from([1, 112])), []).r).toBeNull();
  });
});

/** A client side fed `bytes` cut at `cuts`: the hellos judged, the refusal, and `judged` after each push. */
function clientRead(bytes: Buffer, cuts: number[], verdict: (h: ClientHelloInfo) => string | null = () => null) {
  const judged: ClientHelloInfo[] = [];
  const offsets: number[] = [];
  const w = new ClientHelloWatch((h) => {
    judged.push(h);
    return verdict(h);
  });
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    const r = w.push(bytes, from, to);
    if (r !== null) return { judged, refusal: r, offsets };
    offsets.push(w.judged);
    from = to;
  }
  return { judged, refusal: null, offsets };
}

describe('ClientHelloWatch', () => {
  const hello2 = records(clientHelloMessage({ sni: 'evil.test', padding: 50 }), 16384, 0x0303);
  const flight = Buffer.concat([CCS, hello2]);

  it('judges hello 2 after a ChangeCipherSpec, at every read boundary, and holds every byte of it until judged', () => {
    for (let cut = 0; cut <= flight.length; cut++) {
      const r = clientRead(flight, [cut]);
      expect(r.judged).toEqual([{ sni: 'evil.test', ech: false, length: 0 }]);
      // Before the last byte: at most the CCS and the hello's record header may go.
      if (cut < flight.length) expect(r.offsets[0]).toBeLessThanOrEqual(CCS.length + 5);
      expect(r.offsets.at(-1)).toBe(flight.length);
    }
  });

  it("a refused hello 2 is refused with the judge's reason and none of its message was released", () => {
    const r = clientRead(flight, [CCS.length + 20], () => 'sni_mismatch');
    expect(r.refusal).toBe('sni_mismatch');
    expect(r.offsets).toEqual([CCS.length + 5]);
  });

  it('a hello 2 in 1-byte records, fed one byte at a time, is judged once whole', () => {
    const bytes = records(clientHelloMessage({ sni: 'front.test' }), 1, 0x0303);
    const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    const r = clientRead(bytes, cuts);
    expect(r.judged.map((h) => h.sni)).toEqual(['front.test']);
    expect(r.offsets.at(-1)).toBe(bytes.length);
  });

  it('early data (application data records) is released as it comes', () => {
    const early = record(23, Buffer.alloc(100, 1));
    expect(clientRead(early, [50]).offsets).toEqual([50, early.length]);
  });

  it('an ECH extension in hello 2 reaches the judge (pre-standard codepoints included)', () => {
    for (const t of [0xfe0d, 0xfd00, 0xffce, 0xff02, 0xfe08, 0xfe0a, 0xfe0c]) {
      const h = records(clientHelloMessage({ sni: 'front.test', extensions: [[t, Buffer.from([0, 1, 2])]] }), 16384, 0x0303);
      expect(clientRead(h, []).judged).toEqual([{ sni: 'front.test', ech: true, length: 0 }]);
    }
  });

  it.each([
    ['a handshake message other than a ClientHello', record(22, Buffer.concat([Buffer.from([16]), u24(40), Buffer.alloc(40)])), 'malformed_handshake'],
    ['a ClientHello longer than the limit', record(22, Buffer.concat([Buffer.from([1]), u24(70_000), Buffer.alloc(100)])), 'malformed_handshake'],
    ['another record type inside a hello', Buffer.concat([record(22, clientHelloMessage({ sni: 'a.test' }).subarray(0, 20)), CCS]), 'malformed_record'],
    ['a record of an unknown type', record(99, Buffer.alloc(3)), 'malformed_record'],
    ['a hello whose body is malformed', record(22, Buffer.concat([Buffer.from([1]), u24(40), Buffer.alloc(40, 0xff)])), 'malformed_handshake'],
  ])('%s is refused', (_n, bytes, reason) => {
    const r = clientRead(bytes, []);
    expect(r.refusal).toBe(reason);
  });
});
