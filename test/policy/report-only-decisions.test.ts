/**
 * Report-only at the decision point: the engine relaxes exactly the policy's own denials
 * (not_allowlisted, ip_literal) into would_deny allows, from the first answer and from the
 * decision cache alike, and nothing else: guardrails, unreadable names, unknown clients and
 * a missing policy stay denials; an edit back to enforce is seen at once.
 */
import { describe, expect, it } from 'vitest';
import { decisionLabel } from '../../src/policy/decision.js';
import { rig } from '../support/policy-rig.js';

function reportRig() {
  const r = rig({ allowed_hostnames: ['github.com'] });
  r.source.putPolicy({ id: r.policy.id, egress: { allowed_hostnames: ['github.com'] }, enforcement: 'report' });
  return r;
}

describe('report-only decisions', () => {
  it('a name the policy does not list: would_deny (allowed), the same from the cache', () => {
    const { engine, who } = reportRig();
    for (let i = 0; i < 2; i++) {
      const d = engine.decide(who, 'api.github.com', 443);
      expect(d).toMatchObject({ allow: true, wouldDeny: true, reason: 'not_allowlisted', policyId: 'npol_test' });
      expect(decisionLabel(d)).toBe('would_deny');
    }
    expect(engine.decide(who, 'github.com', 443)).toMatchObject({ allow: true, reason: 'hostname' });
    expect(engine.decide(who, 'github.com', 443).wouldDeny).toBeUndefined();
  });

  it('a public IP literal no CIDR admits: would_deny ip_literal', () => {
    const { engine, who } = reportRig();
    expect(engine.decide(who, '8.8.8.8', 443)).toMatchObject({ allow: true, wouldDeny: true, reason: 'ip_literal' });
  });

  it('never relaxed: private and metadata addresses (literal or resolved), unreadable names, unknown clients, a missing policy', () => {
    const { engine, who, source } = reportRig();
    for (const ip of ['169.254.169.254', '10.1.2.3', '[fd00:ec2::254]']) expect(engine.decide(who, ip, 80), ip).toMatchObject({ allow: false, reason: 'private_address' });
    const resolved = engine.checkResolved(engine.decide(who, 'evil.example.com', 443), '169.254.169.254');
    expect(resolved).toMatchObject({ allow: false, reason: 'private_address' });
    expect(resolved.wouldDeny).toBeUndefined();
    expect(engine.decide(who, 'bad host', 443)).toMatchObject({ allow: false, reason: 'invalid_host' });
    expect(engine.decide({ devboxId: null, via: 'none', source: '10.9.9.9' }, 'github.com', 443)).toMatchObject({ allow: false, reason: 'unknown_client' });
    source.putDevbox({ id: 'dbx_lost', account_id: 'acct-a', network_policy_id: 'npol_gone', addresses: ['10.9.0.3'] });
    expect(engine.decide({ devboxId: 'dbx_lost', via: 'address', source: '10.9.0.3' }, 'x.com', 443)).toMatchObject({ allow: false, reason: 'policy_missing' });
  });

  it('switched back to enforce, the next decision is a denial again (no stale would_deny from the cache)', () => {
    const { engine, who, source, policy } = reportRig();
    expect(engine.decide(who, 'api.github.com', 443).allow).toBe(true);
    source.putPolicy({ id: policy.id, egress: { allowed_hostnames: ['github.com'] }, enforcement: 'enforce' });
    expect(engine.decide(who, 'api.github.com', 443)).toMatchObject({ allow: false, reason: 'not_allowlisted' });
  });

  it('explain (decideForPolicy) answers as the doors do', () => {
    const { engine } = reportRig();
    expect(decisionLabel(engine.decideForPolicy('npol_test', 'pypi.org', 443))).toBe('would_deny');
  });
});
