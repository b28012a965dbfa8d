/**
 * Every refusal says why and what would allow it (issue #24, part 2), through the real CLI
 * gateway and real clients (curl, dig, the `socks` package, a raw CONNECT):
 * - private_address names the address, the guardrail range it fell in and that range's name,
 *   and the --allow-private flag that would allow it: in the 403 body, in the
 *   X-Egress-Denied-Reason/-Detail/-Remedy headers and in the log line (it said only "a
 *   private, loopback, link-local or metadata address");
 * - not_allowlisted says no rule matched (and which wildcard nearly did), also in DNS's EDE;
 * - the connection cap, the client-socket share and the DNS rate limit name their limit and setting.
 * Client bytes are never echoed raw: what the headers carry is gateway-made text.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliGateway, logLines, startCliGateway } from '../support/cli-gateway.js';
import { type DnsUpstream, startDnsUpstream } from '../support/dns-upstream.js';
import { type Origin, startHttpOrigin } from '../support/origin.js';
import { socksConnect } from '../support/socks.js';
import { waitFor } from '../support/wait.js';

const SOURCE = '127.0.0.81';
let dns: DnsUpstream;
let origin: Origin;
let gw: CliGateway;
let devbox: { id: string; password: string };
let policyId: string;

function sh(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => execFile(cmd, args, { timeout: 15_000 }, (e, stdout, stderr) => resolve({ code: e ? 1 : 0, stdout, stderr })));
}

const proxy = () => `http://${devbox.id}:${devbox.password}@127.0.0.1:${gw.ports.proxy}`;

/** curl through the HTTP proxy: status, response headers (lower-case names) and body. */
async function curl(args: string[]): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const r = await sh('curl', ['-s', '-D', '-', '--max-time', '10', '-x', proxy(), ...args]);
  const blocks = r.stdout.split('\r\n\r\n');
  // With CONNECT (-p) the proxy's answer is the first block; else the only head.
  const head = blocks[0]!;
  const headers: Record<string, string> = {};
  for (const l of head.split('\r\n').slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), headers, body: blocks.slice(1).join('\r\n\r\n') };
}

function logged(match: (l: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
  return waitFor(() => logLines(gw.out()).find(match), 10_000, what);
}

beforeAll(async () => {
  dns = await startDnsUpstream({ records: { 'docs.example.test': [{ type: 'A', data: '203.0.113.80', ttl: 60 }] } });
  origin = await startHttpOrigin();
  gw = await startCliGateway({ upstreamDnsPort: dns.port, args: ['--workers', '1', '--max-connections-per-devbox', '1', '--dns-rate-limit', '2'] });
  policyId = await gw.api.policy('why', { allowed_hostnames: ['docs.example.test', '*.example.com'], allowed_cidrs: [{ cidr: '127.0.0.0/8' }, { cidr: '203.0.113.0/24' }] });
  const d = await gw.api.call('POST', '/v1/devboxes', { launch_parameters: { network_policy_id: policyId }, network: { addresses: [SOURCE] } });
  expect(d.status).toBe(200);
  devbox = { id: d.body.id, password: d.body.proxy_credentials.password };
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await origin?.close();
  await dns?.close();
});

describe('refusals say why', { timeout: 60_000 }, () => {
  it('private_address through the HTTP proxy: the address, its named range and the flag, in body, headers and log', async () => {
    const r = await curl(['http://docs.example.test/']);
    expect(r.status).toBe(403);
    expect(r.headers['x-egress-denied-reason']).toBe('private_address');
    expect(r.headers['x-egress-denied-detail']).toBe('203.0.113.80 in 203.0.113.0/24 (documentation (TEST-NET-3))');
    expect(r.headers['x-egress-denied-remedy']).toBe('--allow-private 203.0.113.0/24');
    expect(JSON.parse(r.body)).toMatchObject({
      error: 'egress_denied',
      host: 'docs.example.test',
      reason: 'private_address',
      address: '203.0.113.80',
      range: '203.0.113.0/24',
      range_name: 'documentation (TEST-NET-3)',
      remedy: '--allow-private 203.0.113.0/24',
      message: 'egress to docs.example.test denied: 203.0.113.80 is in 203.0.113.0/24 "documentation (TEST-NET-3)", a range the private-address guardrail refuses',
    });
    const line = await logged((l) => l.event === 'decision' && l.host === 'docs.example.test' && l.door === 'http', 'the denial log line');
    expect(line).toMatchObject({ reason: 'private_address', address: '203.0.113.80', range: '203.0.113.0/24', range_name: 'documentation (TEST-NET-3)', remedy: '--allow-private 203.0.113.0/24' });
  });

  it('private_address through CONNECT to the cloud metadata address', async () => {
    const r = await curl(['-p', 'https://169.254.169.254/']);
    expect(r.status).toBe(403);
    expect(r.headers['x-egress-denied-detail']).toBe('169.254.169.254 in 169.254.0.0/16 (link-local (cloud metadata))');
    expect(r.headers['x-egress-denied-remedy']).toBe('--allow-private 169.254.0.0/16');
  });

  it('private_address through SOCKS5: the log line names the RFC 1918 range', async () => {
    await expect(socksConnect(gw.ports.socks, { host: '10.1.2.3', port: 80 }, { userId: devbox.id, password: devbox.password })).rejects.toThrow();
    const line = await logged((l) => l.event === 'decision' && l.host === '10.1.2.3' && l.door === 'socks5', 'the SOCKS5 denial line');
    expect(line).toMatchObject({ reason: 'private_address', address: '10.1.2.3', range: '10.0.0.0/8', range_name: 'private (RFC 1918)', remedy: '--allow-private 10.0.0.0/8' });
  });

  it('not_allowlisted: no rule matched, and the wildcard that does not admit its apex', async () => {
    const plain = await curl(['http://other.org/']);
    expect(plain.status).toBe(403);
    expect(plain.headers['x-egress-denied-detail']).toBe('no rule matched');
    expect(plain.headers['x-egress-denied-remedy']).toBe('add other.org to allowed_hostnames');
    const apex = await curl(['http://example.com/']);
    expect(apex.headers['x-egress-denied-detail']).toBe('no rule matched (*.example.com does not admit example.com)');
    expect(JSON.parse(apex.body).message).toBe('egress to example.com denied: no rule of the network policy matched: *.example.com admits names under example.com, not example.com itself');
    const line = await logged((l) => l.event === 'decision' && l.host === 'other.org', 'the not_allowlisted line');
    expect(line).toMatchObject({ reason: 'not_allowlisted', detail: 'no rule matched', remedy: 'add other.org to allowed_hostnames' });
    // The explain endpoint (the API in its own process, asking the doors' engine) says the same.
    const c = await gw.api.call('POST', '/v1/egress/check', { devbox_id: devbox.id, host: 'example.com', port: 80 });
    expect(c.body).toMatchObject({ decision: 'deny', detail: 'no rule matched (*.example.com does not admit example.com)', remedy: 'add example.com to allowed_hostnames' });
  });

  it('DNS: the EDE text carries the detail', async () => {
    const r = await sh('dig', ['+tries=1', '+time=3', '-b', SOURCE, '-p', String(gw.ports.dns), '@127.0.0.1', 'example.com']);
    expect(r.stdout).toContain(`blocked by egress policy ${policyId} (not_allowlisted: no rule matched (*.example.com does not admit example.com))`);
  });

  it('the connection cap names its limit and setting (503 and a log line)', async () => {
    // One open tunnel holds the devbox's only connection.
    const held = net.connect(gw.ports.proxy, '127.0.0.1');
    const auth = Buffer.from(`${devbox.id}:${devbox.password}`).toString('base64');
    held.write(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`);
    let got = '';
    held.on('data', (d) => (got += d.toString('latin1')));
    try {
      await waitFor(() => got.startsWith('HTTP/1.1 200'), 10_000, 'the held tunnel');
      const r = await curl([`http://127.0.0.1:${origin.port}/`]);
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body).message).toBe('too many open connections for this devbox: the limit is 1 (--max-connections-per-devbox)');
      const line = await logged((l) => l.event === 'connection_limit', 'the connection_limit line');
      expect(line).toMatchObject({ devbox: devbox.id, limit: 1, setting: '--max-connections-per-devbox', door: 'http' });
    } finally {
      held.destroy();
    }
  });

  it('a devbox over its share of client sockets gets a 503 naming the share and its setting', async () => {
    // Twice --max-connections-per-devbox (1): two idle sockets from the devbox's address fill it.
    const idle = [0, 1].map(() => net.connect({ port: gw.ports.proxy, host: '127.0.0.1', localAddress: SOURCE }));
    try {
      await Promise.all(idle.map((s) => new Promise((ok, no) => s.once('connect', ok).once('error', no))));
      const r = await curl(['--interface', SOURCE, `http://127.0.0.1:${origin.port}/`]);
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body).error.message).toBe("this client holds its share of the gateway's client connections: 2 (twice --max-connections-per-devbox, less while the gateway is crowded); close idle connections or try again");
    } finally {
      for (const s of idle) s.destroy();
    }
  });

  it('the DNS rate limit names its limit and setting (EDE over TCP, and the log line)', async () => {
    // A bounded burst: with 2 queries a second allowed, one of 8 back-to-back is refused.
    let refused = '';
    for (let i = 0; i < 8 && refused === ''; i++) {
      const r = await sh('dig', ['+tcp', '+tries=1', '+time=3', '-b', SOURCE, '-p', String(gw.ports.dns), '@127.0.0.1', `n${i}.example.com`]);
      if (r.stdout.includes('status: REFUSED')) refused = r.stdout;
    }
    expect(refused).toContain('rate limited: over 2 queries a second from this devbox (--dns-rate-limit)');
    const line = await logged((l) => l.event === 'dns_rate_limited', 'the rate-limit line');
    expect(line).toMatchObject({ limit: 2, setting: '--dns-rate-limit', devbox: devbox.id });
  });
});
