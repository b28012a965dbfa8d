/**
 * Which process holds a local port, for the "port in use" start-up error. Linux only, from
 * /proc as `ss -ltnup` reads it: the sockets bound to the port in /proc/net/{tcp,tcp6,udp,udp6}
 * (TCP in LISTEN), then the process with one of those socket inodes among its /proc/<pid>/fd.
 * Null when it cannot be known (not Linux, another user's process without the rights to look,
 * another network namespace): the error then names the port alone.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

const TCP_LISTEN = '0A';

/** Socket inodes bound to `port` in the kernel's tables (TCP: listening only). */
function socketInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['tcp', 'tcp6', 'udp', 'udp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = f[1]!;
      if (local.slice(local.lastIndexOf(':') + 1) !== hexPort) continue;
      if (table.startsWith('tcp') && f[3] !== TCP_LISTEN) continue;
      if (f[9] !== '0') inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** "pid 1234 (nginx -g daemon off;)" for the process holding `port`, or null when unknown. */
export function portHolder(port: number): string | null {
  if (process.platform !== 'linux' || port === 0) return null;
  const inodes = socketInodes(port);
  if (inodes.size === 0) return null;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return null;
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (!m || !inodes.has(m[1]!)) continue;
      let command = '';
      try {
        command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      } catch {
        /* exited meanwhile */
      }
      return `pid ${pid}${command ? ` (${command.length > 120 ? `${command.slice(0, 117)}...` : command})` : ''}`;
    }
  }
  return null;
}
