/**
 * Attack: flood the resolver (or use it to amplify) from one devbox. Defence: a
 * per-client query rate (--dns-rate-limit per second); past it the client gets REFUSED,
 * other clients are unaffected, and the client is answered again in the next second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsSetup, decode, query, setupDns, sleep, status, udpBurst } from '../support/dns.js';

let s: DnsSetup;

beforeAll(async () => {
  s = await setupDns({
    upstream: { records: { 'allowed.test': [{ type: 'A', data: '127.0.0.9' }] } },
    devboxes: { '127.0.0.2': ['allowed.test'], '127.0.0.3': ['allowed.test'] },
    flags: { 'dns-rate-limit': '20' },
  });
});
afterAll(() => s.close());

describe('per-client rate limit', () => {
  it('answers REFUSED past the limit, leaves other clients alone, recovers next second', async () => {
    await s.dig('127.0.0.2', 'allowed.test'); // warm the cache
    await sleep(1000 - (Date.now() % 1000) + 20); // start of a fresh one-second window
    const replies = await udpBurst(
      s.port,
      '127.0.0.2',
      Array.from({ length: 100 }, (_, i) => query('allowed.test', 'A', { id: i })),
      300,
    );
    const rcodes = replies.map((r) => decode(r).rcode);
    expect(replies).toHaveLength(100); // every query answered, none dropped
    expect(rcodes.filter((r) => r === 'NOERROR').length).toBeLessThanOrEqual(20);
    expect(rcodes.filter((r) => r === 'REFUSED').length).toBeGreaterThanOrEqual(80);
    expect(status(await s.dig('127.0.0.3', 'allowed.test'))).toBe('NOERROR');
    await sleep(1000); // time passing is the point: the next one-second window
    expect(status(await s.dig('127.0.0.2', 'allowed.test'))).toBe('NOERROR');
  });
});
