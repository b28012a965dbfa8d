/**
 * The `bench` scenarios: for each door the operator points us at (HTTP proxy, CONNECT,
 * SOCKS5, DNS), one run against a name the policy allows and one against a name it denies,
 * each for the whole --duration, one after another. Where measurable, direct rows follow:
 * the allowed destination without the gateway (HTTP GET and a TCP connect to the address the
 * gateway's DNS door — or this host's resolver — gives), the baseline the doors' rows compare to.
 */
import dns from 'node:dns/promises';
import net from 'node:net';
import http from 'node:http';
import { runLoad } from './load.js';
import { summarize, type LatencySummary, formatMs, formatRate, textTable } from './stats.js';
import { connectOnce, DnsClient, httpProxyGet, judge, socksOnce, type Credentials, type Decision, type Endpoint } from './clients.js';
import type { Outcome } from './load.js';

export type Protocol = 'http' | 'connect' | 'socks5' | 'dns';

export interface Target {
  host: string;
  /** Port for HTTP, CONNECT and SOCKS5 when given; else 80 for HTTP and 443 for the tunnels. */
  port: number | null;
}

export interface BenchOptions {
  proxy: Endpoint | null;
  socks: Endpoint | null;
  dns: Endpoint | null;
  allowed: Target;
  denied: Target;
  durationMs: number;
  concurrency: number;
  maxRequests: number;
  creds?: Credentials;
  timeoutMs?: number;
  /** Add the direct (no gateway) rows where measurable. */
  direct?: boolean;
  /** Receives a one-line status about once a second. */
  progress?: (line: string) => void;
}

export interface ScenarioResult {
  protocol: Protocol | 'tcp';
  /** 'direct': the allowed destination reached without the gateway (a baseline, not judged). */
  expect: 'allow' | 'deny' | 'direct';
  target: string;
  count: number;
  ok: number;
  unexpected: number;
  errors: number;
  /** Operations per second. */
  rate: number;
  elapsedMs: number;
  latencyMs: LatencySummary;
  errorSamples: string[];
}

export interface BenchReport {
  startedAt: string;
  node: string;
  endpoints: { proxy: string | null; socks: string | null; dns: string | null };
  allowed: string;
  denied: string;
  durationMs: number;
  concurrency: number;
  results: ScenarioResult[];
  /** Why a direct row is missing, when one was asked for and could not be measured. */
  notes: string[];
  /** True when every scenario saw only the decision it expected and at least one success. */
  pass: boolean;
}

const ep = (e: Endpoint | null) => (e === null ? null : `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`);

type Step = { protocol: Protocol | 'tcp'; expect: 'allow' | 'deny' | 'direct'; target: string; op: () => Promise<Outcome> };

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const dnsClient = o.dns !== null ? new DnsClient(o.dns, timeoutMs) : null;
  const plan: Step[] = [];
  for (const protocol of ['http', 'connect', 'socks5', 'dns'] as const) {
    const enabled = protocol === 'dns' ? o.dns : protocol === 'socks5' ? o.socks : o.proxy;
    if (enabled === null) continue;
    for (const expect of ['allow', 'deny'] as const) {
      const t = expect === 'allow' ? o.allowed : o.denied;
      const tunnel: Endpoint = { host: t.host, port: t.port ?? 443 };
      const web: Endpoint = { host: t.host, port: t.port ?? 80 };
      const op = async (): Promise<Outcome> => {
        switch (protocol) {
          case 'http':
            return judge(await httpProxyGet(o.proxy!, web, { agent, creds: o.creds, timeoutMs }), expect);
          case 'connect':
            return judge(await connectOnce(o.proxy!, tunnel, { creds: o.creds, timeoutMs }), expect);
          case 'socks5':
            return judge(await socksOnce(o.socks!, tunnel, { creds: o.creds, timeoutMs }), expect);
          case 'dns':
            return judge(await dnsClient!.query(t.host), expect);
        }
      };
      const target = protocol === 'dns' ? t.host : protocol === 'http' ? `${web.host}:${web.port}` : `${tunnel.host}:${tunnel.port}`;
      plan.push({ protocol, expect, target, op });
    }
  }
  if (plan.length === 0) throw new Error('nothing to bench: give --proxy, --socks-proxy and/or --dns');
  const notes: string[] = [];
  if (o.direct !== false && (o.proxy !== null || o.socks !== null)) plan.push(...(await directSteps(o, agent, dnsClient, timeoutMs, notes)));
  const results: ScenarioResult[] = [];
  const startedAt = new Date().toISOString();
  try {
    for (const [i, s] of plan.entries()) results.push(await runStep(o, s, `[${i + 1}/${plan.length}]`));
  } finally {
    agent.destroy();
    dnsClient?.close();
  }
  const name = (t: Target) => (t.port === null ? t.host : `${t.host}:${t.port}`);
  const judged = results.filter((r) => r.expect !== 'direct');
  return {
    startedAt,
    node: process.version,
    endpoints: { proxy: ep(o.proxy), socks: ep(o.socks), dns: ep(o.dns) },
    allowed: name(o.allowed),
    denied: name(o.denied),
    durationMs: o.durationMs,
    concurrency: o.concurrency,
    results,
    notes,
    pass: judged.every((r) => r.unexpected === 0 && r.errors === 0 && r.ok > 0),
  };
}

/** One scenario for the whole duration, with latency percentiles of the last second in its progress line. */
async function runStep(o: BenchOptions, s: Step, counter: string): Promise<ScenarioResult> {
  const label = `${s.protocol} ${s.expect}`;
  let seen = 0;
  const { rec, elapsedMs } = await runLoad(s.op, {
    concurrency: o.concurrency,
    durationMs: o.durationMs,
    maxCount: o.maxRequests,
    onProgress: (r, el) => {
      const recent = summarize(r.samples.slice(seen));
      seen = r.samples.length;
      o.progress?.(
        `${counter} ${label.padEnd(13)} ${(el / 1000).toFixed(1)}s/${(o.durationMs / 1000).toFixed(1)}s  ` +
          `${r.count} done  ${formatRate(r.count / (el / 1000))}/s  p50 ${formatMs(recent.p50)} ms  p99 ${formatMs(recent.p99)} ms  ` +
          `ok ${r.ok}  unexpected ${r.unexpected}  errors ${r.errors}`,
      );
    },
  });
  return {
    protocol: s.protocol,
    expect: s.expect,
    target: s.target,
    count: rec.count,
    ok: rec.ok,
    unexpected: rec.unexpected,
    errors: rec.errors,
    rate: rec.count / (elapsedMs / 1000),
    elapsedMs,
    latencyMs: summarize(rec.samples),
    errorSamples: rec.errorSamples,
  };
}

/**
 * The direct rows: the allowed destination's address (from the gateway's DNS door when given,
 * else this host's resolver), then an HTTP GET and a TCP connect straight to it. Each is tried
 * once first; one that fails is left out with a note (e.g. the bench host may not route there).
 */
async function directSteps(o: BenchOptions, agent: http.Agent, dnsClient: DnsClient | null, timeoutMs: number, notes: string[]): Promise<Step[]> {
  const t = o.allowed;
  let address: string | null = net.isIP(t.host) !== 0 ? t.host : null;
  if (address === null) {
    const d = dnsClient !== null ? await dnsClient.query(t.host) : null;
    address =
      d?.addresses?.[0] ??
      (await dns.lookup(t.host).then(
        (r) => r.address,
        () => null,
      ));
  }
  if (address === null) {
    notes.push(`direct rows: ${t.host} does not resolve here`);
    return [];
  }
  const steps: Step[] = [];
  const web: Endpoint = { host: address, port: t.port ?? 80 };
  const tcp: Endpoint = { host: address, port: t.port ?? 443 };
  const hostHeader = t.port === null ? t.host : `${t.host}:${t.port}`;
  const candidates: Step[] = [
    ...(o.proxy !== null ? [{ protocol: 'http' as const, expect: 'direct' as const, target: `${address}:${web.port}`, op: async () => judge(await directGet(web, hostHeader, agent, timeoutMs), 'allow') }] : []),
    { protocol: 'tcp', expect: 'direct', target: `${address}:${tcp.port}`, op: async () => judge(await tcpConnectOnce(tcp, timeoutMs), 'allow') },
  ];
  for (const c of candidates) {
    const first = await c.op();
    if (first.outcome === 'ok') steps.push(c);
    else notes.push(`${c.protocol} direct to ${c.target}: not measurable (${first.detail ?? first.outcome})`);
  }
  return steps;
}

function directGet(target: Endpoint, hostHeader: string, agent: http.Agent, timeoutMs: number): Promise<Decision> {
  return new Promise((resolve) => {
    const req = http.request({ host: target.host, port: target.port, path: '/', agent, headers: { host: hostHeader }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve((res.statusCode ?? 0) >= 500 ? { decision: 'error', detail: `HTTP ${res.statusCode}` } : { decision: 'allow' }));
      res.on('error', (e) => resolve({ decision: 'error', detail: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('time-out')));
    req.on('error', (e) => resolve({ decision: 'error', detail: e.message }));
    req.end();
  });
}

function tcpConnectOnce(target: Endpoint, timeoutMs: number): Promise<Decision> {
  return new Promise((resolve) => {
    const s = net.connect(target.port, target.host);
    s.setTimeout(timeoutMs, () => {
      s.destroy();
      resolve({ decision: 'error', detail: 'time-out' });
    });
    s.once('connect', () => {
      s.destroy();
      resolve({ decision: 'allow' });
    });
    s.once('error', (e) => resolve({ decision: 'error', detail: e.message }));
  });
}

const HEADER = ['scenario', 'target', 'requests', 'ok', 'unexpected', 'errors', 'rate/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'];

function rows(r: BenchReport): string[][] {
  return r.results.map((s) => [`${s.protocol} ${s.expect}`, s.target, String(s.count), String(s.ok), String(s.unexpected), String(s.errors), formatRate(s.rate), formatMs(s.latencyMs.p50), formatMs(s.latencyMs.p90), formatMs(s.latencyMs.p99), formatMs(s.latencyMs.max)]);
}

export function reportText(r: BenchReport): string {
  const notes = r.results.flatMap((s) => s.errorSamples.map((e) => `  ${s.protocol} ${s.expect}: ${e}`));
  return [
    `egress-gateway bench: ${r.results.length} scenarios, concurrency ${r.concurrency}, ${(r.durationMs / 1000).toFixed(1)}s each`,
    '',
    textTable(HEADER, rows(r)),
    ...(notes.length > 0 ? ['', 'unexpected answers and errors (first of each kind):', ...notes] : []),
    ...(r.notes.length > 0 ? ['', ...r.notes] : []),
    ...(r.results.some((s) => s.expect === 'direct') ? ['', 'direct rows: the allowed destination without the gateway (a baseline; not judged).'] : []),
    '',
    r.pass ? 'PASS: every allowed request was allowed and every denied one denied.' : 'FAIL: some requests got the wrong decision or no decision (see above).',
  ].join('\n');
}
