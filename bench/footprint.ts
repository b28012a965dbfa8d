/**
 * `npm run bench:footprint`: what the gateway costs the host it runs on, beside references
 * run in the same sitting.
 *
 * For each worker count (FOOTPRINT_WORKERS, default "default,1,2,2:rr"; "default" passes no
 * --workers, "N:rr" runs N workers with NODE_CLUSTER_SCHED_POLICY=rr, node's round-robin
 * hand-off through the primary, instead of the gateway's own `none`): `egress-gateway serve` is started the way an operator starts it (the
 * bin, compiled code: run `npm run build` first), and measured
 * - start-up: from spawn to the first 200 from /readyz;
 * - RSS of every process of the gateway (primary, workers, API process) once idle;
 * - RSS with HELD idle CONNECT tunnels (default 1,000) open through the HTTP proxy, from
 *   ten devboxes on their own loopback addresses to an origin that holds them;
 * - CONNECT churn (open, one byte echoed, close) for CHURN_MS with CHURN_CONCURRENCY
 *   clients, the whole gateway pinned to core 0 and the load to core 1 (taskset), so
 *   `--workers 2` and `--workers 1` run on the same one core and the difference is the
 *   cost of the primary's hand-off; the balance is each worker's share of the CPU the
 *   workers used during the churn.
 * References, same sitting, same load: a bare Node CONNECT relay (no policy, one process),
 * Squid as a plain forward proxy and unbound (idle) when installed.
 * FOOTPRINT_NODE_ARGS adds node flags to the gateway (a CPU profile of the churn:
 * "--cpu-prof --cpu-prof-dir=DIR"). FOOTPRINT_ROOT measures another checkout's gateway (an older commit, for a before/after).
 * Loopback only, every process in its own group and killed at the end; bounded: each step
 * stops by itself. Prints markdown.
 */
import net from 'node:net';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDnsUpstream, loopbackRecords } from '../test/support/dns-upstream.js';
import { freePort } from '../test/support/cli-gateway.js';
import { ApiClient } from '../test/support/gateway.js';
import { onPath } from './_dns-references.js';

/** The checkout whose gateway is measured (FOOTPRINT_ROOT: another one, e.g. an older commit, in the same sitting). */
const ROOT = process.env.FOOTPRINT_ROOT ?? fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'bin', 'egress-gateway.js');
const WORKERS = (process.env.FOOTPRINT_WORKERS ?? 'default,1,2,2:rr').split(',').filter((w) => w !== '' && w !== 'skip');
const HELD = Number(process.env.FOOTPRINT_TUNNELS ?? 1000);
const DEVBOXES = 10;
const CHURN_MS = Number(process.env.FOOTPRINT_CHURN_MS ?? 4000);
const CHURN_CONCURRENCY = Number(process.env.FOOTPRINT_CHURN_CONCURRENCY ?? 16);
const SETTLE_MS = 1500;
const START_LIMIT_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every live process in process group `pgid`: pid, RSS in MB and its command line. */
function group(pgid: number): Array<{ pid: number; rssMb: number; cmd: string }> {
  const out: Array<{ pid: number; rssMb: number; cmd: string }> = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) !== pgid) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${d}/status`, 'utf8'));
      out.push({ pid: Number(d), rssMb: rss ? Number(rss[1]) / 1024 : 0, cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ').trim() });
    } catch {
      /* gone */
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}

function role(cmd: string, leader: boolean): string {
  if (cmd.includes('worker-main')) return 'worker';
  if (cmd.includes('process-main')) return 'api process';
  if (cmd.includes('esbuild')) return 'esbuild (tsx)';
  return leader ? 'serve' : 'other';
}

const killGroup = (pgid: number, sig: NodeJS.Signals = 'SIGKILL') => {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* gone */
  }
};
const live = new Set<number>();
process.on('exit', () => {
  for (const g of live) killGroup(g);
});

/** The origin: holds every connection it accepts, echoes what it reads. */
async function startOrigin(): Promise<{ port: number; close(): void }> {
  const held = new Set<net.Socket>();
  const s = net.createServer((c) => {
    held.add(c);
    c.on('error', () => {});
    c.on('close', () => held.delete(c));
    c.pipe(c);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as net.AddressInfo).port,
    close: () => {
      for (const c of held) c.destroy();
      s.close();
    },
  };
}

const devboxAddress = (i: number) => `127.9.0.${i + 1}`;

/** One CONNECT through `proxy` from `from`: resolves with the open socket after the 200, or null. */
function connect(proxy: number, from: string, target: string): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: proxy, localAddress: from });
    let buf = '';
    const timer = setTimeout(() => fail(), 10_000);
    const fail = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(null);
    };
    s.on('error', fail);
    s.on('connect', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      s.off('data', onData);
      clearTimeout(timer);
      if (!buf.startsWith('HTTP/1.1 200')) return fail();
      resolve(s);
    };
    s.on('data', onData);
  });
}

async function holdTunnels(proxy: number, target: string, n: number): Promise<{ open: net.Socket[]; failed: number }> {
  const open: net.Socket[] = [];
  let failed = 0;
  for (let k = 0; k < n; k += 100) {
    const got = await Promise.all(Array.from({ length: Math.min(100, n - k) }, (_, j) => connect(proxy, devboxAddress((k + j) % DEVBOXES), target)));
    for (const s of got)
      if (s === null) failed++;
      else open.push(s);
  }
  return { open, failed };
}

/** CONNECT, one byte there and back, close; `concurrency` loops for `ms`. */
async function churn(proxy: number, target: string, ms: number, concurrency: number, pgid?: number): Promise<{ rate: number; errors: number; cpuMsPerTunnel?: number }> {
  const cpu = () => (pgid === undefined ? 0 : [...cpuOf(group(pgid).map((p) => p.pid)).values()].reduce((a, b) => a + b, 0));
  const cpu0 = cpu();
  const end = performance.now() + ms;
  let count = 0;
  let errors = 0;
  const loop = async (i: number) => {
    while (performance.now() < end) {
      const s = await connect(proxy, devboxAddress(i % DEVBOXES), target);
      if (s === null) {
        errors++;
        continue;
      }
      const ok = await new Promise<boolean>((r) => {
        s.once('data', () => r(true));
        s.once('close', () => r(false));
        s.write('x');
      });
      s.destroy();
      if (ok) count++;
      else errors++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, i) => loop(i)));
  const rate = count / ((performance.now() - t0) / 1000);
  return pgid === undefined || count === 0 ? { rate, errors } : { rate, errors, cpuMsPerTunnel: ((cpu() - cpu0) * 1000) / count };
}

/** The measured group on core 0 and this load generator on core 1 (undone by unpinSelf). */
function pinGroup(pgid: number, cpus: string): boolean {
  if (!onPath('taskset') || os.cpus().length < 2) return false;
  try {
    for (const p of group(pgid)) execFileSync('taskset', ['-a', '-pc', cpus, String(p.pid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-a', '-pc', '1', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** CPU seconds (user + system) of each process, by pid. */
function cpuOf(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(pid, (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      /* gone */
    }
  }
  return out;
}

interface Row {
  who: string;
  /** CPU seconds the whole tree used until ready (what start-up costs, whatever else the machine runs). */
  startupCpu?: number;
  /** Each worker's share of the workers' CPU during the churn (null with one door process). */
  balance?: number[] | null;
  startupMs: number | null;
  idle: Array<{ role: string; rssMb: number }>;
  held: Array<{ role: string; rssMb: number }>;
  heldFailed: number;
  churn: { rate: number; errors: number; cpuMsPerTunnel?: number } | null;
}

/** Children started later must not inherit the load generator's core (it would change the default --workers). */
function unpinSelf(): void {
  if (onPath('taskset')) execFileSync('taskset', ['-a', '-pc', `0-${os.cpus().length - 1}`, String(process.pid)], { stdio: 'ignore' });
}

const sum = (ps: Array<{ rssMb: number }>) => ps.reduce((a, p) => a + p.rssMb, 0);

async function measureGateway(spec: string, originPort: number, dnsPort: number): Promise<Row> {
  const [workers, sched] = spec.split(':') as [string, string | undefined];
  const dir = mkdtempSync(join(os.tmpdir(), 'egw-footprint-'));
  const [api, proxy, socks, dns] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // FOOTPRINT_NODE_ARGS: node flags for the gateway, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const args = [...(process.env.FOOTPRINT_NODE_ARGS ?? '').split(' ').filter(Boolean), BIN, 'serve', '--db', join(dir, 'egress.db'), '--api', `127.0.0.1:${api}`, '--http-proxy', `127.0.0.1:${proxy}`, '--socks', `127.0.0.1:${socks}`, '--dns', `127.0.0.1:${dns}`];
  args.push('--upstream-dns', `127.0.0.1:${dnsPort}`, '--api-token', 'bench-token:bench', '--allow-private', '127.0.0.0/8', '--log-allowed', 'none', '--shutdown-grace-ms', '500');
  if (workers !== 'default') args.push('--workers', workers);
  const t0 = performance.now();
  const env: NodeJS.ProcessEnv = { ...process.env, EGRESS_CONFIG: '' };
  delete env.EGRESS_WORKERS;
  if (sched) env.NODE_CLUSTER_SCHED_POLICY = sched;
  const child = spawn(process.execPath, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'ignore', 'inherit'], env });
  const pgid = child.pid!;
  live.add(pgid);
  try {
    let startupMs: number | null = null;
    let startupCpu: number | undefined;
    while (performance.now() - t0 < START_LIMIT_MS && child.exitCode === null) {
      const ok = await fetch(`http://127.0.0.1:${api}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) {
        startupMs = performance.now() - t0;
        startupCpu = [...cpuOf(group(pgid).map((p) => p.pid)).values()].reduce((a, b) => a + b, 0);
        break;
      }
      await sleep(10);
    }
    if (startupMs === null) throw new Error(`gateway --workers ${workers} did not become ready`);
    await sleep(SETTLE_MS);
    const name = (ps: ReturnType<typeof group>) => ps.map((p) => ({ role: role(p.cmd, p.pid === pgid), rssMb: p.rssMb }));
    const idle = name(group(pgid));
    const client = new ApiClient(`http://127.0.0.1:${api}`, 'bench-token');
    const policy = await client.policy('footprint', { allowed_hostnames: ['allowed.test'] });
    for (let i = 0; i < DEVBOXES; i++) await client.devbox(policy, [devboxAddress(i)], `fp-${i}`);
    const target = `allowed.test:${originPort}`;
    const { open, failed } = await holdTunnels(proxy, target, HELD);
    await sleep(SETTLE_MS);
    const held = name(group(pgid));
    for (const s of open) s.destroy();
    let churnRow: Row['churn'] = null;
    let balance: number[] | null = null;
    if (CHURN_MS > 0 && pinGroup(pgid, '0')) {
      await churn(proxy, target, 500, CHURN_CONCURRENCY); // warm-up
      const workerPids = group(pgid)
        .filter((p) => role(p.cmd, p.pid === pgid) === 'worker')
        .map((p) => p.pid);
      const before = cpuOf(workerPids);
      churnRow = await churn(proxy, target, CHURN_MS, CHURN_CONCURRENCY, pgid);
      const after = cpuOf(workerPids);
      const used = workerPids.map((p) => (after.get(p) ?? 0) - (before.get(p) ?? 0));
      const total = used.reduce((a, b) => a + b, 0);
      balance = workerPids.length > 1 && total > 0 ? used.map((u) => u / total) : null;
    }
    const doorProcesses = idle.filter((p) => p.role === 'worker').length || 1;
    const who = `gateway ${workers === 'default' ? 'default' : `--workers ${workers}`}${sched ? `, NODE_CLUSTER_SCHED_POLICY=${sched}` : ''} (${doorProcesses} door process${doorProcesses > 1 ? 'es' : ''})`;
    return { who, startupMs, startupCpu, idle, held, heldFailed: failed, churn: churnRow, balance };
  } finally {
    killGroup(pgid, 'SIGTERM');
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3000)]);
    killGroup(pgid);
    live.delete(pgid);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bare reference: one Node process, CONNECT parsed and piped, no policy. */
const RELAY = `
const net = require('node:net');
const s = net.createServer((c) => {
  c.on('error', () => {});
  let head = '';
  const onData = (d) => {
    head += d.toString('latin1');
    const end = head.indexOf('\\r\\n\\r\\n');
    if (end < 0) return;
    c.off('data', onData);
    const [host, port] = head.slice(8, head.indexOf(' ', 8)).split(':');
    const u = net.connect(Number(port), host === 'allowed.test' ? '127.0.0.1' : host, () => {
      c.write('HTTP/1.1 200 Connection established\\r\\n\\r\\n');
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      if (rest.length) u.write(rest);
      c.pipe(u); u.pipe(c);
    });
    u.on('error', () => c.destroy());
    c.on('close', () => u.destroy());
  };
  c.on('data', onData);
});
s.listen(Number(process.argv[1]), '127.0.0.1', () => process.stdout.write('up\\n'));
`;

async function measureProcess(who: string, cmd: string[], port: number, ready: () => Promise<boolean>, originPort: number, cleanup?: () => void): Promise<Row> {
  const t0 = performance.now();
  const child = spawn(cmd[0]!, cmd.slice(1), { detached: true, stdio: 'ignore' });
  const pgid = child.pid!;
  live.add(pgid);
  try {
    let startupMs: number | null = null;
    while (performance.now() - t0 < START_LIMIT_MS && child.exitCode === null) {
      if (await ready()) {
        startupMs = performance.now() - t0;
        break;
      }
      await sleep(10);
    }
    if (startupMs === null) throw new Error(`${who} did not start`);
    await sleep(SETTLE_MS);
    const idle = group(pgid).map((p) => ({ role: 'all', rssMb: p.rssMb }));
    if (port === 0) return { who, startupMs, idle, held: [], heldFailed: 0, churn: null };
    const target = `allowed.test:${originPort}`;
    const { open, failed } = await holdTunnels(port, who.toLowerCase().includes('squid') ? `127.0.0.1:${originPort}` : target, HELD);
    await sleep(SETTLE_MS);
    const held = group(pgid).map((p) => ({ role: 'all', rssMb: p.rssMb }));
    for (const s of open) s.destroy();
    let churnRow: Row['churn'] = null;
    if (CHURN_MS > 0 && pinGroup(pgid, '0')) {
      const t = who.toLowerCase().includes('squid') ? `127.0.0.1:${originPort}` : target;
      await churn(port, t, 500, CHURN_CONCURRENCY);
      churnRow = await churn(port, t, CHURN_MS, CHURN_CONCURRENCY, pgid);
    }
    return { who, startupMs, idle, held, heldFailed: failed, churn: churnRow };
  } finally {
    killGroup(pgid, 'SIGTERM');
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3000)]);
    killGroup(pgid);
    live.delete(pgid);
    cleanup?.();
  }
}

const tcpUp = (port: number) => () =>
  new Promise<boolean>((r) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      r(true);
    });
    s.on('error', () => r(false));
  });

async function squidRow(originPort: number): Promise<Row | null> {
  if (!onPath('squid')) {
    process.stderr.write('  squid not installed (apt-get install squid): no Squid row\n');
    return null;
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'egw-footprint-squid-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  writeFileSync(
    join(dir, 'squid.conf'),
    [`http_port 127.0.0.1:${port}`, 'http_access allow all', `pid_filename ${dir}/squid.pid`, 'cache deny all', 'cache_mem 0 MB', `access_log none`, `cache_log ${dir}/cache.log`, 'max_filedescriptors 8192', 'shutdown_lifetime 0 seconds', ''].join('\n'),
  );
  return measureProcess('reference: Squid (no cache)', ['squid', '-N', '-f', join(dir, 'squid.conf')], port, tcpUp(port), originPort, () => rmSync(dir, { recursive: true, force: true }));
}

async function unboundRow(): Promise<Row | null> {
  if (!onPath('unbound')) return null;
  const dir = mkdtempSync(join(os.tmpdir(), 'egw-footprint-unbound-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  writeFileSync(join(dir, 'unbound.conf'), ['server:', `  interface: 127.0.0.1@${port}`, '  do-daemonize: no', '  username: ""', '  chroot: ""', `  directory: "${dir}"`, '  pidfile: ""', '  use-syslog: no', '  num-threads: 1', ''].join('\n'));
  return measureProcess('reference: unbound (idle, DNS only)', ['unbound', '-d', '-c', join(dir, 'unbound.conf')], 0, tcpUp(port), 0, () => rmSync(dir, { recursive: true, force: true }));
}

async function main(): Promise<void> {
  const stopAll = setTimeout(() => {
    process.stderr.write('footprint: stopped after 600 s\n');
    process.exit(1);
  }, 600_000);
  const dns = await startDnsUpstream({ records: loopbackRecords(['allowed.test']) });
  const rows: Row[] = [];
  // A fresh origin port for each row: the closed connections of one row (TIME_WAIT on the
  // proxy's side) must not use up the ephemeral ports the next row dials from.
  const withOrigin = async (run: (port: number) => Promise<Row | null>) => {
    const origin = await startOrigin();
    try {
      const r = await run(origin.port);
      if (r) rows.push(r);
    } finally {
      origin.close();
      unpinSelf();
    }
  };
  for (const w of WORKERS) {
    process.stderr.write(`  gateway --workers ${w}\n`);
    await withOrigin((port) => measureGateway(w, port, dns.port));
  }
  process.stderr.write('  references\n');
  const relayPort = await freePort();
  await withOrigin((port) => measureProcess('reference: bare Node CONNECT relay', [process.execPath, '-e', RELAY, String(relayPort)], relayPort, tcpUp(relayPort), port));
  await withOrigin((port) => squidRow(port));
  const unbound = await unboundRow();
  if (unbound) rows.push(unbound);
  await dns.close();
  clearTimeout(stopAll);

  const f = (n: number | null | undefined, d = 0) => (n === null || n === undefined || Number.isNaN(n) ? '–' : n.toFixed(d));
  const per = (ps: Row['idle']) => ps.map((p) => `${p.role} ${f(p.rssMb)}`).join(', ');
  const relayRow = rows.find((r) => r.who.includes('bare Node'));
  const relay = relayRow?.churn?.rate;
  const relayCpu = relayRow?.churn?.cpuMsPerTunnel;
  const lines = [
    `### footprint (${os.cpus().length} cores, Node ${process.version}; ${HELD.toLocaleString('en')} held tunnels; churn ${CHURN_CONCURRENCY} clients × ${CHURN_MS / 1000} s, servers pinned to one core)`,
    '',
    "| process tree | start-up to ready ms (CPU s used) | idle RSS MB (total) | idle RSS per process MB | RSS with held tunnels MB | KB per held tunnel | CONNECT churn /s | vs bare relay | CPU ms per tunnel (vs relay) | workers' CPU shares in churn | errors |",
    '|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|',
    ...rows.map((r) => {
      const kb = r.held.length ? ((sum(r.held) - sum(r.idle)) * 1024) / HELD : null;
      return `| ${r.who} | ${f(r.startupMs)}${r.startupCpu === undefined ? '' : ` (${r.startupCpu.toFixed(2)})`} | ${f(sum(r.idle))} | ${per(r.idle)} | ${r.held.length ? f(sum(r.held)) : '–'} | ${f(kb, 1)} | ${f(r.churn?.rate)} | ${r.churn && relay ? `${(r.churn.rate / relay).toFixed(2)}×` : '–'} | ${f(r.churn?.cpuMsPerTunnel, 3)}${r.churn?.cpuMsPerTunnel && relayCpu ? ` (${(r.churn.cpuMsPerTunnel / relayCpu).toFixed(2)}×)` : ''} | ${r.balance ? r.balance.map((b) => `${Math.round(b * 100)} %`).join(' / ') : '–'} | ${r.heldFailed + (r.churn?.errors ?? 0)} |`;
    }),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
