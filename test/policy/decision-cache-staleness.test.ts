import { describe, expect, it } from 'vitest';
import { DecisionCache } from '../../src/policy/cache.js';
import { rig } from '../support/policy-rig.js';

describe('the decision cache never serves a stale answer', () => {
  it('a policy edit is seen by the very next decision (decide and explain)', () => {
    const { engine, source, who, policy } = rig({ allowed_hostnames: ['github.com'] });
    expect(engine.decide(who, 'github.com', 443)).toMatchObject({ allow: true, policyVersion: 1 });
    expect(engine.decide(who, 'github.com', 443).allow).toBe(true); // now cached
    expect(engine.decide(who, 'pypi.org', 443).allow).toBe(false); // cached denial
    source.putPolicy({ id: policy.id, egress: { allowed_hostnames: ['pypi.org'] } });
    expect(engine.decide(who, 'github.com', 443)).toMatchObject({ allow: false, reason: 'not_allowlisted', policyVersion: 2 });
    expect(engine.decide(who, 'pypi.org', 443)).toMatchObject({ allow: true, policyVersion: 2 });
    expect(engine.decideForPolicy(policy.id, 'github.com', 443).allow).toBe(false);
  });

  it('explain-only lookups (no devbox attached) also see edits', () => {
    const { engine, source } = rig({});
    const p = source.putPolicy({ egress: { allowed_hostnames: ['a.example.com'] } });
    expect(engine.decideForPolicy(p.id, 'a.example.com', 443).allow).toBe(true);
    source.putPolicy({ id: p.id, egress: { allowed_hostnames: [] } });
    expect(engine.decideForPolicy(p.id, 'a.example.com', 443).allow).toBe(false);
    source.deletePolicy(p.id);
    expect(engine.decideForPolicy(p.id, 'a.example.com', 443).reason).toBe('policy_missing');
  });

  it('attaching another policy to a devbox changes its next decision', () => {
    const { engine, source, who } = rig({ allowed_hostnames: ['github.com'] });
    expect(engine.decide(who, 'github.com', 443).allow).toBe(true);
    const other = source.putPolicy({ account_id: 'acct-a', egress: { allowed_hostnames: ['pypi.org'] } });
    source.putDevbox({ id: 'dbx_test', network_policy_id: other.id });
    expect(engine.decide(who, 'github.com', 443)).toMatchObject({ allow: false, policyId: other.id });
    source.putDevbox({ id: 'dbx_test', network_policy_id: null });
    expect(engine.decide(who, 'pypi.org', 443)).toMatchObject({ allow: false, policyId: null });
    source.putDevbox({ id: 'dbx_test', network_policy_id: 'npol_gone' });
    expect(engine.decide(who, 'pypi.org', 443)).toMatchObject({ allow: false, reason: 'policy_missing', policyId: 'npol_gone' });
  });

  it('devbox addresses and tunnels joining or leaving the account change devbox_to_devbox answers at once', () => {
    const { engine, source, who } = rig({ allow_devbox_to_devbox: true });
    const tunnel = '8080-kpeer.tunnel.runloop.ai';
    expect(engine.decide(who, tunnel, 443).allow).toBe(false); // cached "no such tunnel"
    expect(engine.decide(who, '10.9.0.7', 22).allow).toBe(false);
    source.putDevbox({ id: 'dbx_peer', account_id: 'acct-a', tunnel_key: 'kpeer', addresses: ['10.9.0.7'] });
    expect(engine.decide(who, tunnel, 443)).toMatchObject({ allow: true, reason: 'devbox_to_devbox' });
    expect(engine.decide(who, '10.9.0.7', 22)).toMatchObject({ allow: true, reason: 'devbox_to_devbox' });
    source.putDevbox({ id: 'dbx_peer', status: 'shutdown' });
    expect(engine.decide(who, tunnel, 443).allow).toBe(false);
    expect(engine.decide(who, '10.9.0.7', 22).allow).toBe(false);
  });

  it('a shut-down devbox is an unknown client from then on', () => {
    const { engine, source, who } = rig({ allow_all: true });
    expect(engine.decide(who, 'example.com', 443).allow).toBe(true);
    source.putDevbox({ id: 'dbx_test', status: 'shutdown' });
    expect(engine.decide(who, 'example.com', 443).reason).toBe('unknown_client');
  });

  it('every decision names the policy version it was made under', () => {
    const { engine, source, who, policy } = rig({ allowed_hostnames: ['github.com'] });
    for (let v = 2; v <= 5; v++) {
      source.putPolicy({ id: policy.id, egress: { allowed_hostnames: v % 2 ? ['github.com'] : [] } });
      expect(engine.decide(who, 'github.com', 443)).toMatchObject({ policyVersion: v, allow: v % 2 === 1 });
    }
  });

  it('the cache is bounded', () => {
    const { engine, who, policy } = rig({ allowed_hostnames: ['*.example.com'] }, { decisionCacheSize: 64 });
    for (let i = 0; i < 10_000; i++) engine.decide(who, `h${i}.example.com`, 443);
    expect(engine.compiledFor(policy.id)!.cache.size).toBeLessThanOrEqual(64);
  });
});

describe('DecisionCache', () => {
  it('keeps recently used keys and never exceeds max', () => {
    const c = new DecisionCache<number>(8);
    for (let i = 0; i < 4; i++) c.set(`k${i}`, i);
    expect(c.get('k0')).toBe(0); // promoted
    for (let i = 4; i < 7; i++) c.set(`k${i}`, i);
    expect(c.get('k0')).toBe(0);
    for (let i = 0; i < 100; i++) {
      c.set(`x${i}`, i);
      expect(c.size).toBeLessThanOrEqual(8);
    }
    expect(c.get('x99')).toBe(99);
    expect(c.get('k1')).toBeUndefined();
    c.clear();
    expect(c.size).toBe(0);
    expect(c.get('x99')).toBeUndefined();
  });

  it('size 0 disables caching', () => {
    const c = new DecisionCache<number>(0);
    c.set('a', 1);
    expect(c.get('a')).toBeUndefined();
    expect(c.size).toBe(0);
  });
});
