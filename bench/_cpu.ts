/**
 * CPU accounting and core pinning for the benchmarks, so figures taken on a machine that
 * other work shares stay comparable: the servers on one core, the load on another
 * (taskset), and CPU seconds per process tree read from /proc (user + system), which
 * neighbours' load does not inflate the way it inflates wall-clock time.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { onPath } from './_dns-references.js';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime of one process (seconds); null when it is gone or /proc is not there. */
function processCpu(pid: number): { cpu: number; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND };
  } catch {
    return null;
  }
}

/** CPU seconds of `pid` and every process below it (a gateway's DNS workers), or NaN. */
export function treeCpuSeconds(pid: number | null): number {
  if (pid === null) return NaN;
  const self = processCpu(pid);
  if (self === null) return NaN;
  let total = self.cpu;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return total;
  }
  const byParent = new Map<number, number[]>();
  const cpuOf = new Map<number, number>();
  for (const d of pids) {
    const p = processCpu(Number(d));
    if (p === null) continue;
    cpuOf.set(Number(d), p.cpu);
    const list = byParent.get(p.ppid) ?? [];
    list.push(Number(d));
    byParent.set(p.ppid, list);
  }
  const stack = [...(byParent.get(pid) ?? [])];
  while (stack.length > 0) {
    const c = stack.pop()!;
    total += cpuOf.get(c) ?? 0;
    stack.push(...(byParent.get(c) ?? []));
  }
  return total;
}

export interface Pinning {
  /** Prefix that runs a server command on the servers' core, e.g. ['taskset', '-c', '0']; [] when not pinned. */
  server: string[];
  /** Prefix for the load generator's command. */
  client: string[];
  describe: string;
}

/**
 * Servers on core 0, the load generator (and this process) on core 1, when there are two
 * cores or more and taskset is on PATH; `off` disables it.
 */
export function pinning(off: boolean): Pinning {
  if (off) return { server: [], client: [], describe: 'not pinned (--no-pin)' };
  if (cpus().length < 2 || !onPath('taskset')) return { server: [], client: [], describe: 'not pinned (needs 2 cores and taskset)' };
  try {
    execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  } catch {
    return { server: [], client: [], describe: 'not pinned (taskset failed)' };
  }
  return { server: ['taskset', '-c', '0'], client: ['taskset', '-c', '1'], describe: 'servers pinned to core 0, load generator to core 1 (taskset)' };
}
