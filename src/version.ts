/** The package version, read once from package.json (beside src/ or dist/src/). */
import { readFileSync } from 'node:fs';

function read(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const p = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (p.name === 'egress-gateway' && typeof p.version === 'string') return p.version;
    } catch {
      /* try the next place */
    }
  }
  return 'unknown';
}

export const VERSION = read();
