/**
 * The layering rule, enforced on the imports of src/ (docs/architecture.md). From the bottom:
 * policy (the engine: imports nothing of the gateway) < log, metrics, config < store <
 * resolver < the doors' shared floor (doors/floor) < each door (doors/<door>) < api <
 * the wiring < cli < main.ts. A part never imports one above it, and a door never imports
 * another door: what two doors share lives on the floor. The one exception is named below.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Floor of each part of src/ (a folder, or a file at the top). */
const FLOORS: Record<string, number> = {
  policy: 0,
  'log.ts': 1,
  'metrics.ts': 1,
  'ipc.ts': 1,
  'config.ts': 1,
  'version.ts': 1,
  'byte-appender.ts': 1,
  store: 2,
  resolver: 3,
  'signals.ts': 3,
  bench: 3,
  fleet: 3,
  'doors/floor': 4,
  'doors/http': 5,
  'doors/connect': 5,
  'doors/socks5': 5,
  'doors/tls': 5,
  'doors/dns': 5,
  api: 6,
  wiring: 7,
  cli: 8,
  'main.ts': 9,
};

/** Door-to-door imports allowed: the HTTP proxy's listener hands CONNECT requests to their door. */
const DOOR_TO_DOOR: ReadonlySet<string> = new Set(['doors/http -> doors/connect']);

function partOf(file: string): string {
  const rel = relative(SRC, file).split('\\').join('/');
  const [top, second] = rel.split('/');
  const part = top === 'doors' ? `doors/${second}` : top!;
  if (!(part in FLOORS)) throw new Error(`src/${rel}: its part "${part}" has no floor in test/architecture/layers.test.ts (and docs/architecture.md)`);
  return part;
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

  it('a door imports the floor, never another door', () => {
    const across: string[] = [];
    for (const f of files) {
      const from = partOf(f);
      if (!from.startsWith('doors/') || from === 'doors/floor') continue;
      for (const m of readFileSync(f, 'utf8').matchAll(IMPORT)) {
        const target = normalize(join(dirname(f), m[1]!)).replace(/\.js$/, '.ts');
        if (!target.startsWith(SRC)) continue;
        const to = partOf(target);
        if (to.startsWith('doors/') && to !== 'doors/floor' && to !== from && !DOOR_TO_DOOR.has(`${from} -> ${to}`)) across.push(`src/${relative(SRC, f)} (${from}) imports ${m[1]} (${to})`);
      }
    }
    expect(across).toEqual([]);
  });

  it('policy/, the engine, imports nothing else of the gateway', () => {
    const out = files
      .filter((f) => partOf(f) === 'policy')
      .flatMap((f) =>
        [...readFileSync(f, 'utf8').matchAll(IMPORT)]
          .map((m) => normalize(join(dirname(f), m[1]!)).replace(/\.js$/, '.ts'))
          .filter((t) => t.startsWith(SRC) && partOf(t) !== 'policy')
          .map((t) => `src/${relative(SRC, f)} imports src/${relative(SRC, t)}`),
      );
    expect(out).toEqual([]);
  });
});
