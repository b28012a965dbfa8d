/**
 * `serve --dns-workers 2`: two more processes answer DNS over UDP on the --dns port. What
 * must still hold when the answering process is not the one running the proxy doors:
 * - a devbox registered a moment ago is known to the workers (no REFUSED window);
 * - allowed and denied answers are the same as from one process (EDE 15 on denials);
 * - every address a worker hands a devbox is admitted for that devbox's IP-literal CONNECT
 *   through the main process at once (no race between the answer and the connection);
 * - a policy change reaches the workers within a second;
 * - a worker that dies is replaced, and DNS keeps being answered;
 * - /metrics counts the workers' queries, as one valid exposition;
 * - SIGTERM stops the workers with the main process.
 * The gateway runs as the real CLI (workers are forked processes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsUpstream, type DnsUpstream, type TestRecord } from '../support/dns-upstream.js';
import { dig } from '../support/dns.js';

const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');
const MAIN = join(process.cwd(), 'src', 'main.ts');
const TOKEN = 'tok-workers';
const N = 12;

let upstream: DnsUpstream;
let child: ChildProcess;
let out = '';
let ports: { api: number; proxy: number; dns: number };
const origins: net.Server[] = [];
let originPort = 0;

const api = async (method: string, path: string, body?: unknown) => {
  const r = await fetch(`http://127.0.0.1:${ports.api}${path}`, {
    method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await r.json()) as { id: string };
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
};

/** The proxy's answer to CONNECT ip:port from the devbox (status code). */
function connectStatus(ip: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: ports.proxy, localAddress: '127.0.0.2' });
    let buf = '';
    s.on('connect', () => s.write(`CONNECT ${ip}:${port} HTTP/1.1\r\nHost: ${ip}:${port}\r\n\r\n`));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) {
        s.destroy();
        resolve(Number(buf.slice(9, 12)));
      }
    });
    s.on('error', reject);
  });
}

/**
 * Asks for `name` over UDP from the devbox and, in the same callback that receives the
 * answer, sends CONNECT to the address it names: as tight as a devbox can race the gateway.
 */
function resolveThenConnect(name: string, port: number): Promise<{ ip: string; status: number }> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.on('error', reject);
    sock.on('message', (msg) => {
      sock.close();
      const a = dnsPacket.decode(msg).answers?.find((r) => r.type === 'A');
      if (!a) return reject(new Error(`no A record for ${name}`));
      const ip = (a as { data: string }).data;
      connectStatus(ip, port).then((status) => resolve({ ip, status }), reject);
    });
    sock.bind(0, '127.0.0.2', () => {
      sock.send(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), ports.dns, '127.0.0.1');
    });
  });
}

function workerPids(): number[] {
  try {
    return execFileSync('pgrep', ['-f', 'wiring/dns-worker-main'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

beforeAll(async () => {
  // h<i>.allowed.test → 127.0.0.<20+i>, each with a listener, so every CONNECT has its own address.
  const records: Record<string, TestRecord[]> = { 'allowed.test': [{ type: 'A', data: '127.0.0.1', ttl: 60 }] };
  for (let i = 0; i < N; i++) records[`h${i}.allowed.test`] = [{ type: 'A', data: `127.0.0.${20 + i}`, ttl: 60 }];
  upstream = await startDnsUpstream({ records });
  const first = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => first.listen(0, '127.0.0.20', r));
  originPort = (first.address() as net.AddressInfo).port;
  origins.push(first);
  for (let i = 1; i < N; i++) {
    const o = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => o.listen(originPort, `127.0.0.${20 + i}`, r));
    origins.push(o);
  }
  const dir = mkdtempSync(join(tmpdir(), 'egw-workers-'));
  child = spawn(TSX, [MAIN, 'serve', '--db', join(dir, 'egress.db'), '--api', '127.0.0.1:0', '--http-proxy', '127.0.0.1:0', '--socks', 'off',
    '--dns', '127.0.0.1:0', '--upstream-dns', `127.0.0.1:${upstream.port}`, '--allow-private', '127.0.0.0/8', '--api-token', `${TOKEN}:acct-w`,
    '--dns-workers', '2', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const end = Date.now() + 45_000;
  while (!out.includes('egress-gateway listening')) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`gateway did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const msg = out.split('\n').find((l) => l.includes('egress-gateway listening'))!;
  const port = (door: string) => Number(new RegExp(`${door} on 127\\.0\\.0\\.1:(\\d+)`).exec(msg)![1]);
  ports = { api: port('api'), proxy: port('http-proxy'), dns: port('dns') };
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  for (const o of origins) o.close();
  await upstream?.close();
});

describe('DNS workers', { timeout: 60_000 }, () => {
  let policy = '';

  it('answer a devbox registered a moment ago, allowed and denied alike, over UDP; TCP is served too', async () => {
    policy = (await api('POST', '/v1/network-policies', { name: 'w', allowed_hostnames: ['allowed.test', '*.allowed.test'] })).id;
    await api('POST', '/v1/devboxes', { launch_parameters: { network_policy_id: policy }, network: { addresses: ['127.0.0.2'] } });
    const answers = await Promise.all(Array.from({ length: 8 }, () => dig(ports.dns, '127.0.0.2', 'allowed.test', '+short')));
    for (const a of answers) expect(a.trim()).toBe('127.0.0.1');
    const denied = await dig(ports.dns, '127.0.0.2', 'exfil.example.com');
    expect(denied).toContain('status: NXDOMAIN');
    expect(denied).toMatch(/EDE: 15 \(Blocked\)/);
    expect((await dig(ports.dns, '127.0.0.2', 'allowed.test', '+tcp', '+short')).trim()).toBe('127.0.0.1');
    expect(workerPids().length).toBe(2);
  });

  it('admit an IP-literal CONNECT to an address a worker just answered, at once, every time', async () => {
    for (let i = 0; i < N; i++) {
      const ip = `127.0.0.${20 + i}`;
      expect(await connectStatus(ip, originPort)).toBe(403); // not learned yet: ip_literal
      expect(await resolveThenConnect(`h${i}.allowed.test`, originPort)).toEqual({ ip, status: 200 });
    }
  });

  it('count the workers\' queries in /metrics, in one valid exposition', async () => {
    const text = await (await fetch(`http://127.0.0.1:${ports.api}/metrics`)).text();
    const helps = text.split('\n').filter((l) => l.startsWith('# HELP '));
    expect(new Set(helps).size).toBe(helps.length);
    const allowed = text.split('\n').filter((l) => l.startsWith('egress_dns_queries_total{decision="allow"'));
    const total = allowed.reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    expect(total).toBeGreaterThanOrEqual(8 + N);
  });

  it('see a policy change within a second', async () => {
    await api('POST', `/v1/network-policies/${policy}`, { allowed_hostnames: ['other.test'] });
    const end = Date.now() + 1500;
    let last = '';
    while (Date.now() < end) {
      last = await dig(ports.dns, '127.0.0.2', 'allowed.test');
      if (last.includes('status: NXDOMAIN')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(last).toContain('status: NXDOMAIN');
  });

  it('replace a worker that dies, and keep answering meanwhile', async () => {
    const before = workerPids();
    expect(before).toHaveLength(2);
    process.kill(before[0]!, 'SIGKILL');
    expect((await dig(ports.dns, '127.0.0.2', 'other.test', '+short')).trim()).toBe('');
    const end = Date.now() + 10_000;
    let now = workerPids();
    while ((now.length < 2 || now.includes(before[0]!)) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      now = workerPids();
    }
    expect(now).toHaveLength(2);
    expect(now).not.toContain(before[0]);
    const answers = await Promise.all(Array.from({ length: 6 }, () => dig(ports.dns, '127.0.0.2', 'allowed.test')));
    for (const a of answers) expect(a).toContain('status: NXDOMAIN'); // the policy now allows other.test only
  });

  it('stop with the main process on SIGTERM', async () => {
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const end = Date.now() + 3000;
    while (workerPids().length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(workerPids()).toEqual([]);
  });
});
