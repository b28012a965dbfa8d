import { describe, expect, it } from 'vitest';
import { rig } from '../support/policy-rig.js';

describe('`*.` entries: strict subdomains at any depth, never the apex', () => {
  const { engine, who } = rig({ allowed_hostnames: ['*.npmjs.org', 'pypi.org', '*.pythonhosted.org', 'files.pythonhosted.org'] });
  const d = (h: string) => engine.decide(who, h, 443);

  it('admits one and many labels below the suffix', () => {
    for (const h of ['registry.npmjs.org', 'a.registry.npmjs.org', `${'x.'.repeat(60)}npmjs.org`]) {
      expect(d(h)).toMatchObject({ allow: true, reason: 'hostname', matched: '*.npmjs.org', host: h });
    }
  });

  it('never admits the apex, in any spelling', () => {
    for (const h of ['npmjs.org', 'NPMJS.ORG', 'npmjs.org.']) expect(d(h)).toMatchObject({ allow: false, reason: 'not_allowlisted' });
  });

  it('an exact entry admits only itself', () => {
    expect(d('pypi.org').allow).toBe(true);
    expect(d('www.pypi.org')).toMatchObject({ allow: false, reason: 'not_allowlisted' });
  });

  it('an exact entry wins over a wildcard that also matches, and the reported entry is the exact one', () => {
    expect(d('files.pythonhosted.org')).toMatchObject({ allow: true, matched: 'files.pythonhosted.org' });
    expect(d('x.files.pythonhosted.org')).toMatchObject({ allow: true, matched: '*.pythonhosted.org' });
  });

  it('the most specific wildcard is reported when several match', () => {
    const r = rig({ allowed_hostnames: ['*.example.com', '*.b.example.com'] });
    expect(r.engine.decide(r.who, 'a.b.example.com', 443).matched).toBe('*.b.example.com');
    expect(r.engine.decide(r.who, 'b.example.com', 443).matched).toBe('*.example.com');
    expect(r.engine.decide(r.who, 'c.example.com', 443).matched).toBe('*.example.com');
  });

  it('a name with as many labels as DNS allows is still judged', () => {
    const deep = `${'a.'.repeat(120)}npmjs.org`;
    expect(deep.length).toBeLessThanOrEqual(253);
    expect(d(deep).allow).toBe(true);
  });
});
