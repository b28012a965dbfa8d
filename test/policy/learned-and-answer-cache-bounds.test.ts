/**
 * Issue 27, part 1: what a devbox's DNS answers may make the gateway hold is bounded.
 * - Addresses learned per answer: only the first --dns-learn-per-answer of an answer's
 *   addresses are turned into text and learned; the answer served keeps them all.
 * - Addresses learned per devbox: at --dns-learn-per-devbox new ones are dropped (counted by
 *   the caller) until old ones expire; nothing is evicted, nothing new is passed on.
 * - The answer cache in bytes: per account, and per host (the largest account gives way).
 */
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { LearnedAddresses } from '../../src/policy/learned.js';
import { AnswerCache, cacheKey, prepareAnswer } from '../../src/resolver/cache.js';

const BOUNDS = { minTtl: 5, maxTtl: 3600 };

function answerWith(name: string, n: number): Buffer {
  const answers = Array.from({ length: n }, (_, i) => ({ type: 'A' as const, name, class: 'IN' as const, ttl: 300, data: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }));
  return dnsPacket.encode({ type: 'response', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }], answers });
}

describe('DNS-learned addresses and the answer cache are bounded', () => {
  it('an answer of 4,000 addresses keeps 32 for learning, the served bytes keep all 4,000', () => {
    const p = prepareAnswer(answerWith('big.test', 4000), BOUNDS, 0, 32)!;
    expect(p.entry.addresses).toHaveLength(32);
    expect(p.entry.addressCount).toBe(4000);
    expect(dnsPacket.decode(p.entry.bytes).answers).toHaveLength(4000);
  });

  it('a devbox at its bound drops new addresses (counted) until old ones expire; another devbox is not affected', () => {
    const l = new LearnedAddresses(100);
    const shared: string[] = [];
    l.onLearn = (_d, _n, ip) => shared.push(ip);
    const ips = (from: number, n: number) => Array.from({ length: n }, (_, i) => `10.0.${(from + i) >> 8}.${(from + i) & 255}`);
    expect(l.learnUntil('dbx_a', 'a.test', ips(0, 80), 10_000, 0)).toBe(0);
    expect(l.learnUntil('dbx_a', 'b.test', ips(80, 80), 20_000, 0)).toBe(60);
    expect(l.sizeOf('dbx_a')).toBe(100);
    // What was learned first is kept (no eviction), what was dropped is not passed on.
    expect(l.lookup('dbx_a', '10.0.0.0', 1)).toBeDefined();
    expect(l.lookup('dbx_a', ips(100, 1)[0]!, 1)).toBeUndefined();
    expect(shared).toHaveLength(100);
    // Re-learning a held address (a longer expiry) is not a new one.
    expect(l.learnUntil('dbx_a', 'a.test', ips(0, 1), 15_000, 1)).toBe(0);
    expect(l.learnUntil('dbx_b', 'a.test', ips(0, 50), 10_000, 1)).toBe(0);
    // Past the first 80's expiry, a sweep makes room.
    expect(l.learnUntil('dbx_a', 'c.test', ips(200, 10), 30_000, 12_000)).toBe(0);
    expect(l.sizeOf('dbx_a')).toBeLessThanOrEqual(100);
    expect(l.lookup('dbx_a', ips(200, 1)[0]!, 12_001)).toBeDefined();
  });

  it('one account filling its byte bound evicts only its own answers; past the host bound the largest account gives way', () => {
    const entry = (i: number) => prepareAnswer(answerWith(`n${i}.test`, 200), BOUNDS, 0, 200)!.entry;
    const size = entry(0).size;
    const cache = new AnswerCache(BOUNDS, 1_000_000, { perPartition: size * 10, total: size * 15 });
    try {
      cache.set(cacheKey('victim.test', 1, 1), entry(0), 300, 'victim');
      for (let i = 0; i < 100; i++) cache.set(cacheKey(`n${i}.test`, 1, 1), entry(i), 300, 'flood');
      // Names of two or three digits: entries of slightly different sizes, 9 or 10 fit.
      expect(cache.sizeOf('flood')).toBeGreaterThanOrEqual(9);
      expect(cache.sizeOf('flood')).toBeLessThanOrEqual(10);
      expect(cache.get(cacheKey('victim.test', 1, 1), 1, 'victim')).toBeDefined();
      // Two more accounts near their bound: the host bound trims the largest, never the victim.
      for (const acct of ['b', 'c']) for (let i = 0; i < 10; i++) cache.set(cacheKey(`n${i}.test`, 1, 1), entry(i), 300, acct);
      expect(cache.byteSize).toBeLessThanOrEqual(size * 15);
      expect(cache.get(cacheKey('victim.test', 1, 1), 1, 'victim')).toBeDefined();
    } finally {
      cache.dispose();
    }
  });
});
