/**
 * `npm run bench:agent-gateway`: what the agent gateway adds to a call to an API, beside the
 * same call made directly to the same local upstream in the same run.
 *
 * Three processes (this file in three roles): the upstream (HTTPS keep-alive, a certificate
 * from a test CA made with openssl, answering an Anthropic-like POST /v1/messages with a small
 * JSON body), the gateway (as the tests start it, with the agent gateway's per-request log line
 * written at info to /dev/null, so it is paid for; the token minted through the API), and
 * the load generator (this process, node:http keep-alive clients). With two cores or more and
 * taskset: the gateway alone on CPU 0, the upstream and the load generator on CPU 1.
 *
 * Latency: one client, requests one after another, direct and through the gateway in
 * alternating rounds (p50/p99 and their difference, the added latency). Rate: CONCURRENCY
 * clients for RATE_MS, requests/s, and the gateway's CPU time per request (schedstat), whose
 * inverse is requests/s per core. Bounded: the whole run takes under a minute.
 * Options (env): BENCH_LAT_MS, BENCH_RATE_MS, BENCH_CONCURRENCY, BENCH_ROUNDS, BENCH_CPU_PROF_DIR (a
 * --cpu-prof profile of the gateway).
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const LAT_MS = Number(process.env.BENCH_LAT_MS ?? 1500);
const RATE_MS = Number(process.env.BENCH_RATE_MS ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BODY = JSON.stringify({ model: 'claude-bench', max_tokens: 16, messages: [{ role: 'user', content: 'hello, how are you today?' }] });
const ANSWER = JSON.stringify({ id: 'msg_bench', type: 'message', role: 'assistant', content: [{ type: 'text', text: 'Fine, thanks.' }], stop_reason: 'end_turn', usage: { input_tokens: 9, output_tokens: 4 } });

const role = process.argv.find((a) => a.startsWith('--role='))?.slice(7) ?? 'main';

interface Ca {
  caFile: string;
  key: string;
  cert: string;
}

// ── upstream role ────────────────────────────────────────────────────────────

async function runUpstream(): Promise<void> {
  const ca = JSON.parse(process.env.BENCH_CA!) as Ca;
  const s = https.createServer({ key: ca.key, cert: ca.cert, keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ANSWER) });
      res.end(ANSWER);
    });
  });
  let handshakes = 0;
  s.on('secureConnection', () => handshakes++);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  process.send!({ port: (s.address() as AddressInfo).port });
  process.on('message', (m) => {
    if (m === 'stop') {
      process.stderr.write(`  (upstream: ${handshakes} TLS handshakes)\n`);
      process.exit(0);
    }
  });
}

// ── gateway role ─────────────────────────────────────────────────────────────

async function runGateway(): Promise<void> {
  const ca = JSON.parse(process.env.BENCH_CA!) as Ca;
  const upstreamPort = Number(process.env.BENCH_UPSTREAM_PORT);
  process.env.EGRESS_TEST_LOG = process.env.BENCH_LOG ?? 'info';
  const { startTestGateway } = await import('../test/support/gateway.js');
  const gw = await startTestGateway({ flags: { 'upstream-ca-file': ca.caFile, 'max-connections-per-devbox': '100000' } });
  const p = await gw.api.policy('bench', { allow_agent_gateway: true });
  const box = await gw.api.devbox(p, ['127.0.0.1'], 'bench-box');
  const post = async (path: string, body: unknown) => {
    const r = await gw.api.call('POST', path, body);
    if (r.status !== 200) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  await post('/v1/secrets', { name: 'BENCH_KEY', value: 'sk-bench-REAL' });
  await post('/v1/gateway-configs', { name: 'anthropic-bench', endpoint: `https://127.0.0.1:${upstreamPort}`, auth_mechanism: { type: 'header', key: 'x-api-key' } });
  const { token } = await post(`/v1/devboxes/${box.id}/create_gateway_token`, { gateway: 'anthropic-bench', secret: 'BENCH_KEY' });
  process.send!({ port: gw.addr('agent-gateway').port, token, reference: await bareForwarder(ca, upstreamPort) });
  process.on('message', async (m) => {
    if (m === 'stop') {
      await gw.close();
      process.exit(0);
    }
  });
}

/**
 * The reference: a bare node:http server forwarding to the upstream over a keep-alive https.Agent
 * (the same CA, headers copied, no token, no policy, no log): what Node itself costs per request.
 */
async function bareForwarder(ca: Ca, upstreamPort: number): Promise<number> {
  const tls = await import('node:tls');
  const agent = new https.Agent({ keepAlive: true, secureContext: tls.createSecureContext({ ca: readFileSync(ca.caFile, 'utf8') }) } as https.AgentOptions);
  const s = http.createServer((req, res) => {
    const up = https.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: { ...req.headers, 'x-api-key': 'sk-bench-REAL' }, agent }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

// ── load generator (main) ────────────────────────────────────────────────────

function startChild(r: string, env: Record<string, string>): Promise<{ child: ChildProcess; info: any }> {
  const prof = r === 'gateway' && process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
  const child = fork(fileURLToPath(import.meta.url), [`--role=${r}`], { execArgv: ['--import', 'tsx', ...prof], env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (info) => resolve({ child, info }));
    child.once('exit', (code) => reject(new Error(`${r} exited ${code}`)));
  });
}

function pin(pid: number, cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-pc', cpus, String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** CPU time of a process (all threads) in ms, from schedstat (ns on a CPU). */
function cpuMs(pid: number): number {
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

interface Target {
  name: string;
  request(): Promise<void>;
  close(): void;
}

function target(name: string, mod: typeof http | typeof https, opts: https.RequestOptions, conns: number): Target {
  const agent = mod === https ? new https.Agent({ keepAlive: true, maxSockets: conns, ca: opts.ca }) : new http.Agent({ keepAlive: true, maxSockets: conns });
  return {
    name,
    request: () =>
      new Promise<void>((resolve, reject) => {
        const req = mod.request({ ...opts, agent, method: 'POST', path: '/v1/messages', headers: { ...opts.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) } }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${name}: status ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end(BODY);
      }),
    close: () => agent.destroy(),
  };
}

async function latency(t: Target, ms: number, into: number[]): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t0 = performance.now();
    await t.request();
    into.push(performance.now() - t0);
  }
}

async function rate(t: Target, ms: number, conns: number): Promise<number> {
  let n = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (performance.now() < end) {
        await t.request();
        n++;
      }
    }),
  );
  return n / (ms / 1000);
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const f2 = (x: number) => x.toFixed(3);

async function main(): Promise<void> {
  const { makeTestCa } = await import('../test/support/test-ca.js');
  const ca = makeTestCa();
  const caEnv = JSON.stringify({ caFile: ca.caFile, key: ca.key, cert: ca.cert });
  const children: ChildProcess[] = [];
  try {
    const up = await startChild('upstream', { BENCH_CA: caEnv });
    children.push(up.child);
    const gw = await startChild('gateway', { BENCH_CA: caEnv, BENCH_UPSTREAM_PORT: String(up.info.port) });
    children.push(gw.child);
    const pinned = os.cpus().length >= 2 && pin(gw.child.pid!, '0') && pin(up.child.pid!, '1') && pin(process.pid, '1');
    const where = pinned ? 'gateway pinned to CPU 0, upstream and load generator to CPU 1 (taskset)' : 'not pinned (needs 2 cores and taskset)';
    const direct1 = target('direct', https, { host: '127.0.0.1', port: up.info.port, ca: ca.caPem, headers: { 'x-api-key': 'sk-bench-REAL' } }, 1);
    const via1 = target('agent gateway', http, { host: '127.0.0.1', port: gw.info.port, headers: { 'x-api-key': gw.info.token } }, 1);
    const ref1 = target('reference', http, { host: '127.0.0.1', port: gw.info.reference }, 1);
    // Warm-up: JIT, pools, the resolver and decision paths.
    await latency(direct1, 300, []);
    await latency(via1, 600, []);
    await latency(ref1, 300, []);
    const lat = { direct: [] as number[], via: [] as number[], ref: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      await latency(direct1, LAT_MS / ROUNDS, lat.direct);
      await latency(via1, LAT_MS / ROUNDS, lat.via);
      await latency(ref1, LAT_MS / ROUNDS, lat.ref);
    }
    direct1.close();
    via1.close();
    ref1.close();
    const directN = target('direct', https, { host: '127.0.0.1', port: up.info.port, ca: ca.caPem, headers: { 'x-api-key': 'sk-bench-REAL' } }, CONCURRENCY);
    const viaN = target('agent gateway', http, { host: '127.0.0.1', port: gw.info.port, headers: { 'x-api-key': gw.info.token } }, CONCURRENCY);
    const refN = target('reference', http, { host: '127.0.0.1', port: gw.info.reference }, CONCURRENCY);
    await rate(viaN, 300, CONCURRENCY);
    const directRps = await rate(directN, RATE_MS, CONCURRENCY);
    const cpu0 = cpuMs(gw.child.pid!);
    const t0 = performance.now();
    const viaRps = await rate(viaN, RATE_MS, CONCURRENCY);
    const gwCpuPerReq = (cpuMs(gw.child.pid!) - cpu0) / (viaRps * ((performance.now() - t0) / 1000));
    await rate(refN, 300, CONCURRENCY);
    const cpu1 = cpuMs(gw.child.pid!);
    const t1 = performance.now();
    const refRps = await rate(refN, RATE_MS, CONCURRENCY);
    const refCpuPerReq = (cpuMs(gw.child.pid!) - cpu1) / (refRps * ((performance.now() - t1) / 1000));
    directN.close();
    viaN.close();
    refN.close();
    const lines = [
      `### Agent gateway: POST /v1/messages (${Buffer.byteLength(BODY)} B up, ${Buffer.byteLength(ANSWER)} B down), ${where}`,
      '',
      `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}; latency: one client, ${lat.direct.length} / ${lat.via.length} / ${lat.ref.length} requests in ${ROUNDS} alternating rounds; rate: ${CONCURRENCY} keep-alive clients, ${RATE_MS / 1000} s each.`,
      '',
      '| path | p50 ms | p99 ms | requests/s | gateway CPU per request | requests/s per gateway core |',
      '|---|---:|---:|---:|---:|---:|',
      `| direct (HTTPS to the upstream) | ${f2(pct(lat.direct, 50))} | ${f2(pct(lat.direct, 99))} | ${Math.round(directRps)} | — | — |`,
      `| through the agent gateway | ${f2(pct(lat.via, 50))} | ${f2(pct(lat.via, 99))} | ${Math.round(viaRps)} | ${(gwCpuPerReq * 1000).toFixed(0)} µs | ${Math.round(1000 / gwCpuPerReq)} |`,
      `| reference: bare node:http → https forwarder (no token, policy or log; same process, same core) | ${f2(pct(lat.ref, 50))} | ${f2(pct(lat.ref, 99))} | ${Math.round(refRps)} | ${(refCpuPerReq * 1000).toFixed(0)} µs | ${Math.round(1000 / refCpuPerReq)} |`,
      `| **added by the gateway** | **${f2(pct(lat.via, 50) - pct(lat.direct, 50))}** | **${f2(pct(lat.via, 99) - pct(lat.direct, 99))}** | | | |`,
      '',
      `Target: ≤ 1 ms p50 added on loopback — ${pct(lat.via, 50) - pct(lat.direct, 50) <= 1 ? 'met' : 'NOT met'}.`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const c of children) {
      c.send?.('stop');
      const t = setTimeout(() => c.kill('SIGKILL'), 3000);
      c.once('exit', () => clearTimeout(t));
    }
    ca.remove();
  }
}

if (role === 'upstream') await runUpstream();
else if (role === 'gateway') await runGateway();
else await main();
