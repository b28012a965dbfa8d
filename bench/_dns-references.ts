/**
 * Reference DNS servers for bench/dns.ts: unbound and dnsmasq, when on PATH, started in the
 * foreground with generated configs in a temp dir on a free port of 127.0.0.1. Each answers
 * `cached.bench.test` itself and forwards the rest of bench.test to the bench's Node upstream.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface ReferenceServer {
  name: 'unbound' | 'dnsmasq';
  port: number;
  /** Its process id (null when it did not start). */
  pid: number | null;
  /** Why it is not usable (not on PATH, exited at start); null when it runs. */
  problem: string | null;
  /** Its stderr so far, for a skip note. */
  stderr(): string;
  stop(): void;
}

export function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // not in this dir
    }
  }
  return false;
}

/** A port free for both UDP and TCP on 127.0.0.1 (dnsmasq listens on both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise<number>((r) => udp.bind(0, '127.0.0.1', () => r(udp.address().port)));
    const tcp = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      tcp.once('error', () => r(false));
      tcp.listen(port, '127.0.0.1', () => r(true));
    });
    udp.close();
    if (ok) {
      await new Promise<void>((r) => tcp.close(() => r()));
      return port;
    }
  }
}

function unboundConfig(dir: string, port: number, upstreamPort: number): string {
  return `server:
  interface: 127.0.0.1
  port: ${port}
  num-threads: 1
  do-daemonize: no
  do-ip6: no
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: "${join(dir, 'unbound.pid')}"
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  do-not-query-localhost: no
  domain-insecure: "bench.test."
  # The door and the Node responders ask for 8 MB too; the 208 KB default drops bursts.
  so-rcvbuf: 8m
  so-sndbuf: 8m
  outgoing-range: 4096
  num-queries-per-thread: 4096
  # test. is one of unbound's default local zones (NXDOMAIN for everything under it).
  local-zone: "test." nodefault
  local-data: "cached.bench.test. 3600 IN A 127.0.0.1"
remote-control:
  control-enable: no
forward-zone:
  name: "bench.test."
  forward-addr: 127.0.0.1@${upstreamPort}
`;
}

function dnsmasqArgs(dir: string, port: number, upstreamPort: number): string[] {
  return [
    '--no-daemon',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--conf-file=/dev/null',
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
    '--log-facility=-',
    '--address=/cached.bench.test/127.0.0.1',
    `--server=/bench.test/127.0.0.1#${upstreamPort}`,
    '--dns-forward-max=1000',
  ];
}

/** Starts one reference server; `problem` says why it is unusable. Readiness is the caller's probe. */
export async function startReference(name: 'unbound' | 'dnsmasq', upstreamPort: number, pin: string[] = []): Promise<ReferenceServer> {
  const port = await freePort();
  const unusable = (problem: string): ReferenceServer => ({ name, port, pid: null, problem, stderr: () => '', stop: () => {} });
  if (!onPath(name)) return unusable('not on PATH');
  const dir = mkdtempSync(join(tmpdir(), `egw-bench-${name}-`));
  let argv: string[];
  if (name === 'unbound') {
    const conf = join(dir, 'unbound.conf');
    writeFileSync(conf, unboundConfig(dir, port, upstreamPort));
    argv = ['-d', '-c', conf];
  } else {
    argv = dnsmasqArgs(dir, port, upstreamPort);
  }
  // `pin`: a taskset prefix (['taskset', '-c', '0']), which execs the server on that core.
  const child: ChildProcess = pin.length > 0 ? spawn(pin[0]!, [...pin.slice(1), name, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(name, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (err.length < 8192) err += d.toString();
  });
  const server: ReferenceServer = {
    name,
    port,
    pid: child.pid ?? null,
    problem: null,
    stderr: () => err.trim(),
    stop: () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  child.on('error', (e) => (server.problem = `failed to start: ${e.message}`));
  child.on('exit', (code, sig) => (server.problem ??= `exited (${code ?? sig})`));
  return server;
}
