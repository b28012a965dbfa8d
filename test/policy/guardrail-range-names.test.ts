/**
 * A private_address refusal names the range that refused the address (issue #24, part 2):
 * every built-in range has a name, the right one is found for each kind of address (NAT64
 * judged by the address it carries), and the decision carries address, range and name, from
 * which the refusal's detail and remedy are written.
 */
import { describe, expect, it } from 'vitest';
import { Guardrails, NAMED_NON_GLOBAL_RANGES, NON_GLOBAL_RANGES } from '../../src/policy/guardrails.js';
import { explainDenial } from '../../src/policy/explain.js';
import { rig } from '../support/policy-rig.js';

describe('guardrail range names', () => {
  const g = new Guardrails();

  it('every built-in range has a name', () => {
    expect(NAMED_NON_GLOBAL_RANGES.map((r) => r.cidr)).toEqual(NON_GLOBAL_RANGES);
    for (const r of NAMED_NON_GLOBAL_RANGES) expect(r.name.length, r.cidr!).toBeGreaterThan(3);
  });

  it.each([
    ['203.0.113.80', '203.0.113.0/24', 'documentation (TEST-NET-3)'],
    ['192.0.2.1', '192.0.2.0/24', 'documentation (TEST-NET-1)'],
    ['198.51.100.9', '198.51.100.0/24', 'documentation (TEST-NET-2)'],
    ['127.0.0.1', '127.0.0.0/8', 'loopback'],
    ['10.1.2.3', '10.0.0.0/8', 'private (RFC 1918)'],
    ['172.16.5.4', '172.16.0.0/12', 'private (RFC 1918)'],
    ['192.168.1.1', '192.168.0.0/16', 'private (RFC 1918)'],
    ['169.254.169.254', '169.254.0.0/16', 'link-local (cloud metadata)'],
    ['100.64.0.1', '100.64.0.0/10', 'shared address space (CGNAT, RFC 6598)'],
    ['198.18.0.1', '198.18.0.0/15', 'benchmarking (RFC 2544)'],
    ['224.0.0.1', '224.0.0.0/4', 'multicast'],
    ['255.255.255.255', '240.0.0.0/4', 'reserved (and broadcast)'],
    ['0.0.0.0', '0.0.0.0/8', 'this network (unspecified)'],
    ['::1', '::/96', 'unspecified, loopback and IPv4-compatible'],
    ['fd00:ec2::254', 'fc00::/7', 'unique local (private)'],
    ['2001:db8::1', '2001:db8::/32', 'documentation'],
    ['64:ff9b::a00:1', '10.0.0.0/8', 'private (RFC 1918)'],
  ])('%s is in %s, %s', (ip, cidr, name) => expect(g.blocked(ip)).toEqual({ cidr, name }));

  it('an unparseable address is refused with no range', () => expect(g.blocked('not an ip')).toEqual({ cidr: null, name: 'unparseable address' }));

  it('the decision carries address, range and name; the explanation the flag that would allow it', () => {
    const { engine, who } = rig({ allowed_hostnames: ['docs.example.test'], allowed_cidrs: [{ cidr: '203.0.113.0/24' }] });
    const named = engine.checkResolved(engine.decide(who, 'docs.example.test', 443), '203.0.113.80');
    expect(named).toMatchObject({ allow: false, reason: 'private_address', host: 'docs.example.test', detail: { address: '203.0.113.80', range: '203.0.113.0/24', rangeName: 'documentation (TEST-NET-3)' } });
    const literal = engine.decide(who, '203.0.113.80', 443);
    expect(literal.detail).toEqual(named.detail);
    expect(explainDenial(named)).toEqual({
      text: '203.0.113.80 is in 203.0.113.0/24 "documentation (TEST-NET-3)", a range the private-address guardrail refuses',
      detail: '203.0.113.80 in 203.0.113.0/24 (documentation (TEST-NET-3))',
      remedy: '--allow-private 203.0.113.0/24',
    });
  });

  it('not_allowlisted says no rule matched, and names a wildcard asked for its apex', () => {
    const { engine, who } = rig({ allowed_hostnames: ['*.example.com'] });
    expect(explainDenial(engine.decide(who, 'other.org', 443)).detail).toBe('no rule matched');
    expect(explainDenial(engine.decide(who, 'example.com', 443)).detail).toBe('no rule matched (*.example.com does not admit example.com)');
  });
});
