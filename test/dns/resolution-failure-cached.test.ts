/**
 * Issue 14: a failed resolution was never cached. An upstream that answers AAAA with
 * REFUSED cost an upstream round trip (two: the one upstream was asked again) behind
 * every CONNECT to an IPv4-only name, and the DNS door asked again for every SERVFAIL.
 * RFC 9520 §3.2 asks resolvers to cache resolution failures (SERVFAIL, REFUSED,
 * time-outs) per name and type for at least 1 s and at most 5 min.
 *
 * Here: the real gateway, a loopback upstream that answers `broken6.test` AAAA with
 * REFUSED and every `*.fail.test` question with SERVFAIL. 1,000 CONNECTs through the HTTP
 * proxy to broken6.test cost a handful of upstream queries (one per --dns-failure-ttl),
 * not 1,000; the DNS door answers SERVFAIL from the cache (EDE 13,
 * Cached Error) without asking again; failures are cached per account, and one account's
 * flood of failing names does not evict another account's entries.
 * Fix: src/resolver/resolver.ts, src/resolver/cache.ts (failure entries), src/resolver/upstream.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { type DnsUpstream, startDnsUpstream } from '../support/dns-upstream.js';
import { TOKEN_B, type TestGateway, startTestGateway } from '../support/gateway.js';
import { connectTunnel, metric } from '../support/proxy.js';
import { dig, status, udpBurst } from '../support/dns.js';

const TUNNELS = 1000;
const CONCURRENCY = 25;
// Longer than the default 5 s, so a loaded machine cannot stretch one test past it.
const FAILURE_TTL_S = 60;
const REFUSED = 5;
const SERVFAIL = 2;

let up: DnsUpstream;
let g: TestGateway;
let origin: net.Server;
let originPort: number;

beforeAll(async () => {
  up = await startDnsUpstream({
    records: {
      'broken6.test': [{ type: 'A', data: '127.0.0.1', ttl: 300 }],
      'ok.test': [{ type: 'A', data: '127.0.0.1', ttl: 300 }],
    },
    rcodeFor: (name, type) => (name === 'broken6.test' && type === 'AAAA' ? REFUSED : name.endsWith('fail.test') ? SERVFAIL : undefined),
  });
  // Small partitions, so the flood below would overflow a shared table.
  g = await startTestGateway({ upstreamDnsPort: up.port, flags: { 'dns-cache-size': '100', 'dns-failure-ttl': String(FAILURE_TTL_S) } });
  const names = ['broken6.test', 'ok.test', 'fail.test', '*.fail.test'];
  const pa = await g.api.policy('a', { allowed_hostnames: names });
  await g.api.devbox(pa, ['127.0.0.2']);
  const b = g.api.as(TOKEN_B);
  const pb = await b.policy('b', { allowed_hostnames: names });
  await b.devbox(pb, ['127.0.0.3']);
  origin = net.createServer((s) => {
    s.on('error', () => {});
    s.resume();
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  originPort = (origin.address() as net.AddressInfo).port;
}, 30_000);

afterAll(async () => {
  await g?.close();
  origin?.close();
  await up?.close();
});

const asked = (name: string, type: string) => up.queries.filter((q) => q.startsWith(`${name}/${type}/`)).length;

describe('resolution failures are cached (RFC 9520)', { timeout: 120_000 }, () => {
  it('1,000 CONNECTs to a name whose AAAA is REFUSED cost a handful of upstream queries, not 1,000', async () => {
    const hitsBefore = await metric({ gw: g }, 'egress_dns_failure_cache_hits_total', { kind: 'refused' });
    const started = Date.now();
    let next = 0;
    let ok = 0;
    const worker = async () => {
      while (next < TUNNELS) {
        next++;
        const sock = await connectTunnel(g.addr('http-proxy').port, `broken6.test:${originPort}`, { localAddress: '127.0.0.2' });
        ok++;
        sock.destroy();
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const elapsed = Date.now() - started;
    const aaaa = asked('broken6.test', 'AAAA');
    console.log(`${TUNNELS} CONNECTs in ${elapsed} ms: upstream asked AAAA ${aaaa}×, A ${asked('broken6.test', 'A')}×`);
    expect(ok).toBe(TUNNELS);
    // One query per failure TTL that the run spans (it may straddle one more window).
    expect(aaaa).toBeLessThanOrEqual(Math.ceil(elapsed / (FAILURE_TTL_S * 1000)) + 1);
    expect(aaaa).toBeLessThan(20);
    expect(asked('broken6.test', 'A')).toBe(1);
    const hits = (await metric({ gw: g }, 'egress_dns_failure_cache_hits_total', { kind: 'refused' })) - hitsBefore;
    expect(hits).toBeGreaterThanOrEqual(TUNNELS - 20);
    expect(await metric({ gw: g }, 'egress_dns_failure_cache_stored_total', { kind: 'refused' })).toBe(aaaa);
  });

  it('the DNS door answers SERVFAIL from the cache, marked Cached Error, without asking again', async () => {
    const port = g.addr('dns').port;
    const first = await dig(port, '127.0.0.2', 'fail.test', 'A');
    expect(status(first)).toBe('SERVFAIL');
    expect(asked('fail.test', 'A')).toBe(1);
    for (let i = 0; i < 5; i++) {
      const again = await dig(port, '127.0.0.2', 'fail.test', 'A');
      expect(status(again)).toBe('SERVFAIL');
      expect(again).toMatch(/EDE: 13 \(Cached Error\)/);
    }
    expect(asked('fail.test', 'A')).toBe(1);
    // Per name and type: AAAA is its own question.
    expect(status(await dig(port, '127.0.0.2', 'fail.test', 'AAAA'))).toBe('SERVFAIL');
    expect(asked('fail.test', 'AAAA')).toBe(1);
  });

  it("failures are cached per account, and one account's flood of failing names does not evict another's", async () => {
    const port = g.addr('dns').port;
    // Account a caches a good answer too.
    expect(status(await dig(port, '127.0.0.2', 'ok.test', 'A'))).toBe('NOERROR');
    const okAsked = asked('ok.test', 'A');
    // Account b's first fail.test is its own: asked upstream, not served from a's entry.
    expect(status(await dig(port, '127.0.0.3', 'fail.test', 'A'))).toBe('SERVFAIL');
    expect(asked('fail.test', 'A')).toBe(2);
    // Account b fills its partition (100) three times over with failing names.
    const msgs = Array.from({ length: 300 }, (_, i) => dnsPacket.encode({ type: 'query', id: i, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `n${i}.fail.test` }] }));
    const replies = await udpBurst(port, '127.0.0.3', msgs, 3000);
    expect(replies.length).toBeGreaterThan(250);
    expect(await metric({ gw: g }, 'egress_dns_failure_cache_stored_total', { kind: 'servfail' })).toBeGreaterThan(250);
    // Account a's failure and answer are still cached.
    expect(status(await dig(port, '127.0.0.2', 'fail.test', 'A'))).toBe('SERVFAIL');
    expect(status(await dig(port, '127.0.0.2', 'ok.test', 'A'))).toBe('NOERROR');
    expect(asked('fail.test', 'A')).toBe(2);
    expect(asked('ok.test', 'A')).toBe(okAsked);
  });
});
