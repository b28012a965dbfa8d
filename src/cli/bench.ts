/**
 * `egress-gateway bench`: a load generator operators point at a deployed gateway. For the
 * HTTP proxy (plain GET and CONNECT), SOCKS5 and DNS it measures allowed and denied
 * requests: p50/p90/p99/max latency and rate, a progress line on stderr every second,
 * a table (or --json) on stdout. Exit code 1 when any request got the wrong decision.
 */
import { isIP } from 'node:net';
import { ConfigError, parseHostPort, type HostPort } from '../config.js';
import { parseDuration } from './bench/load.js';
import { reportText, runBench, type Target } from './bench/suite.js';
import type { Credentials } from './bench/clients.js';

function last(flags: Map<string, string[]>, name: string): string | undefined {
  return flags.get(name)?.at(-1);
}

function endpoint(flags: Map<string, string[]>, name: string): HostPort | null {
  const v = last(flags, name);
  return v === undefined || v === 'off' ? null : parseHostPort(`--${name}`, v);
}

/** HOST or HOST:PORT; HOST may be a name, an IPv4 address or a bracketed IPv6 address. */
export function parseTarget(setting: string, text: string | undefined): Target {
  if (text === undefined || text.trim() === '') throw new ConfigError(setting, 'required (a host name, optionally :PORT)');
  const s = text.trim();
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  let host = s;
  let port: string | undefined;
  if (bracket) [, host, port] = bracket as unknown as [string, string, string | undefined];
  else if (isIP(s) !== 6) {
    const m = /^(.*):(\d+)$/.exec(s);
    if (m) [, host, port] = m as unknown as [string, string, string];
  }
  if (!host || /[\s/]/.test(host)) throw new ConfigError(setting, `"${text}" is not HOST[:PORT]`);
  const n = port === undefined ? null : Number(port);
  if (n !== null && (n < 1 || n > 65535)) throw new ConfigError(setting, `"${text}" has a bad port`);
  return { host: host!, port: n };
}

function int(flags: Map<string, string[]>, name: string, def: number, min: number, max: number): number {
  const v = last(flags, name);
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new ConfigError(`--${name}`, `"${v}" is not a whole number from ${min} to ${max}`);
  return Number(v);
}

export async function benchCommand(flags: Map<string, string[]>, _positional: string[]): Promise<void> {
  const proxy = endpoint(flags, 'proxy');
  const socks = endpoint(flags, 'socks-proxy');
  const dns = endpoint(flags, 'dns');
  if (!proxy && !socks && !dns) throw new ConfigError('--proxy', 'give at least one of --proxy HOST:PORT, --socks-proxy HOST:PORT, --dns HOST:PORT');
  const durText = last(flags, 'duration') ?? '10s';
  const durationMs = parseDuration(durText);
  if (durationMs === null) throw new ConfigError('--duration', `"${durText}" is not a duration like 10s, 500ms or 1m`);
  let creds: Credentials | undefined;
  const user = last(flags, 'proxy-user') ?? process.env.EGRESS_BENCH_PROXY_USER;
  if (user !== undefined) {
    const i = user.indexOf(':');
    if (i <= 0) throw new ConfigError('--proxy-user', "expected USER:PASSWORD (a devbox's proxy credentials)");
    creds = { username: user.slice(0, i), password: user.slice(i + 1) };
  }
  const json = flags.has('json');
  const tty = process.stderr.isTTY === true;
  const report = await runBench({
    proxy,
    socks,
    dns,
    allowed: parseTarget('--allowed', last(flags, 'allowed')),
    denied: parseTarget('--denied', last(flags, 'denied')),
    durationMs,
    concurrency: int(flags, 'concurrency', 8, 1, 10_000),
    maxRequests: int(flags, 'max-requests', 1_000_000, 1, 1_000_000_000),
    ...(creds ? { creds } : {}),
    direct: !flags.has('no-direct'),
    progress: (line) => process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`),
  });
  if (tty) process.stderr.write('\r\x1b[2K');
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${reportText(report)}\n`);
  process.exitCode = report.pass ? 0 : 1;
}
