/**
 * Once per vitest run (vitest calls a project's globalSetup for the root and each project;
 * the first call sets up, the last teardown checks): the run gets its own temporary folder,
 * `TMPDIR` for every test file and every process they start, and a mark in the environment
 * (`EGW_TEST_RUN`) those processes inherit. At the end the run fails, naming what it found,
 * when a process with the mark is still alive, a folder is left in the run's TMPDIR, or a
 * test file's clean-up reported a process tree it had to kill (test/support/setup-file.ts).
 * It stops the run's shared PostgreSQL (test/support/postgres.ts) first.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { stopSharedPostgres } from './postgres.js';
import { LEAKS_FILE } from './temp.js';

interface RunState {
  users: number;
  dir: string;
}

const KEY = Symbol.for('egress-gateway.test-run');
const state = globalThis as { [KEY]?: RunState };

export default function setup(): () => Promise<void> {
  let run = state[KEY];
  if (run === undefined) {
    // Under the system's temporary folder, before TMPDIR points into it.
    const dir = mkdtempSync(join(process.env.TMPDIR || '/tmp', 'egw-run-'));
    // Traversable by the `postgres` user (initdb runs as it when the tests run as root).
    chmodSync(dir, 0o755);
    run = { users: 0, dir };
    state[KEY] = run;
    // tsx keeps its compile cache in $TMPDIR/tsx-<uid>: keep using the system's (warm) one.
    const tsxCache = `tsx-${process.getuid?.() ?? 0}`;
    const systemCache = join(process.env.TMPDIR || '/tmp', tsxCache);
    mkdirSync(systemCache, { recursive: true, mode: 0o700 });
    symlinkSync(systemCache, join(dir, tsxCache));
    process.env.EGW_TEST_RUN = basename(dir);
    process.env.EGW_TEST_RUN_DIR = dir;
    process.env.TMPDIR = dir;
  }
  run.users++;
  return async () => {
    run.users--;
    if (run.users > 0) return;
    state[KEY] = undefined;
    const problems = [...(await stopSharedPostgres(run.dir)), ...(await leftProcesses(basename(run.dir))), ...leftFiles(run.dir)];
    // rmSync removes the tsx cache link, not what it points to.
    rmSync(run.dir, { recursive: true, force: true });
    if (problems.length > 0) {
      process.stderr.write(`\nleft behind by this run (each is a test bug: kill process trees and remove folders in afterAll):\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
      process.exitCode = 1;
    }
  };
}

/** Live processes (other than vitest's own) whose environment carries this run's mark. */
function marked(mark: string): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = [];
  const needle = `EGW_TEST_RUN=${mark}\0`;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${p}/environ`, 'latin1').includes(needle)) continue;
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      if (cmd === '' || /node_modules\/(vitest|tinypool)\//.test(cmd)) continue; // a zombie, or a vitest worker closing
      out.push({ pid: Number(p), cmd });
    } catch {
      /* exited, or not ours to read */
    }
  }
  return out;
}

/** Waits a moment for processes still on their way out, then kills and names the rest. */
async function leftProcesses(mark: string): Promise<string[]> {
  const end = Date.now() + (Number(process.env.EGW_LEFTOVER_GRACE_MS) || 5000);
  let left = marked(mark);
  while (left.length > 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    left = marked(mark);
  }
  for (const { pid } of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return left.map(({ pid, cmd }) => `process ${pid} still running (killed now): ${cmd.slice(0, 300)}`);
}

/** Folders and files left in the run's TMPDIR, and what the test files' clean-ups reported. */
function leftFiles(dir: string): string[] {
  const out: string[] = [];
  const leaks = join(dir, LEAKS_FILE);
  if (existsSync(leaks)) out.push(...readFileSync(leaks, 'utf8').split('\n').filter(Boolean));
  for (const name of readdirSync(dir)) if (name !== LEAKS_FILE && !name.startsWith('tsx-')) out.push(`left in TMPDIR: ${join(dir, name)}`);
  return out;
}
