/**
 * None of the door's parsers can be made to throw or stall: arbitrary bytes (and valid
 * messages with arbitrary damage) through parseQuery, inspectAnswer, prepareAnswer and
 * the whole handler. Plus the cache's answer preparation on known inputs.
 */
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { prepareAnswer, refreshTtls } from '../../src/resolver/cache.js';
import { DnsHandler } from '../../src/doors/dns/handler.js';
import { CachedResolver } from '../../src/resolver/resolver.js';
import { inspectAnswer, parseQuery } from '../../src/resolver/wire.js';
import { Gate } from '../../src/doors/floor/gate.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { MemorySource } from '../../src/policy/memory-source.js';
import { VALID_QUERY } from '../fixtures/dns-packets.js';

const damaged = fc.tuple(fc.uint8Array({ maxLength: 64 }), fc.nat(VALID_QUERY.length), fc.nat(VALID_QUERY.length)).map(([noise, at, cut]) => {
  const b = Buffer.from(VALID_QUERY);
  Buffer.from(noise).copy(b, at);
  return b.subarray(0, Math.max(at, cut));
});
const anyBytes = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
  damaged,
);

function handler(): DnsHandler {
  const src = new MemorySource();
  const pol = src.putPolicy({ egress: { allowed_hostnames: ['allowed.test'] } });
  src.putDevbox({ id: 'd1', network_policy_id: pol.id, addresses: ['127.0.0.2'] });
  const engine = new PolicyEngine(src, { toggles: { agentGateway: [], mcpGateway: [], mirrors: [] }, allowPrivate: [], tunnelDomain: 'tunnel.test' });
  const log = pino({ level: 'silent' });
  const resolver = new CachedResolver([], { minTtl: 5, maxTtl: 3600 });
  return new DnsHandler({ config: { dnsDenyRcode: 'nxdomain', dnsLearnGrace: 60, dnsRateLimit: 0, logAllowed: { mode: 'sample', every: 100 } }, engine, gate: new Gate(engine, resolver, log), resolver, log });
}

describe('parsers never throw', () => {
  it('parseQuery, inspectAnswer and prepareAnswer on arbitrary bytes', () => {
    fc.assert(
      fc.property(anyBytes, (b) => {
        parseQuery(b);
        inspectAnswer(b);
        prepareAnswer(b, { minTtl: 0, maxTtl: 60 }, Date.now());
      }),
      { numRuns: 3000 },
    );
  });

  it('the handler answers or drops, synchronously, never throws', async () => {
    const h = handler();
    fc.assert(
      fc.property(anyBytes, fc.constantFrom('127.0.0.2', '127.0.0.3'), (b, src) => {
        const out = h.handle(b, src, 'udp');
        if (out instanceof Promise) return; // an allowed name went upstream (none configured: SERVFAIL)
        if (out !== null) expect(out.length).toBeGreaterThanOrEqual(12);
      }),
      { numRuns: 3000 },
    );
    h.close();
  });
});

describe('prepareAnswer', () => {
  const answer = (ttl: number, extra: Partial<dnsPacket.Packet> = {}) =>
    dnsPacket.encode({
      type: 'response',
      id: 99,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: [{ name: 'a.test', type: 'A', class: 'IN' }],
      answers: [
        { name: 'a.test', type: 'A', class: 'IN', ttl, data: '192.0.2.1' },
        { name: 'a.test', type: 'A', class: 'IN', ttl: ttl * 2, data: '192.0.2.2' },
      ],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as unknown as dnsPacket.Answer],
      ...extra,
    } as dnsPacket.Packet);

  it('drops OPT, bounds TTLs, keeps the lowest as the cache TTL, lists the addresses', () => {
    const p = prepareAnswer(answer(2), { minTtl: 10, maxTtl: 100 }, 1_000_000)!;
    expect(p.ttl).toBe(10);
    const d = dnsPacket.decode(p.entry.bytes);
    expect(d.additionals).toEqual([]);
    expect(d.answers!.map((a) => (a as { ttl: number }).ttl)).toEqual([10, 10]);
    expect(p.entry.addresses).toEqual(['192.0.2.1', '192.0.2.2']);
    const big = prepareAnswer(answer(5000), { minTtl: 10, maxTtl: 100 }, 0)!;
    expect(big.ttl).toBe(100);
  });

  it('counts TTLs down as the entry ages, never below zero', () => {
    const p = prepareAnswer(answer(30), { minTtl: 0, maxTtl: 3600 }, 0)!;
    refreshTtls(p.entry, 12_500);
    expect(dnsPacket.decode(p.entry.bytes).answers!.map((a) => (a as { ttl: number }).ttl)).toEqual([18, 48]);
    refreshTtls(p.entry, 100_000);
    expect(dnsPacket.decode(p.entry.bytes).answers!.map((a) => (a as { ttl: number }).ttl)).toEqual([0, 0]);
  });

  it('does not cache a negative answer without SOA, nor SERVFAIL', () => {
    const nx = dnsPacket.encode({ type: 'response', id: 1, flags: 3, questions: [{ name: 'a.test', type: 'A', class: 'IN' }] } as dnsPacket.Packet);
    expect(prepareAnswer(nx, { minTtl: 0, maxTtl: 60 }, 0)!.ttl).toBe(0);
    const sf = dnsPacket.encode({ type: 'response', id: 1, flags: 2, questions: [{ name: 'a.test', type: 'A', class: 'IN' }] } as dnsPacket.Packet);
    expect(prepareAnswer(sf, { minTtl: 0, maxTtl: 60 }, 0)!.ttl).toBe(0);
  });
});
