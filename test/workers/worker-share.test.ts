/**
 * Each worker enforces its share of a per-devbox limit (--max-connections-per-devbox,
 * --dns-rate-limit): the shares of N workers add up to the setting, so the gateway never
 * admits more than the setting (never N times it; a setting below N is the exception: one
 * per worker), and 0 (no rate limit) stays 0.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { workerShare } from '../../src/wiring/workers.js';

const config = (flags: Record<string, string>) => loadConfig(new Map(Object.entries(flags).map(([k, v]) => [k, [v]])), {});

describe('workerShare', () => {
  it('splits a limit so that the shares add up to it', () => {
    for (const total of [4, 7, 1024, 2001]) {
      for (const n of [2, 3, 4]) {
        const c = config({ 'max-connections-per-devbox': String(total), 'dns-rate-limit': String(total), db: ':memory:' });
        const shares = Array.from({ length: n }, (_, slot) => workerShare(c, slot, n));
        expect(shares.reduce((s, x) => s + x.maxConnectionsPerDevbox, 0)).toBe(total);
        expect(shares.reduce((s, x) => s + x.dnsRateLimit, 0)).toBe(total);
      }
    }
  });

  it('keeps "no rate limit" and never gives a worker nothing', () => {
    const c = config({ 'dns-rate-limit': '0', 'max-connections-per-devbox': '1', db: ':memory:' });
    expect(workerShare(c, 1, 2).dnsRateLimit).toBe(0);
    // A limit below the worker count is the one case the gateway admits more: one per worker.
    expect(workerShare(c, 1, 2).maxConnectionsPerDevbox).toBe(1);
  });
});
