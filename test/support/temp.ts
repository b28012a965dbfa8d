/**
 * Temporary folders for tests: `tempDir('name')` makes `$TMPDIR/egw-name-XXXXXX` and removes
 * it after the test file (the `afterAll` in test/support/setup-file.ts), whether the tests
 * passed or not, and when this process exits. Under `npm test` TMPDIR is the run's own folder
 * (test/support/global-setup.ts), which the run checks is empty at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** In the run's folder: what the test files' clean-ups had to kill or could not remove. */
export const LEAKS_FILE = 'leaks.txt';

const dirs = new Set<string>();

export function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `egw-${name}-`));
  dirs.add(dir);
  return dir;
}

/** Removes every folder tempDir made; returns those that could not be removed, with why. */
export function removeTempDirs(): string[] {
  const failed: string[] = [];
  for (const dir of dirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      failed.push(`${dir}: ${(e as Error).message}`);
    }
  }
  dirs.clear();
  return failed;
}

process.on('exit', () => {
  removeTempDirs();
});
