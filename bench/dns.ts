/**
 * DNS door benchmark (`npm run bench:dns`): the gateway's DNS door beside reference DNS
 * servers, measured by the same client in the same run.
 *
 * Processes: this one (the load generator), the gateway (as `serve` runs it: logs at info to
 * /dev/null, policy and devbox set through the API), the Node upstream it forwards to, a
 * bare dns-packet responder, and unbound and dnsmasq when on PATH (generated configs,
 * 127.0.0.1, foreground, killed at the end). The client is bench/dnsload.c, compiled here
 * with cc: one thread with sendmmsg/recvmmsg costs a fraction of what a server does. Without
 * a compiler it is the Node client (bench/_dns-load.ts), which costs about as much as the
 * door, so the numbers then describe the client; the header says which ran.
 *
 * Each row: its answer checked with one query, a 0.5 s warm-up, a closed loop with --window
 * queries in flight for --seconds, then latency at --rate queries/s for --latency-seconds.
 * Every phase stops at a time or count limit. The machine may be shared, so wall-clock
 * figures are noisy: every server runs on core 0 and the load generator on core 1
 * (taskset; --no-pin to not), and each row also gives the server's CPU time per answered
 * query (user + system from /proc, its workers included), which others' load does not
 * inflate as much.
 *
 *   npm run bench:dns [-- --seconds 3 --rate 2000 --window 256 --client c|node --workers N --no-pin --json]
 */
import dgram from 'node:dgram';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import { DEVBOX, compileDnsload, dnsloadClient, nodeClient, probe, type LoadClient, type LoadResult, type QuerySet } from './_dns-load.js';
import { startReference, type ReferenceServer } from './_dns-references.js';
import { pinning, treeCpuSeconds } from './_cpu.js';

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
/** --workers N: the gateway as `serve --workers N` (every door in N processes; 1: one process). */
const WORKERS = arg('workers', 1);
const JSON_OUT = args.includes('--json');
const CLIENT_ARG = args.includes('--client') ? args[args.indexOf('--client') + 1] : undefined;
const ROLE = process.argv.find((a) => a.startsWith('--role='))?.slice(7) ?? 'main';
const RUN = Date.now().toString(36);
const PIN = ROLE === 'main' ? pinning(args.includes('--no-pin')) : { server: [], client: [], describe: '' };
/** The p99 the issue sets for cached, denied and forwarded answers at --rate (ms). */
const P99_TARGET_MS = 0.5;

// ── child roles ───────────────────────────────────────────────────────────────────────

function udpServer(onQuery: (msg: Buffer) => Buffer | null): void {
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  sock.on('message', (msg, rinfo) => {
    const out = onQuery(msg);
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  sock.bind(0, '127.0.0.1', () => process.send!({ port: sock.address().port }));
}

/** The upstream, and a reference: copies the query's header and question, appends one A record. */
function inPlaceAnswer(): (msg: Buffer) => Buffer | null {
  const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 127, 0, 0, 1]); // A 127.0.0.1, TTL 3600
  return (msg) => {
    if (msg.length < 17) return null;
    let p = 12;
    while (p < msg.length && msg[p] !== 0) p += 1 + msg[p]!;
    const qEnd = p + 5;
    if (qEnd > msg.length) return null;
    const out = Buffer.allocUnsafe(qEnd + rr.length);
    msg.copy(out, 0, 0, qEnd);
    out[2] = 0x81; // QR, RD
    out[3] = 0x80; // RA, NOERROR
    out.writeUInt16BE(1, 6); // an 1
    out.writeUInt32BE(0, 8); // ns 0, ar 0
    rr.copy(out, qEnd);
    return out;
  };
}

/** A reference: what a plain Node DNS server does per query (decode, build, encode). */
function packetAnswer(msg: Buffer): Buffer | null {
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    return null;
  }
  const question = q.questions?.[0];
  if (!question) return null;
  const edns = (q.additionals ?? []).some((a) => a.type === 'OPT');
  return dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [question],
    answers: [{ type: 'A', class: 'IN', name: question.name, ttl: 3600, data: '127.0.0.1' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  });
}

/** The gateway as `serve` runs it, with a policy and a devbox at 127.0.0.2 set through the API. */
async function runGateway(upstreamPort: number): Promise<void> {
  const { openSync } = await import('node:fs');
  const { LogWriter, createLogger } = await import('../src/log.js');
  const { loadConfig } = await import('../src/config.js');
  const { startGateway } = await import('../src/wiring/gateway.js');
  const { startWorkers } = await import('../src/wiring/workers.js');
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
    ['workers', [process.argv.find((a) => a.startsWith('--workers='))?.slice(10) ?? '1']],
  ]);
  const config = loadConfig(flags, {});
  // Logs are written (to /dev/null) by the logger `serve` uses: every denial is one JSON line.
  const log = createLogger('info', {}, new LogWriter(openSync('/dev/null', 'w'))).log;
  const gw = config.workers === 1 ? await startGateway(config, log) : await startWorkers(config, log);
  const api = `http://127.0.0.1:${gw.doors.api!.port}`;
  const call = async (path: string, body: unknown): Promise<{ id: string }> => {
    const r = await fetch(api + path, { method: 'POST', headers: { authorization: 'Bearer bench', 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as { id: string };
  };
  const pol = await call('/v1/network-policies', { name: 'bench', allowed_hostnames: ['cached.bench.test', '*.bench.test'] });
  await call('/v1/devboxes', { launch_parameters: { network_policy_id: pol.id }, network: { addresses: [DEVBOX] } });
  process.on('message', async (m) => {
    if (m !== 'stop') return;
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
  process.send!({ port: gw.doors.dns!.port });
}

// ── processes ─────────────────────────────────────────────────────────────────────────

interface Child {
  port: number;
  pid: number | null;
  stop(): Promise<void>;
}

/** This file in another process (on the servers' core); resolves with the port it reports once listening. */
function startChild(role: string, extraArgs: string[] = []): Promise<Child> {
  // Pinned: taskset execs node on the core, keeping the IPC channel.
  const pinned = PIN.server.length > 0 ? { execPath: PIN.server[0]!, execArgv: [...PIN.server.slice(1), process.execPath, '--import', 'tsx'] } : { execArgv: ['--import', 'tsx'] };
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [`--role=${role}`, ...extraArgs], {
    ...pinned,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    if (role === 'gateway') child.send('stop');
    else child.kill();
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ port: (m as { port: number }).port, pid: child.pid ?? null, stop }));
    child.once('exit', (code) => reject(new Error(`${role} exited ${code}`)));
  });
}

// ── scenarios ─────────────────────────────────────────────────────────────────────────

type Group = 'reference' | 'gateway' | 'forwarding reference';

interface Expect {
  rcode: number;
  answers: boolean;
  ede?: number;
}

interface Scenario {
  id: string;
  group: Group;
  kind: string;
  /** Null: not measured, for the reason in `skip`. */
  port: number | null;
  /** The server's process, for its CPU time. */
  pid: number | null;
  skip?: string;
  /** Query names for one phase; unique-name scenarios get a fresh set each call. */
  queries: () => QuerySet;
  /** A name for the check query. */
  probeName: () => string;
  expect: Expect;
}

interface Row {
  id: string;
  group: Group;
  kind: string;
  qps: number;
  p50: number;
  p99: number;
  loadP50: number;
  loadP99: number;
  lost: number;
  /** Answers with another rcode (or no answer record when one was expected). */
  unexpected: number;
  /** Server CPU µs per answered query: under full load, and at --rate. */
  cpuUs: number;
  cpuUsAtRate: number;
  note?: string;
}

const NOERROR_A: Expect = { rcode: 0, answers: true };
const cachedName = (): QuerySet => ({ template: 'cached.bench.test', cycle: 1 });
let uniqueSeq = 0;
const uniqueNames = (): QuerySet => ({ template: `u%u-${RUN}${(uniqueSeq++).toString(36)}.bench.test`, cycle: 0 });
const uniqueProbe = () => `probe-${RUN}${(uniqueSeq++).toString(36)}.bench.test`;

interface Servers {
  inPlace: Child;
  packet: Child | null;
  gateway: Child;
  unbound: ReferenceServer;
  dnsmasq: ReferenceServer;
}

function scenarios(p: Servers): Scenario[] {
  const ref = (r: ReferenceServer) => ({ port: r.problem ? null : r.port, pid: r.pid, skip: r.problem ?? undefined });
  const cached = { queries: cachedName, probeName: () => 'cached.bench.test', expect: NOERROR_A };
  const unique = { queries: uniqueNames, probeName: uniqueProbe, expect: NOERROR_A };
  const gw = { port: p.gateway.port, pid: p.gateway.pid };
  const inPlace = { port: p.inPlace.port, pid: p.inPlace.pid };
  return [
    { id: 'bare-in-place', group: 'reference', kind: 'bare Node responder, header rewritten in place', ...inPlace, ...cached },
    { id: 'bare-dns-packet', group: 'reference', kind: 'bare Node responder, dns-packet decode + encode', port: p.packet?.port ?? null, pid: p.packet?.pid ?? null, skip: 'did not start', ...cached },
    { id: 'unbound-local', group: 'reference', kind: 'unbound, local answer', ...ref(p.unbound), ...cached },
    { id: 'dnsmasq-local', group: 'reference', kind: 'dnsmasq, local answer', ...ref(p.dnsmasq), ...cached },
    { id: 'cached', group: 'gateway', kind: 'allowed, cached', ...gw, ...cached },
    {
      id: 'denied',
      group: 'gateway',
      kind: 'denied (NXDOMAIN + EDE 15)',
      ...gw,
      queries: () => ({ template: 'n%u.denied.test', cycle: 1000 }),
      probeName: () => 'n0.denied.test',
      expect: { rcode: 3, answers: false, ede: 15 },
    },
    { id: 'uncached', group: 'gateway', kind: 'allowed, uncached (forwarded)', ...gw, ...unique },
    { id: 'upstream-direct', group: 'forwarding reference', kind: 'upstream queried directly', ...inPlace, ...unique },
    { id: 'unbound-forward', group: 'forwarding reference', kind: 'unbound forwarding (uncached)', ...ref(p.unbound), ...unique },
    { id: 'dnsmasq-forward', group: 'forwarding reference', kind: 'dnsmasq forwarding (uncached)', ...ref(p.dnsmasq), ...unique },
  ];
}

/** Why a check answer is not the expected one; null when it is. */
function checkAnswer(a: dnsPacket.Packet | null, e: Expect): string | null {
  if (!a) return 'no answer to a check query';
  const rcode = (a.flags ?? 0) & 15;
  const answers = a.answers?.length ?? 0;
  if (rcode !== e.rcode) return `check query got rcode ${rcode}, expected ${e.rcode}`;
  if (e.answers && answers === 0) return 'check query got no answer record';
  if (e.ede !== undefined) {
    const opts = (a.additionals ?? []).flatMap((r) => (r.type === 'OPT' ? r.options : [])) as Array<{ code: number; data?: Buffer }>;
    const ede = opts.find((o) => o.code === 15)?.data?.readUInt16BE(0);
    if (ede !== e.ede) return `check query got EDE ${ede ?? 'none'}, expected ${e.ede}`;
  }
  return null;
}

function unexpectedAnswers(r: LoadResult, e: Expect): number {
  const matching = e.answers ? Math.min(r.rcodes[e.rcode] ?? 0, r.withAnswer) : (r.rcodes[e.rcode] ?? 0);
  return r.answered - matching;
}

async function measure(client: LoadClient, sc: Scenario): Promise<Row> {
  const row: Row = { id: sc.id, group: sc.group, kind: sc.kind, qps: NaN, p50: NaN, p99: NaN, loadP50: NaN, loadP99: NaN, lost: 0, unexpected: 0, cpuUs: NaN, cpuUsAtRate: NaN };
  if (sc.port === null) return { ...row, note: `skipped: ${sc.skip ?? 'unavailable'}` };
  const problem = checkAnswer(await probe(sc.port, sc.probeName(), 3000), sc.expect);
  if (problem) return { ...row, note: `skipped: ${problem}` };
  await client.run(sc.port, sc.queries(), { seconds: 0.5, maxQueries: 200_000, rate: 0, window: WINDOW });
  const cpu0 = treeCpuSeconds(sc.pid);
  const t = await client.run(sc.port, sc.queries(), { seconds: SECONDS, maxQueries: MAX_QUERIES, rate: 0, window: WINDOW });
  const cpu1 = treeCpuSeconds(sc.pid);
  const l = await client.run(sc.port, sc.queries(), { seconds: LATENCY_SECONDS, maxQueries: Math.ceil(RATE * LATENCY_SECONDS) + 10, rate: RATE, window: 0 });
  const cpu2 = treeCpuSeconds(sc.pid);
  const unexpected = unexpectedAnswers(t, sc.expect) + unexpectedAnswers(l, sc.expect);
  const perQuery = (cpu: number, n: number) => (n > 0 ? (cpu * 1e6) / n : NaN);
  const out: Row = {
    ...row,
    qps: t.qps,
    p50: l.p50Ms,
    p99: l.p99Ms,
    loadP50: t.p50Ms,
    loadP99: t.p99Ms,
    lost: t.lost + l.lost,
    unexpected,
    cpuUs: perQuery(cpu1 - cpu0, t.answered),
    cpuUsAtRate: perQuery(cpu2 - cpu1, l.answered),
  };
  return unexpected > 0 ? { ...out, note: `${unexpected} unexpected answers` } : out;
}

/** A skipped reference's note gets the last line it wrote on stderr (why it did not start). */
function withServerError(row: Row, server: ReferenceServer | undefined): Row {
  const last = server?.stderr().split('\n').at(-1);
  return row.note?.startsWith('skipped') && last ? { ...row, note: `${row.note}; ${server!.name} said: ${last.replaceAll('|', '/')}` } : row;
}

// ── output ────────────────────────────────────────────────────────────────────────────

const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');

const us = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');

function table(rows: Row[]): string[] {
  const lines = [`| queries | queries/s | p50 ms @${RATE}/s | p99 ms @${RATE}/s | p50 / p99 ms under full load | server CPU µs/query, full load | server CPU µs/query @${RATE}/s | lost |`, '|---|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    const qps = Number.isFinite(r.qps) ? Math.round(r.qps).toLocaleString('en-US') : '-';
    const kind = `${r.group}: ${r.kind}${r.note ? ` (${r.note})` : ''}`;
    lines.push(`| ${kind} | ${qps} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.loadP50)} / ${ms(r.loadP99)} | ${us(r.cpuUs)} | ${us(r.cpuUsAtRate)} | ${Number.isFinite(r.qps) ? r.lost : '-'} |`);
  }
  return lines;
}

/** Ratios of the gateway's rows to the references; a table so bench/all.ts keeps it. */
function ratios(rows: Row[]): string[] {
  const by = (id: string) => rows.find((r) => r.id === id && Number.isFinite(r.qps));
  const lines = ['| comparison | value |', '|---|---:|'];
  const ratio = (a: string, b: string, label: string) => {
    const x = by(a);
    const y = by(b);
    if (x && y) lines.push(`| ${label} | ${(x.qps / y.qps).toFixed(2)}× |`);
  };
  ratio('cached', 'bare-dns-packet', 'queries/s: cached ÷ bare dns-packet responder');
  ratio('cached', 'bare-in-place', 'queries/s: cached ÷ bare in-place responder');
  ratio('denied', 'bare-dns-packet', 'queries/s: denied ÷ bare dns-packet responder');
  ratio('denied', 'bare-in-place', 'queries/s: denied ÷ bare in-place responder');
  ratio('uncached', 'unbound-forward', 'queries/s: uncached ÷ unbound forwarding');
  const cpuRatio = (a: string, b: string, label: string) => {
    const x = by(a);
    const y = by(b);
    if (x && y && Number.isFinite(x.cpuUs) && Number.isFinite(y.cpuUs)) lines.push(`| ${label} | ${(x.cpuUs / y.cpuUs).toFixed(2)}× |`);
  };
  cpuRatio('cached', 'bare-in-place', 'CPU per query, full load: cached ÷ bare in-place responder');
  cpuRatio('denied', 'bare-in-place', 'CPU per query, full load: denied ÷ bare in-place responder');
  for (const id of ['cached', 'denied', 'uncached']) {
    const r = by(id);
    if (r) lines.push(`| p99 @${RATE}/s, ${r.kind} (target ≤ ${P99_TARGET_MS} ms) | ${ms(r.p99)} ms ${r.p99 <= P99_TARGET_MS ? 'met' : 'missed'} |`);
  }
  const unc = by('uncached');
  const direct = by('upstream-direct');
  if (unc && direct) {
    const d = unc.p50 - direct.p50;
    lines.push(`| p50 @${RATE}/s: uncached − upstream queried directly | ${d >= 0 ? '+' : ''}${ms(d)} ms |`);
  }
  return lines;
}

// ── main ──────────────────────────────────────────────────────────────────────────────

function pickClient(): { client: LoadClient; note: string } {
  if (CLIENT_ARG === 'node') return { client: nodeClient(SOCKETS), note: '' };
  const built = compileDnsload();
  if ('path' in built) return { client: dnsloadClient(built.path, PIN.client), note: '' };
  if (CLIENT_ARG === 'c') throw new Error(`--client c: could not compile bench/dnsload.c (${built.error})`);
  return { client: nodeClient(SOCKETS), note: `; bench/dnsload.c not compiled (${built.error}), so the numbers describe the Node client as much as the servers` };
}

async function main(): Promise<void> {
  const wall = performance.now();
  const { client, note } = pickClient();
  const stops: Array<() => Promise<void> | void> = [() => client.close()];
  const stopAll = async () => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  let rows: Row[];
  try {
    const upstream = await startChild('upstream');
    stops.push(upstream.stop);
    // Each is registered for stopping as soon as it runs, so a failure of another leaks none.
    const child = (c: Child) => {
      stops.push(c.stop);
      return c;
    };
    const reference = (r: ReferenceServer) => {
      stops.push(() => r.stop());
      return r;
    };
    const gatewayStart = startChild('gateway', [`--upstream-port=${upstream.port}`, `--workers=${WORKERS}`]).then(child);
    const [packet, unbound, dnsmasq] = await Promise.all([
      startChild('packet-responder').then(child, () => null),
      startReference('unbound', upstream.port, PIN.server).then(reference),
      startReference('dnsmasq', upstream.port, PIN.server).then(reference),
      gatewayStart.catch(() => null), // its error is thrown below, once the others are registered
    ]);
    const gateway = await gatewayStart;
    rows = [];
    for (const sc of scenarios({ inPlace: upstream, packet, gateway, unbound, dnsmasq })) {
      const row = withServerError(
        await measure(client, sc),
        [unbound, dnsmasq].find((r) => sc.id.startsWith(r.name)),
      );
      const result = Number.isFinite(row.qps) ? `${Math.round(row.qps)} q/s, p50 ${ms(row.p50)} ms` : '-';
      process.stderr.write(`  ${row.group}: ${row.kind}: ${result}${row.note ? ` (${row.note})` : ''}\n`);
      rows.push(row);
    }
  } finally {
    await stopAll();
  }
  if (JSON_OUT) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  const workersNote = WORKERS > 1 ? `; gateway with --workers ${WORKERS}` : '';
  console.log(
    `\n### DNS door beside reference servers, UDP${workersNote}; client: ${client.describe}${note}; ${PIN.describe}. ${WINDOW} queries in flight for ${SECONDS} s after a 0.5 s warm-up; latency at ${RATE} queries/s for ${LATENCY_SECONDS} s. Node ${process.version}, ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)} at the end (others' work shares the cores)\n`,
  );
  console.log(table(rows).join('\n'));
  console.log(`\n${ratios(rows).join('\n')}`);
  console.log(`\n_whole run ${((performance.now() - wall) / 1000).toFixed(1)} s_`);
}

const exitWithParent = () => process.on('disconnect', () => process.exit(0));
if (ROLE === 'upstream') {
  exitWithParent();
  udpServer(inPlaceAnswer());
} else if (ROLE === 'packet-responder') {
  exitWithParent();
  udpServer(packetAnswer);
} else if (ROLE === 'gateway') {
  exitWithParent();
  const upstreamPort = Number(process.argv.find((a) => a.startsWith('--upstream-port='))?.slice(16));
  runGateway(upstreamPort).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
