/**
 * Runs before every test file (vitest `setupFiles`). Its `afterAll` runs after the file's own
 * (hooks run as a stack): it kills every process tree the file started through
 * test/support/processes.ts that is still alive, and removes every folder made with
 * test/support/temp.ts, whether the tests passed or not. A tree whose leader exited while its
 * other processes lived on (a wrapper killed without its child, a gateway gone leaving a
 * worker) is written to the run's leaks file, which fails the run at the end
 * (test/support/global-setup.ts).
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { killAllTrees, orphanedTrees } from './processes.js';
import { LEAKS_FILE, removeTempDirs } from './temp.js';
import { eventually } from './wait.js';

afterAll(async () => {
  // A child whose parent is gone exits on its own when it notices (IPC disconnect): a moment
  // (EGW_LEFTOVER_GRACE_MS, 5 s unless set: the nested run of test/hygiene/ sets less).
  await eventually(() => orphanedTrees().length === 0, Number(process.env.EGW_LEFTOVER_GRACE_MS) || 5000, 100);
  const orphans = orphanedTrees();
  killAllTrees();
  const notRemoved = removeTempDirs();
  const runDir = process.env.EGW_TEST_RUN_DIR;
  const file = expect.getState().testPath ?? 'a test file';
  const lines = [...orphans.map((o) => `${file}: process left by its exited parent (killed): ${o.slice(0, 300)}`), ...notRemoved.map((d) => `${file}: folder not removed: ${d}`)];
  if (lines.length > 0 && runDir) appendFileSync(join(runDir, LEAKS_FILE), `${lines.join('\n')}\n`);
});
