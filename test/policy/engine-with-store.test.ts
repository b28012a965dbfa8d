/** The engine over the real sqlite store: a write is seen by the very next decision. */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { NO_TOGGLES } from '../support/policy-rig.js';
import { tempDir } from '../support/temp.js';

const dir = tempDir('engine-store');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('PolicyEngine over the sqlite store', () => {
  it('policy edits, attachment and shutdown take effect on the next decision', () => {
    const store = openStore(join(dir, 'egress.db'));
    const engine = new PolicyEngine(store, { toggles: NO_TOGGLES, allowPrivate: [], tunnelDomain: 'tunnel.runloop.ai' });
    try {
      const p = store.policies.create('acct-a', { name: 'registries', egress: { allowed_hostnames: ['*.npmjs.org'] } });
      const { devbox } = store.devboxes.create('acct-a', { networkPolicyId: p.id, addresses: ['10.20.0.2'] });
      const who = engine.identifyByAddress('10.20.0.2');
      expect(who.devboxId).toBe(devbox.id);
      const first = engine.decide(who, 'registry.npmjs.org', 443);
      expect(first).toMatchObject({ allow: true, reason: 'hostname', matched: '*.npmjs.org', policyId: p.id });
      expect(engine.decide(who, 'npmjs.org', 443).allow).toBe(false);

      const p2 = store.policies.update('acct-a', p.id, { egress: { allowed_hostnames: ['pypi.org'] } });
      expect(p2.version).toBeGreaterThan(p.version);
      expect(engine.decide(who, 'registry.npmjs.org', 443)).toMatchObject({ allow: false, policyVersion: p2.version });
      expect(engine.decide(who, 'pypi.org', 443).allow).toBe(true);

      const open = store.policies.create('acct-a', { name: 'open', egress: { allow_all: true } });
      store.devboxes.update('acct-a', devbox.id, { networkPolicyId: open.id });
      expect(engine.decide(who, 'anything.example', 443)).toMatchObject({ allow: true, reason: 'allow_all', policyId: open.id });

      store.devboxes.shutdown('acct-a', devbox.id);
      expect(engine.decide(who, 'anything.example', 443).reason).toBe('unknown_client');
    } finally {
      engine.close();
      store.close();
    }
  });
});
