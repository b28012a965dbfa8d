/**
 * Issue 24 (test hygiene): a run leaves no process and no temporary folder behind, and says
 * so when a test does. Process trees: `killTree` reaches a wrapper's child, the way tsx's
 * wrapper once left `serve` running under PID 1. The run's end: a nested vitest (the
 * project's global set-up and per-file clean-up, test/fixtures/hygiene/) fails naming a
 * leaked process, a leaked folder, and a child its killed parent left.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli-gateway.js';
import { groupAlive, killTree, membersOf, orphanedTrees, runTree, spawnTree } from '../support/processes.js';
import { removeTempDirs, tempDir } from '../support/temp.js';
import { waitFor } from '../support/wait.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A wrapper (sh) whose child (sleep) prints nothing: resolves with both pids. */
async function wrapperWithChild(): Promise<{ wrapper: ReturnType<typeof spawnTree>; childPid: number }> {
  const wrapper = spawnTree('sh', ['-c', 'sleep 120 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  wrapper.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const childPid = Number(await waitFor(() => /^\d+\n/.exec(out)?.[0], 10_000, 'the child pid'));
  return { wrapper, childPid };
}

describe('process trees', () => {
  it('killTree kills the wrapper and the child it started', async () => {
    const { wrapper, childPid } = await wrapperWithChild();
    expect(membersOf(wrapper.pid!).length).toBe(2);
    killTree(wrapper);
    await waitFor(() => !alive(childPid) && !groupAlive(wrapper.pid!), 10_000, 'the whole tree to be gone');
  });

  it('a leader killed alone leaves an orphaned tree, which orphanedTrees names', async () => {
    const { wrapper, childPid } = await wrapperWithChild();
    wrapper.kill('SIGKILL'); // the leader only: what a test did to tsx's wrapper
    await waitFor(() => wrapper.exitCode !== null || wrapper.signalCode !== null, 10_000, 'the wrapper to exit');
    expect(alive(childPid)).toBe(true);
    expect(orphanedTrees().join('\n')).toContain(`${childPid} sleep 120`);
    killTree(wrapper.pid!);
    await waitFor(() => !alive(childPid), 10_000, 'the orphan to be killed');
  });

  it('runTree kills the whole tree at its time-out', async () => {
    const r = await runTree('sh', ['-c', 'sleep 120 & echo $!; wait'], { timeoutMs: 1000 });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBe(-1);
    await waitFor(() => !alive(Number(r.stdout.trim())), 10_000, 'the child to be gone with its wrapper');
  });
});

describe('temporary folders', () => {
  it('tempDir folders are removed by the clean-up, and they live in the run folder', () => {
    const dir = tempDir('probe');
    expect(existsSync(dir)).toBe(true);
    if (process.env.EGW_TEST_RUN_DIR) expect(dir.startsWith(`${process.env.EGW_TEST_RUN_DIR}/`)).toBe(true);
    expect(removeTempDirs()).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});

describe("the run's end", { timeout: 120_000 }, () => {
  const nested = (leak: string) => {
    const tmp = tempDir('nested');
    return runTree(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'test/fixtures/hygiene/vitest.config.ts'], {
      cwd: ROOT,
      timeoutMs: 90_000,
      env: { ...process.env, EGW_FIXTURE_LEAK: leak, TMPDIR: tmp, EGW_TEST_RUN: '', EGW_TEST_RUN_DIR: '', VITEST_MAX_WORKERS: '1', EGW_LEFTOVER_GRACE_MS: '500' },
    }).then((r) => ({ ...r, tmp }));
  };

  it('a clean run passes and leaves its folder empty', async () => {
    const r = await nested('');
    expect(r.stderr).not.toContain('left behind');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(readdirSync(r.tmp).filter((n) => n.startsWith('egw-'))).toEqual([]); // the run folder itself is gone
  });

  it('fails naming a leaked process, a leaked folder and an orphaned child, and removes them', async () => {
    const r = await nested('process,folder,orphan');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('left behind by this run');
    expect(r.stderr).toMatch(/process \d+ still running \(killed now\): sleep 120/);
    expect(r.stderr).toMatch(/left in TMPDIR: \S+\/egw-fixture-leak-/);
    expect(r.stderr).toMatch(/leaky\.fixture\.ts: process left by its exited parent \(killed\): \d+ sleep 120/);
    expect(readdirSync(r.tmp).filter((n) => n.startsWith('egw-'))).toEqual([]); // the run folder itself is gone
  });
});
