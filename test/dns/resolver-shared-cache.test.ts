/**
 * The proxy doors' resolver: answers come from the shared cache synchronously once known,
 * and an IPv4-only name does not cost an upstream AAAA query on every connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CachedResolver, ResolveError } from '../../src/resolver/resolver.js';
import { startDnsUpstream, type DnsUpstream } from '../support/dns-upstream.js';

let up: DnsUpstream;
let resolver: CachedResolver;

beforeAll(async () => {
  up = await startDnsUpstream({
    records: {
      'v4only.test': [{ type: 'A', data: '192.0.2.10', ttl: 300 }],
      'dual.test': [
        { type: 'A', data: '192.0.2.11', ttl: 300 },
        { type: 'AAAA', data: '2001:db8::11', ttl: 300 },
      ],
      'silent.test': [{ type: 'A', data: '192.0.2.12', ttl: 300 }],
    },
    dropUdp: new Set(['silent.test']),
  });
  resolver = new CachedResolver([{ host: '127.0.0.1', port: up.port }], { minTtl: 30, maxTtl: 3600 });
});
afterAll(async () => {
  resolver.close();
  await up.close();
});

describe('the resolver the proxy doors share with the DNS door', () => {
  it('knows nothing synchronously before the first lookup', () => {
    expect(resolver.resolveCached('dual.test')).toBeUndefined();
  });

  it('answers IPv4 first, then IPv6, and afterwards from the cache without asking upstream', async () => {
    expect(await resolver.resolve('dual.test')).toEqual(['192.0.2.11', '2001:db8::11']);
    const asked = up.countFor('dual.test');
    expect(resolver.resolveCached('DUAL.test.')).toEqual(['192.0.2.11', '2001:db8::11']);
    expect(await resolver.resolve('dual.test')).toEqual(['192.0.2.11', '2001:db8::11']);
    expect(up.countFor('dual.test')).toBe(asked);
  });

  it('remembers an empty AAAA answer, so an IPv4-only name is asked upstream once', async () => {
    expect(await resolver.resolve('v4only.test')).toEqual(['192.0.2.10']);
    expect(up.queries.filter((q) => q.startsWith('v4only.test/AAAA')).length).toBe(1);
    for (let i = 0; i < 5; i++) expect(await resolver.resolve('v4only.test')).toEqual(['192.0.2.10']);
    expect(resolver.resolveCached('v4only.test')).toEqual(['192.0.2.10']);
    expect(up.queries.filter((q) => q.startsWith('v4only.test/')).length).toBe(2);
  });

  it('rejects a name the upstream does not know with NXDOMAIN, and never answers it from memory', async () => {
    await expect(resolver.resolve('nowhere.test')).rejects.toMatchObject({ code: 'NXDOMAIN' });
    await expect(resolver.resolve('nowhere.test')).rejects.toBeInstanceOf(ResolveError);
    expect(resolver.resolveCached('nowhere.test')).toBeUndefined();
  });

  it('caches a time-out (RFC 9520) for the failure TTL, per account, then asks again', async () => {
    const r = new CachedResolver([{ host: '127.0.0.1', port: up.port }], { minTtl: 30, maxTtl: 3600 }, { timeoutMs: 100, failureTtl: 1 });
    try {
      await expect(r.resolve('silent.test', 'acct-1')).rejects.toMatchObject({ code: 'TIMEOUT' });
      const asked = up.countFor('silent.test');
      await expect(r.resolve('silent.test', 'acct-1')).rejects.toMatchObject({ code: 'TIMEOUT' });
      expect(up.countFor('silent.test')).toBe(asked);
      // Another account's lookups are its own.
      await expect(r.resolve('silent.test', 'acct-2')).rejects.toMatchObject({ code: 'TIMEOUT' });
      expect(up.countFor('silent.test')).toBeGreaterThan(asked);
      const afterTwo = up.countFor('silent.test');
      // Past the failure TTL the name is asked again (polled, with a deadline).
      const deadline = Date.now() + 10_000;
      while (up.countFor('silent.test') === afterTwo && Date.now() < deadline) {
        await r.resolve('silent.test', 'acct-1').catch(() => {});
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(up.countFor('silent.test')).toBeGreaterThan(afterTwo);
    } finally {
      r.close();
    }
  });
});
