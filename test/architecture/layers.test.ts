/**
 * The layering rule, enforced on the imports of src/ (docs/architecture.md). From the bottom:
 * policy (the engine: imports nothing of the gateway) < log, metrics, config < store <
 * resolver < the doors' shared floor (doors/floor) < each door (doors/<door>) < the door
 * registry < api < the wiring < cli < main.ts. A part never imports one above it, and a door
 * never imports another door: what two doors share lives on the floor. The one exception is
 * named below. No file of src/ imports itself back through a circle of imports.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const REGISTRY = join(SRC, 'doors/registry.ts');

/** Floor of each part of src/ (a folder, or a file at the top); every door folder is on floor DOOR_FLOOR. */
const FLOORS: Record<string, number> = {
  policy: 0,
  'log.ts': 1,
  'metrics.ts': 1,
  'ipc.ts': 1,
  'config.ts': 1,
  'config-error.ts': 1,
  'host-port.ts': 1,
  'version.ts': 1,
  'byte-appender.ts': 1,
  store: 2,
  resolver: 3,
  'signals.ts': 3,
  fleet: 3,
  'doors/floor': 4,
  'doors/registry.ts': 6,
  api: 7,
  wiring: 8,
  cli: 9,
  'main.ts': 10,
};
const DOOR_FLOOR = 5;

/** Door-to-door imports allowed: the HTTP proxy's listener hands CONNECT requests to their door. */
const DOOR_TO_DOOR: ReadonlySet<string> = new Set(['doors/http -> doors/connect']);

function isDoor(part: string): boolean {
  return part.startsWith('doors/') && !(part in FLOORS);
}

function floorOf(part: string): number {
  return isDoor(part) ? DOOR_FLOOR : FLOORS[part]!;
}

function partOf(file: string): string {
  const rel = relative(SRC, file).split('\\').join('/');
  const [top, second] = rel.split('/');
  const part = top === 'doors' ? `doors/${second}` : top!;
  // A folder under src/doors/ is a door (src/doors/registry.ts must start it: see below).
  if (isDoor(part) && statSync(join(SRC, part)).isDirectory()) return part;
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

/** The files of src/ a file imports (relative imports, type-only ones included). */
function importsOf(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => normalize(join(dirname(file), m[1]!)).replace(/\.js$/, '.ts')).filter((t) => t.startsWith(SRC));
}

/**
 * Every circle of imports in `graph`, each once, as the files around it (Tarjan's strongly
 * connected components: a component of more than one file, or a file importing itself).
 */
function importCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

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
        if (floorOf(to) > floorOf(from)) up.push(`src/${relative(SRC, f)} (${from}) imports ${m[1]} (${to})`);
      }
    }
    expect(up).toEqual([]);
  });

  it('a door imports the floor, never another door', () => {
    const across: string[] = [];
    for (const f of files) {
      const from = partOf(f);
      if (!isDoor(from)) continue;
      for (const m of readFileSync(f, 'utf8').matchAll(IMPORT)) {
        const target = normalize(join(dirname(f), m[1]!)).replace(/\.js$/, '.ts');
        if (!target.startsWith(SRC)) continue;
        const to = partOf(target);
        if (isDoor(to) && to !== from && !DOOR_TO_DOOR.has(`${from} -> ${to}`)) across.push(`src/${relative(SRC, f)} (${from}) imports ${m[1]} (${to})`);
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

  it('no file imports itself back through a circle of imports', () => {
    const graph = new Map(files.map((f) => [f, importsOf(f)]));
    const circles = importCycles(graph).map((c) => c.map((f) => `src/${relative(SRC, f)}`).join(' <-> '));
    expect(circles).toEqual([]);
  });

  it('every door folder is started through the door registry (src/doors/registry.ts)', () => {
    const reached = new Set<string>();
    const walk = (f: string) => {
      for (const t of importsOf(f)) {
        if (reached.has(t) || !isDoor(partOf(t))) continue;
        reached.add(t);
        walk(t);
      }
    };
    walk(REGISTRY);
    const doors = new Set(files.map(partOf).filter(isDoor));
    const unreached = [...doors].filter((d) => ![...reached].some((f) => partOf(f) === d));
    expect(unreached).toEqual([]);
  });
});

describe('the cycle check finds circles', () => {
  it('reports a two-file circle, a longer one and a self-import, and nothing for a chain', () => {
    const g = new Map<string, string[]>([
      ['a', ['b']],
      ['b', ['a', 'c']],
      ['c', ['d']],
      ['d', ['e']],
      ['e', ['c']],
      ['f', ['f']],
      ['g', ['a']],
    ]);
    expect(new Set(importCycles(g).map((c) => c.join(',')))).toEqual(new Set(['a,b', 'c,d,e', 'f']));
    expect(
      importCycles(
        new Map([
          ['x', ['y']],
          ['y', ['z']],
        ]),
      ),
    ).toEqual([]);
  });
});
