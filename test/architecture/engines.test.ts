/**
 * Issue 24 (one name per thing): `engines` in package.json tells the truth about the
 * dependencies. The floor is Node 20.19 (the code runs on Node 20 and on the current LTS);
 * two packages in the lock file declare Node ≥ 22 in their own `engines` (`npm ci` warns
 * EBADENGINE) although they run on 20: they are named here and in the README, and are loaded
 * and used on this Node below. A new dependency that declares a higher floor fails this test
 * until it is either dropped, pinned lower, or added here with the same check.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(new URL('package-lock.json', ROOT), 'utf8')) as { packages: Record<string, { version?: string; dev?: boolean; engines?: { node?: string } | string[] }> };

/** The lowest Node major a `>=N`-style range admits (the forms the lock file holds), or null when it has no floor. */
function floorMajor(range: string): number | null {
  const alternatives = range.split('||').map((r) => /^\s*>=?\s*v?(\d+)/.exec(r.trim()) ?? /^\s*\^?~?(\d+)/.exec(r.trim()));
  const majors = alternatives.map((m) => (m ? Number(m[1]) : 0));
  return majors.length === 0 ? null : Math.min(...majors);
}

/** Declare a higher floor than ours, yet run on Node 20 (checked below). */
const RUN_ON_20 = new Map([
  ['node_modules/@nats-io/nuid', 'ids for NATS messages (the fleet); plain ES2020 and globalThis.crypto'],
  ['node_modules/cookie', "fastify's light-my-request (inject); plain ES2020"],
]);

describe('engines', () => {
  it('declares Node ≥ 20.19', () => {
    expect(pkg.engines.node).toBe('>=20.19');
    expect(floorMajor(pkg.engines.node)).toBe(20);
  });

  it('every runtime dependency admits Node 20, but the two named ones', () => {
    const higher = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && !p.dev && !Array.isArray(p.engines) && p.engines?.node !== undefined && (floorMajor(p.engines.node) ?? 0) > 20)
      .map(([path]) => path);
    expect(higher.sort()).toEqual([...RUN_ON_20.keys()].sort());
  });

  it('the two load and work on this Node', () => {
    const require = createRequire(new URL('package.json', ROOT));
    const { nuid } = require(require.resolve('@nats-io/nuid', { paths: [require.resolve('@nats-io/nats-core')] })) as { nuid: { next(): string } };
    const ids = new Set(Array.from({ length: 1000 }, () => nuid.next()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^[0-9A-Za-z]{22}$/);
    const cookie = require(require.resolve('cookie', { paths: [require.resolve('light-my-request')] })) as { stringifySetCookie(c: { name: string; value: string }): string; parseCookie(s: string): Record<string, string> };
    expect(cookie.stringifySetCookie({ name: 'a', value: 'b c' })).toBe('a=b%20c');
    expect(cookie.parseCookie('a=1; b=2')).toEqual({ a: '1', b: '2' });
  });
});
