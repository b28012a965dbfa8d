/**
 * What an allowed name may ask: A, AAAA, CNAME, MX, TXT, SRV and HTTPS pass; ANY gets a
 * minimal RFC 8482 answer without asking the upstream; zone transfers and other classes
 * are refused. And the door's Prometheus metrics count it all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsSetup, answers, decode, query, setupDns, status, udpExchange } from '../support/dns.js';

let s: DnsSetup;

beforeAll(async () => {
  s = await setupDns({
    upstream: {
      records: {
        'multi.test': [
          { type: 'A', data: '127.0.0.60' },
          { type: 'AAAA', data: 'fd00::60' },
          { type: 'MX', data: { preference: 10, exchange: 'mail.multi.test' } },
          { type: 'TXT', data: 'v=spf1 -all' },
        ],
        'www.multi.test': [{ type: 'CNAME', data: 'multi.test' }],
        '_imaps._tcp.multi.test': [{ type: 'SRV', data: { priority: 0, weight: 5, port: 993, target: 'mail.multi.test' } }],
      },
    },
    devboxes: { '127.0.0.2': ['multi.test', '*.multi.test'] },
  });
});
afterAll(() => s.close());

describe('record types', () => {
  it('passes A, AAAA, CNAME, MX, TXT and SRV', async () => {
    const [a, aaaa, cname, mx, txt, srv] = await Promise.all([
      s.dig('127.0.0.2', 'multi.test', 'A'),
      s.dig('127.0.0.2', 'multi.test', 'AAAA'),
      s.dig('127.0.0.2', 'www.multi.test', 'CNAME'),
      s.dig('127.0.0.2', 'multi.test', 'MX'),
      s.dig('127.0.0.2', 'multi.test', 'TXT'),
      s.dig('127.0.0.2', '_imaps._tcp.multi.test', 'SRV'),
    ]);
    expect(answers(a)[0]!.data).toBe('127.0.0.60');
    expect(answers(aaaa)[0]!.data).toBe('fd00::60');
    expect(answers(cname)[0]!.data).toBe('multi.test.');
    expect(answers(mx)[0]!.data).toBe('10 mail.multi.test.');
    expect(answers(txt)[0]!.data).toBe('"v=spf1 -all"');
    expect(answers(srv)[0]!.data).toBe('0 5 993 mail.multi.test.');
  });

  it('answers ANY with one HINFO "RFC8482" record, without the upstream', async () => {
    const out = await s.dig('127.0.0.2', 'multi.test', 'ANY');
    expect(status(out)).toBe('NOERROR');
    expect(answers(out)).toEqual([{ name: 'multi.test.', ttl: 3600, type: 'HINFO', data: '"RFC8482" ""' }]);
    expect(s.up.queries.filter((q) => q.includes('/ANY/'))).toEqual([]);
  });

  it('refuses zone transfers and non-IN classes', async () => {
    for (const t of ['AXFR', 'IXFR']) {
      const r = await udpExchange(s.port, '127.0.0.2', query('multi.test', t));
      expect(decode(r!).rcode).toBe('REFUSED');
    }
    expect(status(await s.dig('127.0.0.2', 'version.bind', 'TXT', '-c', 'CH'))).toBe('REFUSED');
    expect(s.up.queries.filter((q) => q.includes('XFR') || q.includes('version.bind'))).toEqual([]);
  });

  it('counts queries, cache hits and misses, and latencies in Prometheus metrics', async () => {
    await s.dig('127.0.0.2', 'multi.test', 'A');
    await s.dig('127.0.0.2', 'denied.test', 'A');
    const text = await (await fetch(`${s.g.apiUrl}/metrics`, { headers: { authorization: 'Bearer tok-a' } })).text();
    expect(text).toMatch(/egress_dns_queries_total\{decision="allow",qtype="A",rcode="NOERROR"\} [1-9]/);
    expect(text).toMatch(/egress_dns_queries_total\{decision="deny",qtype="A",rcode="NXDOMAIN"\} [1-9]/);
    expect(text).toMatch(/egress_dns_cache_total\{result="hit"\} [1-9]/);
    expect(text).toMatch(/egress_dns_cache_total\{result="miss"\} [1-9]/);
    expect(text).toMatch(/egress_dns_answer_duration_seconds_bucket\{source="cache",le="\+Inf"\} [1-9]/);
    expect(text).toMatch(/egress_dns_upstream_duration_seconds_count\{transport="udp"\} [1-9]/);
    expect(text).toMatch(/egress_decisions_total\{door="dns",decision="deny",reason="not_allowlisted"\} [1-9]/);
  });
});
