import { describe, expect, it } from 'vitest';
import { BAD_ENTRIES, GOOD_ENTRIES } from '../fixtures/hostnames.js';
import { normalizeAllowedHostname, normalizeAllowedHostnames } from '../../src/policy/hostname.js';
import { parseCidr } from '../../src/policy/ip.js';
import { CompiledPolicy } from '../../src/policy/compiler.js';
import { MemorySource } from '../../src/policy/memory-source.js';
import { NO_TOGGLES } from '../support/policy-rig.js';

describe('allowlist entries rejected at write time', () => {
  it.each(BAD_ENTRIES.map((b) => [JSON.stringify(b.input), b] as const))('rejects %s', (_label, b) => {
    const r = normalizeAllowedHostname(b.input);
    expect(r.ok, b.why).toBe(false);
    if (!r.ok) expect(r.why.length).toBeGreaterThan(0);
  });

  it.each(GOOD_ENTRIES.map((g) => [g.input, g.stored] as const))('accepts %s as %s', (input, stored) => {
    expect(normalizeAllowedHostname(input)).toEqual({ ok: true, entry: stored });
  });

  it('the list validator names the first bad entry and de-duplicates normalised ones', () => {
    expect(normalizeAllowedHostnames(['github.com', '*.com', 'x.y'])).toMatchObject({ ok: false, entry: '*.com' });
    expect(normalizeAllowedHostnames(['GitHub.com', 'github.com.', '*.npmjs.org', '*.NPMJS.org'])).toEqual({ ok: true, entries: ['github.com', '*.npmjs.org'] });
  });

  it('useful messages: wildcard, IP, URL, port', () => {
    const why = (x: string) => {
      const r = normalizeAllowedHostname(x);
      return r.ok ? '' : r.why;
    };
    expect(why('*.com')).toMatch(/two labels/);
    expect(why('10.0.0.1')).toMatch(/allowed_cidrs/);
    expect(why('https://a.com')).toMatch(/URL/);
    expect(why('a.com:443')).toMatch(/port/);
    expect(why('*')).toMatch(/allow_all/);
  });

  it('CIDRs: strict mode wants host bits zero; prefixes and families are checked', () => {
    expect(parseCidr('10.0.0.0/8', true)).toMatchObject({ family: 4, prefix: 8, text: '10.0.0.0/8' });
    expect(parseCidr('10.0.0.1/8', true)).toEqual({ error: 'host bits must be zero' });
    expect(parseCidr('10.0.0.1/8')).toMatchObject({ text: '10.0.0.0/8' });
    expect(parseCidr('2001:DB8::/32', true)).toMatchObject({ family: 6, text: '2001:db8::/32' });
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0/8', '010.0.0.0/8', 'example.com/8', '10.0.0.0/x', '10.0.0.0/-1', '']) {
      expect(parseCidr(bad, true), bad).toHaveProperty('error');
    }
  });

  it('a stored entry that does not normalise (an old row, a fleet source) admits nothing', () => {
    const source = new MemorySource();
    const p = source.putPolicy({ egress: { allowed_hostnames: ['*', '*.com', 'GitHub.com', 'x..y'], allowed_cidrs: [{ cidr: 'nonsense' }] } });
    const cp = new CompiledPolicy(p, NO_TOGGLES);
    expect([...cp.entries()].map((e) => e.entry)).toEqual(['github.com']);
    expect(cp.rejected.map((r) => r.entry)).toEqual(['*', '*.com', 'x..y', 'nonsense']);
    expect(cp.matchName('anything.com')).toBeUndefined();
    expect(cp.matchName('github.com')?.entry).toBe('github.com');
  });
});
