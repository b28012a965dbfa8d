/**
 * The `bench` scenarios: for each door the operator points us at (HTTP proxy, CONNECT,
 * SOCKS5, DNS), one run against a name the policy allows and one against a name it denies.
 * The duration is shared evenly by the scenarios, which run one after another.
 */
import http from 'node:http';
import { runLoad } from './load.js';
import { summarize, type LatencySummary, formatMs, formatRate, textTable } from './stats.js';
import { connectOnce, DnsClient, httpProxyGet, judge, socksOnce, type Credentials, type Endpoint } from './clients.js';

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
  /** Receives a one-line status about once a second. */
  progress?: (line: string) => void;
}

export interface ScenarioResult {
  protocol: Protocol;
  expect: 'allow' | 'deny';
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
  /** True when every scenario saw only the decision it expected and at least one success. */
  pass: boolean;
}

const ep = (e: Endpoint | null) => (e === null ? null : `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`);

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const plan: Array<{ protocol: Protocol; expect: 'allow' | 'deny'; target: Target }> = [];
  for (const protocol of ['http', 'connect', 'socks5', 'dns'] as const) {
    const enabled = protocol === 'dns' ? o.dns : protocol === 'socks5' ? o.socks : o.proxy;
    if (enabled === null) continue;
    plan.push({ protocol, expect: 'allow', target: o.allowed }, { protocol, expect: 'deny', target: o.denied });
  }
  if (plan.length === 0) throw new Error('nothing to bench: give --proxy, --socks-proxy and/or --dns');
  const each = Math.max(100, Math.floor(o.durationMs / plan.length));
  const results: ScenarioResult[] = [];
  const startedAt = new Date().toISOString();
  const timeoutMs = o.timeoutMs ?? 5000;
  for (const [i, s] of plan.entries()) {
    const label = `${s.protocol} ${s.expect}`;
    const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
    const dns = s.protocol === 'dns' ? new DnsClient(o.dns!, timeoutMs) : null;
    const tunnelTarget: Endpoint = { host: s.target.host, port: s.target.port ?? 443 };
    const httpTarget: Endpoint = { host: s.target.host, port: s.target.port ?? 80 };
    const op = async () => {
      switch (s.protocol) {
        case 'http':
          return judge(await httpProxyGet(o.proxy!, httpTarget, { agent, creds: o.creds, timeoutMs }), s.expect);
        case 'connect':
          return judge(await connectOnce(o.proxy!, tunnelTarget, { creds: o.creds, timeoutMs }), s.expect);
        case 'socks5':
          return judge(await socksOnce(o.socks!, tunnelTarget, { creds: o.creds, timeoutMs }), s.expect);
        case 'dns':
          return judge(await dns!.query(s.target.host), s.expect);
      }
    };
    try {
      const { rec, elapsedMs } = await runLoad(op, {
        concurrency: o.concurrency,
        durationMs: each,
        maxCount: o.maxRequests,
        onProgress: (r, el) => o.progress?.(
          `[${i + 1}/${plan.length}] ${label.padEnd(13)} ${(el / 1000).toFixed(1)}s/${(each / 1000).toFixed(1)}s  ` +
          `${r.count} done  ${formatRate(r.count / (el / 1000))}/s  ok ${r.ok}  unexpected ${r.unexpected}  errors ${r.errors}`),
      });
      results.push({
        protocol: s.protocol,
        expect: s.expect,
        target: s.protocol === 'dns' ? s.target.host : s.protocol === 'http' ? `${httpTarget.host}:${httpTarget.port}` : `${tunnelTarget.host}:${tunnelTarget.port}`,
        count: rec.count,
        ok: rec.ok,
        unexpected: rec.unexpected,
        errors: rec.errors,
        rate: rec.count / (elapsedMs / 1000),
        elapsedMs,
        latencyMs: summarize(rec.samples),
        errorSamples: rec.errorSamples,
      });
    } finally {
      agent.destroy();
      dns?.close();
    }
  }
  const name = (t: Target) => (t.port === null ? t.host : `${t.host}:${t.port}`);
  return {
    startedAt,
    node: process.version,
    endpoints: { proxy: ep(o.proxy), socks: ep(o.socks), dns: ep(o.dns) },
    allowed: name(o.allowed),
    denied: name(o.denied),
    durationMs: o.durationMs,
    concurrency: o.concurrency,
    results,
    pass: results.every((r) => r.unexpected === 0 && r.errors === 0 && r.ok > 0),
  };
}

const HEADER = ['scenario', 'target', 'requests', 'ok', 'unexpected', 'errors', 'rate/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'];

function rows(r: BenchReport): string[][] {
  return r.results.map((s) => [
    `${s.protocol} ${s.expect}`, s.target, String(s.count), String(s.ok), String(s.unexpected), String(s.errors), formatRate(s.rate),
    formatMs(s.latencyMs.p50), formatMs(s.latencyMs.p90), formatMs(s.latencyMs.p99), formatMs(s.latencyMs.max),
  ]);
}

export function reportText(r: BenchReport): string {
  const notes = r.results.flatMap((s) => s.errorSamples.map((e) => `  ${s.protocol} ${s.expect}: ${e}`));
  return [
    `egress-gateway bench: ${r.results.length} scenarios, concurrency ${r.concurrency}, ${(r.durationMs / 1000).toFixed(1)}s in all`,
    '',
    textTable(HEADER, rows(r)),
    ...(notes.length > 0 ? ['', 'unexpected answers and errors (first of each kind):', ...notes] : []),
    '',
    r.pass ? 'PASS: every allowed request was allowed and every denied one denied.' : 'FAIL: some requests got the wrong decision or no decision (see above).',
  ].join('\n');
}

