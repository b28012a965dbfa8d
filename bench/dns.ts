/**
 * DNS door benchmark (`npm run bench:dns`): queries per second and p50/p99 latency for
 * allowed-cached, allowed-uncached and denied queries through the door, beside a fast
 * upstream queried directly in the same run. The gateway and the upstream each run in a
 * worker thread; this thread is the load generator: a few UDP sockets (bound to the
 * devbox address 127.0.0.2), many queries in flight, prebuilt query bytes with the id
 * rewritten. Bounded: every phase stops at a query count or a time limit.
 *
 * Throughput comes from the Node client (one thread: on two cores the door keeps one to
 * itself). Latency at the fixed rate comes from dnsperf when it is installed
 * (apt-get install dnsperf), else from the Node client; --client dnsperf uses dnsperf for
 * both, --client node for neither.
 *
 *   npm run bench:dns [-- --seconds 3 --rate 2000 --window 256 --client dnsperf|node --json]
 */
import dgram from 'node:dgram';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const args = process.argv.slice(2);
const arg = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : def;
};
const SECONDS = arg('seconds', 3);
const MAX_QUERIES = arg('max-queries', 1_000_000);
const RATE = arg('rate', 2000);
const LATENCY_SECONDS = arg('latency-seconds', 2);
const WINDOW = arg('window', 256);
const SOCKETS = arg('sockets', 4);
const JSON_OUT = args.includes('--json');
const CLIENT_ARG = (() => {
  const i = args.indexOf('--client');
  return i >= 0 ? args[i + 1] : undefined;
})();
const DEVBOX = '127.0.0.2';

// ── the fast upstream: rewrites the query in place into an answer (one A record) ──────

function runUpstream(): void {
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 127, 0, 0, 1]); // A 127.0.0.1, TTL 3600
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 17) return;
    // End of the question: walk the name.
    let p = 12;
    while (p < msg.length && msg[p] !== 0) p += 1 + msg[p]!;
    const qEnd = p + 5;
    if (qEnd > msg.length) return;
    const out = Buffer.allocUnsafe(qEnd + rr.length);
    msg.copy(out, 0, 0, qEnd);
    out[2] = 0x81; // QR, RD
    out[3] = 0x80; // RA, NOERROR
    out.writeUInt16BE(1, 6); // an 1
    out.writeUInt32BE(0, 8); // ns 0, ar 0
    rr.copy(out, qEnd);
    sock.send(out, rinfo.port, rinfo.address);
  });
  sock.bind(0, '127.0.0.1', () => parentPort!.postMessage({ port: sock.address().port }));
}

// ── the gateway, as `serve` runs it, with a policy and a devbox at 127.0.0.2 ─────────

async function runGateway(upstreamPort: number): Promise<void> {
  const { pino } = await import('pino');
  const { loadConfig } = await import('../src/config.js');
  const { startGateway } = await import('../src/server.js');
  const dir = mkdtempSync(join(tmpdir(), 'egw-bench-dns-'));
  const flags = new Map<string, string[]>([
    ['api', ['127.0.0.1:0']],
    ['http-proxy', ['off']],
    ['socks', ['off']],
    ['dns', ['127.0.0.1:0']],
    ['db', [join(dir, 'egress.db')]],
    ['api-token', ['bench:acct-bench']],
    ['upstream-dns', [`127.0.0.1:${upstreamPort}`]],
    ['dns-rate-limit', ['0']],
    ['log-level', ['info']],
  ]);
  const config = loadConfig(flags, {});
  // Logs are written (to /dev/null), as in production: every denial is one JSON line.
  const gw = await startGateway(config, pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false })));
  const api = `http://127.0.0.1:${gw.doors.api!.port}`;
  const call = async (path: string, body: unknown) => {
    const r = await fetch(api + path, { method: 'POST', headers: { authorization: 'Bearer bench', 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as { id: string };
  };
  const pol = await call('/v1/network-policies', { name: 'bench', allowed_hostnames: ['cached.bench.test', '*.bench.test'] });
  await call('/v1/devboxes', { launch_parameters: { network_policy_id: pol.id }, network: { addresses: [DEVBOX] } });
  parentPort!.postMessage({ port: gw.doors.dns!.port });
  parentPort!.on('message', async (m) => {
    if (m === 'close') {
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
      parentPort!.postMessage('closed');
    }
  });
}

// ── load generator ────────────────────────────────────────────────────────────────────

function wireQuery(name: string, type = 1): Buffer {
  const labels = name.split('.');
  const buf = Buffer.alloc(12 + labels.reduce((n, l) => n + 1 + l.length, 1) + 4 + 11);
  buf.writeUInt16BE(0x0100, 2);
  buf.writeUInt16BE(1, 4);
  buf.writeUInt16BE(1, 10);
  let p = 12;
  for (const l of labels) {
    buf[p++] = l.length;
    p += buf.write(l, p, 'latin1');
  }
  buf[p++] = 0;
  buf.writeUInt16BE(type, p);
  buf.writeUInt16BE(1, p + 2);
  p += 4;
  buf.writeUInt16BE(41, p + 1); // OPT, udp 1232
  buf.writeUInt16BE(1232, p + 3);
  return buf;
}

interface Result {
  sent: number;
  answered: number;
  lost: number;
  seconds: number;
  latenciesMs: Float64Array;
}

/** Queries come from `next()`; `rate` 0 means as fast as the window allows (closed loop). */
async function load(port: number, next: (i: number) => Buffer, opts: { seconds: number; maxQueries: number; rate: number; window: number }): Promise<Result> {
  const socks: dgram.Socket[] = [];
  for (let i = 0; i < SOCKETS; i++) {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    await new Promise<void>((r) => s.bind(0, DEVBOX, r));
    socks.push(s);
  }
  const sentAt = socks.map(() => new Float64Array(65536));
  const ids = socks.map(() => 0);
  const outstanding = socks.map(() => 0);
  const lat = new Float64Array(opts.maxQueries);
  let nLat = 0;
  let sent = 0;
  let answered = 0;
  let lost = 0;
  let stop = false;
  const perSocketWindow = Math.max(1, Math.floor(opts.window / SOCKETS));
  const started = performance.now();
  const deadline = started + opts.seconds * 1000;

  const sendOne = (k: number) => {
    // A copy: dgram may still hold the previous buffer when the id is rewritten.
    const q = Buffer.from(next(sent));
    const id = ids[k]!;
    ids[k] = (id + 1) & 0xffff;
    q[0] = id >> 8;
    q[1] = id & 255;
    sentAt[k]![id] = performance.now();
    outstanding[k]!++;
    sent++;
    socks[k]!.send(q, port, '127.0.0.1');
  };
  const fill = (k: number) => {
    while (!stop && outstanding[k]! < perSocketWindow && sent < opts.maxQueries) sendOne(k);
  };
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const finishIfDone = () => {
    if ((stop || sent >= opts.maxQueries) && outstanding.every((o) => o === 0)) resolveDone();
  };
  socks.forEach((s, k) => {
    s.on('message', (m) => {
      const id = (m[0]! << 8) | m[1]!;
      const t = sentAt[k]![id]!;
      if (t === 0) return;
      sentAt[k]![id] = 0;
      outstanding[k]!--;
      answered++;
      if (nLat < lat.length) lat[nLat++] = performance.now() - t;
      if (opts.rate === 0) fill(k);
      finishIfDone();
    });
  });
  // Losses: anything unanswered after 1 s frees its window slot.
  const reaper = setInterval(() => {
    const old = performance.now() - 1000;
    sentAt.forEach((arr, k) => {
      for (let i = 0; i < arr.length; i++) {
        if (arr[i]! !== 0 && arr[i]! < old) {
          arr[i] = 0;
          outstanding[k]!--;
          lost++;
        }
      }
      if (opts.rate === 0) fill(k);
    });
    if (performance.now() > deadline) stop = true;
    finishIfDone();
  }, 250);
  const stopper = setTimeout(() => (stop = true), opts.seconds * 1000);
  let pacer: NodeJS.Timeout | null = null;
  if (opts.rate === 0) socks.forEach((_, k) => fill(k));
  else {
    let k = 0;
    pacer = setInterval(() => {
      const due = Math.min(opts.maxQueries, Math.floor(((performance.now() - started) / 1000) * opts.rate));
      while (!stop && sent < due) sendOne(k++ % SOCKETS);
      if (performance.now() > deadline) stop = true;
      finishIfDone();
    }, 1);
  }
  await done;
  const seconds = (performance.now() - started) / 1000;
  clearInterval(reaper);
  clearTimeout(stopper);
  if (pacer) clearInterval(pacer);
  for (const s of socks) s.close();
  return { sent, answered, lost, seconds, latenciesMs: lat.subarray(0, nLat) };
}

function pct(a: Float64Array, p: number): number {
  if (a.length === 0) return NaN;
  const sorted = Float64Array.from(a).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Row {
  kind: string;
  qps: number;
  lost: number;
  p50: number;
  p99: number;
  loadP50: number;
  loadP99: number;
}

function hasDnsperf(): boolean {
  try {
    execFileSync('dnsperf', ['-h'], { stdio: 'ignore' });
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

function run(cmd: string, argv: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, argv, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`));
  });
}

/** One dnsperf run; names are the data file lines ("name TYPE"). */
async function dnsperf(port: number, file: string, opts: { seconds: number; rate: number; window: number; once: boolean }): Promise<Result & { qps: number }> {
  const argv = ['-s', '127.0.0.1', '-p', String(port), '-a', DEVBOX, '-d', file, '-l', String(opts.seconds), '-c', String(SOCKETS), '-e', '-t', '1'];
  if (opts.once) argv.push('-n', '1');
  if (opts.rate > 0) argv.push('-Q', String(opts.rate), '-q', '1000', '-v');
  else argv.push('-q', String(opts.window));
  const out = await run('dnsperf', argv, (opts.seconds + 15) * 1000);
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const lat: number[] = [];
  if (opts.rate > 0) for (const m of out.matchAll(/^> \S+ \S+ \S+ ([0-9.]+)$/gm)) lat.push(Number(m[1]) * 1000);
  const answered = num(/Queries completed:\s+(\d+)/);
  const lost = num(/Queries lost:\s+(\d+)/);
  const qps = num(/Queries per second:\s+([0-9.]+)/);
  if (!Number.isFinite(qps)) throw new Error(`dnsperf failed:\n${out}`);
  return { sent: answered + lost, answered, lost, seconds: answered / qps, latenciesMs: Float64Array.from(lat), qps };
}

async function measureDnsperf(kind: string, port: number, lines: (phase: string, n: number) => string, once: boolean): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'egw-dnsperf-'));
  const file = (phase: string, n: number) => {
    const f = join(dir, `${phase}.txt`);
    writeFileSync(f, lines(phase, n));
    return f;
  };
  try {
    await dnsperf(port, file('warm', 20_000), { seconds: 0.5, rate: 0, window: WINDOW, once });
    const t = await dnsperf(port, file('load', Math.min(MAX_QUERIES, 150_000 * SECONDS)), { seconds: SECONDS, rate: 0, window: WINDOW, once });
    const l = await dnsperf(port, file('lat', Math.ceil(RATE * LATENCY_SECONDS) + 10), { seconds: LATENCY_SECONDS, rate: RATE, window: 0, once });
    return { kind, qps: t.qps, lost: t.lost + l.lost, p50: pct(l.latenciesMs, 50), p99: pct(l.latenciesMs, 99), loadP50: NaN, loadP99: NaN };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function dnsperfLatency(port: number, lines: (phase: string, n: number) => string, once: boolean): Promise<{ p50: number; p99: number; lost: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'egw-dnsperf-'));
  try {
    const f = join(dir, 'lat.txt');
    writeFileSync(f, lines('lat', Math.ceil(RATE * LATENCY_SECONDS) + 10));
    const l = await dnsperf(port, f, { seconds: LATENCY_SECONDS, rate: RATE, window: 0, once });
    return { p50: pct(l.latenciesMs, 50), p99: pct(l.latenciesMs, 99), lost: l.lost };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(kind: string, port: number, next: (i: number) => Buffer): Promise<Row> {
  // Warm-up (fills caches, JIT), then throughput (closed loop), then latency at a fixed rate.
  await load(port, next, { seconds: 0.5, maxQueries: 20_000, rate: 0, window: WINDOW });
  const t = await load(port, next, { seconds: SECONDS, maxQueries: MAX_QUERIES, rate: 0, window: WINDOW });
  const l = await load(port, next, { seconds: LATENCY_SECONDS, maxQueries: Math.ceil(RATE * LATENCY_SECONDS) + 10, rate: RATE, window: 1 << 16 });
  return {
    kind,
    qps: t.answered / t.seconds,
    lost: t.lost + l.lost,
    p50: pct(l.latenciesMs, 50),
    p99: pct(l.latenciesMs, 99),
    loadP50: pct(t.latenciesMs, 50),
    loadP99: pct(t.latenciesMs, 99),
  };
}

async function main(): Promise<void> {
  // Workers load this file through tsx's loader (registered before the import).
  const boot = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const spawn = (data: Record<string, unknown>) => new Worker(boot, { eval: true, workerData: data });
  const upstream = spawn({ role: 'upstream' });
  const upPort = await new Promise<number>((r) => upstream.once('message', (m) => r(m.port)));
  const gateway = spawn({ role: 'gateway', upstreamPort: upPort });
  const dnsPort = await new Promise<number>((r, j) => {
    gateway.once('message', (m) => r(m.port));
    gateway.once('error', j);
  });

  const cached = wireQuery('cached.bench.test');
  const denied = Array.from({ length: 1000 }, (_, i) => wireQuery(`n${i}.denied.test`));
  let unique = 0;
  const run = Date.now().toString(36);
  const uncached = () => wireQuery(`u${unique++}-${run}.bench.test`);

  // Throughput: the Node client (one thread, so the gateway keeps a core of its own);
  // dnsperf runs a send and a receive thread, which on two cores takes CPU from the door.
  // Latency at a fixed rate: dnsperf when installed (its timestamps carry no event-loop delay).
  const haveDnsperf = CLIENT_ARG !== 'node' && hasDnsperf();
  const allDnsperf = CLIENT_ARG === 'dnsperf' && haveDnsperf;
  const repeat = (line: string) => (_phase: string, n: number) => `${line}\n`.repeat(Math.min(n, 1000));
  const uniques = (_phase: string, n: number) => {
    const tag = `${run}${Math.random().toString(36).slice(2, 6)}`;
    let out = '';
    for (let i = 0; i < n; i++) out += `u${i}-${tag}.bench.test A\n`;
    return out;
  };
  const deniedLines = () => Array.from({ length: 1000 }, (_, i) => `n${i}.denied.test A\n`).join('');
  const specs: Array<{ kind: string; port: number; next: (i: number) => Buffer; lines: (phase: string, n: number) => string; once: boolean }> = [
    { kind: 'upstream directly (no gateway)', port: upPort, next: uncached, lines: uniques, once: true },
    { kind: 'allowed, cached', port: dnsPort, next: () => cached, lines: repeat('cached.bench.test A'), once: false },
    { kind: 'denied (NXDOMAIN + EDE 15)', port: dnsPort, next: (i) => denied[i % denied.length]!, lines: deniedLines, once: false },
    { kind: 'allowed, uncached (forwarded)', port: dnsPort, next: uncached, lines: uniques, once: true },
  ];
  const rows: Row[] = [];
  for (const sp of specs) {
    if (allDnsperf) {
      rows.push(await measureDnsperf(sp.kind, sp.port, sp.lines, sp.once));
      continue;
    }
    const row = await measure(sp.kind, sp.port, sp.next);
    if (haveDnsperf) {
      const l = await dnsperfLatency(sp.port, sp.lines, sp.once);
      row.p50 = l.p50;
      row.p99 = l.p99;
      row.lost += l.lost;
    }
    rows.push(row);
  }
  const clientNote = allDnsperf ? 'dnsperf' : haveDnsperf ? 'Node client for throughput, dnsperf for latency' : 'Node client';

  gateway.postMessage('close');
  await new Promise<void>((r) => {
    gateway.once('message', () => r());
    setTimeout(r, 3000);
  });
  await gateway.terminate();
  await upstream.terminate();

  if (JSON_OUT) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');
  const direct = rows[0]!;
  console.log(`\nDNS door, UDP, ${clientNote}, ${SOCKETS} sockets, ${WINDOW} queries in flight for throughput; latency at ${RATE} queries/s (Node ${process.version}, ${(await import('node:os')).cpus().length} CPUs)\n`);
  console.log('| queries | queries/s | p50 ms @' + RATE + '/s | p99 ms @' + RATE + '/s | p50 / p99 ms under full load | lost |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.kind} | ${Math.round(r.qps).toLocaleString('en-US')} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.loadP50)} / ${f(r.loadP99)} | ${r.lost} |`);
  }
  const unc = rows[3]!;
  console.log(`\nuncached adds ${f(unc.p50 - direct.p50)} ms at p50 over querying the upstream directly`);
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else if (workerData?.role === 'upstream') {
  runUpstream();
} else if (workerData?.role === 'gateway') {
  runGateway(workerData.upstreamPort as number).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
