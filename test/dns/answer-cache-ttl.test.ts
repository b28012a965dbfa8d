/**
 * The answer cache: a second query is served without the upstream, TTLs count down,
 * an answer expires with its TTL, TTLs are bounded by --dns-min-ttl/--dns-max-ttl,
 * and negative answers are cached per RFC 2308 (SOA). (The proxy doors sharing this cache
 * is proved in dns-learned-ip-literal.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsSetup, answers, setupDns, sleep, status } from '../support/dns.js';

let s: DnsSetup;

beforeAll(async () => {
  s = await setupDns({
    upstream: {
      records: {
        'cached.test': [{ type: 'A', data: '127.0.0.20', ttl: 300 }],
        'short.test': [{ type: 'A', data: '127.0.0.21', ttl: 1 }],
        'long.test': [{ type: 'A', data: '127.0.0.22', ttl: 86400 }],
        'nodata.test': [{ type: 'TXT', data: 'only txt', ttl: 300 }],
      },
      negativeSoa: { ttl: 600, minimum: 30 },
    },
    devboxes: { '127.0.0.2': ['cached.test', 'short.test', 'long.test', 'missing.test', 'nodata.test'] },
    flags: { 'dns-min-ttl': '0', 'dns-max-ttl': '120' },
  });
});
afterAll(() => s.close());

describe('answer cache', () => {
  it('serves the second query from the cache, with the client id and a counted-down TTL', async () => {
    const first = await s.dig('127.0.0.2', 'cached.test', 'A');
    expect(answers(first)[0]!.ttl).toBe(120); // 300 bounded by --dns-max-ttl 120
    await sleep(1100); // time passing is the point: the cached TTL counts down
    const second = await s.dig('127.0.0.2', '+tcp', 'CACHED.test', 'A');
    expect(status(second)).toBe('NOERROR');
    expect(answers(second)[0]!.data).toBe('127.0.0.20');
    expect(answers(second)[0]!.ttl).toBeLessThan(120);
    expect(answers(second)[0]!.ttl).toBeGreaterThanOrEqual(117);
    expect(second).toMatch(/;CACHED\.test\.\s+IN\s+A/); // the client's question, letter case intact
    expect(s.up.countFor('cached.test')).toBe(1);
  });

  it('asks the upstream again once the TTL has run out', async () => {
    await s.dig('127.0.0.2', 'short.test');
    await s.dig('127.0.0.2', 'short.test');
    expect(s.up.countFor('short.test')).toBe(1);
    await sleep(1200); // time passing is the point: the 1 s TTL runs out
    const again = await s.dig('127.0.0.2', 'short.test');
    expect(status(again)).toBe('NOERROR');
    expect(s.up.countFor('short.test')).toBe(2);
  });

  it('caches NXDOMAIN and NODATA for the SOA negative TTL (RFC 2308)', async () => {
    const nx1 = await s.dig('127.0.0.2', 'missing.test');
    const nx2 = await s.dig('127.0.0.2', 'missing.test');
    expect(status(nx1)).toBe('NXDOMAIN');
    expect(status(nx2)).toBe('NXDOMAIN');
    expect(nx1).not.toMatch(/EDE/); // an upstream NXDOMAIN, not a block
    expect(s.up.countFor('missing.test')).toBe(1);
    expect(nx2).toMatch(/AUTHORITY: 1/);
    expect(nx2).toMatch(/SOA/);
    const nd1 = await s.dig('127.0.0.2', 'nodata.test', 'A');
    const nd2 = await s.dig('127.0.0.2', 'nodata.test', 'A');
    expect(status(nd2)).toBe('NOERROR');
    expect(answers(nd1)).toEqual([]);
    expect(s.up.queries.filter((q) => q.startsWith('nodata.test/A/'))).toHaveLength(1);
  });
});
