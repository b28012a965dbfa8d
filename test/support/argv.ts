/**
 * A plain argv reader for tests that fold flags through loadConfig without commander (the
 * real command line, src/main.ts, parses with commander and hands loadConfig the same map).
 */
import { ConfigError } from '../../src/config-error.js';

/** Splits argv into flag values (repeatable flags collect) and positional arguments. */
export function parseArgv(argv: readonly string[], known: ReadonlySet<string>): { flags: Map<string, string[]>; positional: string[] } {
  const flags = new Map<string, string[]>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
    if (!known.has(name)) throw new ConfigError(`--${name}`, 'unknown flag (see --help)');
    let value: string;
    if (eq !== -1) value = a.slice(eq + 1);
    else if (BOOLEAN_FLAGS.has(name)) value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`--${name}`, 'needs a value');
      value = next;
      i++;
    }
    const list = flags.get(name) ?? [];
    list.push(value);
    flags.set(name, list);
  }
  return { flags, positional };
}

/** Flags that take no value. */
export const BOOLEAN_FLAGS = new Set(['help', 'prune', 'dry-run', 'json']);
