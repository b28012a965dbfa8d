/**
 * Child processes a test starts, each the leader of its own process group (`detached`), so one
 * signal reaches the whole tree: tsx's wrapper and its node child, a gateway's workers and its
 * API thread, npm and the shell and node it runs. `killTree` signals the group; every group
 * this process started that still has a member is SIGKILLed after each test file (the
 * `afterAll` in test/support/setup-file.ts) and when this process exits. Spawn through here,
 * never `child_process.spawn` directly, for anything that may outlive a failed assertion.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/**
 * Process-group ids started here whose group may still have a member. A group id stays
 * reserved by the kernel while any member lives, so signalling `-pgid` never reaches a
 * stranger; once the group is empty it is dropped (pids are reused: pid_max may be 32768).
 */
const groups = new Set<number>();

/** Whether any process is still in group `pgid`. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Spawns `cmd` as the leader of a new process group, tracked until the group is empty. */
export function spawnTree(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { ...opts, detached: true });
  const pgid = child.pid;
  if (pgid !== undefined) {
    groups.add(pgid);
    leaders.set(pgid, child);
    // The leader's exit leaves the group to its other members (a wrapper's child, a worker).
    child.once('exit', () => {
      if (!groupAlive(pgid)) {
        groups.delete(pgid);
        leaders.delete(pgid);
      }
    });
  }
  return child;
}

/** Sends `signal` to every process in the child's group (the child itself too, whatever it did). */
export function killTree(child: ChildProcess | number, signal: NodeJS.Signals = 'SIGKILL'): void {
  const pgid = typeof child === 'number' ? child : child.pid;
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // Not a group leader here (spawned without spawnTree): the process itself, if it is alive.
    try {
      process.kill(pgid, signal);
    } catch {
      /* gone */
    }
  }
  if (signal === 'SIGKILL') {
    groups.delete(pgid);
    leaders.delete(pgid);
  }
}

const leaders = new Map<number, ChildProcess>();

/**
 * Groups whose leader has exited while other members live on (a wrapper killed without its
 * child, a gateway gone leaving a worker): each as "pid command line" of the members.
 */
export function orphanedTrees(): string[] {
  const out: string[] = [];
  for (const pgid of groups) {
    const leader = leaders.get(pgid);
    if (leader === undefined || (leader.exitCode === null && leader.signalCode === null) || !groupAlive(pgid)) continue;
    out.push(...membersOf(pgid));
  }
  return out;
}

/** "pid command line" of each process in group `pgid` (Linux /proc). */
export function membersOf(pgid: number): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the command name in parentheses: state, ppid, pgrp.
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgrp !== pgid) continue;
      out.push(`${p} ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()}`);
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** SIGKILLs every tracked group that still has a member; returns how many there were. */
export function killAllTrees(): number {
  let n = 0;
  for (const pgid of groups) {
    if (!groupAlive(pgid)) continue;
    n++;
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* emptied meanwhile */
    }
  }
  groups.clear();
  leaders.clear();
  return n;
}

process.on('exit', () => {
  killAllTrees();
});

/** Resolves with the exit code and signal (at once if the child has exited already). */
export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/**
 * SIGTERM to the child (it shuts down its own children), SIGKILL to its whole group after
 * `graceMs`. Members left after a clean exit are not killed here: the file's clean-up reports
 * them (a gateway that exits leaving a worker behind is a bug a test should see).
 */
export async function stopTree(child: ChildProcess, graceMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const exited = exitOf(child);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const timer = setTimeout(() => killTree(child, 'SIGKILL'), graceMs);
  const r = await exited;
  clearTimeout(timer);
  return r;
}

export interface TreeResult {
  /** The exit code; -1 when killed by a signal (the time-out included), 127 when it could not start. */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs a command to its end in its own process group and collects its output; past
 * `timeoutMs` the whole group is SIGKILLed (execFile's time-out signals only the child).
 */
export function runTree(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<TreeResult> {
  return new Promise((resolve) => {
    const child = spawnTree(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => {
      timedOut = true;
      killTree(child);
    }, opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, stdout, stderr: stderr + e.message, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr, timedOut });
    });
  });
}
