/**
 * Attack: use the gateway as an open resolver (or an amplifier, with a spoofed source).
 * Defence: a client that is not a registered devbox gets REFUSED and nothing else: no
 * upstream query, no records, a reply no larger than its query.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsSetup, decode, frame, query, setupDns, status, tcpSession, udpExchange } from '../support/dns.js';

let s: DnsSetup;

beforeAll(async () => {
  s = await setupDns({
    upstream: { records: { 'allowed.test': [{ type: 'A', data: '127.0.0.9' }] } },
    devboxes: { '127.0.0.2': ['allowed.test'] },
  });
});
afterAll(() => s.close());

describe('unknown clients', () => {
  it('get REFUSED over UDP and TCP, and the upstream is never asked', async () => {
    const udp = await s.dig('127.0.0.3', 'allowed.test', 'A');
    const tcp = await s.dig('127.0.0.3', '+tcp', 'allowed.test', 'A');
    expect(status(udp)).toBe('REFUSED');
    expect(status(tcp)).toBe('REFUSED');
    expect(udp).toMatch(/ANSWER: 0/);
    expect(s.up.queries).toEqual([]);
  });

  it('a REFUSED reply is never larger than the query (no amplification) and carries no records', async () => {
    for (const q of [query('allowed.test', 'ANY', { edns: true }), query('allowed.test', 'TXT'), query('a'.repeat(60) + '.allowed.test', 'A', { edns: true })]) {
      const r = await udpExchange(s.port, '127.0.0.3', q);
      expect(r).not.toBeNull();
      expect(r!.length).toBeLessThanOrEqual(q.length);
      const p = decode(r!);
      expect(p.rcode).toBe('REFUSED');
      expect(p.answers ?? []).toEqual([]);
      expect(p.additionals ?? []).toEqual([]);
      expect(p.id).toBe(q.readUInt16BE(0));
    }
    const t = await tcpSession(s.port, '127.0.0.3', [frame(query('allowed.test'))]);
    expect(t.replies).toHaveLength(1);
    expect(decode(t.replies[0]!).rcode).toBe('REFUSED');
    expect(s.up.queries).toEqual([]);
  });

  it('a devbox answered before is refused once it is shut down', async () => {
    const r = await setupDns({
      upstream: { records: { 'allowed.test': [{ type: 'A', data: '127.0.0.9' }] } },
      devboxes: { '127.0.0.4': ['allowed.test'] },
    });
    try {
      expect(status(await r.dig('127.0.0.4', 'allowed.test'))).toBe('NOERROR');
      await r.g.api.shutdown(r.devboxes['127.0.0.4']!);
      expect(status(await r.dig('127.0.0.4', 'allowed.test'))).toBe('REFUSED');
    } finally {
      await r.close();
    }
  });
});
