import { describe, expect, it } from 'vitest';
import { rig } from '../support/policy-rig.js';

describe('allowed_cidrs: ranges, port ranges and protocol, IPv4 and IPv6', () => {
  const { engine, who } = rig({
    allowed_cidrs: [
      {
        cidr: '8.8.8.0/24',
        ports: [
          { port: 53, protocol: 'UDP' },
          { port: 853, protocol: 'TCP' },
        ],
      },
      { cidr: '1.1.1.1/32' },
      { cidr: '140.82.112.0/20', ports: [{ port: 8000, end_port: 8100 }] },
      { cidr: '140.82.112.0/24', ports: [{ port: 22 }] },
      { cidr: '2606:4700::/32', ports: [{ port: 443, protocol: 'TCP' }] },
      { cidr: '0.0.0.0/0', ports: [{ port: 9999, protocol: 'UDP' }] },
    ],
  });
  const d = (h: string, port: number, proto: 'TCP' | 'UDP' = 'TCP') => engine.decideForPolicy('npol_test', h, port, proto);

  it('protocol-specific ports', () => {
    expect(d('8.8.8.8', 53, 'UDP')).toMatchObject({ allow: true, reason: 'cidr', matched: '8.8.8.0/24' });
    expect(d('8.8.8.8', 53, 'TCP')).toMatchObject({ allow: false, reason: 'ip_literal' });
    expect(d('8.8.4.4', 853, 'TCP')).toMatchObject({ allow: false });
    expect(d('8.8.8.4', 853, 'TCP')).toMatchObject({ allow: true });
    expect(d('8.8.8.4', 853, 'UDP').allow).toBe(false);
  });

  it('no ports means every port and protocol; a /32 is one host', () => {
    for (const p of [1, 80, 443, 65535]) expect(d('1.1.1.1', p).allow).toBe(true);
    expect(d('1.1.1.1', 53, 'UDP').allow).toBe(true);
    expect(d('1.1.1.2', 80).allow).toBe(false);
  });

  it('port ranges are inclusive at both ends', () => {
    expect(d('140.82.120.1', 8000).allow).toBe(true);
    expect(d('140.82.120.1', 8100).allow).toBe(true);
    expect(d('140.82.120.1', 7999).allow).toBe(false);
    expect(d('140.82.120.1', 8101).allow).toBe(false);
  });

  it('overlapping ranges: any rule that admits the port wins', () => {
    expect(d('140.82.112.5', 22)).toMatchObject({ allow: true, matched: '140.82.112.0/24' });
    expect(d('140.82.112.5', 8050)).toMatchObject({ allow: true, matched: '140.82.112.0/20' });
    expect(d('140.82.113.5', 22).allow).toBe(false);
  });

  it('IPv6 ranges, any spelling of the address', () => {
    expect(d('[2606:4700:4700::1111]', 443)).toMatchObject({ allow: true, matched: '2606:4700::/32', host: '2606:4700:4700::1111' });
    expect(d('2606:4700:0:0:0:0:0:1', 443).allow).toBe(true);
    expect(d('[2606:4700:4700::1111]', 80).allow).toBe(false);
    expect(d('[2606:4701::1]', 443).allow).toBe(false);
  });

  it('IPv4-mapped IPv6 is judged as the IPv4 address it carries', () => {
    expect(d('[::ffff:1.1.1.1]', 80)).toMatchObject({ allow: true, matched: '1.1.1.1/32', host: '1.1.1.1' });
    expect(d('[::ffff:8.8.8.8]', 53, 'UDP').allow).toBe(true);
  });

  it('0.0.0.0/0 with a port admits every public address on that port only', () => {
    expect(d('93.184.216.34', 9999, 'UDP')).toMatchObject({ allow: true, matched: '0.0.0.0/0' });
    expect(d('93.184.216.34', 9999, 'TCP').allow).toBe(false);
  });

  it('a CIDR never admits a name', () => {
    expect(d('dns.google', 53, 'UDP')).toMatchObject({ allow: false, reason: 'not_allowlisted' });
  });

  it('decide() passes the protocol through', () => {
    expect(engine.decide(who, '8.8.8.8', 53, 'UDP').allow).toBe(true);
    expect(engine.decide(who, '8.8.8.8', 53).allow).toBe(false);
  });
});
