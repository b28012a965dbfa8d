/** A small engine over an in-memory source (a test double for the store's data). */
import { PolicyEngine, type Identity, type EngineOptions } from '../../src/policy/engine.js';
import { MemorySource } from '../../src/policy/memory-source.js';
import type { EgressRules, NetworkPolicy } from '../../src/policy/model.js';

export const NO_TOGGLES = { agentGateway: [], mcpGateway: [], mirrors: [] };

export interface Rig {
  source: MemorySource;
  engine: PolicyEngine;
  policy: NetworkPolicy;
  who: Identity;
}

export function rig(egress: Partial<EgressRules>, opts: Partial<EngineOptions> = {}): Rig {
  const source = new MemorySource();
  const engine = new PolicyEngine(source, { toggles: NO_TOGGLES, allowPrivate: [], tunnelDomain: 'tunnel.runloop.ai', ...opts });
  const policy = source.putPolicy({ id: 'npol_test', account_id: 'acct-a', egress });
  source.putDevbox({ id: 'dbx_test', account_id: 'acct-a', network_policy_id: policy.id, addresses: ['10.9.0.2'] });
  return { source, engine, policy, who: { devboxId: 'dbx_test', via: 'address', source: '10.9.0.2' } };
}
