import { describe, expect, it } from 'vitest';
import { LOOPBACK_SPELLINGS, PUBLIC_IP_SPELLINGS } from '../fixtures/hostname-cases.js';
import { normalizeHost } from '../../src/policy/hostname.js';
import { rig } from '../support/policy-rig.js';

describe('IP literals in every spelling', () => {
  it.each(LOOPBACK_SPELLINGS)('%s normalises to 127.0.0.1', (h) => {
    expect(normalizeHost(h)).toEqual({ kind: 'ip', ip: '127.0.0.1', family: 4 });
  });

  it.each(PUBLIC_IP_SPELLINGS)('%s normalises to 8.8.8.8', (h) => {
    expect(normalizeHost(h)).toMatchObject({ kind: 'ip', ip: '8.8.8.8' });
  });

  it('IPv6 literals come back canonical, with or without brackets', () => {
    expect(normalizeHost('[2001:DB8:0:0:0:0:0:1]')).toEqual({ kind: 'ip', ip: '2001:db8::1', family: 6 });
    expect(normalizeHost('2606:4700:4700::1111')).toEqual({ kind: 'ip', ip: '2606:4700:4700::1111', family: 6 });
  });

  it('never match hostname entries, even when the entry looks like the number', () => {
    const { engine, who } = rig({ allowed_hostnames: ['localhost', 'example.com', '*.example.com'] });
    for (const h of [...PUBLIC_IP_SPELLINGS, '[2606:4700:4700::1111]']) {
      expect(engine.decide(who, h, 443)).toMatchObject({ allow: false, reason: 'ip_literal', hostKind: 'ip' });
    }
  });

  it('loopback in every spelling is a private address, even inside an allowed CIDR', () => {
    const { engine, who } = rig({ allowed_cidrs: [{ cidr: '127.0.0.0/8' }], allowed_hostnames: ['localhost'] });
    for (const h of LOOPBACK_SPELLINGS) {
      expect(engine.decide(who, h, 80)).toMatchObject({ allow: false, reason: 'private_address', host: '127.0.0.1' });
    }
  });

  it('with the loopback range exempted, loopback is judged by the CIDR list like any address', () => {
    const { engine, who } = rig({ allowed_cidrs: [{ cidr: '127.0.0.0/8' }] }, { allowPrivate: ['127.0.0.0/8'] });
    for (const h of LOOPBACK_SPELLINGS) expect(engine.decide(who, h, 80)).toMatchObject({ allow: true, reason: 'cidr', matched: '127.0.0.0/8' });
    const none = rig({}, { allowPrivate: ['127.0.0.0/8'] });
    expect(none.engine.decide(none.who, '127.1', 80)).toMatchObject({ allow: false, reason: 'ip_literal' });
  });

  it('numeric-looking names that are not valid IPv4 are invalid, not names', () => {
    for (const h of ['1.2.3.4.5', '256.0.0.1', '0x100000000', '4294967296', 'foo.0x', 'example.09']) {
      expect(normalizeHost(h).kind).toBe('invalid');
    }
    // …while a numeric label that is not the last one is an ordinary name
    expect(normalizeHost('1password.com')).toEqual({ kind: 'name', name: '1password.com' });
    expect(normalizeHost('123.example.com')).toEqual({ kind: 'name', name: '123.example.com' });
  });
});
