/**
 * Attack (issue #17, 1): hash flooding of the compiled name tables. The compiler's
 * polynomial hash is unseeded; "an" and "c0" hash alike, so names built from 14 such
 * blocks share one hash. With linear probing, a tenant's policy of 10,000 of them took
 * ~100× the compile time of random names (4× per doubling), and every decision on such
 * a name walked the whole cluster (~150 µs instead of ~0.2 µs).
 *
 * Expected: compiling the colliding policy costs within 2× of a random one of the same
 * size and shape, grows linearly (1×, 2×, 4×), and deciding a colliding name costs
 * within 2× of a random one. Timings are the fastest of interleaved runs (robust on a
 * loaded machine); the failing code is off by 50× or more.
 */
import { describe, expect, it } from 'vitest';
import { CompiledPolicy } from '../../src/policy/compiler.js';
import { PolicyEngine, type Identity } from '../../src/policy/engine.js';
import { MemorySource } from '../../src/policy/memory-source.js';
import { collidingNames, randomNames } from '../fixtures/worst-case-names.js';
import { fastest, growth } from '../support/timing.js';
import { nameHash } from '../../src/policy/hostname.js';

const TOGGLES = { agentGateway: [], mcpGateway: [], mirrors: [] };
const policy = (names: readonly string[]) => ({ id: 'npol_flood', account_id: 'acct', version: 1, egress: { allowed_hostnames: [...names] } }) as never;
const compile = (names: readonly string[]) => () => new CompiledPolicy(policy(names), TOGGLES);

describe('compiled name tables resist colliding names', () => {
  it('the generator really collides: 10,000 distinct valid names, one polynomial hash', () => {
    const names = collidingNames(10_000);
    expect(new Set(names).size).toBe(10_000);
    expect(new Set(names.map(nameHash)).size).toBe(1);
    const cp = new CompiledPolicy(policy(names), TOGGLES);
    expect(cp.rejected).toEqual([]);
    expect(cp.nameCount).toBe(10_000);
  });

  it('compiles the colliding 10,000-name policy within 2x of a random one', () => {
    const [colliding, random] = fastest([compile(collidingNames(10_000)), compile(randomNames(10_000))], 5) as [number, number];
    expect(colliding, `colliding ${colliding.toFixed(1)} ms, random ${random.toFixed(1)} ms`).toBeLessThanOrEqual(2 * random);
  });

  it('compile cost of colliding names grows linearly (1,024 → 2,048 → 4,096)', () => {
    // Sizes whose tables stay in the CPU caches, so the ratio shows the algorithm, not
    // memory: linear work gives ~4 at 4x; the probing table gave 12-50.
    const g = growth((n) => compile(collidingNames(n)), 1_024, 15);
    expect(g.ratio4, `ms ${g.ms.map((m) => m.toFixed(1)).join(' / ')}`).toBeLessThanOrEqual(8);
  });

  it('decides a colliding name within 2x of a random one (uncached, hits and misses)', () => {
    const source = new MemorySource();
    const inPolicyColliding = collidingNames(5_000);
    const inPolicyRandom = randomNames(5_000, 'flood.example', 11);
    source.putPolicy({ id: 'npol_flood', egress: { allowed_hostnames: [...inPolicyColliding, ...inPolicyRandom] } } as never);
    source.putDevbox({ id: 'dbx_flood', network_policy_id: 'npol_flood', addresses: ['10.0.0.2'] } as never);
    const engine = new PolicyEngine(source, { toggles: TOGGLES, allowPrivate: [], tunnelDomain: 'tunnel.example', decisionCacheSize: 0 });
    const who: Identity = { devboxId: 'dbx_flood', via: 'credentials', source: '10.0.0.2' };
    const missColliding = collidingNames(2_000, 'flood.example', 5_000);
    const missRandom = randomNames(2_000, 'flood.example', 12);
    const decideAll = (names: readonly string[], allow: boolean) => () => {
      for (const n of names) if (engine.decide(who, n, 443, 'http').allow !== allow) throw new Error(`${n}: expected ${allow}`);
    };
    const [hc, hr, mc, mr] = fastest([decideAll(inPolicyColliding.slice(0, 2_000), true), decideAll(inPolicyRandom.slice(0, 2_000), true), decideAll(missColliding, false), decideAll(missRandom, false)], 25) as [number, number, number, number];
    engine.close();
    const per = (ms: number) => `${((ms * 1e6) / 2_000).toFixed(0)} ns`;
    expect(hc, `hit: colliding ${per(hc)}, random ${per(hr)}`).toBeLessThanOrEqual(2 * hr);
    expect(mc, `miss: colliding ${per(mc)}, random ${per(mr)}`).toBeLessThanOrEqual(2 * mr);
  });
});
