/**
 * Attack: Encrypted ClientHello hides the real SNI from the proxy doors behind a public
 * "outer" name. Defence: the `ech` parameter is removed from every HTTPS/SVCB record the
 * door relays (also from `mandatory`), so clients fall back to a plain ClientHello.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsSetup, dig, setupDns, status } from '../support/dns.js';
import { stripSvcbEch } from '../../src/resolver/wire.js';

/** SVCB/HTTPS rdata: priority, target ".", then (key, value) params in key order. */
function svcb(priority: number, params: Array<[number, Buffer]>): Buffer {
  const parts: Buffer[] = [Buffer.from([priority >> 8, priority & 255, 0])];
  for (const [k, v] of params) {
    const h = Buffer.alloc(4);
    h.writeUInt16BE(k, 0);
    h.writeUInt16BE(v.length, 2);
    parts.push(h, v);
  }
  return Buffer.concat(parts);
}
const ALPN_H2 = Buffer.from([2, 0x68, 0x32]);
const ECH = Buffer.from('0045fe0d0041aa0020002000'.padEnd(80, 'ab'), 'hex');
const V4HINT = Buffer.from([127, 0, 0, 50]);
const MANDATORY_ALPN_ECH = Buffer.from([0, 1, 0, 5]);

let s: DnsSetup;

beforeAll(async () => {
  s = await setupDns({
    upstream: {
      records: {
        'ech.test': [
          {
            type: 'UNKNOWN_65',
            data: svcb(1, [
              [1, ALPN_H2],
              [4, V4HINT],
              [5, ECH],
            ]),
            ttl: 300,
          },
        ],
        'mandatory.test': [
          {
            type: 'UNKNOWN_65',
            data: svcb(1, [
              [0, MANDATORY_ALPN_ECH],
              [1, ALPN_H2],
              [5, ECH],
            ]),
            ttl: 300,
          },
        ],
        '_8443._https.svc.test': [
          {
            type: 'UNKNOWN_64',
            data: svcb(1, [
              [1, ALPN_H2],
              [5, ECH],
            ]),
            ttl: 300,
          },
        ],
        'plain.test': [{ type: 'UNKNOWN_65', data: svcb(1, [[1, ALPN_H2]]), ttl: 300 }],
      },
    },
    devboxes: { '127.0.0.2': ['ech.test', 'mandatory.test', '_8443._https.svc.test', 'plain.test'] },
  });
});
afterAll(() => s.close());

describe('ECH stripping', () => {
  it('removes ech from an HTTPS record and keeps the other parameters', async () => {
    const direct = await dig(s.up.port, '127.0.0.1', 'ech.test', 'HTTPS');
    expect(direct).toMatch(/ech=/); // the upstream does serve it
    const out = await s.dig('127.0.0.2', 'ech.test', 'HTTPS');
    expect(status(out)).toBe('NOERROR');
    expect(out).toMatch(/HTTPS\s+1 \. alpn="h2" ipv4hint=127\.0\.0\.50/);
    expect(out).not.toMatch(/ech=/);
    // Cached copy too.
    const again = await s.dig('127.0.0.2', '+tcp', 'ech.test', 'HTTPS');
    expect(again).not.toMatch(/ech=/);
    expect(s.up.countFor('ech.test')).toBe(2); // the direct dig and one from the door
  });

  it('removes ech from mandatory as well, and from SVCB records', async () => {
    const m = await s.dig('127.0.0.2', 'mandatory.test', 'HTTPS');
    expect(m).toMatch(/HTTPS\s+1 \. mandatory=alpn alpn="h2"/);
    expect(m).not.toMatch(/ech/);
    const v = await s.dig('127.0.0.2', '_8443._https.svc.test', 'SVCB');
    expect(status(v)).toBe('NOERROR');
    expect(v).toMatch(/SVCB\s+1 \. alpn="h2"/);
    expect(v).not.toMatch(/ech=/);
  });

  it('leaves a record without ech untouched', async () => {
    const out = await s.dig('127.0.0.2', 'plain.test', 'HTTPS');
    expect(out).toMatch(/HTTPS\s+1 \. alpn="h2"/);
  });

  it('stripSvcbEch refuses rdata it cannot parse (the record is then dropped)', () => {
    expect(stripSvcbEch(Buffer.from([0, 1, 3, 0x61]))).toBeNull();
    expect(stripSvcbEch(Buffer.concat([svcb(1, [[1, ALPN_H2]]), Buffer.from([0, 5, 0, 9, 1])]))).toBeNull();
  });
});
