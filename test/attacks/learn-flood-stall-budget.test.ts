/**
 * Issue 27, part 1 (threat: one devbox's DNS answers stall every door). A devbox asks for
 * fresh names in a zone it controls, each answered with thousands of addresses. Before:
 * every address was learned (~5 µs each), cached without a byte bound and, with --workers,
 * shipped worker → primary → workers on the channel that hands out every accepted TCP
 * connection; 1,000 addresses an answer at 60 queries/s made another account's CONNECTs fail
 * 257 of 282 times with 2 workers (and 58 of 93 still 0–5 s after the flood), 4,000 broke
 * --workers 1 too.
 *
 * The real CLI, with `--workers 2` and `--workers 1`: from one devbox of account A, fresh
 * names answered with ADDRESSES addresses each at RATE queries/s for ATTACK_MS; meanwhile,
 * and for AFTER_MS after, account B's devbox is timed through DNS and CONNECT (plus a GET
 * through the tunnel). Budget (the stall budget of stall-budget-every-door.test.ts): B's p99
 * within 50 ms of what the same traffic costs with no flood, and nothing fails. The flood
 * must have been served (answers came back), its learning capped (the dropped counter) and
 * the memory it costs bounded (RSS growth of the gateway's processes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { readFileSync } from 'node:fs';
import { type CliGateway, cliMetric, rssOf, startCliGateway } from '../support/cli-gateway.js';
import { type DnsUpstream, loopbackRecords, manyAddressesAnswer, startDnsUpstream } from '../support/dns-upstream.js';
import { type Origin, startHttpOrigin } from '../support/origin.js';
import { TOKEN_B } from '../support/gateway.js';

const ATTACKER = '127.0.0.5';
const VICTIM = '127.0.0.3';
const ADDRESSES = 3000;
const RATE = 100;
const ATTACK_MS = 8000;
const AFTER_MS = 4000;
const BASELINE_MS = 3000;

let dns: DnsUpstream;
let origin: Origin;

beforeAll(async () => {
  dns = await startDnsUpstream({
    records: loopbackRecords(['allowed.test']),
    rawAnswer: (query, name, type) => (name.endsWith('.flood.test') && type === 'A' ? manyAddressesAnswer(query, ADDRESSES) : undefined),
  });
  origin = await startHttpOrigin();
});

afterAll(async () => {
  await origin?.close();
  await dns?.close();
});

function udpAsk(port: number, source: string, name: string, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const u = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      u.close();
      reject(new Error(`DNS time-out for ${name}`));
    }, ms);
    u.on('message', (m) => {
      clearTimeout(timer);
      u.close();
      resolve(m);
    });
    u.bind(0, source, () => u.send(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), port, '127.0.0.1'));
  });
}

/** CONNECT to the origin through the proxy, then a GET through the tunnel; resolves on the origin's 200. */
function victimConnect(proxy: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: proxy, localAddress: VICTIM, noDelay: true });
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`CONNECT: no answer (${got.slice(0, 60)})`));
    }, 5000);
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.startsWith('HTTP/1.1 4') || got.startsWith('HTTP/1.1 5')) {
        clearTimeout(timer);
        s.destroy();
        reject(new Error(`CONNECT: ${got.slice(0, 12)}`));
      } else if (got.includes('HTTP/1.1 200 OK')) {
        clearTimeout(timer);
        s.destroy();
        resolve();
      }
    });
    s.on('connect', () => s.write(`CONNECT allowed.test:${origin.port} HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /v HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n`));
  });
}

async function victimDns(port: number): Promise<void> {
  const rcode = (dnsPacket.decode(await udpAsk(port, VICTIM, 'allowed.test')) as { rcode?: string }).rcode;
  if (rcode !== 'NOERROR') throw new Error(`DNS ${rcode}`);
}

interface Samples {
  ms: number[];
  failures: string[];
}

/** Times the victim's DNS and CONNECT in turn for `ms`; failures are kept, not thrown. */
async function victim(gw: CliGateway, ms: number): Promise<Samples> {
  const out: Samples = { ms: [], failures: [] };
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (const f of [() => victimDns(gw.ports.dns), () => victimConnect(gw.ports.proxy)]) {
      const t = performance.now();
      try {
        await f();
        out.ms.push(performance.now() - t);
      } catch (e) {
        out.failures.push((e as Error).message);
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return out;
}

/** Fresh names of the attacker's zone at RATE a second for `ms`; resolves with the answers received. */
async function flood(port: number, ms: number): Promise<number> {
  const u = dgram.createSocket('udp4');
  let answers = 0;
  u.on('message', () => answers++);
  await new Promise<void>((r) => u.bind(0, ATTACKER, r));
  const end = Date.now() + ms;
  let i = 0;
  while (Date.now() < end) {
    for (let k = 0; k < RATE / 20; k++) {
      const q = dnsPacket.encode({ type: 'query', id: i & 0xffff, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `n${i++}.flood.test` }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer] });
      u.send(q, port, '127.0.0.1');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 500));
  u.close();
  return answers;
}

/** RSS of the gateway and its workers, MB. */
function treeRssMb(pid: number): number {
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    /* none */
  }
  return [pid, ...kids].reduce((sum, p) => sum + rssOf(p), 0) / 1024 / 1024;
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.99) - 1)] ?? 0;

describe.each([2, 1])('a learn flood with --workers %i', (workers) => {
  let gw: CliGateway;
  beforeAll(async () => {
    gw = await startCliGateway({ upstreamDnsPort: dns.port, startTimeoutMs: 120_000, args: ['--workers', String(workers), '--log-allowed', 'none'] });
    await gw.api.devbox(await gw.api.policy('attacker', { allowed_hostnames: ['*.flood.test'] }), [ATTACKER], 'attacker');
    const b = gw.api.as(TOKEN_B);
    await b.devbox(await b.policy('victim', { allowed_hostnames: ['allowed.test'] }), [VICTIM], 'victim');
  }, 150_000);
  afterAll(async () => {
    await gw?.stop();
  });

  it("leaves another account's DNS and CONNECT within the stall budget, during the flood and after", async () => {
    for (let i = 0; i < 5; i++) await Promise.all([victimDns(gw.ports.dns), victimConnect(gw.ports.proxy)]);
    const quiet = await victim(gw, BASELINE_MS);
    expect(quiet.failures).toEqual([]);

    const rssBefore = treeRssMb(gw.pid);
    await cliMetric(gw.apiUrl, 'egress_event_loop_delay_seconds'); // a fresh window for the flood's
    const flooding = flood(gw.ports.dns, ATTACK_MS);
    const during = await victim(gw, ATTACK_MS);
    const loopMaxMs = (await cliMetric(gw.apiUrl, 'egress_event_loop_delay_seconds', { quantile: '1' })) * 1000;
    const answered = await flooding;
    const after = await victim(gw, AFTER_MS);

    const dropped = await cliMetric(gw.apiUrl, 'egress_dns_learned_dropped_total');
    const rssGrowthMb = treeRssMb(gw.pid) - rssBefore;
    const cacheMb = (await cliMetric(gw.apiUrl, 'egress_dns_cache_bytes')) / 1024 / 1024;
    console.log(
      JSON.stringify({
        workers,
        answered,
        dropped,
        cacheMb: Math.round(cacheMb * 10) / 10,
        rssGrowthMb: Math.round(rssGrowthMb),
        loopMaxMs: Math.round(loopMaxMs),
        quietP99: p99(quiet.ms),
        duringP99: p99(during.ms),
        afterP99: p99(after.ms),
        during: during.ms.length,
        after: after.ms.length,
      }),
    );
    // The flood was served (answers are still answered) and its learning was capped.
    expect(answered).toBeGreaterThan((RATE * ATTACK_MS) / 1000 / 2);
    expect(dropped).toBeGreaterThan(0);
    // What the flood may hold: the attacker's partition of the answer cache (one per host,
    // --dns-cache-bytes-per-account: 4 MiB) and 4,096 learned addresses per process; RSS also
    // moves with the heap's own slack, so its bound is loose. Without the bounds every answer
    // was kept with every address as a string (~240 KB an answer here).
    expect(cacheMb).toBeLessThanOrEqual(4.5);
    expect(rssGrowthMb).toBeLessThan(200);
    expect(during.failures).toEqual([]);
    expect(after.failures).toEqual([]);
    expect(during.ms.length).toBeGreaterThan(20);
    expect(p99(during.ms)).toBeLessThanOrEqual(50 + p99(quiet.ms));
    expect(p99(after.ms)).toBeLessThanOrEqual(50 + p99(quiet.ms));
  }, 120_000);
});
