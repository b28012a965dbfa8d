/**
 * Garbage in: malformed UDP messages get FORMERR (or NOTIMP) when a header can be read
 * and are dropped otherwise; abusive TCP frames close the connection. None of it stops
 * the door answering real queries, also while the garbage is still arriving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BAD_PACKETS, BAD_TCP_FRAMES, VALID_QUERY } from '../fixtures/dns-packets.js';
import { type DnsSetup, decode, frame, query, setupDns, status, tcpSession, udpBurst, udpExchange } from '../support/dns.js';

let s: DnsSetup;

beforeAll(async () => {
  s = await setupDns({
    upstream: { records: { 'allowed.test': [{ type: 'A', data: '127.0.0.9' }] } },
    devboxes: { '127.0.0.2': ['allowed.test'] },
  });
});
afterAll(() => s.close());

describe('malformed UDP messages', () => {
  for (const bad of BAD_PACKETS) {
    it(`${bad.name}: ${bad.expect}`, async () => {
      const reply = await udpExchange(s.port, '127.0.0.2', bad.bytes, bad.expect === 'drop' || bad.expect === 'any' ? 300 : 1000);
      if (bad.expect === 'drop') expect(reply).toBeNull();
      else if (bad.expect !== 'any') {
        expect(reply).not.toBeNull();
        expect(reply!.readUInt16BE(0)).toBe(bad.bytes.readUInt16BE(0)); // the client's id
        expect(reply![2]! & 0x80).toBe(0x80); // QR
        expect(['', 'NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'][(reply![3]! & 0xf) + 1]).toBe(bad.expect);
        expect(reply!.length).toBeLessThanOrEqual(Math.max(bad.bytes.length, 12));
      }
    });
  }

  it('keeps answering real queries while a flood of garbage arrives', async () => {
    const garbage = Array.from({ length: 40 }, () => BAD_PACKETS.map((b) => b.bytes)).flat();
    const flood = udpBurst(s.port, '127.0.0.2', garbage, 500);
    const real = await Promise.all([s.dig('127.0.0.2', 'allowed.test'), s.dig('127.0.0.2', '+tcp', 'allowed.test')]);
    await flood;
    for (const out of real) expect(status(out)).toBe('NOERROR');
    const r = await udpExchange(s.port, '127.0.0.2', VALID_QUERY);
    expect(decode(r!).rcode).toBe('NOERROR');
  });
});

describe('TCP framing', () => {
  for (const bad of BAD_TCP_FRAMES) {
    it(`${bad.name}: connection closed without an answer`, async () => {
      const t = await tcpSession(s.port, '127.0.0.2', bad.chunks, { end: bad.end, waitMs: 1500 });
      expect(t.closedByServer).toBe(true);
      expect(t.replies).toEqual([]);
    });
  }

  it('answers several pipelined queries on one connection, in any order, each with its id', async () => {
    const qs = [query('allowed.test', 'A', { id: 1 }), query('denied.test', 'A', { id: 2 }), query('allowed.test', 'AAAA', { id: 3 })];
    const t = await tcpSession(s.port, '127.0.0.2', [Buffer.concat(qs.map(frame))]);
    expect(t.replies.map((r) => decode(r).id).sort()).toEqual([1, 2, 3]);
    const byId = new Map(t.replies.map((r) => [decode(r).id, decode(r)]));
    expect(byId.get(1)!.rcode).toBe('NOERROR');
    expect(byId.get(2)!.rcode).toBe('NXDOMAIN');
  });

  it('reassembles a frame that arrives one byte at a time', async () => {
    const f = frame(query('allowed.test', 'A', { id: 77 }));
    const bytes = [...f].map((x) => Buffer.from([x]));
    const t = await tcpSession(s.port, '127.0.0.2', bytes);
    expect(t.replies).toHaveLength(1);
    expect(decode(t.replies[0]!).id).toBe(77);
  });

  it('a malformed message inside a good frame gets FORMERR and the connection stays usable', async () => {
    const bad = BAD_PACKETS.find((b) => b.name === 'two questions')!.bytes;
    const t = await tcpSession(s.port, '127.0.0.2', [frame(bad), frame(query('allowed.test', 'A', { id: 9 }))]);
    expect(t.replies).toHaveLength(2);
    expect(t.replies[0]![3]! & 0xf).toBe(1);
    expect(decode(t.replies[1]!).rcode).toBe('NOERROR');
  });
});
