import { describe, expect, it } from 'vitest';
import { normalizeAllowedHostname, normalizeHost } from '../../src/policy/hostname.js';
import { rig } from '../support/policy-rig.js';

describe('names are normalised exactly as entries are', () => {
  it.each([
    ['GitHub.COM', 'github.com'],
    ['github.com.', 'github.com'],
    ['EXAMPLE.com.', 'example.com'],
    ['bücher.de', 'xn--bcher-kva.de'],
    ['BÜCHER.DE.', 'xn--bcher-kva.de'],
    ['XN--BCHER-KVA.de', 'xn--bcher-kva.de'],
    ['ＧＩＴＨＵＢ.com', 'github.com'],
    ['github。com', 'github.com'],
    ['münchen.example', 'xn--mnchen-3ya.example'],
  ])('%s → %s', (input, name) => {
    expect(normalizeHost(input)).toEqual({ kind: 'name', name });
    // the same name written as an entry is stored the same way
    expect(normalizeAllowedHostname(input)).toEqual({ ok: true, entry: name });
  });

  it('an entry in any spelling admits the name in any other spelling', () => {
    const spellings = ['bücher.de', 'BÜCHER.de', 'xn--bcher-kva.de', 'XN--BCHER-KVA.DE.', 'bücher.de.'];
    for (const entry of spellings) {
      const { engine, who } = rig({ allowed_hostnames: [entry] });
      for (const h of spellings) expect(engine.decide(who, h, 443)).toMatchObject({ allow: true, matched: 'xn--bcher-kva.de', host: 'xn--bcher-kva.de' });
    }
  });

  it('invalid punycode is invalid, never passed through as a plain name', () => {
    expect(normalizeHost('xn--zz.com').kind).toBe('invalid');
    expect(normalizeHost('www.xn--zz.com').kind).toBe('invalid');
    const { engine, who } = rig({ allowed_hostnames: ['*.com.example'] });
    expect(engine.decide(who, 'xn--zz.com.example', 443).reason).toBe('invalid_host');
  });

  it('homographs are different names', () => {
    const { engine, who } = rig({ allowed_hostnames: ['apple.com', 'paypal.com'] });
    expect(engine.decide(who, 'аpple.com', 443)).toMatchObject({ allow: false, reason: 'not_allowlisted', host: 'xn--pple-43d.com' });
    expect(engine.decide(who, 'pаypal.com', 443).allow).toBe(false);
  });

  it('a name that cannot be normalised is denied invalid_host, also under allow_all', () => {
    const { engine, who } = rig({ allow_all: true });
    for (const h of ['', 'a..b', 'git hub.com', `${'a'.repeat(64)}.com`, `${'abcdefghi.'.repeat(26)}com`, 'github\u200b.com']) {
      expect(engine.decide(who, h, 443)).toMatchObject({ allow: false, reason: 'invalid_host', hostKind: 'invalid' });
    }
  });

  it('length limits: 253 characters and 63 per label are fine, one more is not', () => {
    const label63 = 'a'.repeat(63);
    const name253 = `${label63}.${label63}.${label63}.${'b'.repeat(61)}`;
    expect(name253.length).toBe(253);
    expect(normalizeHost(name253)).toEqual({ kind: 'name', name: name253 });
    expect(normalizeHost(`${name253}.`)).toEqual({ kind: 'name', name: name253 });
    expect(normalizeHost(`c${name253}`).kind).toBe('invalid');
    expect(normalizeHost(`${'a'.repeat(64)}.com`).kind).toBe('invalid');
    expect(normalizeHost(`${label63}.com`).kind).toBe('name');
  });
});
