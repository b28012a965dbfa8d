/**
 * Attack (issue #17, 1): hash flooding of the compiled name tables. The compiler's
 * polynomial hash is unseeded; "an" and "c0" hash alike, so names built from 14 such
 * blocks share one hash. With linear probing, a tenant's policy of 10,000 of them took
 * ~100× the compile time of random names (4× per doubling), and every decision on such
 * a name walked the whole cluster (~150 µs instead of ~0.2 µs).
 *
 * Expected: compiling the colliding policy costs within 2× of a random one of the same
 * size and shape at 1×, 2× and 4× sizes, and deciding a colliding name costs
 * within 2× of a random one. Timings are the fastest of interleaved runs (robust on a
 * loaded machine); the failing code is off by 50× or more.
 */
import { describe, expect, it } from 'vitest';
import { CompiledPolicy, homeSlot } from '../../src/policy/compiler.js';
import { nameHash } from '../../src/policy/hostname.js';
import { PolicyEngine, type Identity } from '../../src/policy/engine.js';
import { MemorySource } from '../../src/policy/memory-source.js';
import { collidingNames, randomNames } from '../fixtures/worst-case-names.js';
import { fastest, growthAgainst, showGrowth } from '../support/timing.js';

/** The compiler's former hash: base 31, mod 2^32. */
const base31 = (s: string) => {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
};
const TOGGLES = { agentGateway: [], mcpGateway: [], mirrors: [] };
const policy = (names: readonly string[]) => ({ id: 'npol_flood', account_id: 'acct', version: 1, egress: { allowed_hostnames: [...names] } }) as never;
const compile = (names: readonly string[]) => () => new CompiledPolicy(policy(names), TOGGLES);

describe('compiled name tables resist colliding names', () => {
  it('the generator really collides: 10,000 distinct valid names, one base-31 hash', () => {
    const names = collidingNames(10_000);
    expect(new Set(names).size).toBe(10_000);
    expect(new Set(names.map(base31)).size).toBe(1);
    const cp = new CompiledPolicy(policy(names), TOGGLES);
    expect(cp.rejected).toEqual([]);
    expect(cp.nameCount).toBe(10_000);
  });

  it('compiles the colliding 10,000-name policy within 2x of a random one', () => {
    const [colliding, random] = fastest([compile(collidingNames(10_000)), compile(randomNames(10_000))], 5) as [number, number];
    expect(colliding, `colliding ${colliding.toFixed(1)} ms, random ${random.toFixed(1)} ms`).toBeLessThanOrEqual(2 * random);
  });

  it('grows like the random control: within 2x of it at 1,024, 2,048 and 4,096 names', () => {
    const g = growthAgainst(
      (n) => compile(collidingNames(n)),
      (n) => compile(randomNames(n)),
      1_024,
      11,
    );
    for (const r of g) expect(r.ratio, showGrowth(g)).toBeLessThanOrEqual(2);
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
      for (const n of names) if (engine.decide(who, n, 443).allow !== allow) throw new Error(`${n}: expected ${allow}`);
    };
    const [hc, hr, mc, mr] = fastest([decideAll(inPolicyColliding.slice(0, 2_000), true), decideAll(inPolicyRandom.slice(0, 2_000), true), decideAll(missColliding, false), decideAll(missRandom, false)], 25) as [number, number, number, number];
    engine.close();
    const per = (ms: number) => `${((ms * 1e6) / 2_000).toFixed(0)} ns`;
    expect(hc, `hit: colliding ${per(hc)}, random ${per(hr)}`).toBeLessThanOrEqual(2 * hr);
    expect(mc, `miss: colliding ${per(mc)}, random ${per(mr)}`).toBeLessThanOrEqual(2 * mr);
  });
});

describe('a table whose keys share a home slot falls back to a Map', () => {
  /** Names whose home slot in a 512-slot table is the same for this process's hash and mix. */
  function sameHomeSlot(count: number): string[] {
    const shift = 32 - 9;
    const bySlot = new Map<number, string[]>();
    for (const name of randomNames(200_000, 'slot.example', 99)) {
      const slot = homeSlot(nameHash(name) & 0x7ffffff, shift);
      const list = bySlot.get(slot) ?? [];
      list.push(name);
      if (list.length === count) return list;
      bySlot.set(slot, list);
    }
    throw new Error('no slot filled');
  }

  it('200 names on one home slot: the table floods to a Map, decisions stay exact and cheap', () => {
    const names = sameHomeSlot(200); // 200 entries → 512 slots
    const cp = new CompiledPolicy(policy(names), TOGGLES);
    expect(cp.flooded).toBe(true);
    expect(cp.nameCount).toBe(200);
    for (const n of names) expect(cp.matchName(n)?.entry).toBe(n);
    expect(cp.matchName(`x${names[0]}`)).toBeUndefined();
    const random = new CompiledPolicy(policy(randomNames(200, 'slot.example', 5)), TOGGLES);
    expect(random.flooded).toBe(false);
  });

  it('wildcard entries on one home slot flood too, and still match only strict subdomains', () => {
    const keys = sameHomeSlot(200);
    const cp = new CompiledPolicy(policy(keys.map((k) => `*.${k}`)), TOGGLES);
    expect(cp.flooded).toBe(true);
    expect(cp.matchName(`a.${keys[7]}`)?.entry).toBe(`*.${keys[7]}`);
    expect(cp.matchName(keys[7]!)).toBeUndefined();
  });
});
