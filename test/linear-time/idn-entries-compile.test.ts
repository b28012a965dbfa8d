/**
 * Attack (issue #17, 3): IDN entries redid IDNA at every compile. Stored `xn--` names
 * missed the compiler's ASCII fast path and were normalised again (domainToASCII plus a
 * round trip per label): 10,000 CJK entries compiled ~14x slower than 10,000 ASCII ones,
 * on every update, restart and worker.
 *
 * Expected: names are normalised once, when stored; the compiler takes the stored
 * canonical form (punycode included) as it is, so 10,000 CJK entries compile within 2x of
 * 10,000 ASCII ones of the same length, at 1×, 2× and 4× sizes. A row in a non-canonical form (older version, hand
 * edit) still compiles and matches, through the full normalisation.
 */
import { describe, expect, it } from 'vitest';
import { CompiledPolicy } from '../../src/policy/compiler.js';
import { PolicyEngine, type Identity } from '../../src/policy/engine.js';
import { MemorySource } from '../../src/policy/memory-source.js';
import { validateHostnames } from '../../src/policy/validate.js';
import { asciiNames, cjkNames, cjkUnicodeNames } from '../fixtures/worst-case-names.js';
import { fastest, growthAgainst, showGrowth } from '../support/timing.js';

const TOGGLES = { agentGateway: [], mcpGateway: [], mirrors: [] };
const policy = (names: readonly string[]) => ({ id: 'npol_idn', account_id: 'acct', version: 1, egress: { allowed_hostnames: [...names] } }) as never;
const compile = (names: readonly string[]) => () => new CompiledPolicy(policy(names), TOGGLES);

describe('stored IDN entries compile without IDNA work', () => {
  it('the stored form is what the API writes: punycode, and it admits the Unicode name', () => {
    const stored = validateHostnames(cjkUnicodeNames(3));
    expect(stored).toEqual(cjkNames(3));
    const cp = new CompiledPolicy(policy(stored), TOGGLES);
    expect(cp.rejected).toEqual([]);
    expect(cp.matchName(stored[1]!)?.entry).toBe(stored[1]);
  });

  it('10,000 CJK entries compile within 2x of 10,000 ASCII entries of the same length', () => {
    const [cjk, ascii] = fastest([compile(cjkNames(10_000)), compile(asciiNames(10_000))], 11) as [number, number];
    expect(cjk, `CJK ${cjk.toFixed(1)} ms, ASCII ${ascii.toFixed(1)} ms`).toBeLessThanOrEqual(2 * ascii);
  });

  it('grows like the ASCII control: within 2x of it at 1,024, 2,048 and 4,096 entries', () => {
    const g = growthAgainst(
      (n) => compile(cjkNames(n)),
      (n) => compile(asciiNames(n)),
      1_024,
      11,
    );
    for (const r of g) expect(r.ratio, showGrowth(g)).toBeLessThanOrEqual(2);
  });

  it('rows written in another form (Unicode, upper case, trailing dot) still compile and match', () => {
    const cp = new CompiledPolicy(policy(['例え.JP', 'Bücher.Example.', '*.ÉCOLE.example']), TOGGLES);
    expect(cp.rejected).toEqual([]);
    expect(cp.matchName('xn--r8jz45g.jp')?.entry).toBe('xn--r8jz45g.jp');
    expect(cp.matchName('xn--bcher-kva.example')?.entry).toBe('xn--bcher-kva.example');
    expect(cp.matchName('a.xn--cole-9oa.example')?.entry).toBe('*.xn--cole-9oa.example');
  });

  it('a stored punycode label that is not valid punycode admits nothing (queries are validated)', () => {
    const source = new MemorySource();
    source.putPolicy({ id: 'npol_idn', egress: { allowed_hostnames: ['xn--zz.example', '*.xn--abc-.example'] } } as never);
    source.putDevbox({ id: 'dbx_idn', network_policy_id: 'npol_idn', addresses: ['10.0.0.2'] } as never);
    const engine = new PolicyEngine(source, { toggles: TOGGLES, allowPrivate: [], tunnelDomain: 'tunnel.example' });
    const who: Identity = { devboxId: 'dbx_idn', via: 'credentials', source: '10.0.0.2' };
    for (const q of ['xn--zz.example', 'XN--ZZ.example', 'a.xn--abc-.example']) {
      const d = engine.decide(who, q, 443);
      expect(d.allow, q).toBe(false);
      expect(d.reason, q).toBe('invalid_host');
    }
    engine.close();
  });
});
