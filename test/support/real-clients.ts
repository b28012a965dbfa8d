/**
 * Real TLS clients on this machine, for the ClientHello corpus and the browser tests:
 * Chromium headless, curl, openssl s_client, Node and Python. Each runs in its own process
 * group (killed whole, its temp folder removed, whatever happens) and a missing program
 * fails with the Debian package that brings it.
 *
 * `captureHello(client)` points a client at a local TCP listener that keeps the first
 * flight until it holds a whole ClientHello, then closes: the hello exactly as the program
 * sends it.
 */
import net from 'node:net';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseClientHello } from '../../src/doors/floor/clienthello.js';

export interface RealClient {
  name: string;
  /** Debian package that provides it (named when it is missing). */
  pkg: string;
  /** The program and its arguments for https://HOST:PORT/ (connecting to 127.0.0.1:PORT). */
  argv(host: string, port: number, dir: string): string[];
}

export const CHROMIUM = '/usr/bin/chromium';

/** The flags every headless Chromium here runs with (no background traffic, no QUIC). */
export function chromiumFlags(dir: string): string[] {
  return ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', `--user-data-dir=${dir}`];
}

const PY = 'import socket,ssl,sys\nc=ssl.create_default_context();c.check_hostname=False;c.verify_mode=ssl.CERT_NONE\ns=socket.create_connection(("127.0.0.1",int(sys.argv[2])))\ntry:\n  c.wrap_socket(s,server_hostname=sys.argv[1])\nexcept Exception:\n  pass\n';
const NODE = "const s=require('tls').connect({host:'127.0.0.1',port:+process.argv[2],servername:process.argv[1],rejectUnauthorized:false});s.on('error',()=>{});";

export const REAL_CLIENTS: RealClient[] = [
  { name: 'chromium', pkg: 'chromium', argv: (h, p, dir) => [CHROMIUM, ...chromiumFlags(dir), `--host-resolver-rules=MAP ${h} 127.0.0.1`, '--dump-dom', `https://${h}:${p}/`] },
  { name: 'curl', pkg: 'curl', argv: (h, p) => ['curl', '-sk', '--max-time', '10', '--resolve', `${h}:${p}:127.0.0.1`, `https://${h}:${p}/`] },
  { name: 'openssl s_client', pkg: 'openssl', argv: (h, p) => ['openssl', 's_client', '-connect', `127.0.0.1:${p}`, '-servername', h] },
  { name: 'openssl s_client TLS 1.2', pkg: 'openssl', argv: (h, p) => ['openssl', 's_client', '-connect', `127.0.0.1:${p}`, '-servername', h, '-tls1_2'] },
  { name: 'node tls.connect', pkg: 'nodejs', argv: (h, p) => [process.execPath, '-e', NODE, h, String(p)] },
  { name: 'python ssl', pkg: 'python3', argv: (h, p) => ['python3', '-c', PY, h, String(p)] },
];

/** A post-quantum hybrid group this OpenSSL offers (its key share makes a hello of ~1.5 KB+), or null. */
export function opensslHybridGroup(): string | null {
  const kems = execFileSync('openssl', ['list', '-kem-algorithms'], { encoding: 'utf8' });
  for (const g of ['X25519MLKEM768', 'SecP256r1MLKEM768', 'x25519_kyber768']) if (kems.toLowerCase().includes(g.toLowerCase())) return g;
  return null;
}

/** Fails with the package name when the program is not installed. */
export function requireProgram(cmd: string, pkg: string): void {
  const found = cmd.startsWith('/') ? existsSync(cmd) : execFileSync('sh', ['-c', `command -v ${cmd} || true`], { encoding: 'utf8' }).trim() !== '';
  if (!found) throw new Error(`${cmd} is not installed: apt-get install ${pkg}`);
}

export interface Spawned {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (null when killed). */
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

/**
 * Spawns argv in its own process group with a temp folder `dir` as its HOME and TMPDIR (Chromium
 * leaves org.chromium.* files in TMPDIR when killed); kill() ends the group and removes it.
 */
export function spawnGroup(argv: string[], dir: string, env: Record<string, string> = {}): Spawned {
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir, TMPDIR: dir, ...env } });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.once('error', () => {});
  return {
    child,
    output: () => out,
    exited,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `client` against a recording listener; resolves with its first ClientHello as sent. */
export async function captureHello(client: RealClient, host: string, extraArgs: string[] = []): Promise<Buffer> {
  const cmd = client.argv(host, 1, '/tmp')[0]!;
  requireProgram(cmd, client.pkg);
  let resolveHello!: (b: Buffer) => void;
  const got = new Promise<Buffer>((r) => (resolveHello = r));
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseClientHello(buf);
      if (r === 'incomplete') return;
      if (typeof r !== 'string') resolveHello(buf.subarray(0, r.length));
      s.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'egw-client-'));
  const p = spawnGroup([...client.argv(host, port, dir), ...extraArgs], dir);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([got, new Promise<Buffer>((_, reject) => (timer = setTimeout(() => reject(new Error(`${client.name} sent no ClientHello in 60 s: ${p.output().slice(-500)}`)), 60_000)))]);
  } finally {
    clearTimeout(timer);
    await p.kill();
    await new Promise((r) => server.close(r));
  }
}

/** Runs headless Chromium with `args` (a fresh profile) to its exit; resolves with stdout + stderr. */
export async function runChromium(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; output: string }> {
  requireProgram(CHROMIUM, 'chromium');
  const dir = mkdtempSync(join(tmpdir(), 'egw-chromium-'));
  const p = spawnGroup([CHROMIUM, ...chromiumFlags(dir), ...args], dir);
  let timer: NodeJS.Timeout | undefined;
  try {
    const code = await Promise.race([p.exited, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`chromium did not exit in ${timeoutMs} ms: ${p.output().slice(-800)}`)), timeoutMs)))]);
    return { code, output: p.output() };
  } finally {
    clearTimeout(timer);
    await p.kill();
  }
}
