/**
 * Truncation both ways: an upstream answer with TC set is asked again over TCP; an answer
 * too large for the client's UDP size goes back with TC set, and dig's TCP retry gets it.
 * Also: a dead upstream is skipped for the next one.
 */
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsSetup, answers, setupDns, status } from '../support/dns.js';

let s: DnsSetup;
const bigTxt = Array.from({ length: 8 }, (_, i) => ({ type: 'TXT', data: `${i}-${'x'.repeat(100)}`, ttl: 300 }));

beforeAll(async () => {
  s = await setupDns({
    upstream: {
      records: {
        'big.test': [{ type: 'A', data: '127.0.0.40', ttl: 300 }],
        'fat.test': bigTxt,
      },
      truncateUdp: new Set(['big.test']),
    },
    devboxes: { '127.0.0.2': ['big.test', 'fat.test'] },
  });
});
afterAll(() => s.close());

describe('truncation', () => {
  it('retries a truncated upstream answer over TCP and relays the full answer', async () => {
    const out = await s.dig('127.0.0.2', 'big.test', 'A');
    expect(status(out)).toBe('NOERROR');
    expect(answers(out)[0]!.data).toBe('127.0.0.40');
    expect(out).not.toMatch(/flags: [^;]*\btc\b/);
    expect(s.up.queries.filter((q) => q.startsWith('big.test/'))).toEqual(['big.test/A/udp', 'big.test/A/tcp']);
  });

  it('sets TC for a client whose UDP size is too small; dig retries over TCP and gets it all', async () => {
    const out = await s.dig('127.0.0.2', '+noedns', 'fat.test', 'TXT');
    expect(out).toMatch(/Truncated, retrying in TCP mode/);
    expect(status(out)).toBe('NOERROR');
    expect(answers(out)).toHaveLength(8);
    // Only one upstream query: the TCP retry was served from the cache.
    expect(s.up.countFor('fat.test')).toBe(1);
    const edns = await s.dig('127.0.0.2', 'fat.test', 'TXT');
    expect(edns).not.toMatch(/Truncated/);
    expect(answers(edns)).toHaveLength(8);
  });
});

describe('upstream failover', () => {
  it('a silent first upstream is skipped for the second', async () => {
    const dead = dgram.createSocket('udp4'); // receives and never answers
    await new Promise<void>((r) => dead.bind(0, '127.0.0.1', r));
    const r2 = await setupDns({
      upstream: { records: { 'ok.test': [{ type: 'A', data: '127.0.0.41' }] } },
      devboxes: { '127.0.0.2': ['ok.test'] },
      upstreamsBefore: [`127.0.0.1:${dead.address().port}`],
    });
    try {
      const out = await r2.dig('127.0.0.2', '+time=5', 'ok.test');
      expect(status(out)).toBe('NOERROR');
      expect(answers(out)[0]!.data).toBe('127.0.0.41');
    } finally {
      await r2.close();
      dead.close();
    }
  });

  it('SERVFAIL when no upstream answers', async () => {
    const r = await setupDns({
      upstream: { records: { 'ok.test': [{ type: 'A', data: '127.0.0.41' }] }, dropUdp: new Set(['ok.test']) },
      devboxes: { '127.0.0.2': ['ok.test'] },
    });
    try {
      const out = await r.dig('127.0.0.2', '+time=5', 'ok.test');
      expect(status(out)).toBe('SERVFAIL');
      expect(r.up.countFor('ok.test')).toBe(2); // tried, and tried again
    } finally {
      await r.close();
    }
  });
});
