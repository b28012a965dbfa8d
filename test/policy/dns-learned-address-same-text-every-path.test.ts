/**
 * One address, one text: the same address bytes read from a DNS answer (what the DNS door
 * learns), from a SOCKS5 request (what a client then dials) and spelled by a client as a
 * literal (what the engine canonicalises) must come out as the same string, or an address
 * learned through DNS would not match the connection that follows. Pins the one formatter
 * (ipBytesToText, src/policy/ip.ts) for IPv4-mapped IPv6, RFC 5952 compression and case.
 */
import { describe, expect, it } from 'vitest';
import { inspectAnswer } from '../../src/resolver/wire.js';
import { Socks5Parser } from '../../src/doors/socks5/parser.js';
import { parseIpLiteral } from '../../src/policy/ip.js';
import { rig } from '../support/policy-rig.js';

/** Public addresses (so the private-address guardrail does not answer first), by what they pin. */
const ADDRESSES: Record<string, { bytes: number[]; canonical: string }> = {
  'ipv4 (A record)': { bytes: [93, 184, 216, 34], canonical: '93.184.216.34' },
  'ipv4-mapped ipv6 (AAAA ::ffff:a.b.c.d) is the IPv4 address': {
    bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 93, 184, 216, 34],
    canonical: '93.184.216.34',
  },
  'ipv6, one run of zeros compressed': { bytes: words(0x2606, 0x4700, 0, 0, 0, 0, 0x6810, 0x84e5), canonical: '2606:4700::6810:84e5' },
  'ipv6, the first of two equal runs compressed': { bytes: words(0x2a00, 0x1450, 0, 0, 1, 0, 0, 1), canonical: '2a00:1450::1:0:0:1' },
  'ipv6, the longer later run compressed': { bytes: words(0x2a00, 0, 0, 1, 0, 0, 0, 1), canonical: '2a00:0:0:1::1' },
  'ipv6, a single zero group not compressed': { bytes: words(0x2a00, 0x1450, 0x4001, 0, 1, 2, 3, 4), canonical: '2a00:1450:4001:0:1:2:3:4' },
  'ipv6, hex in lower case': { bytes: words(0x2a0b, 0xabcd, 0xef01, 0xa, 0xb, 0xc, 0xd, 0xe), canonical: '2a0b:abcd:ef01:a:b:c:d:e' },
};

function words(...w: number[]): number[] {
  return w.flatMap((x) => [x >> 8, x & 255]);
}

const NAME = 'learned.example.com';

/** An upstream answer to NAME with one A or AAAA record holding `bytes`. */
function answer(bytes: number[]): Buffer {
  const qname = Buffer.from([7, ...Buffer.from('learned'), 7, ...Buffer.from('example'), 3, ...Buffer.from('com'), 0]);
  const type = bytes.length === 4 ? 1 : 28;
  const header = Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
  const question = Buffer.concat([qname, Buffer.from([0, type, 0, 1])]);
  const record = Buffer.from([0xc0, 12, 0, type, 0, 1, 0, 0, 1, 44, 0, bytes.length, ...bytes]);
  return Buffer.concat([header, question, record]);
}

function viaDns(bytes: number[]): string {
  const info = inspectAnswer(answer(bytes));
  expect(info?.addresses).toHaveLength(1);
  return info!.addresses[0]!;
}

function viaSocks5(bytes: number[]): string {
  const p = new Socks5Parser();
  p.push(Buffer.from([5, 1, 0]));
  expect(p.greeting().type).toBe('message');
  p.push(Buffer.from([5, 1, 0, bytes.length === 4 ? 1 : 4, ...bytes, 1, 187]));
  const step = p.request();
  if (step.type !== 'message') throw new Error(`SOCKS5 request not parsed: ${JSON.stringify(step)}`);
  return step.message.host;
}

/** A client's spelling of the literal: IPv6 fully expanded in upper case. */
function spelled(bytes: number[]): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16).toUpperCase().padStart(4, '0'));
  return groups.join(':');
}

describe('an address has one text on every path (DNS answer, SOCKS5 request, engine)', () => {
  for (const [what, { bytes, canonical }] of Object.entries(ADDRESSES)) {
    it(`${what}: ${canonical}`, () => {
      expect(viaDns(bytes)).toBe(canonical);
      expect(viaSocks5(bytes)).toBe(canonical);
      expect(parseIpLiteral(spelled(bytes))?.ip).toBe(canonical);
    });
  }

  it('an address learned from a DNS answer admits the SOCKS5 connection to the same bytes', () => {
    const { engine, who } = rig({ allowed_hostnames: [NAME] });
    for (const [what, { bytes }] of Object.entries(ADDRESSES)) {
      engine.learned.learn(who.devboxId!, NAME, [viaDns(bytes)], 300);
      const d = engine.decide(who, viaSocks5(bytes), 443);
      expect({ what, allow: d.allow, reason: d.reason, matched: d.matched }).toEqual({ what, allow: true, reason: 'dns_learned', matched: NAME });
    }
  });
});
