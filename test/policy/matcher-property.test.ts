/**
 * Property: the compiled matcher (hash tables, suffix hashes, bloom filter) agrees with a
 * plain reference implementation of DESIGN.md's rules on random patterns and names.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CompiledPolicy } from '../../src/policy/compiler.js';
import { MemorySource } from '../../src/policy/memory-source.js';
import { normalizeHost } from '../../src/policy/hostname.js';
import { NO_TOGGLES, rig } from '../support/policy-rig.js';

/** The rules, written as plainly as possible. */
function reference(entries: readonly string[], name: string): string | undefined {
  if (entries.includes(name)) return name;
  let best: string | undefined;
  for (const e of entries) {
    if (!e.startsWith('*.')) continue;
    const suffix = e.slice(1); // ".npmjs.org"
    if (name.endsWith(suffix) && name.length > suffix.length && (best === undefined || e.length > best.length)) best = e;
  }
  return best;
}

// Few, short labels so that random names and entries overlap often.
const labelArb = fc.constantFrom('a', 'b', 'ab', 'ba', 'x-y', 'a1', 'com', 'org', 'npm', 'xn', '_s');
const nameArb = fc.array(labelArb, { minLength: 1, maxLength: 5 }).map((l) => l.join('.'));
const entryArb = fc.oneof(
  nameArb,
  fc.array(labelArb, { minLength: 2, maxLength: 4 }).map((l) => `*.${l.join('.')}`),
);

function compile(entries: string[]): CompiledPolicy {
  const source = new MemorySource();
  return new CompiledPolicy(source.putPolicy({ egress: { allowed_hostnames: entries } }), NO_TOGGLES);
}

describe('compiled matcher agrees with the reference', () => {
  it('on random entries and names', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 30 }), fc.array(nameArb, { minLength: 1, maxLength: 30 }), (entries, names) => {
        const cp = compile(entries);
        for (const name of names) expect(cp.matchName(name)?.entry, `${name} vs ${JSON.stringify(entries)}`).toBe(reference(entries, name));
      }),
      { numRuns: 500 },
    );
  });

  it('on names derived from the entries (prefixes, apexes, look-alikes)', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { minLength: 1, maxLength: 20 }), fc.array(fc.tuple(fc.nat(), labelArb, fc.constantFrom('sub', 'apex', 'glue', 'append')), { maxLength: 20 }), (entries, picks) => {
        const cp = compile(entries);
        for (const [i, l, how] of picks) {
          const base = entries[i % entries.length]!.replace(/^\*\./, '');
          const name = how === 'sub' ? `${l}.${base}` : how === 'apex' ? base : how === 'glue' ? `${l}${base}` : `${base}.${l}`;
          if (normalizeHost(name).kind !== 'name') continue;
          expect(cp.matchName(name)?.entry, `${name} vs ${JSON.stringify(entries)}`).toBe(reference(entries, name));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('through decide(), in any letter case and with a trailing dot, cached or not', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 15 }), nameArb, fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), fc.boolean(), (entries, name, upper, dot) => {
        const spelled = [...name].map((c, i) => (upper[i % 64] ? c.toUpperCase() : c)).join('') + (dot ? '.' : '');
        const want = reference(entries, name);
        for (const size of [0, 16]) {
          const { engine, who } = rig({ allowed_hostnames: entries }, { decisionCacheSize: size });
          for (let k = 0; k < 2; k++) {
            const d = engine.decide(who, spelled, 443);
            expect(d.allow).toBe(want !== undefined);
            expect(d.matched).toBe(want ?? null);
            expect(d.host).toBe(name);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('on a large random policy (hash tables and filter under load)', () => {
    const rnd = fc.sample(fc.array(fc.stringMatching(/^[a-z0-9]{1,6}$/), { minLength: 2, maxLength: 4 }), { numRuns: 5000, seed: 7 });
    const entries = rnd.map((l, i) => (i % 4 === 0 ? `*.${l.join('.')}` : l.join('.'))).filter((e) => !/^\*\.[^.]+$/.test(e));
    const cp = compile(entries);
    const probes = fc.sample(fc.array(fc.stringMatching(/^[a-z0-9]{1,6}$/), { minLength: 1, maxLength: 5 }), { numRuns: 5000, seed: 8 }).map((l) => l.join('.'));
    for (const e of entries.slice(0, 2000)) probes.push(e.replace(/^\*\./, 'q.'), e.replace(/^\*\./, ''));
    for (const name of probes) {
      if (normalizeHost(name).kind !== 'name') continue;
      expect(cp.matchName(name)?.entry, name).toBe(reference(entries, name));
    }
  });
});
