/**
 * Replays every committed fuzz corpus file (test/fuzz/corpus/<target>/) through its target:
 * the seeds, the inputs the fuzzer kept for coverage, and every past finding (named
 * `crash-*` / `slow-*`), so a regression in any parser property fails `npm test`.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TARGETS } from './targets.js';

const corpus = join(dirname(fileURLToPath(import.meta.url)), 'corpus');

describe('fuzz corpus replay', () => {
  for (const target of Object.keys(TARGETS)) {
    it(`${target}: every corpus input keeps its properties`, async () => {
      const { fuzz } = (await import(`./targets/${target}.ts`)) as { fuzz: (data: Buffer) => void };
      const files = readdirSync(join(corpus, target)).sort();
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) {
        const data = readFileSync(join(corpus, target, f));
        try {
          fuzz(data);
        } catch (e) {
          throw new Error(`${target}/${f}: ${(e as Error).message}`, { cause: e });
        }
      }
    });
  }
});
