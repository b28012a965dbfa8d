/**
 * The rollout the issue asks for, end to end through the real CLI, curl, dig and the
 * official SDK (default transport, h2c): a policy switched to report mode lets a denied host
 * through while counting (would_deny) and logging it; the explain endpoint says so; the
 * guardrail still refuses a private address; the per-devbox record lists what was denied
 * (paged, account-scoped, kept across a restart); `suggest` turns it into a policy file that
 * `apply` accepts and that then allows those hosts under enforcement.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Runloop from '@runloop/api-client';
import { type DnsUpstream, loopbackRecords, startDnsUpstream } from '../support/dns-upstream.js';
import { type Origin, startHttpOrigin } from '../support/origin.js';
import { runCli } from '../support/run-cli.js';
import { type Served, serve } from '../support/serve-lifecycle.js';
import { waitFor } from '../support/wait.js';
import { tempDir } from '../support/temp.js';

const TOKEN = 'tok-rollout';
const OTHER = 'tok-other';
const SOURCE = '127.0.0.77';
const SIBLINGS = ['one.pkgs.example.com', 'two.pkgs.example.com', 'three.pkgs.example.com'];
const NAMES = [...SIBLINGS, 'four.pkgs.example.com', 'five.pkgs.example.com', 'solo.other.org', 'allowed.example.net', 'never.example.net'];

let dns: DnsUpstream;
let origin: Origin;
let gw: Served;
let dir: string;
let client: Runloop;
let policyId: string;
let devbox: { id: string; password: string };
const api = () => `http://127.0.0.1:${gw.ports.api}`;

function sh(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => execFile(cmd, args, { timeout: 15_000 }, (e, stdout, stderr) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr })));
}

/** curl through the HTTP proxy with the devbox's credentials: status code and the denial header. */
async function curl(host: string): Promise<{ status: number; reason: string | null }> {
  const r = await sh('curl', ['-s', '-o', '/dev/null', '-D', '-', '-w', '%{http_code}', '--max-time', '5', '-x', `http://${devbox.id}:${devbox.password}@127.0.0.1:${gw.ports['http-proxy']}`, `http://${host}:${origin.port}/`]);
  const reason = /x-egress-denied-reason:\s*(\S+)/i.exec(r.stdout)?.[1] ?? null;
  return { status: Number(r.stdout.slice(-3)), reason };
}

async function call(method: 'GET' | 'POST', path: string, body?: unknown, token = TOKEN) {
  const res = await fetch(api() + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  return { status: res.status, body: (await res.json()) as any };
}

async function metric(labels: string): Promise<number> {
  const text = await (await fetch(`${api()}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`egress_decisions_total{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(async () => {
  dns = await startDnsUpstream({ records: loopbackRecords(NAMES) });
  origin = await startHttpOrigin();
  dir = tempDir('rollout');
  gw = await serve(['--db', join(dir, 'egress.db'), '--api-token', `${TOKEN}:acct-r`, '--api-token', `${OTHER}:acct-o`, '--upstream-dns', `127.0.0.1:${dns.port}`, '--events-flush-ms', '50']);
  client = new Runloop({ bearerToken: TOKEN, baseURL: api(), maxRetries: 0 });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await origin?.close();
  await dns?.close();
});

describe('report-only rollout, then suggest and apply', { timeout: 60_000 }, () => {
  it('the official SDK creates an enforcing policy with the enforcement field', async () => {
    const p = await client.networkPolicies.create({ name: 'rollout', allowed_hostnames: ['allowed.example.net'], enforcement: 'enforce' } as Runloop.NetworkPolicyCreateParams);
    expect((p as unknown as { enforcement: string }).enforcement).toBe('enforce');
    policyId = p.id;
    const d = await call('POST', '/v1/devboxes', { launch_parameters: { network_policy_id: policyId }, network: { addresses: [SOURCE] } });
    expect(d.status).toBe(200);
    devbox = { id: d.body.id, password: d.body.proxy_credentials.password };
    expect(await curl('allowed.example.net')).toEqual({ status: 200, reason: null });
    expect(await curl('one.pkgs.example.com')).toEqual({ status: 403, reason: 'not_allowlisted' });
  });

  it('switched to report mode (SDK update), denied hosts go through, counted and logged as would_deny', async () => {
    const before = await metric('door="http",decision="would_deny",reason="not_allowlisted"');
    const p = await client.networkPolicies.update(policyId, { enforcement: 'report' } as Runloop.NetworkPolicyUpdateParams);
    expect((p as unknown as { enforcement: string }).enforcement).toBe('report');
    expect(((await client.networkPolicies.retrieve(policyId)) as unknown as { enforcement: string }).enforcement).toBe('report');
    for (const h of [...SIBLINGS, 'solo.other.org']) expect(await curl(h), h).toEqual({ status: 200, reason: null });
    expect(await metric('door="http",decision="would_deny",reason="not_allowlisted"')).toBe(before + 4);
    // DNS lets the name resolve (answered, not NXDOMAIN) and counts it too.
    const dig = await sh('dig', ['+short', '+tries=1', '+time=3', '-b', SOURCE, '-p', String(gw.ports.dns), '@127.0.0.1', 'four.pkgs.example.com']);
    expect(dig.stdout.trim()).toBe('127.0.0.1');
    await waitFor(async () => (await metric('door="dns",decision="would_deny",reason="not_allowlisted"')) >= 1, 5000, 'the DNS would_deny count');
    const line = await waitFor(
      () =>
        gw
          .out()
          .split('\n')
          .find((l) => l.includes('"decision":"would_deny"') && l.includes('two.pkgs.example.com')),
      5000,
      'the would_deny log line',
    );
    expect(JSON.parse(line)).toMatchObject({ door: 'http', devbox: devbox.id, policy: policyId, reason: 'not_allowlisted' });
  });

  it('explains would_deny, and never relaxes the private-address guardrail', async () => {
    const r = await call('POST', '/v1/egress/check', { devbox_id: devbox.id, host: 'one.pkgs.example.com', port: 80 });
    expect(r.body).toMatchObject({ decision: 'would_deny', reason: 'not_allowlisted', enforcement: 'report' });
    expect(await curl('10.1.2.3')).toEqual({ status: 403, reason: 'private_address' });
    expect((await call('POST', '/v1/egress/check', { devbox_id: devbox.id, host: '169.254.169.254' })).body.decision).toBe('deny');
  });

  it('records denials and would-denials per devbox, paged, filtered and account-scoped', async () => {
    const page = await waitFor(
      async () => {
        const r = await call('GET', `/v1/egress/events?devbox_id=${devbox.id}&limit=100`);
        const hosts = new Set((r.body.events as Array<{ host: string }>).map((e) => e.host));
        return ['one.pkgs.example.com', 'solo.other.org', 'four.pkgs.example.com', '10.1.2.3'].every((h) => hosts.has(h)) ? r.body : null;
      },
      5000,
      'the events to be written',
    );
    const one = page.events.filter((e: { host: string }) => e.host === 'one.pkgs.example.com');
    expect(one.map((e: { decision: string }) => e.decision).sort()).toEqual(['deny', 'would_deny']);
    expect(one.find((e: { decision: string }) => e.decision === 'would_deny')).toMatchObject({ door: 'http', port: origin.port, reason: 'not_allowlisted', count: 1, network_policy_id: policyId });
    const would = await call('GET', `/v1/egress/events?devbox_id=${devbox.id}&decision=would_deny`);
    expect(would.body.events.every((e: { decision: string }) => e.decision === 'would_deny')).toBe(true);
    // Cursor paging as the policy list: limit, starting_after, has_more, total_count.
    const seen: string[] = [];
    let after = '';
    for (;;) {
      const r = await call('GET', `/v1/egress/events?devbox_id=${devbox.id}&limit=2${after ? `&starting_after=${after}` : ''}`);
      expect(r.body.total_count).toBe(page.total_count);
      seen.push(...r.body.events.map((e: { id: string }) => e.id));
      if (!r.body.has_more) break;
      after = r.body.events.at(-1).id;
    }
    expect(seen).toEqual(page.events.map((e: { id: string }) => e.id));
    expect(await call('GET', `/v1/egress/events?since=${Date.now() + 60_000}`).then((r) => r.body.events)).toEqual([]);
    // Another account sees none of them, even naming the devbox.
    expect((await call('GET', `/v1/egress/events?devbox_id=${devbox.id}`, undefined, OTHER)).body).toMatchObject({ events: [], total_count: 0 });
  });

  it('suggest prints a policy file apply accepts; applied (enforcing), it allows what was denied', async () => {
    const s = await runCli(['suggest', '--devbox', devbox.id, '--since', '1h', '--api-url', api(), '--token', TOKEN]);
    expect(s.stderr).toBe('');
    expect(s.code).toBe(0);
    // four names under example.com (over the threshold of 3) fold into one wildcard with its comment.
    expect(s.stdout).toMatch(/- "\*\.example\.com"\s+# added: 4 names under example\.com .*seen \d+ times via dns, http/);
    expect(s.stdout).toMatch(/- "solo\.other\.org"\s+# added: seen 1 time via http/);
    expect(s.stdout).toContain('- "allowed.example.net"');
    expect(s.stdout).toMatch(/#\s+10\.1\.2\.3:\d+ \(private_address\)/);
    const file = join(dir, 'rollout.yaml');
    writeFileSync(file, s.stdout.replace('enforcement: report', 'enforcement: enforce'));
    const a = await runCli(['apply', file, '--api-url', api(), '--token', TOKEN]);
    expect(a.stderr).toBe('');
    expect(a.stdout).toMatch(/^update rollout \(allowed_hostnames \+2, enforcement report→enforce\)/m);
    const before = await metric('door="http",decision="allow",reason="hostname"');
    for (const h of ['five.pkgs.example.com', 'solo.other.org', 'one.pkgs.example.com']) expect(await curl(h), h).toEqual({ status: 200, reason: null });
    expect(await metric('door="http",decision="allow",reason="hostname"')).toBe(before + 3);
    expect(await curl('never.example.net')).toEqual({ status: 403, reason: 'not_allowlisted' });
  });

  it('the record survives a restart', async () => {
    const before = (await call('GET', `/v1/egress/events?devbox_id=${devbox.id}&limit=100`)).body;
    expect(await gw.stop()).toBe(0);
    gw = await serve(['--db', join(dir, 'egress.db'), '--api-token', `${TOKEN}:acct-r`, '--upstream-dns', `127.0.0.1:${dns.port}`]);
    const after = (await call('GET', `/v1/egress/events?devbox_id=${devbox.id}&limit=100`)).body;
    expect(after.events.length).toBeGreaterThan(0);
    // What was recorded before the stop (the last batch is written at shutdown) is all there.
    for (const e of before.events) expect(after.events.map((x: { id: string }) => x.id)).toContain(e.id);
  }, 60_000);
});
