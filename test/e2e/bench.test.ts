/**
 * `egress-gateway bench` against a real gateway: the command runs as a child process
 * (as an operator would run it), loads every door with allowed and denied requests, and
 * reports latency percentiles and rates as JSON.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { runTree } from '../support/processes.js';
import { startHttpOrigin, type Origin } from '../support/origin.js';
import { startDnsUpstream, loopbackRecords, type DnsUpstream } from '../support/dns-upstream.js';
import { percentile, summarize, markdownTable } from '../../src/cli/bench/stats.js';
import { parseDuration, runLoad } from '../../src/cli/bench/load.js';
import { parseTarget } from '../../src/cli/bench.js';
import type { BenchReport } from '../../src/cli/bench/suite.js';

const runCli = (args: string[], timeoutMs = 30_000) => runTree(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { timeoutMs });

describe('bench building blocks', () => {
  it('percentiles, durations and targets', async () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(summarize([3, 1, 2])).toMatchObject({ p50: 2, max: 3, mean: 2 });
    expect(summarize([])).toMatchObject({ p50: 0, max: 0 });
    expect(parseDuration('10s')).toBe(10_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1.5m')).toBe(90_000);
    expect(parseDuration('3')).toBe(3000);
    expect(parseDuration('soon')).toBeNull();
    expect(parseTarget('--allowed', 'example.com')).toEqual({ host: 'example.com', port: null });
    expect(parseTarget('--allowed', 'example.com:8080')).toEqual({ host: 'example.com', port: 8080 });
    expect(parseTarget('--allowed', '[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(() => parseTarget('--denied', undefined)).toThrow(/--denied/);
    expect(markdownTable(['a', 'b'], [['x', '1']])).toBe('| a | b |\n| --- | ---: |\n| x | 1 |');
    const { rec } = await runLoad(async () => ({ outcome: 'ok' }), { concurrency: 3, durationMs: 1000, maxCount: 10 });
    expect(rec.count).toBe(10);
  });
});

describe('egress-gateway bench against a running gateway', () => {
  let gw: TestGateway;
  let origin: Origin;
  let dns: DnsUpstream;

  beforeAll(async () => {
    origin = await startHttpOrigin();
    dns = await startDnsUpstream({ records: loopbackRecords(['allowed.test', 'denied.test']) });
    gw = await startTestGateway({ upstreamDnsPort: dns.port, flags: { 'dns-rate-limit': '0' } });
    const pol = await gw.api.policy('bench', { allowed_hostnames: ['allowed.test'] });
    // The bench runs from 127.0.0.1: that is the devbox's source address (DNS and the proxies).
    await gw.api.devbox(pol, ['127.0.0.1'], 'bench');
  });

  afterAll(async () => {
    await gw?.close();
    await origin?.close();
    await dns?.close();
  });

  it('measures allowed and denied requests on every door and prints a JSON report', async () => {
    const hp = (d: 'http-proxy' | 'socks5' | 'dns') => `127.0.0.1:${gw.addr(d).port}`;
    const r = await runCli(['bench', '--proxy', hp('http-proxy'), '--socks-proxy', hp('socks5'), '--dns', hp('dns'), '--allowed', `allowed.test:${origin.port}`, '--denied', `denied.test:${origin.port}`, '--duration', '1s', '--concurrency', '4', '--json'], 90_000);
    const report = JSON.parse(r.stdout) as BenchReport;
    expect(report).toMatchObject({ allowed: `allowed.test:${origin.port}`, denied: `denied.test:${origin.port}`, concurrency: 4, durationMs: 1000 });
    expect(report.results.map((s) => `${s.protocol} ${s.expect}`)).toEqual([
      'http allow',
      'http deny',
      'connect allow',
      'connect deny',
      'socks5 allow',
      'socks5 deny',
      'dns allow',
      'dns deny',
      // Baselines: the allowed destination (its address from the DNS door) without the gateway.
      'http direct',
      'tcp direct',
    ]);
    // --duration is each scenario's, not split among them.
    for (const s of report.results) expect(s.elapsedMs).toBeGreaterThanOrEqual(950);
    for (const s of report.results) {
      expect(s, `${s.protocol} ${s.expect}: ${s.errorSamples.join('; ')}`).toMatchObject({ unexpected: 0, errors: 0 });
      expect(s.count).toBeGreaterThan(0);
      expect(s.ok).toBe(s.count);
      expect(s.rate).toBeGreaterThan(0);
      expect(s.latencyMs.p50).toBeGreaterThan(0);
      expect(s.latencyMs.p50).toBeLessThanOrEqual(s.latencyMs.p90);
      expect(s.latencyMs.p90).toBeLessThanOrEqual(s.latencyMs.p99);
      expect(s.latencyMs.p99).toBeLessThanOrEqual(s.latencyMs.max);
    }
    expect(report.pass).toBe(true);
    expect(r.code).toBe(0);
    // Progress lines on stderr while it ran.
    expect(r.stderr).toMatch(/\[1\/10\] http allow .* done .*\/s {2}p50 [\d.]+ ms {2}p99 [\d.]+ ms/);
    // Denied names were never sent upstream by the DNS door.
    expect(dns.countFor('denied.test')).toBe(0);
  }, 120_000);

  it('--proxy-user makes the HTTP proxy and SOCKS5 judge the bench as that devbox', async () => {
    // Another devbox, with the opposite allowlist and no address: only its credentials can select it.
    const pol = await gw.api.policy('bench-creds', { allowed_hostnames: ['denied.test'] });
    const dbx = await gw.api.devbox(pol, [], 'bench-creds');
    const r = await runCli([
      'bench',
      '--proxy',
      `127.0.0.1:${gw.addr('http-proxy').port}`,
      '--socks-proxy',
      `127.0.0.1:${gw.addr('socks5').port}`,
      '--proxy-user',
      `${dbx.username}:${dbx.password}`,
      '--allowed',
      `denied.test:${origin.port}`,
      '--denied',
      `allowed.test:${origin.port}`,
      '--duration',
      '900ms',
      '--concurrency',
      '2',
      // No direct rows: without --dns they would resolve through this host's resolver (its
      // /etc/hosts may name the test names), and they are not what this test is about.
      '--no-direct',
      '--json',
    ]);
    const report = JSON.parse(r.stdout) as BenchReport;
    expect(report.results.map((s) => `${s.protocol} ${s.expect} ${s.unexpected + s.errors}`)).toEqual(['http allow 0', 'http deny 0', 'connect allow 0', 'connect deny 0', 'socks5 allow 0', 'socks5 deny 0']);
    expect(r.code).toBe(0);
  });

  it('prints a table, and exits 1 when the gateway decides otherwise than expected', async () => {
    const r = await runCli([
      'bench',
      '--dns',
      `127.0.0.1:${gw.addr('dns').port}`,
      // Swapped on purpose: every answer is "unexpected".
      '--allowed',
      'denied.test',
      '--denied',
      'allowed.test',
      '--duration',
      '400ms',
      '--concurrency',
      '2',
    ]);
    expect(r.stdout).toMatch(/scenario\s+target\s+requests\s+ok\s+unexpected\s+errors\s+rate\/s\s+p50 ms\s+p90 ms\s+p99 ms\s+max ms/);
    expect(r.stdout).toMatch(/^dns allow\s+denied\.test/m);
    expect(r.stdout).toMatch(/FAIL/);
    expect(r.code).toBe(1);
  });

  it('a DNS REFUSED without an Extended DNS Error (the rate limiter) is a failure, not a denial (issue 11 case 9)', async () => {
    const limited = await startTestGateway({ upstreamDnsPort: dns.port, flags: { 'dns-rate-limit': '20' } });
    try {
      const pol = await limited.api.policy('bench', { allowed_hostnames: ['allowed.test'] });
      await limited.api.devbox(pol, ['127.0.0.1'], 'bench');
      const r = await runCli(['bench', '--dns', `127.0.0.1:${limited.addr('dns').port}`, '--allowed', 'allowed.test', '--denied', 'denied.test', '--duration', '1s', '--concurrency', '4', '--json']);
      const report = JSON.parse(r.stdout) as BenchReport;
      const deny = report.results.find((s) => s.protocol === 'dns' && s.expect === 'deny')!;
      // At most ~20 a second are real denials; the rest were refused by the limiter.
      expect(deny.ok).toBeLessThan(deny.count / 2);
      expect(deny.errors).toBeGreaterThan(0);
      expect(deny.errorSamples.join(' ')).toMatch(/REFUSED without EDE \(rate-limited\)/);
      expect(report.pass).toBe(false);
      expect(r.code).toBe(1);
    } finally {
      await limited.close();
    }
  });

  it('refuses to run without a target door', async () => {
    const r = await runCli(['bench', '--allowed', 'a.test', '--denied', 'b.test']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--proxy/);
  });
});
