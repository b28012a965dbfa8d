import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type Step, Reply, Socks5Parser, replyMessage } from '../../src/doors/socks5/parser.js';
import { SOCKS5_MALFORMED } from '../fixtures/socks5-cases.js';
import { ipBytesToText } from '../../src/policy/ip.js';

const domainRequest = (host: string, port: number) => {
  const n = Buffer.from(host);
  return Buffer.from([5, 1, 0, 3, n.length, ...n, port >> 8, port & 0xff]);
};

/** Drives the parser the way the door does; returns the last step. */
function drive(p: Socks5Parser): { stage: string; step: Step<unknown> } {
  const g = p.greeting();
  if (g.type !== 'message') return { stage: 'greeting', step: g };
  if (g.message.methods.includes(2)) {
    const a = p.auth();
    if (a.type !== 'message') return { stage: 'auth', step: a };
  }
  return { stage: 'request', step: p.request() };
}

describe('Socks5Parser', () => {
  it('parses a greeting fed one byte at a time', () => {
    const p = new Socks5Parser();
    const bytes = [5, 2, 0, 2];
    for (let i = 0; i < bytes.length - 1; i++) {
      p.push(Buffer.from([bytes[i]!]));
      expect(p.greeting().type).toBe('need');
    }
    p.push(Buffer.from([bytes.at(-1)!]));
    expect(p.greeting()).toEqual({ type: 'message', message: { methods: [0, 2] } });
    expect(p.buffered).toBe(0);
  });

  it('parses greeting + auth + request + early data from one packet', () => {
    const p = new Socks5Parser();
    p.push(Buffer.concat([Buffer.from([5, 1, 2]), Buffer.from([1, 3, ...Buffer.from('dbx'), 2, ...Buffer.from('pw')]), domainRequest('allowed.test', 8080), Buffer.from('GET / HTTP/1.1\r\n')]));
    expect(p.greeting()).toEqual({ type: 'message', message: { methods: [2] } });
    expect(p.auth()).toEqual({ type: 'message', message: { username: 'dbx', password: 'pw' } });
    expect(p.request()).toEqual({ type: 'message', message: { command: 1, addressType: 'domain', host: 'allowed.test', port: 8080 } });
    expect(p.takeRest().toString()).toBe('GET / HTTP/1.1\r\n');
  });

  it('parses every request byte by byte', () => {
    const req = domainRequest('a.b.example.test', 443);
    const p = new Socks5Parser();
    for (let i = 0; i < req.length - 1; i++) {
      p.push(req.subarray(i, i + 1));
      expect(p.request().type).toBe('need');
    }
    p.push(req.subarray(req.length - 1));
    expect(p.request()).toMatchObject({ type: 'message', message: { host: 'a.b.example.test', port: 443 } });
  });

  it('parses IPv4 and IPv6 destinations to canonical text', () => {
    const p = new Socks5Parser();
    p.push(Buffer.from([5, 1, 0, 1, 127, 0, 0, 2, 0x1f, 0x90]));
    expect(p.request()).toEqual({ type: 'message', message: { command: 1, addressType: 'ipv4', host: '127.0.0.2', port: 8080 } });
    const v6 = Buffer.alloc(16);
    v6[15] = 1;
    p.push(Buffer.from([5, 1, 0, 4, ...v6, 0, 80]));
    expect(p.request()).toEqual({ type: 'message', message: { command: 1, addressType: 'ipv6', host: '::1', port: 80 } });
  });

  it('formats IPv6 like RFC 5952 (the one formatter, policy/ip.ts), IPv4-mapped as the IPv4 address', () => {
    const b = (words: number[]) => {
      const out = Buffer.alloc(16);
      words.forEach((w, i) => {
        out.writeUInt16BE(w, i * 2);
      });
      return out;
    };
    expect(ipBytesToText(b([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]), 0, 16)).toBe('2001:db8::1:0:0:1');
    expect(ipBytesToText(b([0, 0, 0, 0, 0, 0, 0, 0]), 0, 16)).toBe('::');
    expect(ipBytesToText(b([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 0, 16)).toBe('fe80::');
    expect(ipBytesToText(b([1, 0, 2, 3, 4, 5, 6, 7]), 0, 16)).toBe('1:0:2:3:4:5:6:7');
    expect(ipBytesToText(b([0, 0, 0, 0, 0, 0xffff, 0x7f00, 1]), 0, 16)).toBe('127.0.0.1');
  });

  it('keeps the domain bytes verbatim for normalizeHost to judge', () => {
    const p = new Socks5Parser();
    p.push(Buffer.from([5, 1, 0, 3, 5, ...Buffer.from('a\0b.c'), 0, 80]));
    expect(p.request()).toMatchObject({ type: 'message', message: { host: 'a\0b.c' } });
  });

  for (const c of SOCKS5_MALFORMED) {
    if (c.protocolError === 'truncated' || c.protocolError === 'no_acceptable_method') continue; // door-level outcomes
    it(`fixture: ${c.name} → ${c.protocolError}`, () => {
      const p = new Socks5Parser();
      p.push(c.send);
      const { step } = drive(p);
      expect(step.type).toBe('error');
      if (step.type === 'error') expect(step.kind).toBe(c.protocolError);
    });
  }

  it('truncated input is "need", never an error', () => {
    const p = new Socks5Parser();
    p.push(Buffer.from([5, 1, 0, 3, 0xff, 0x61]));
    expect(p.request().type).toBe('need');
  });

  it('never throws on arbitrary input, in any chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 12 }), (chunks) => {
        const p = new Socks5Parser();
        let stage = 0;
        for (const ch of chunks) {
          p.push(Buffer.from(ch));
          for (;;) {
            const s = stage === 0 ? p.greeting() : stage === 1 ? p.auth() : p.request();
            if (s.type !== 'message') return true;
            stage = Math.min(2, stage + 1);
          }
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});

describe('replyMessage', () => {
  it('encodes failures with a zero IPv4 bound address', () => {
    expect([...replyMessage(Reply.notAllowed)]).toEqual([5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
  });
  it('encodes IPv4 (and mapped) bound addresses', () => {
    expect([...replyMessage(Reply.succeeded, { address: '127.0.0.1', port: 0x1234 })]).toEqual([5, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34]);
    expect([...replyMessage(Reply.succeeded, { address: '::ffff:127.0.0.3', port: 1 })]).toEqual([5, 0, 0, 1, 127, 0, 0, 3, 0, 1]);
  });
  it('encodes IPv6 bound addresses', () => {
    const r = replyMessage(Reply.succeeded, { address: '2001:db8::1', port: 80 });
    expect(r.length).toBe(22);
    expect(r[3]).toBe(4);
    expect(r.subarray(4, 20).toString('hex')).toBe('20010db8000000000000000000000001');
    expect(r.readUInt16BE(20)).toBe(80);
  });
});
