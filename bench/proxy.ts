/**
 * `npm run bench:proxy`: end-to-end latency and throughput of every proxy door, each beside
 * a direct connection to the same origin in the same run.
 *
 * Three processes (this file in three roles): the origin (HTTP keep-alive, TCP echo,
 * TCP bulk source, HTTPS), the gateway (started as in the tests, logging JSON at info to
 * /dev/null, so the per-decision log line is paid for), and the load generator (raw
 * sockets, no http.Agent: it must not be the bottleneck). For each scenario: latency with
 * one client (p50/p99), then rate with CONCURRENCY clients. Bounded: the whole run < 90 s.
 * Prints one markdown table.
 */
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import https from 'node:https';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const LAT_MS = Number(process.env.BENCH_LAT_MS ?? 1200);
const RATE_MS = Number(process.env.BENCH_RATE_MS ?? 2500);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const BULK_BYTES = Number(process.env.BENCH_BULK_MB ?? 100) * 1024 * 1024;
const BULK_ROUNDS = Number(process.env.BENCH_BULK_ROUNDS ?? 3);
const SMALL_BODY = Buffer.alloc(64, 'x');

const role = process.argv.find((a) => a.startsWith('--role='))?.slice(7) ?? 'main';

// ── origin role ──────────────────────────────────────────────────────────────

async function runOrigin(): Promise<void> {
  const { testCert } = await import('../test/support/origin.js');
  const listen = (s: net.Server) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as net.AddressInfo).port)));
  const h = http.createServer({ keepAliveTimeout: 60_000 }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': SMALL_BODY.length });
    res.end(SMALL_BODY);
  });
  const echo = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    s.pipe(s);
  });
  const chunk = Buffer.alloc(256 * 1024, 'b');
  const bulk = net.createServer((s) => {
    s.on('error', () => {});
    let left = BULK_BYTES;
    const pump = () => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!s.write(piece)) return void s.once('drain', pump);
      }
      s.end();
    };
    // Wait for one byte from the client so the tunnel is fully set up before timing starts.
    s.once('data', pump);
  });
  const { key, cert } = testCert();
  const hs = https.createServer({ key, cert, keepAliveTimeout: 60_000 }, (_req, res) => {
    res.writeHead(200, { 'content-length': SMALL_BODY.length });
    res.end(SMALL_BODY);
  });
  const ports = { http: await listen(h), echo: await listen(echo), bulk: await listen(bulk), https: await listen(hs as unknown as net.Server), cert: testCert().certPath };
  process.send!(ports);
}

// ── gateway role ─────────────────────────────────────────────────────────────

async function runGateway(): Promise<void> {
  const originPorts = JSON.parse(process.env.BENCH_ORIGIN!) as { http: number; https: number };
  process.env.EGRESS_TEST_LOG = process.env.BENCH_LOG ?? 'info';
  const { startDnsUpstream, loopbackRecords } = await import('../test/support/dns-upstream.js');
  const { startTestGateway } = await import('../test/support/gateway.js');
  // A records only: AAAA gets NODATA without an SOA (an IPv4-only name, the common case),
  // which the gateway's resolver remembers for --dns-min-ttl instead of asking every time.
  const records = loopbackRecords(['allowed.test', 'www.allowed.test', 'denied.test']);
  // NODATA carries an SOA (RFC 2308), so the negative answer is cached for its TTL.
  const dns = await startDnsUpstream({ records, negativeSoa: { ttl: 300, minimum: 300 } });
  const gw = await startTestGateway({
    upstreamDnsPort: dns.port,
    flags: {
      'transparent-tls': '127.0.0.1:0',
      'transparent-http': '127.0.0.1:0',
      'max-connections-per-devbox': '100000',
      // Every load client here is one devbox; with more clients than its idle-pool share (32)
      // a third of the requests would dial a fresh origin connection, which a fleet spread over
      // many devboxes does not see. Squid's idle pool has no per-client share either.
      'upstream-pool-per-devbox': '1024',
      'transparent-tls-upstream-port': String(originPorts.https),
      'transparent-http-upstream-port': String(originPorts.http),
    },
  });
  const p = await gw.api.policy('bench', { allowed_hostnames: ['allowed.test', 'www.allowed.test'] });
  // The load generator connects from 127.0.0.1: binding a source address per connection (127.0.0.2)
  // makes the kernel search ports among TIME_WAIT sockets and dominates set-up time.
  await gw.api.devbox(p, ['127.0.0.1'], 'bench-box');
  const doors: Record<string, number> = {};
  for (const [k, v] of Object.entries(gw.gw.doors)) doors[k] = v.port;
  doors.reference = await bareForwarder();
  doors.relay = await bareRelay();
  process.send!(doors);
  const profiler = process.env.BENCH_PROFILE_DIR ? await churnProfiler(process.env.BENCH_PROFILE_DIR) : null;
  process.on('message', async (m) => {
    if (m === 'profile-start') profiler?.start();
    if (m === 'profile-stop') await profiler?.stop();
    if (m === 'stop') {
      if (dns.queries.length > 20) process.stderr.write(`  (gateway asked upstream DNS ${dns.queries.length} times)\n`);
      await gw.close();
      await dns.close();
      process.exit(0);
    }
  });
}

/**
 * The reference point the targets were set against: a bare node:http forwarder with a
 * keep-alive agent (no decision, no metrics, no log), in the gateway's process.
 */
async function bareForwarder(): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  const server = http.createServer((req, res) => {
    const u = new URL(req.url!);
    const up = http.request({ host: '127.0.0.1', port: Number(u.port), path: u.pathname + u.search, method: req.method, headers: req.headers, agent }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/**
 * The other reference point, for tunnels: a bare CONNECT relay with `pipe()` both ways (no
 * decision, no SNI check, no tracker), in the gateway's process. What plain node streams
 * reach on this machine, beside what the gateway's tunnel reaches.
 */
async function bareRelay(): Promise<number> {
  const server = http.createServer();
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const port = Number(req.url!.slice(req.url!.lastIndexOf(':') + 1));
    const up = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) up.write(head);
      client.pipe(up);
      up.pipe(client);
    });
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

// ── Squid, the reference the issue's targets were set against (when installed) ──

interface Squid {
  port: number;
  /** Squid's own process (-N: no daemon, one process). */
  pid: number;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts Squid (apt-get install squid) as a plain forward proxy with no cache, allowing
 * allowed.test and denying the rest, names from a hosts file: the same scenarios run through
 * it, so the gateway is compared with Squid on this machine in this run. Null when Squid is
 * not installed or does not come up.
 */
async function startSquid(): Promise<Squid | null> {
  const { execFileSync, spawn } = await import('node:child_process');
  const { mkdtempSync, writeFileSync, chmodSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  try {
    execFileSync('squid', ['-v'], { stdio: 'ignore' });
  } catch {
    process.stderr.write('  squid not installed (apt-get install squid): no Squid rows\n');
    return null;
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'egw-bench-squid-'));
  chmodSync(dir, 0o777); // squid drops to its own user
  const port = await freePort();
  writeFileSync(join(dir, 'hosts'), '127.0.0.1 allowed.test www.allowed.test denied.test\n');
  writeFileSync(
    join(dir, 'squid.conf'),
    [
      `http_port 127.0.0.1:${port}`,
      `pid_filename ${dir}/squid.pid`,
      `cache_log ${dir}/cache.log`,
      `coredump_dir ${dir}`,
      `hosts_file ${dir}/hosts`,
      'cache deny all',
      'access_log none',
      'cache_store_log none',
      'via off',
      'forwarded_for delete',
      'shutdown_lifetime 0 seconds',
      'acl allowed dstdomain allowed.test www.allowed.test',
      'http_access allow allowed',
      'http_access deny all',
      '',
    ].join('\n'),
  );
  const child = spawn('squid', ['-N', '-f', join(dir, 'squid.conf')], { stdio: 'ignore' });
  const stop = async () => {
    child.kill('SIGKILL');
    try {
      execFileSync('pkill', ['-KILL', '-f', `${dir}/squid.conf`], { stdio: 'ignore' });
    } catch {
      // none left
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return { port, pid: child.pid!, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stderr.write('  squid did not start; no Squid rows\n');
  await stop();
  return null;
}

// ── load generation ──────────────────────────────────────────────────────────

interface Run {
  count: number;
  errors: number;
  lat: number[];
  seconds: number;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Keep-alive HTTP: `conns` sockets, one request in flight each, for `ms`. */
function httpLoad(port: number, request: Buffer, conns: number, ms: number, expectStatus: number): Promise<Run> {
  return new Promise((resolve) => {
    const lat: number[] = [];
    let count = 0;
    let errors = 0;
    let open = conns;
    const started = performance.now();
    const deadline = started + ms;
    const status = Buffer.from(`HTTP/1.1 ${expectStatus}`);
    for (let c = 0; c < conns; c++) {
      const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
      let buf: Buffer | null = null;
      let sent = 0;
      let need = -1;
      const send = () => {
        if (performance.now() >= deadline) {
          s.destroy();
          return;
        }
        sent = performance.now();
        need = -1;
        buf = null;
        s.write(request);
      };
      s.on('connect', send);
      s.on('data', (d: Buffer) => {
        buf = buf === null ? d : Buffer.concat([buf, d]);
        if (need < 0) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.toString('latin1', 0, end).toLowerCase();
          const i = head.indexOf('content-length:');
          const len = i < 0 ? 0 : parseInt(head.slice(i + 15), 10);
          need = end + 4 + len;
        }
        if (buf.length < need) return;
        if (buf.compare(status, 0, status.length, 0, status.length) !== 0) errors++;
        lat.push(performance.now() - sent);
        count++;
        send();
      });
      s.on('error', () => errors++);
      s.on('close', () => {
        if (--open === 0) resolve({ count, errors, lat, seconds: (performance.now() - started) / 1000 });
      });
    }
  });
}

/** One connection per operation: `op` resolves when the operation is complete; `conns` loops. */
async function connLoad(op: () => Promise<boolean>, conns: number, ms: number): Promise<Run> {
  const lat: number[] = [];
  let count = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        const ok = await op().catch(() => false);
        if (ok) {
          lat.push(performance.now() - t);
          count++;
        } else errors++;
      }
    }),
  );
  return { count, errors, lat, seconds: (performance.now() - started) / 1000 };
}

/** Sends `first`, reads until `until(buf)` says done; resolves true/false; always closes. */
function exchange(port: number, steps: Array<{ send: Buffer; done: (b: Buffer) => boolean | null }>): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let step = 0;
    let buf = Buffer.alloc(0);
    const finish = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.on('connect', () => s.write(steps[0]!.send));
    s.on('data', (d) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      const r = steps[step]!.done(buf);
      if (r === null) return;
      if (!r) return finish(false);
      buf = Buffer.alloc(0);
      step++;
      if (step === steps.length) return finish(true);
      s.write(steps[step]!.send);
    });
    s.on('error', () => finish(false));
    s.on('close', () => resolve(false));
  });
}

const PING = Buffer.from('ping');
const pong = (b: Buffer) => (b.length >= 4 ? b.subarray(0, 4).equals(PING) : null);
const headEnd = (b: Buffer) => b.indexOf('\r\n\r\n') >= 0;
const statusIs = (code: number) => (b: Buffer) => (headEnd(b) ? b.toString('latin1', 0, 12) === `HTTP/1.1 ${code}` : null);

function socksRequest(host: string, port: number): Buffer {
  return Buffer.concat([Buffer.from([5, 1, 0, 3, host.length]), Buffer.from(host), Buffer.from([port >> 8, port & 0xff])]);
}

function tlsOnce(port: number, servername: string, ca: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca } as tls.ConnectionOptions);
    s.on('secureConnect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

function bulkOnce(port: number, viaConnect: string | null): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = 0;
    let t0 = 0;
    let established = viaConnect === null;
    let head = Buffer.alloc(0);
    s.on('connect', () => {
      if (viaConnect) s.write(`CONNECT ${viaConnect} HTTP/1.1\r\nHost: ${viaConnect}\r\n\r\n`);
      else {
        t0 = performance.now();
        s.write('g');
      }
    });
    s.on('data', (d: Buffer) => {
      if (!established) {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        established = true;
        t0 = performance.now();
        s.write('g');
        got += head.length - end - 4;
        return;
      }
      got += d.length;
    });
    s.on('end', () => {
      const secs = (performance.now() - t0) / 1000;
      s.destroy();
      if (got !== BULK_BYTES) reject(new Error(`bulk: got ${got} of ${BULK_BYTES}`));
      else resolve(BULK_BYTES / secs / 1e6);
    });
    s.on('error', reject);
  });
}

interface Row {
  door: string;
  scenario: string;
  p50: number;
  p99: number;
  rate: number;
  unit: string;
  direct?: Row;
  note?: string;
}

async function measure(door: string, scenario: string, unit: string, latency: () => Promise<Run>, rate: () => Promise<Run>): Promise<Row> {
  const l = await latency();
  const r = await rate();
  const sorted = l.lat.sort((a, b) => a - b);
  const row = { door, scenario, p50: pct(sorted, 50), p99: pct(sorted, 99), rate: r.count / r.seconds, unit };
  const errs = l.errors + r.errors;
  process.stderr.write(`  ${door} ${scenario}: p50 ${row.p50.toFixed(3)} ms, p99 ${row.p99.toFixed(3)} ms, ${Math.round(row.rate)} ${unit}/s${errs ? `, ${errs} errors` : ''}\n`);
  return errs > (l.count + r.count) * 0.01 ? { ...row, note: `${errs} errors` } : row;
}

/**
 * BENCH_PROFILE_DIR: the gateway's CPU profile of the churn runs only (node:inspector, 100 µs
 * sampling), written there as a .cpuprofile (open in Chrome DevTools or speedscope).
 */
async function churnProfiler(dir: string): Promise<{ start(): void; stop(): Promise<void> }> {
  const inspector = await import('node:inspector');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object) => new Promise<any>((resolve, reject) => session.post(method, params ?? {}, (e, r) => (e ? reject(e) : resolve(r))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 100 });
  return {
    start: () => void post('Profiler.start'),
    stop: async () => {
      const { profile } = await post('Profiler.stop');
      mkdirSync(dir, { recursive: true });
      writeFileSync(`${dir}/churn-${process.pid}.cpuprofile`, JSON.stringify(profile));
    },
  };
}

function startChild(r: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; info: any }> {
  const prof = r === 'gateway' && process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
  const child = fork(fileURLToPath(import.meta.url), [`--role=${r}`], {
    execArgv: ['--import', 'tsx', ...prof],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (info) => resolve({ child, info }));
    child.once('exit', (code) => reject(new Error(`${r} exited ${code}`)));
  });
}

// ── CONNECT churn, one core each (the per-connection cost of a tunnel) ────────

const CHURN_CONCURRENCY = Number(process.env.BENCH_CHURN_CONCURRENCY ?? 50);
/** Tunnels per measured run (and a quarter of that to warm up: JIT, caches), stopped after CHURN_MAX_MS in any case. */
const CHURN_TUNNELS = Number(process.env.BENCH_CHURN_TUNNELS ?? 12000);
const CHURN_MAX_MS = Number(process.env.BENCH_CHURN_MAX_MS ?? 20000);

// ── one core each: the proxy alone on CPU 0, origin and load generator on CPU 1 ──

const ONE_CORE_CONCURRENCY = Number(process.env.BENCH_ONE_CORE_CONCURRENCY ?? 50);
const ONE_CORE_ROUNDS = Number(process.env.BENCH_ONE_CORE_ROUNDS ?? 2);
const ONE_CORE_WARM = Number(process.env.BENCH_ONE_CORE_WARM ?? 5000);
/** The idle window before each run whose CPU (per ms) is taken off the run's. */
const IDLE_MS = 1000;

/**
 * CPU time of a process, all its threads, in ms: the sum of /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds on a CPU; /proc/<pid>/stat's utime+stime counts 10 ms ticks, too coarse for a
 * few hundred requests on a loaded machine). Linux.
 */
async function cpuMs(pid: number): Promise<number> {
  const { readFileSync, readdirSync } = await import('node:fs');
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e6;
}

/** Pins every thread of `pid` to `cpus` (taskset -a -p); false where taskset is missing. */
async function pin(pid: number, cpus: string): Promise<boolean> {
  const { execFileSync } = await import('node:child_process');
  try {
    execFileSync('taskset', ['-a', '-pc', cpus, String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** connLoad until `total` operations were started or `maxMs` passed: CPU per operation is measured over a known count. */
async function countedLoad(op: () => Promise<boolean>, conns: number, total: number, maxMs: number): Promise<Run> {
  const lat: number[] = [];
  let started = 0;
  let count = 0;
  let errors = 0;
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (started < total && performance.now() < deadline) {
        started++;
        const t = performance.now();
        const ok = await op().catch(() => false);
        if (ok) {
          lat.push(performance.now() - t);
          count++;
        } else errors++;
      }
    }),
  );
  return { count, errors, lat, seconds: (performance.now() - t0) / 1000 };
}

/** A new connection, CONNECT, the 200, and the client closes at once (nothing relayed). */
function churnOnce(port: number, request: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let buf: Buffer | null = null;
    let settled = false;
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      s.destroy();
      resolve(ok);
    };
    s.on('connect', () => s.write(request));
    s.on('data', (d: Buffer) => {
      buf = buf === null ? d : Buffer.concat([buf, d]);
      if (buf.indexOf('\r\n\r\n') < 0) return;
      finish(buf.toString('latin1', 0, 12) === 'HTTP/1.1 200');
    });
    s.on('error', () => finish(false));
    s.on('close', () => finish(false));
  });
}

export interface ChurnRow {
  who: string;
  rate: number;
  p50: number;
  p99: number;
  /** CPU ms the proxy process spent per tunnel (null: not measurable here). */
  cpuPerTunnelMs: number | null;
  errors: number;
}

/** CONNECT churn through one proxy (its process `pid`) with CHURN_CONCURRENCY clients, CPU time measured around the run. */
async function churnThrough(who: string, port: number, pid: number, request: Buffer): Promise<ChurnRow> {
  await countedLoad(() => churnOnce(port, request), CHURN_CONCURRENCY, CHURN_TUNNELS / 4, CHURN_MAX_MS / 4); // warm-up
  const cpu0 = await cpuMs(pid);
  const r = await countedLoad(() => churnOnce(port, request), CHURN_CONCURRENCY, CHURN_TUNNELS, CHURN_MAX_MS);
  const cpu1 = await cpuMs(pid);
  const sorted = r.lat.sort((a, b) => a - b);
  const row = {
    who,
    rate: r.count / r.seconds,
    p50: pct(sorted, 50),
    p99: pct(sorted, 99),
    errors: r.errors,
    cpuPerTunnelMs: cpu0 === null || cpu1 === null || r.count + r.errors === 0 ? null : (cpu1 - cpu0) / (r.count + r.errors),
  };
  process.stderr.write(`  churn ${who}: ${Math.round(row.rate)} tunnels/s, p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms, CPU ${row.cpuPerTunnelMs?.toFixed(3) ?? '–'} ms/tunnel${r.errors ? `, ${r.errors} errors` : ''}\n`);
  return row;
}

/**
 * CONNECT → 200 → client closes, gateway beside Squid in the same run. With two cores or more,
 * one core each: the proxy under test pinned to CPU 0 (taskset), the origin and this load
 * generator to CPU 1. Gateway and Squid take turns (ABAB) so a noisy neighbour hits both.
 */
async function churnTable(gateway: ChildProcess, gatewayPort: number, gatewayPid: number, squid: Squid | null, originPid: number, echoPort: number, relayPort: number | undefined): Promise<string[]> {
  const pinned = os.cpus().length >= 2 && (await pin(gatewayPid, '0')) && (squid === null || (await pin(squid.pid, '0'))) && (await pin(originPid, '1')) && (await pin(process.pid, '1'));
  const request = Buffer.from(`CONNECT allowed.test:${echoPort} HTTP/1.1\r\nHost: allowed.test:${echoPort}\r\n\r\n`);
  const runs: ChurnRow[] = [];
  gateway.send('profile-start');
  for (let round = 0; round < 2; round++) {
    runs.push(await churnThrough('gateway', gatewayPort, gatewayPid, request));
    if (squid) runs.push(await churnThrough('squid', squid.port, squid.pid, request));
  }
  gateway.send('profile-stop');
  // What Node's sockets and streams cost by themselves: the bare pipe() relay (no policy), in the gateway's process.
  if (relayPort !== undefined) runs.push(await churnThrough('reference: bare node pipe() relay', relayPort, gatewayPid, request));
  const f = (n: number | null, d = 3) => (n !== null && Number.isFinite(n) ? n.toFixed(d) : '–');
  const lines = [
    `### CONNECT churn (client closes right after the 200), ${CHURN_CONCURRENCY} concurrent clients, ${pinned ? 'one core each: proxy on CPU 0, origin + load generator on CPU 1 (taskset)' : 'not pinned'}`,
    '',
    '| proxy | round | tunnels/s | p50 ms | p99 ms | proxy CPU ms / tunnel | errors |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [i, r] of runs.entries()) lines.push(`| ${r.who} | ${r.who.startsWith('reference') ? 1 : Math.floor(i / (squid ? 2 : 1)) + 1} | ${Math.round(r.rate)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.cpuPerTunnelMs)} | ${r.errors} |`);
  const mean = (who: string, k: 'rate' | 'cpuPerTunnelMs' | 'p50') => {
    const xs = runs.filter((r) => r.who === who).map((r) => r[k] ?? NaN);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  if (squid) {
    lines.push('', '| gateway ÷ Squid (means of the rounds) | tunnels/s | CPU ms / tunnel | p50 ms gateway / Squid |', '|---|---:|---:|---:|');
    lines.push(`| ratio | ${(mean('gateway', 'rate') / mean('squid', 'rate')).toFixed(2)}× | ${(mean('gateway', 'cpuPerTunnelMs') / mean('squid', 'cpuPerTunnelMs')).toFixed(2)}× | ${f(mean('gateway', 'p50'), 2)} / ${f(mean('squid', 'p50'), 2)} |`);
  }
  return lines;
}

interface OneCoreRow {
  proxy: string;
  scenario: string;
  rate: number;
  p50: number;
  p99: number;
  /** CPU time of the proxy process per request, µs. */
  cpuUs: number;
  errors: number;
}

/**
 * The issue #14 comparison: the gateway and Squid each pinned alone to CPU 0 (taskset), the
 * origin and this load generator on CPU 1, ONE_CORE_CONCURRENCY clients. For each proxy and
 * scenario (new-connection GET: connect, one GET, close; keep-alive GET), the rate, the
 * latency under that load, and the proxy's CPU time per request (its threads' time on a CPU
 * over the run less what it burns idle, divided by the requests served): on a shared machine the rates move with
 * the neighbours' load, CPU per request much less. Rounds interleave gateway and Squid; each
 * figure is the best of its rounds.
 */
async function oneCoreEach(gateway: { pid: number; port: number }, squid: Squid, originPid: number, originPort: number): Promise<OneCoreRow[]> {
  const cpus = os.cpus().length;
  if (cpus < 2 || !(await pin(gateway.pid, '0')) || !(await pin(squid.pid, '0'))) {
    process.stderr.write('  one core each: needs 2 cores and taskset; skipped\n');
    return [];
  }
  await pin(originPid, '1');
  await pin(process.pid, '1');
  const req = Buffer.from(`GET http://allowed.test:${originPort}/small HTTP/1.1\r\nHost: allowed.test:${originPort}\r\n\r\n`);
  const scenarios: Array<{ name: string; run: (port: number) => Promise<Run> }> = [
    { name: 'new-connection GET', run: (port) => connLoad(() => exchange(port, [{ send: req, done: statusIs(200) }]), ONE_CORE_CONCURRENCY, RATE_MS) },
    { name: 'keep-alive GET', run: (port) => httpLoad(port, req, ONE_CORE_CONCURRENCY, RATE_MS, 200) },
  ];
  const proxies = [
    { name: 'gateway', ...gateway },
    { name: 'squid', pid: squid.pid, port: squid.port },
  ];
  const best = new Map<string, OneCoreRow>();
  for (let round = 0; round < ONE_CORE_ROUNDS; round++) {
    for (const sc of scenarios) {
      for (const p of proxies) {
        // Warm-up of the same shape, by count: on a loaded machine a timed warm-up can end
        // before the JIT has optimised the request path, and the first round then measures
        // the interpreter. Up to ONE_CORE_WARM requests or 15 s.
        for (let n = 0, t = performance.now(); n < ONE_CORE_WARM && performance.now() - t < 15_000; ) n += (await sc.run(p.port).catch(() => null))?.count ?? 0;
        // What the process burns with no load (timers, polling) is not the requests' cost.
        const i0 = await cpuMs(p.pid);
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, IDLE_MS));
        const idlePerMs = ((await cpuMs(p.pid)) - i0) / (performance.now() - t0);
        const c0 = await cpuMs(p.pid);
        const r = await sc.run(p.port);
        const cpu = Math.max(0, (await cpuMs(p.pid)) - c0 - idlePerMs * r.seconds * 1000);
        const sorted = r.lat.sort((a, b) => a - b);
        const row: OneCoreRow = { proxy: p.name, scenario: sc.name, rate: r.count / r.seconds, p50: pct(sorted, 50), p99: pct(sorted, 99), cpuUs: (cpu * 1000) / Math.max(1, r.count), errors: r.errors };
        process.stderr.write(`  one core each, round ${round + 1}: ${p.name} ${sc.name}: ${Math.round(row.rate)}/s, p50 ${row.p50.toFixed(2)} ms, ${row.cpuUs.toFixed(1)} µs CPU/req${r.errors ? `, ${r.errors} errors` : ''}\n`);
        const key = `${p.name}|${sc.name}`;
        const prev = best.get(key);
        best.set(
          key,
          prev === undefined
            ? row
            : {
                ...row,
                rate: Math.max(prev.rate, row.rate),
                p50: Math.min(prev.p50, row.p50),
                p99: Math.min(prev.p99, row.p99),
                cpuUs: Math.min(prev.cpuUs, row.cpuUs),
                errors: prev.errors + row.errors,
              },
        );
      }
    }
  }
  const all = `0-${cpus - 1}`;
  for (const pid of [gateway.pid, squid.pid, originPid, process.pid]) await pin(pid, all);
  return [...best.values()];
}

function oneCoreTable(rows: OneCoreRow[]): string[] {
  if (rows.length === 0) return [];
  const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '–');
  const lines = [
    '',
    `### One core each (proxy pinned to CPU 0, origin + load generator on CPU 1; ${ONE_CORE_CONCURRENCY} clients, ${RATE_MS} ms per run, best of ${ONE_CORE_ROUNDS} interleaved rounds)`,
    '',
    '| scenario | gateway /s | Squid /s | rate ratio | gateway p50 ms | Squid p50 ms | gateway CPU µs/req | Squid CPU µs/req | CPU ratio (Squid ÷ gateway) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const g of rows.filter((r) => r.proxy === 'gateway')) {
    const q = rows.find((r) => r.proxy === 'squid' && r.scenario === g.scenario);
    if (!q) continue;
    lines.push(`| ${g.scenario}${g.errors + q.errors ? ` (${g.errors}/${q.errors} errors)` : ''} | ${Math.round(g.rate)} | ${Math.round(q.rate)} | ${f(g.rate / q.rate)}× | ${f(g.p50)} | ${f(q.p50)} | ${f(g.cpuUs, 1)} | ${f(q.cpuUs, 1)} | ${f(q.cpuUs / g.cpuUs)}× |`);
  }
  return lines;
}

async function main(): Promise<void> {
  const wall = performance.now();
  const origin = await startChild('origin');
  const o = origin.info as { http: number; echo: number; bulk: number; https: number; cert: string };
  const gwp = await startChild('gateway', { BENCH_ORIGIN: JSON.stringify(o) });
  const d = gwp.info as Record<string, number>;
  const proxy = d['http-proxy']!;
  const squid = process.env.BENCH_SQUID === '0' ? null : await startSquid();
  const ca = (await import('node:fs')).readFileSync(o.cert);
  const C = CONCURRENCY;
  const rows: Row[] = [];
  const both = async (door: string, scenario: string, unit: string, f: (conns: number, ms: number) => Promise<Run>) =>
    measure(
      door,
      scenario,
      unit,
      () => f(1, LAT_MS),
      () => f(C, RATE_MS),
    );

  const only = process.env.BENCH_ONLY; // "http", "allowed", "connect", "bulk", "onecore" or "churn": skip the rest (profiling)
  process.stderr.write(`bench:proxy — ${os.cpus().length} cores, Node ${process.version}, ${C} concurrent clients\n`);
  // HTTP keep-alive
  const directReq = Buffer.from(`GET /small HTTP/1.1\r\nHost: allowed.test:${o.http}\r\n\r\n`);
  const proxyReq = Buffer.from(`GET http://allowed.test:${o.http}/small HTTP/1.1\r\nHost: allowed.test:${o.http}\r\n\r\n`);
  const deniedReq = Buffer.from(`GET http://denied.test:${o.http}/small HTTP/1.1\r\nHost: denied.test:${o.http}\r\n\r\n`);
  const transReq = Buffer.from(`GET /small HTTP/1.1\r\nHost: allowed.test\r\n\r\n`);
  const transDenied = Buffer.from(`GET /small HTTP/1.1\r\nHost: denied.test\r\n\r\n`);
  if (only !== 'bulk' && only !== 'onecore' && only !== 'churn') {
    if (only !== 'connect') {
      await httpLoad(proxy, proxyReq, 4, 500, 200); // warm-up (JIT, DNS cache, upstream pool)
      const directHttp = await both('direct', 'HTTP keep-alive GET', 'req', (c, ms) => httpLoad(o.http, directReq, c, ms, 200));
      if (d.reference && only !== 'allowed') {
        await httpLoad(d.reference, proxyReq, 4, 300, 200);
        rows.push({ ...(await both('reference', 'bare node:http forwarder (no policy)', 'req', (c, ms) => httpLoad(d.reference!, proxyReq, c, ms, 200))), direct: directHttp });
      }
      rows.push({ ...(await both('http-proxy', 'keep-alive GET, allowed', 'req', (c, ms) => httpLoad(proxy, proxyReq, c, ms, 200))), direct: directHttp });
      if (squid) {
        await httpLoad(squid.port, proxyReq, 4, 300, 200);
        rows.push({ ...(await both('squid', 'keep-alive GET, allowed', 'req', (c, ms) => httpLoad(squid.port, proxyReq, c, ms, 200))), direct: directHttp });
      }
      if (only !== 'allowed') rows.push({ ...(await both('http-proxy', 'keep-alive GET, denied (403)', 'req', (c, ms) => httpLoad(proxy, deniedReq, c, ms, 403))), direct: directHttp });
      if (d['transparent-http'] && only !== 'allowed') {
        await httpLoad(d['transparent-http'], transReq, 2, 300, 200);
        rows.push({ ...(await both('transparent-http', 'keep-alive GET, allowed', 'req', (c, ms) => httpLoad(d['transparent-http']!, transReq, c, ms, 200))), direct: directHttp });
        rows.push({ ...(await both('transparent-http', 'keep-alive GET, denied (403)', 'req', (c, ms) => httpLoad(d['transparent-http']!, transDenied, c, ms, 403))), direct: directHttp });
      }
    }
    // Tunnels: new connection, set-up, one echo round trip, close.
    if (!only || only === 'connect') {
      const directTcp = await both('direct', 'TCP connect + echo', 'conn', (c, ms) => connLoad(() => exchange(o.echo, [{ send: PING, done: pong }]), c, ms));
      const connectReq = Buffer.from(`CONNECT allowed.test:${o.echo} HTTP/1.1\r\nHost: allowed.test:${o.echo}\r\n\r\n`);
      const connectDenied = Buffer.from(`CONNECT denied.test:${o.echo} HTTP/1.1\r\nHost: denied.test:${o.echo}\r\n\r\n`);
      if (d.relay)
        rows.push({
          ...(await both('reference', 'bare pipe() CONNECT relay + echo (no policy)', 'tunnel', (c, ms) =>
            connLoad(
              () =>
                exchange(d.relay!, [
                  { send: connectReq, done: statusIs(200) },
                  { send: PING, done: pong },
                ]),
              c,
              ms,
            ),
          )),
          direct: directTcp,
        });
      rows.push({
        ...(await both('http-proxy', 'CONNECT tunnel + echo, allowed', 'tunnel', (c, ms) =>
          connLoad(
            () =>
              exchange(proxy, [
                { send: connectReq, done: statusIs(200) },
                { send: PING, done: pong },
              ]),
            c,
            ms,
          ),
        )),
        direct: directTcp,
      });
      rows.push({ ...(await both('http-proxy', 'CONNECT, denied (403)', 'tunnel', (c, ms) => connLoad(() => exchange(proxy, [{ send: connectDenied, done: statusIs(403) }]), c, ms))), direct: directTcp });
      if (squid) {
        rows.push({
          ...(await both('squid', 'CONNECT tunnel + echo, allowed', 'tunnel', (c, ms) =>
            connLoad(
              () =>
                exchange(squid.port, [
                  { send: connectReq, done: statusIs(200) },
                  { send: PING, done: pong },
                ]),
              c,
              ms,
            ),
          )),
          direct: directTcp,
        });
        rows.push({ ...(await both('squid', 'CONNECT, denied (403)', 'tunnel', (c, ms) => connLoad(() => exchange(squid.port, [{ send: connectDenied, done: statusIs(403) }]), c, ms))), direct: directTcp });
      }
      if (d.socks5) {
        const greet = Buffer.from([5, 1, 0]);
        const gotMethod = (b: Buffer) => (b.length >= 2 ? b[0] === 5 && b[1] === 0 : null);
        const reply = (code: number) => (b: Buffer) => (b.length >= 10 ? b[1] === code : null);
        rows.push({
          ...(await both('socks5', 'CONNECT + echo, allowed', 'tunnel', (c, ms) =>
            connLoad(
              () =>
                exchange(d.socks5!, [
                  { send: greet, done: gotMethod },
                  { send: socksRequest('allowed.test', o.echo), done: reply(0) },
                  { send: PING, done: pong },
                ]),
              c,
              ms,
            ),
          )),
          direct: directTcp,
        });
        rows.push({
          ...(await both('socks5', 'CONNECT, denied (0x02)', 'tunnel', (c, ms) =>
            connLoad(
              () =>
                exchange(d.socks5!, [
                  { send: greet, done: gotMethod },
                  { send: socksRequest('denied.test', o.echo), done: reply(2) },
                ]),
              c,
              ms,
            ),
          )),
          direct: directTcp,
        });
      }
      if (d['transparent-tls']) {
        const directTls = await both('direct', 'TLS handshake', 'conn', (c, ms) => connLoad(() => tlsOnce(o.https, 'www.allowed.test', ca), c, ms));
        rows.push({ ...(await both('transparent-tls', 'TLS handshake via SNI, allowed', 'conn', (c, ms) => connLoad(() => tlsOnce(d['transparent-tls']!, 'www.allowed.test', ca), c, ms))), direct: directTls });
        rows.push({ ...(await both('transparent-tls', 'ClientHello, denied (alert)', 'conn', (c, ms) => connLoad(() => tlsOnce(d['transparent-tls']!, 'denied.test', ca).then((ok) => !ok), c, ms))), direct: directTls });
      }
    }
  }
  const oneCore = squid && (!only || only === 'onecore') ? await oneCoreEach({ pid: gwp.child.pid!, port: proxy }, squid, origin.child.pid!, o.http) : [];
  // Bulk
  // Interleaved, best of BULK_ROUNDS each, after one unmeasured direct run (the first
  // transfer of a process pays for page faults and JIT and was the slowest every time).
  const bulkDirect: number[] = [];
  const bulkTunnel: number[] = [];
  const bulkRelay: number[] = [];
  const bulkSquid: number[] = [];
  const rounds = only && only !== 'bulk' ? 0 : BULK_ROUNDS;
  if (rounds > 0) await bulkOnce(o.bulk, null);
  for (let i = 0; i < rounds; i++) {
    bulkDirect.push(await bulkOnce(o.bulk, null));
    if (d.relay) bulkRelay.push(await bulkOnce(d.relay, `allowed.test:${o.bulk}`));
    bulkTunnel.push(await bulkOnce(proxy, `allowed.test:${o.bulk}`));
    if (squid) bulkSquid.push(await bulkOnce(squid.port, `allowed.test:${o.bulk}`));
  }

  const churnLines = !only || only === 'churn' ? await churnTable(gwp.child, proxy, gwp.child.pid!, squid, origin.child.pid!, o.echo, d.relay) : [];

  await squid?.stop();
  gwp.child.send('stop');
  origin.child.kill();
  await new Promise((r) => gwp.child.once('exit', r));

  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '–');
  const lines = [
    `### Proxy doors (${os.cpus().length} cores, Node ${process.version}, ${C} concurrent clients for rates; latency with 1 client)`,
    '',
    '| door | scenario | p50 ms | p99 ms | rate /s | direct p50 ms | direct rate /s | rate vs direct | p50 over direct |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const dd = r.direct!;
    if (!dd) continue;
    lines.push(`| ${r.door} | ${r.scenario}${r.note ? ` (${r.note})` : ''} | ${f(r.p50)} | ${f(r.p99)} | ${Math.round(r.rate)} ${r.unit} | ${f(dd.p50)} | ${Math.round(dd.rate)} | ${(r.rate / dd.rate).toFixed(2)}× | +${f(r.p50 - dd.p50)} |`);
  }
  const best = (a: number[]) => Math.max(...a);
  const mbs = (a: number[]) => a.map((x) => x.toFixed(0)).join(', ');
  process.stderr.write(`  bulk direct ${mbs(bulkDirect)} MB/s; bare relay ${mbs(bulkRelay)} MB/s; tunnel ${mbs(bulkTunnel)} MB/s; squid ${mbs(bulkSquid)} MB/s\n`);
  if (rounds > 0) lines.push('', `| bulk ${Math.round(BULK_BYTES / 1048576)} MB | MB/s (best of ${rounds}) | vs direct |`, '|---|---:|---:|');
  if (rounds > 0) lines.push(`| direct | ${best(bulkDirect).toFixed(0)} | 1.00× |`);
  if (bulkRelay.length > 0) lines.push(`| reference: bare pipe() CONNECT relay | ${best(bulkRelay).toFixed(0)} | ${(best(bulkRelay) / best(bulkDirect)).toFixed(2)}× |`);
  if (bulkSquid.length > 0) lines.push(`| reference: Squid CONNECT tunnel | ${best(bulkSquid).toFixed(0)} | ${(best(bulkSquid) / best(bulkDirect)).toFixed(2)}× |`);
  if (rounds > 0) lines.push(`| CONNECT tunnel | ${best(bulkTunnel).toFixed(0)} | ${(best(bulkTunnel) / best(bulkDirect)).toFixed(2)}× |`);
  lines.push(...oneCoreTable(oneCore));
  if (churnLines.length > 0) lines.push('', ...churnLines);
  lines.push('', `_whole run ${((performance.now() - wall) / 1000).toFixed(1)} s_`);
  process.stdout.write(lines.join('\n') + '\n');
}

if (role === 'origin') await runOrigin();
else if (role === 'gateway') await runGateway();
else await main();
