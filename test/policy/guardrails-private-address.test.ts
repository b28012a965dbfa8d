import { describe, expect, it } from 'vitest';
import { Guardrails } from '../../src/policy/guardrails.js';
import { rig } from '../support/policy-rig.js';

describe('guardrails: non-global destinations are refused whatever the allowlist says', () => {
  const g = new Guardrails();

  it.each([
    '127.0.0.1',
    '10.0.0.1',
    '172.16.5.4',
    '192.168.1.1',
    '100.64.0.1',
    '169.254.169.254',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '198.18.0.1',
    '::1',
    '::',
    'fe80::1',
    'fd00:ec2::254',
    'fc00::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:169.254.169.254',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b::7f00:1',
    '::127.0.0.1',
    '2001:db8::1',
    'fec0::1',
    'not an ip',
  ])('blocks %s', (ip) => expect(g.blocked(ip)).not.toBeNull());

  it.each(['8.8.8.8', '1.1.1.1', '140.82.112.3', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'])('lets %s through', (ip) => {
    expect(g.blocked(ip)).toBeNull();
  });

  it('--allow-private exempts exactly the given range', () => {
    const lo = new Guardrails(['127.0.0.0/8']);
    expect(lo.blocked('127.0.0.1')).toBeNull();
    expect(lo.blocked('::ffff:127.0.0.1')).toBeNull();
    expect(lo.blocked('10.0.0.1')).not.toBeNull();
    expect(lo.blocked('169.254.169.254')).not.toBeNull();
  });

  it('checkResolved denies an allowed name that resolves to a private address, under allow_all too', () => {
    for (const egress of [{ allowed_hostnames: ['internal.example.com'] }, { allow_all: true }]) {
      const { engine, who } = rig(egress);
      const d = engine.decide(who, 'internal.example.com', 443);
      expect(d.allow).toBe(true);
      for (const ip of ['169.254.169.254', '10.0.0.5', '127.0.0.1', '::1', 'fd00:ec2::254', '::ffff:10.0.0.5']) {
        expect(engine.checkResolved(d, ip)).toMatchObject({ allow: false, reason: 'private_address', host: 'internal.example.com', policyId: 'npol_test' });
      }
      expect(engine.checkResolved(d, '93.184.216.34')).toBe(d);
    }
  });

  it('checkResolved leaves a denial alone and honours --allow-private', () => {
    const { engine, who } = rig({ allowed_hostnames: ['a.example.com'] }, { allowPrivate: ['10.1.0.0/16'] });
    const deny = engine.decide(who, 'b.example.com', 443);
    expect(engine.checkResolved(deny, '8.8.8.8')).toBe(deny);
    const ok = engine.decide(who, 'a.example.com', 443);
    expect(engine.checkResolved(ok, '10.1.2.3').allow).toBe(true);
    expect(engine.checkResolved(ok, '10.2.0.1').allow).toBe(false);
  });

  it('an IP literal inside an allowed CIDR is still refused when private', () => {
    const { engine, who } = rig({ allowed_cidrs: [{ cidr: '10.0.0.0/8' }, { cidr: '169.254.0.0/16' }] });
    expect(engine.decide(who, '10.1.2.3', 443).reason).toBe('private_address');
    expect(engine.decide(who, '169.254.169.254', 80).reason).toBe('private_address');
  });
});
