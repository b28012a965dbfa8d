import { describe, expect, it } from 'vitest';
import { rig } from '../support/policy-rig.js';

describe('look-alike names never match by substring or suffix', () => {
  const exact = rig({ allowed_hostnames: ['github.com'] });
  const wild = rig({ allowed_hostnames: ['*.github.com'] });
  const de = (r: typeof exact, h: string) => r.engine.decide(r.who, h, 443);

  it.each(['notgithub.com', 'github.com.evil.com', 'github.co', 'github.comm', 'ithub.com', 'github-com.evil.com', 'evil.com/github.com', 'github.com.'.repeat(2)])('github.com does not admit %s', (h) => expect(de(exact, h).allow).toBe(false));

  it.each(['evilgithub.com', 'xgithub.com', 'api.github.com.evil.com', 'github.com', 'api.github.com-evil.com', 'api.github.co'])('*.github.com does not admit %s', (h) => expect(de(wild, h).allow).toBe(false));

  it('a suffix that is a whole label boundary still matches', () => {
    expect(de(wild, 'gist.github.com').allow).toBe(true);
  });
});
