/**
 * `serve --workers 2` (the real CLI): every door runs in two processes sharing each
 * listener, and the two behave as one gateway.
 * - every door (HTTP proxy, CONNECT, SOCKS5, DNS over UDP and TCP) answers from both
 *   workers, with the same decisions;
 * - /metrics is one exposition whose counters are both workers' summed;
 * - a policy change is applied in every worker before the API answers the write (the next
 *   connection through either worker sees it) and cuts the open tunnels of both;
 * - an address the DNS door answered through one worker admits the devbox's IP-literal
 *   CONNECT through either, at once (the answer leaves once both workers have it);
 * - the per-devbox connection cap and the DNS rate limit hold for the gateway, not per worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { cliMetric } from '../support/cli-gateway.js';
import type { TestRecord } from '../support/dns-upstream.js';
import { connectThenGet, dnsAsk, dnsWireName, httpProxyGet, socks5ConnectThenGet } from '../support/door-clients.js';
import { dig } from '../support/dns.js';
import { type HeldTunnel, type TwoWorkers, holdConnect, startTwoWorkers, workersLogging } from './support.js';

const A = '127.0.0.2'; // devbox for doors, policy changes and learned addresses
const CAPPED = '127.0.0.4'; // devbox for the connection cap
const CHATTY = '127.0.0.5'; // devbox for the DNS rate limit
const CAP = 6;
const RATE = 40;
const LEARN = 10;

let t: TwoWorkers;
let policy = '';
const learnOrigins: net.Server[] = [];
let learnPort = 0;

beforeAll(async () => {
  // h<i>.learn.test → 127.0.0.<20+i>, each with a listener: every CONNECT has its own address.
  const records: Record<string, TestRecord[]> = {};
  for (let i = 0; i < LEARN; i++) records[`h${i}.learn.test`] = [{ type: 'A', data: `127.0.0.${20 + i}`, ttl: 60 }];
  for (let i = 0; i < LEARN; i++) {
    const o = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => o.listen(learnPort, `127.0.0.${20 + i}`, r));
    learnPort = (o.address() as net.AddressInfo).port;
    learnOrigins.push(o);
  }
  t = await startTwoWorkers(records, { args: ['--max-connections-per-devbox', String(CAP), '--dns-rate-limit', String(RATE), '--log-allowed', 'all'] });
  policy = await t.gw.api.policy('two-workers', { allowed_hostnames: ['origin.test', '*.learn.test'] });
  await t.gw.api.devbox(policy, [A]);
  // The limits' devboxes have a policy of their own (the one above changes).
  const steady = await t.gw.api.policy('steady', { allowed_hostnames: ['origin.test'] });
  await t.gw.api.devbox(steady, [CAPPED]);
  await t.gw.api.devbox(steady, [CHATTY]);
}, 240_000);

afterAll(async () => {
  await t?.close();
  for (const o of learnOrigins) o.close();
});

const opts = { source: A };
const seq = async <T>(n: number, f: (i: number) => Promise<T>): Promise<T[]> => {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await f(i));
  return out;
};
const denialsBy = (door: string) => workersLogging(t.gw.out(), (l) => l.event === 'decision' && l.door === door && l.decision === 'deny');
const K = 6;

describe('two workers, one gateway', { timeout: 60_000 }, () => {
  it('every door answers from both workers with the same decisions', async () => {
    const { ports } = t.gw;
    for (const o of await seq(K, () => connectThenGet(ports.proxy, 'origin.test', t.origin.port, opts))) expect(o.kind, o.evidence).toBe('allow');
    for (const o of await seq(K, () => connectThenGet(ports.proxy, 'denied.test', 443, opts))) expect(o.kind, o.evidence).toBe('deny');
    for (const o of await seq(K, () => httpProxyGet(ports.proxy, 'origin.test', t.origin.port, opts))) expect(o.kind, o.evidence).toBe('allow');
    for (const o of await seq(K, () => httpProxyGet(ports.proxy, 'denied.test', 80, opts))) expect(o.kind, o.evidence).toBe('deny');
    for (const o of await seq(K, () => socks5ConnectThenGet(ports.socks, 'origin.test', t.origin.port, opts))) expect(o.kind, o.evidence).toBe('allow');
    for (const o of await seq(K, () => socks5ConnectThenGet(ports.socks, 'denied.test', 443, opts))) expect(o.kind, o.evidence).toBe('deny');
    for (const o of await seq(K, () => dnsAsk(ports.dns, dnsWireName('origin.test').wire!, opts))) expect(o.kind, o.evidence).toBe('allow');
    for (const o of await seq(K, () => dnsAsk(ports.dns, dnsWireName('denied.test').wire!, opts))) expect(o.kind, o.evidence).toBe('deny');
    for (const a of await seq(4, () => dig(ports.dns, A, 'origin.test', '+tcp', '+short'))) expect(a.trim()).toBe('127.0.0.1');
    for (const a of await seq(4, () => dig(ports.dns, A, 'denied.test', '+tcp'))) expect(a).toContain('status: NXDOMAIN');
    // The denials were logged by both workers, door by door (the log is written after the answer).
    await expect.poll(() => [denialsBy('connect'), denialsBy('http'), denialsBy('socks5'), denialsBy('dns')].map((s) => s.size), { timeout: 5000 }).toEqual([2, 2, 2, 2]);
  });

  it("/metrics sums both workers' counters in one exposition", async () => {
    const text = await (await fetch(`${t.gw.apiUrl}/metrics`)).text();
    const helps = text.split('\n').filter((l) => l.startsWith('# HELP '));
    expect(new Set(helps).size).toBe(helps.length);
    // Exactly the decisions made above: half of them were counted by each worker.
    expect(await cliMetric(t.gw.apiUrl, 'egress_decisions_total', { door: 'connect', decision: 'deny' })).toBe(K);
    expect(await cliMetric(t.gw.apiUrl, 'egress_decisions_total', { door: 'socks5', decision: 'deny' })).toBe(K);
    expect(await cliMetric(t.gw.apiUrl, 'egress_decisions_total', { door: 'http', decision: 'deny' })).toBe(K);
  });

  it('a policy change is in every worker when the API answers, and cuts the open tunnels of both', async () => {
    const held: HeldTunnel[] = await seq(4, () => holdConnect(t.gw.ports.proxy, `origin.test:${t.origin.port}`, A));
    for (const h of held) expect(h.status).toBe(200);
    expect(await cliMetric(t.gw.apiUrl, 'egress_active_connections', { door: 'connect' })).toBe(4);
    await new Promise((r) => setTimeout(r, 200)); // the earlier connections' closing lines are out
    const logged = t.gw.out().length;
    const t0 = performance.now();
    await t.gw.api.updatePolicy(policy, { allowed_hostnames: ['other.test', '*.learn.test'] });
    const writeMs = performance.now() - t0;
    // Applied before the answer: the very next connections, through either worker, are denied.
    for (const o of await seq(4, () => connectThenGet(t.gw.ports.proxy, 'origin.test', t.origin.port, opts))) expect(o.kind, o.evidence).toBe('deny');
    await Promise.all(held.map((h) => h.closed));
    expect(await cliMetric(t.gw.apiUrl, 'egress_connections_cut_total', { door: 'connect' })).toBe(4);
    // The four tunnels were cut in both workers (their closing lines name the worker).
    const cut = () => workersLogging(t.gw.out().slice(logged), (l) => l.msg === 'egress connection closed' && l.port === t.origin.port);
    await expect.poll(() => cut().size, { timeout: 5000 }).toBe(2);
    const cuts = cut();
    console.log(`policy write answered after every worker applied it: ${writeMs.toFixed(1)} ms; cut in workers ${[...cuts].join(',')}`);
    // The budget the issue sets for "applied in every worker" (the write itself included).
    expect(writeMs).toBeLessThan(100 * 5); // 100 ms target, x5 for a loaded 2-core CI box
    await t.gw.api.updatePolicy(policy, { allowed_hostnames: ['origin.test', '*.learn.test'] });
  });

  it("an address answered through one worker admits the devbox's IP-literal CONNECT through either, at once", async () => {
    const answerMs: number[] = [];
    for (let i = 0; i < LEARN; i++) {
      const ip = `127.0.0.${20 + i}`;
      // Two CONNECTs in a row reach both workers: neither knows the address yet.
      for (const status of await seq(2, () => holdConnect(t.gw.ports.proxy, `${ip}:${learnPort}`, A).then((h) => (h.socket.destroy(), h.status)))) expect(status).toBe(403);
      const got = await resolveThenConnect(`h${i}.learn.test`);
      answerMs.push(got.ms);
      expect({ ip: got.ip, status: got.status }).toEqual({ ip, status: 200 });
      // And through the other worker too.
      const again = await holdConnect(t.gw.ports.proxy, `${ip}:${learnPort}`, A);
      again.socket.destroy();
      expect(again.status).toBe(200);
    }
    answerMs.sort((a, b) => a - b);
    console.log(`DNS answers that taught both workers a new address: p50 ${answerMs[LEARN >> 1]!.toFixed(2)} ms, max ${answerMs.at(-1)!.toFixed(2)} ms`);
  });

  it('the per-devbox connection cap holds across workers (not twice the cap)', async () => {
    const held: HeldTunnel[] = await seq(2 * CAP, () => holdConnect(t.gw.ports.proxy, `origin.test:${t.origin.port}`, CAPPED));
    const ok = held.filter((h) => h.status === 200).length;
    expect(ok).toBeLessThanOrEqual(CAP);
    expect(ok).toBeGreaterThanOrEqual(CAP - 2);
    for (const h of held) h.socket.destroy();
  });

  it('the DNS rate limit holds across workers (not twice the rate)', async () => {
    const first = Date.now();
    const rcodes: string[] = [];
    const sock = dgram.createSocket('udp4');
    sock.on('message', (m) => rcodes.push((dnsPacket.decode(m) as { rcode?: string }).rcode ?? '?'));
    await new Promise<void>((r) => sock.bind(0, CHATTY, r));
    // 2 s at ~250 queries/s: six times the limit.
    while (Date.now() - first < 2000) {
      for (let i = 0; i < 5; i++) sock.send(dnsPacket.encode({ type: 'query', id: i, questions: [{ type: 'A', name: 'origin.test' }] }), t.gw.ports.dns, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 20));
    }
    const last = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    sock.close();
    const windows = Math.floor(last / 1000) - Math.floor(first / 1000) + 1;
    const answered = rcodes.filter((r) => r === 'NOERROR').length;
    console.log(`${rcodes.length} answers over ${windows} one-second windows: ${answered} NOERROR (limit ${RATE}/s for the gateway)`);
    expect(answered).toBeLessThanOrEqual(RATE * windows);
    expect(answered).toBeGreaterThan(0);
    expect(rcodes.filter((r) => r === 'REFUSED').length).toBeGreaterThan(0);
  });
});

/**
 * Asks for `name` over UDP from the devbox and, in the same callback that receives the
 * answer, sends CONNECT to the address it names: as tight as a devbox can race the gateway.
 */
function resolveThenConnect(name: string): Promise<{ ip: string; status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.on('error', reject);
    let sent = 0;
    sock.on('message', (msg) => {
      const ms = performance.now() - sent;
      sock.close();
      const a = dnsPacket.decode(msg).answers?.find((r) => r.type === 'A');
      if (!a) return reject(new Error(`no A record for ${name}`));
      const ip = (a as { data: string }).data;
      holdConnect(t.gw.ports.proxy, `${ip}:${learnPort}`, A).then((h) => {
        h.socket.destroy();
        resolve({ ip, status: h.status, ms });
      }, reject);
    });
    sock.bind(0, A, () => {
      sent = performance.now();
      sock.send(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), t.gw.ports.dns, '127.0.0.1');
    });
  });
}
