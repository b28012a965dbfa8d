/**
 * The shared-services list (src/policy/shared-services.ts) stays maintainable and means what
 * suggest relies on: valid lower-case domains, sorted, no duplicates, none a public suffix of
 * the ICANN section (a wildcard over those is refused anyway), and a name matches at the
 * listed domain and below, never a look-alike.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'tldts';
import { normalizeAllowedHostname } from '../../src/policy/hostname.js';
import { SHARED_SERVICES, sharedService } from '../../src/policy/shared-services.js';

describe('shared services list', () => {
  it('is valid host names, lower case, sorted and without duplicates', () => {
    for (const d of SHARED_SERVICES) {
      const n = normalizeAllowedHostname(d);
      expect(n.ok && n.entry, d).toBe(d);
      expect(d.startsWith('*'), d).toBe(false);
    }
    expect([...SHARED_SERVICES].sort()).toEqual(SHARED_SERVICES);
    expect(new Set(SHARED_SERVICES).size).toBe(SHARED_SERVICES.length);
  });

  it('holds the out-of-band services the PSL does not list, and names no ICANN public suffix', () => {
    for (const d of ['oast.fun', 'oast.pro', 'oast.live', 'oast.site', 'oast.online', 'oast.me', 'interact.sh', 'pipedream.net', 'requestcatcher.com', 'webhook.site', 'loca.lt', 'serveo.net', 'glitch.me', 'firebaseio.com', 'burpcollaborator.net']) {
      expect(SHARED_SERVICES, d).toContain(d);
      expect(parse(`x.${d}`, { allowPrivateDomains: true }).domain, d).toBe(d);
    }
    for (const d of SHARED_SERVICES) expect(parse(d).publicSuffix === d && parse(d).isIcann, d).toBe(false);
  });

  it('matches the domain and names below it, not look-alikes', () => {
    expect(sharedService('oast.fun')).toBe('oast.fun');
    expect(sharedService('a.b.oast.fun')).toBe('oast.fun');
    expect(sharedService('x.tenant.ngrok-free.app')).toBe('ngrok-free.app');
    expect(sharedService('notoast.fun')).toBeNull();
    expect(sharedService('oast.fun.example.com')).toBeNull();
    expect(sharedService('example.com')).toBeNull();
  });
});
