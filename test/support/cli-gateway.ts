/**
 * The real CLI (`serve`, from the sources: `node --import tsx src/main.ts`, so a test never runs
 * a stale build) as a child process on loopback, with stdout
 * wherever the test wants it (a pipe it reads, a pipe nobody reads, /dev/full, a file).
 * Ports are picked free up front, so a test whose log goes nowhere readable still knows them.
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import net from 'node:net';
import dgram from 'node:dgram';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient, TOKEN_A, TOKEN_B } from './gateway.js';
import { exitOf, spawnTree, stopTree } from './processes.js';
import { tempDir } from './temp.js';
import { waitFor } from './wait.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'egress-gateway.js');
/** The CLI's entry in the sources, run through tsx (the bin runs the compiled build). */
export const MAIN = join(ROOT, 'src', 'main.ts');

/** A TCP port free now on 127.0.0.1 whose UDP twin is free too (for DNS). */
export async function freePort(): Promise<number> {
  for (;;) {
    const s = net.createServer();
    await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((ok) => s.close(() => ok()));
    const u = dgram.createSocket('udp4');
    const udpFree = await new Promise<boolean>((ok) => {
      u.once('error', () => ok(false));
      u.bind(port, '127.0.0.1', () => ok(true));
    });
    await new Promise<void>((ok) => u.close(() => ok()));
    if (udpFree) return port;
  }
}

export interface CliGateway {
  child: ChildProcess;
  pid: number;
  ports: { api: number; proxy: number; socks: number; dns: number };
  api: ApiClient;
  apiUrl: string;
  dir: string;
  /** stdout so far, when it is a pipe this side reads ('pipe'). */
  out(): string;
  err(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait (SIGKILL after `ms`); resolves with the exit and how long it took. */
  stop(ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

export interface CliGatewayOptions {
  /** 'pipe': read by the test; 'unread': a pipe nobody reads; a path: opened for writing (e.g. /dev/full). */
  stdout?: 'pipe' | 'unread' | string;
  args?: string[];
  env?: Record<string, string>;
  /** Extra node options (e.g. --max-old-space-size). */
  nodeArgs?: string[];
  upstreamDnsPort?: number;
  configFile?: string;
  /** How long start-up may take (default 60 s; more processes, as with --workers, take longer on a loaded box). */
  startTimeoutMs?: number;
}

/** The flags that put every door on a free loopback port. */
export async function loopbackPorts(): Promise<{ ports: CliGateway['ports']; flags: string[] }> {
  const ports = { api: await freePort(), proxy: await freePort(), socks: await freePort(), dns: await freePort() };
  return {
    ports,
    flags: ['--api', `127.0.0.1:${ports.api}`, '--http-proxy', `127.0.0.1:${ports.proxy}`, '--socks', `127.0.0.1:${ports.socks}`, '--dns', `127.0.0.1:${ports.dns}`, '--agent-gateway', 'off', '--mcp-hub', 'off'],
  };
}

export async function startCliGateway(opts: CliGatewayOptions = {}): Promise<CliGateway> {
  const dir = tempDir('cli');
  const { ports, flags } = await loopbackPorts();
  const args = [
    ...(opts.nodeArgs ?? []),
    '--import',
    'tsx',
    MAIN,
    'serve',
    ...flags,
    '--db',
    join(dir, 'egress.db'),
    '--secrets-key-file',
    join(dir, 'secrets.key'),
    '--upstream-dns',
    `127.0.0.1:${opts.upstreamDnsPort ?? 9}`,
    '--shutdown-grace-ms',
    '1000',
    // With a config file, tokens and allow-private come from it (flags would override the file).
    ...(opts.configFile ? ['--config', opts.configFile] : ['--api-token', `${TOKEN_A}:acct-a`, '--api-token', `${TOKEN_B}:acct-b`, '--allow-private', '127.0.0.0/8']),
    ...(opts.args ?? []),
  ];
  const mode = opts.stdout ?? 'pipe';
  let fd: number | null = null;
  let stdio: StdioOptions;
  if (mode === 'pipe' || mode === 'unread') stdio = ['ignore', 'pipe', 'pipe'];
  else {
    fd = openSync(mode, 'w');
    stdio = ['ignore', fd, 'pipe'];
  }
  const child = spawnTree(process.execPath, args, { cwd: ROOT, env: { ...process.env, EGRESS_CONFIG: '', ...opts.env }, stdio });
  if (fd !== null) closeSync(fd);
  let out = '';
  let err = '';
  if (mode === 'pipe') child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  // 'unread': the pipe stays open and is never read (the kernel's 64 KiB fill and stop).
  if (mode === 'unread') child.stdout!.pause();
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = exitOf(child);
  const apiUrl = `http://127.0.0.1:${ports.api}`;
  const gw: CliGateway = {
    child,
    pid: child.pid!,
    ports,
    api: new ApiClient(apiUrl),
    apiUrl,
    dir,
    out: () => out,
    err: () => err,
    exited,
    stop: async (ms = 15_000) => {
      const t0 = Date.now();
      const r = await stopTree(child, ms);
      return { ...r, ms: Date.now() - t0 };
    },
  };
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${err}`);
      return (await fetch(`${apiUrl}/healthz`).catch(() => null))?.ok === true;
    },
    opts.startTimeoutMs ?? 60_000,
    'gateway /healthz',
  );
  return gw;
}

/** Reads one sample from a /metrics text: the sum of series of `name` whose labels include `labels`. */
export async function cliMetric(apiUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const kv of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have[kv[1]!] = kv[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

/** RSS of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Log lines (JSON) from a captured stdout. */
export function logLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      /* a partial last line */
    }
  }
  return out;
}
