/**
 * The layering rule, enforced on the imports of src/ (docs/architecture.md). From the bottom:
 * policy (the engine: imports nothing of the gateway) < log, metrics, config < store <
 * the doors and their floor (egress, proxy, dns) < api < the wiring (server.ts) < cli < main.ts.
 * A part never imports one above it. What this does not enforce yet (issue #12): the store's
 * use of config.ts, and the egress/dns/door tangle between the doors' parts.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Floor of each part of src/ (a folder, or a file at the top). */
const FLOORS: Record<string, number> = {
  policy: 0,
  'log.ts': 1, 'metrics.ts': 1, 'config.ts': 1, 'version.ts': 1, 'byte-appender.ts': 1,
  store: 2,
  egress: 3, proxy: 3, dns: 3, 'door.ts': 3, 'signals.ts': 3, bench: 3,
  api: 4,
  fleet: 4,
  'server.ts': 5,
  cli: 6,
  'main.ts': 7,
};

function partOf(file: string): string {
  const rel = relative(SRC, file).split('\\').join('/');
  const top = rel.split('/')[0]!;
  if (!(top in FLOORS)) throw new Error(`src/${rel}: its part "${top}" has no floor in test/architecture/layers.test.ts (and docs/architecture.md)`);
  return top;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

describe('layers: no part of src/ imports a part above it', () => {
  const files = sources(SRC);

  it('every part has a floor', () => {
    for (const f of files) expect(() => partOf(f)).not.toThrow();
  });

  it('every relative import points to the same floor or below', () => {
    const up: string[] = [];
    for (const f of files) {
      const from = partOf(f);
      for (const m of readFileSync(f, 'utf8').matchAll(IMPORT)) {
        const target = normalize(join(dirname(f), m[1]!)).replace(/\.js$/, '.ts');
        if (!target.startsWith(SRC)) continue;
        const to = partOf(target);
        if (FLOORS[to]! > FLOORS[from]!) up.push(`src/${relative(SRC, f)} (${from}) imports ${m[1]} (${to})`);
      }
    }
    expect(up).toEqual([]);
  });

  it('policy/, the engine, imports nothing else of the gateway', () => {
    const out = files.filter((f) => partOf(f) === 'policy').flatMap((f) =>
      [...readFileSync(f, 'utf8').matchAll(IMPORT)].map((m) => normalize(join(dirname(f), m[1]!)).replace(/\.js$/, '.ts'))
        .filter((t) => t.startsWith(SRC) && partOf(t) !== 'policy')
        .map((t) => `src/${relative(SRC, f)} imports src/${relative(SRC, t)}`));
    expect(out).toEqual([]);
  });
});
