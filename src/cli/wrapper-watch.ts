/**
 * `serve` started through npm (`npx egress-gateway serve`, `npm exec`, `npm start`) runs under
 * wrapper processes, and a signal sent to the wrapper's PID (`kill $!`, a supervisor stopping
 * what it started) may never reach the gateway: npm passes SIGTERM to its child, which under
 * npx is a shell that exits without passing it on, and the gateway ran on under PID 1 with its
 * workers and API thread. So serve watches the processes between itself and that npm, and
 * stops as for SIGTERM when one of them is gone. Without npm in the environment it watches
 * nothing: a parent that is a supervisor or a shell is the operator's, not a wrapper.
 */
import { readFileSync } from 'node:fs';

export interface Wrapper {
  pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22), to tell a reused pid; null off Linux. */
  start: string | null;
  command: string;
}

/** Parent pid, start time and command of `pid` from /proc, or null when unreadable (gone, or not Linux). */
function procInfo(pid: number): { ppid: number; start: string; command: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) ": state ppid … starttime is field 22 overall, index 19 here.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    return { ppid: Number(rest[1]), start: rest[19] ?? '', command };
  } catch {
    return null;
  }
}

const isNpm = (command: string) => /(^|[\s/])(npm|npx)(\s|$)|npm-cli\.js|npx-cli\.js/.test(command);

/**
 * The wrapper processes above this one, nearest first, up to and including the npm that
 * started it; empty when not started by npm (npm sets `npm_command` for `exec` and scripts).
 */
export function wrapperChain(env: NodeJS.ProcessEnv = process.env, firstParent = process.ppid): Wrapper[] {
  if (!env.npm_command) return [];
  const chain: Wrapper[] = [];
  let pid = firstParent;
  for (let depth = 0; depth < 6 && pid > 1; depth++) {
    const info = procInfo(pid);
    if (info === null) {
      // Not Linux (no /proc): the parent alone, watched through process.ppid.
      return depth === 0 ? [{ pid, start: null, command: 'parent' }] : chain;
    }
    chain.push({ pid, start: info.start, command: info.command });
    if (isNpm(info.command)) return chain;
    pid = info.ppid;
  }
  // No npm above within reach (npm_command inherited by an unrelated launcher): watch nothing.
  return [];
}

function gone(w: Wrapper): boolean {
  if (w.start === null) return false;
  const now = procInfo(w.pid);
  return now === null || now.start !== w.start;
}

/**
 * Polls the chain every `everyMs` (an unref'd timer: it never keeps the process alive) and
 * calls `onGone` once with the first wrapper that went away; returns a function that stops it.
 */
export function watchWrappers(chain: Wrapper[], onGone: (w: Wrapper) => void, everyMs = 500): () => void {
  if (chain.length === 0) return () => {};
  const parent = process.ppid;
  const timer = setInterval(() => {
    const w = process.ppid !== parent ? chain[0]! : chain.find(gone);
    if (w === undefined) return;
    clearInterval(timer);
    onGone(w);
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
