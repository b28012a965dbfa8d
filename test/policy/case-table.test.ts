import { describe, expect, it } from 'vitest';
import { HOSTNAME_CASES } from '../fixtures/hostname-cases.js';
import { rig } from '../support/policy-rig.js';

describe('the shared hostname case table, through decide() and decideForPolicy()', () => {
  it.each(HOSTNAME_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const { engine, who, policy } = rig(c.policy);
    for (const d of [engine.decide(who, c.host, c.port ?? 443), engine.decideForPolicy(policy.id, c.host, c.port ?? 443)]) {
      expect({ allow: d.allow, reason: d.reason }).toEqual({ allow: c.expect === 'allow', reason: c.reason });
      if (c.expect === 'allow') expect(d.matched).toBe(c.matched ?? null);
      else expect(d.matched).toBeNull();
      if (d.reason !== 'invalid_host') {
        expect(d.policyId).toBe(policy.id);
        expect(d.policyVersion).toBe(policy.version);
      }
    }
    // Asked twice (second answer from the cache): the same decision.
    expect(engine.decide(who, c.host, c.port ?? 443)).toEqual(engine.decide(who, c.host, c.port ?? 443));
  });
});
