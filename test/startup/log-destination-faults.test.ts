/**
 * Issue 11, cases 1 and 2: the log never blocks or grows the gateway. The real CLI with its
 * stdout on /dev/full (every write ENOSPC, from the first start-up line on), on a pipe whose
 * reader went away (EPIPE; `serve | head -4`), and on a pipe nobody reads under load: it keeps
 * serving the proxy, DNS, the API and /healthz, counts what it dropped in
 * egress_log_lines_dropped_total, holds its memory, and exits on SIGTERM within the grace.
 * Before: /dev/full froze everything and SIGTERM was ignored; an unread pipe grew the heap
 * by ~160 MB a minute.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import { execFile } from 'node:child_process';
import { startDnsUpstream, loopbackRecords, type DnsUpstream } from '../support/dns-upstream.js';
import { startHttpOrigin, type Origin } from '../support/origin.js';
import { type CliGateway, cliMetric, logLines, rssOf, startCliGateway } from '../support/cli-gateway.js';
import { waitFor } from '../support/wait.js';

const DEVBOX = '127.0.0.2';
/** The figures: 60 s of load, RSS within +30 MB of its baseline. */
const STALL_SECONDS = Number(process.env.EGRESS_TEST_LOG_STALL_SECONDS ?? 60);
const RSS_BUDGET = 30 * 1024 * 1024;
/** Grace given to the gateway (startCliGateway) plus the ≤ 1 s log flush and process start slack. */
const EXIT_BUDGET_MS = 1000 + 1000 + 2000;

let dns: DnsUpstream;
let origin: Origin;

beforeAll(async () => {
  dns = await startDnsUpstream({ records: loopbackRecords(['allowed.test']) });
  origin = await startHttpOrigin();
});
afterAll(async () => {
  await origin?.close();
  await dns?.close();
});

async function withDevbox(gw: CliGateway): Promise<void> {
  const p = await gw.api.policy('logs', { allowed_hostnames: ['allowed.test'] });
  await gw.api.devbox(p, [DEVBOX], 'logger');
}

/** One proxied GET from the devbox address: its status. */
function proxied(gw: CliGateway, host: string, agent?: http.Agent): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: gw.ports.proxy, localAddress: DEVBOX, path: `http://${host}:${origin.port}/x`, headers: { host: `${host}:${origin.port}` }, agent });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.setTimeout(10_000, () => req.destroy());
    req.end();
  });
}

function dig(port: number, name: string): Promise<string> {
  return new Promise((resolve) => {
    execFile('dig', ['+short', '+time=3', '+tries=1', '-p', String(port), '-b', DEVBOX, '@127.0.0.1', name, 'A'], (_e, out) => resolve(out.trim()));
  });
}

/** Every door the issue names answers: API, /healthz, proxy (allow and deny), DNS. */
async function serves(gw: CliGateway): Promise<void> {
  expect((await fetch(`${gw.apiUrl}/healthz`)).status).toBe(200);
  expect((await gw.api.call('GET', '/v1/network-policies')).status).toBe(200);
  expect(await proxied(gw, 'allowed.test')).toBe(200);
  expect(await proxied(gw, 'denied.test')).toBe(403);
  expect(await dig(gw.ports.dns, 'allowed.test')).toBe('127.0.0.1');
}

describe('log destination faults (real CLI)', { timeout: 240_000 }, () => {
  it('stdout on /dev/full from the start: serves proxy, DNS, API and /healthz, counts dropped lines, exits on SIGTERM', async () => {
    const gw = await startCliGateway({ stdout: '/dev/full', upstreamDnsPort: dns.port, args: ['--log-allowed', 'all'] });
    try {
      await withDevbox(gw);
      for (let i = 0; i < 3; i++) await serves(gw);
      await waitFor(async () => (await cliMetric(gw.apiUrl, 'egress_log_lines_dropped_total')) > 5, 5000, 'dropped lines counted');
      const stop = await gw.stop(20_000);
      expect(stop.code).toBe(0);
      expect(stop.ms).toBeLessThan(EXIT_BUDGET_MS);
    } finally {
      await gw.stop();
    }
  });

  it('stdout closed by its reader (serve | head -4, EPIPE): keeps serving, exits on SIGTERM within the grace', async () => {
    const gw = await startCliGateway({ stdout: 'pipe', upstreamDnsPort: dns.port, args: ['--log-allowed', 'all'] });
    try {
      await waitFor(() => gw.out().includes('egress-gateway listening'), 10_000, 'the first log lines');
      gw.child.stdout!.destroy(); // what head does after its fourth line
      await withDevbox(gw);
      for (let i = 0; i < 3; i++) await serves(gw);
      await waitFor(async () => (await cliMetric(gw.apiUrl, 'egress_log_lines_dropped_total')) > 0, 5000, 'dropped lines counted');
      const stop = await gw.stop(20_000);
      expect(stop.code).toBe(0);
      expect(stop.ms).toBeLessThan(EXIT_BUDGET_MS);
    } finally {
      await gw.stop();
    }
  });

  it(`stdout on a pipe nobody reads, under load for ${STALL_SECONDS} s: RSS within +30 MB of its baseline, still serving, drops counted`, async () => {
    const gw = await startCliGateway({ stdout: 'unread', upstreamDnsPort: dns.port, args: ['--log-allowed', 'all', '--log-buffer-bytes', '1048576'] });
    try {
      await withDevbox(gw);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16, localAddress: DEVBOX } as http.AgentOptions);
      // Bounded load: about RATE requests a second (~250 KB/s of log lines), 16 in flight at most.
      const RATE = 600;
      const loadFor = async (ms: number) => {
        const t0 = Date.now();
        const end = t0 + ms;
        let n = 0;
        const worker = async () => {
          while (Date.now() < end) {
            const ahead = (n / RATE) * 1000 - (Date.now() - t0);
            if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
            // Allowed and denied: both kinds of log line.
            await proxied(gw, n++ % 4 === 0 ? 'denied.test' : 'allowed.test', agent);
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
        return n;
      };
      // Warm-up at the same load (code compiled, pools and caches filled, the pipe and the log
      // buffer full, the heap grown to its working size): the baseline is the RSS it reached.
      let baseline = 0;
      const warm = setInterval(() => (baseline = Math.max(baseline, rssOf(gw.pid))), 500);
      await loadFor(10_000);
      clearInterval(warm);
      baseline = Math.max(baseline, rssOf(gw.pid));
      let peak = baseline;
      const samples: number[] = [];
      const sampler = setInterval(() => {
        const r = rssOf(gw.pid);
        samples.push(Math.round(r / 2 ** 20));
        peak = Math.max(peak, r);
      }, 5000);
      const requests = await loadFor(STALL_SECONDS * 1000);
      clearInterval(sampler);
      peak = Math.max(peak, rssOf(gw.pid));
      agent.destroy();
      console.log(`unread stdout: ${requests} requests in ${STALL_SECONDS} s; RSS baseline ${(baseline / 2 ** 20).toFixed(1)} MB, peak ${(peak / 2 ** 20).toFixed(1)} MB; every 5 s: ${samples.join(' ')}`);
      expect(requests).toBeGreaterThan(STALL_SECONDS * RATE * 0.25);
      expect(peak - baseline).toBeLessThan(RSS_BUDGET);
      await serves(gw);
      expect(await cliMetric(gw.apiUrl, 'egress_log_lines_dropped_total')).toBeGreaterThan(0);
      const stop = await gw.stop(20_000);
      expect(stop.code).toBe(0);
      expect(stop.ms).toBeLessThan(EXIT_BUDGET_MS);
    } finally {
      await gw.stop();
    }
  });
});

describe('log content (real CLI)', { timeout: 120_000 }, () => {
  let gw: CliGateway;
  afterAll(async () => {
    await gw?.stop();
  });

  it('ISO-8601 times, a start-up line with version and settings, --log-allowed sample:N, denials always, failed API auth rate-limited', async () => {
    gw = await startCliGateway({ stdout: 'pipe', upstreamDnsPort: dns.port, args: ['--log-allowed', 'sample:10'] });
    await withDevbox(gw);
    for (let i = 0; i < 40; i++) expect(await proxied(gw, 'allowed.test')).toBe(200);
    for (let i = 0; i < 5; i++) expect(await proxied(gw, 'denied.test')).toBe(403);
    for (let i = 0; i < 20; i++) expect((await gw.api.as('wrong-token').call('GET', '/v1/network-policies')).status).toBe(401);
    await waitFor(() => logLines(gw.out()).filter((l) => l.decision === 'deny').length === 5, 5000, 'denial lines');
    // Lines come in order: the allowed ones are written before the denials, the failed API auths after.
    await waitFor(() => logLines(gw.out()).some((l) => l.event === 'api_auth_failed'), 5000, 'the API auth line');
    const lines = logLines(gw.out());
    for (const l of lines) expect(l.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const start = lines.find((l) => l.event === 'start')!;
    expect(start.version).toMatch(/^\d+\.\d+\.\d+/);
    expect((start.settings as Record<string, unknown>)['log-allowed']).toBe('sample:10');
    expect((start.settings as Record<string, unknown>)['api-token']).toBe('2 configured');
    expect(JSON.stringify(start)).not.toContain('tok-a');
    const allowed = lines.filter((l) => l.event === 'decision' && l.decision === 'allow');
    expect(allowed).toHaveLength(4);
    expect(allowed[0]!.sampled).toBe('1/10');
    const auth = lines.filter((l) => l.event === 'api_auth_failed');
    expect(auth.length).toBeGreaterThanOrEqual(1);
    expect(auth.length).toBeLessThan(5);
    expect(auth[0]!.reason).toBe('unknown_token');
  });

  it('--log-allowed none logs no allowed connection (denials still)', async () => {
    const quiet = await startCliGateway({ stdout: 'pipe', upstreamDnsPort: dns.port, args: ['--log-allowed', 'none'] });
    try {
      await withDevbox(quiet);
      for (let i = 0; i < 10; i++) await proxied(quiet, 'allowed.test');
      await proxied(quiet, 'denied.test');
      await waitFor(() => logLines(quiet.out()).some((l) => l.decision === 'deny'), 5000, 'denial line');
      expect(logLines(quiet.out()).filter((l) => l.decision === 'allow')).toHaveLength(0);
    } finally {
      await quiet.stop();
    }
  });
});
