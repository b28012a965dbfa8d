/**
 * Attack (issue 16, #3): DNS-over-TCP connections were capped per source address (64)
 * within a global 1,024, and a devbox may register up to 256 addresses: one devbox with 17
 * addresses held all 1,024 connections, and another account's devbox got no TCP DNS at all.
 *
 * Here the attacker registers 17 addresses and opens 64 idle TCP connections from each
 * (1,088 in all, bounded, closed at the end). The victim (another account) asks over TCP,
 * and does HTTP and CONNECT, every 100 ms meanwhile.
 * Expected: the victim is served (≥ 95 %, p99 ≤ P99_BUDGET_MS, 500 ms: see test/support/tenants.ts; run alone it is tens to hundreds of ms):
 * the devbox's addresses share one allowance (--dns-tcp-per-devbox, 64), and the refusals
 * are counted in egress_shared_refusals_total{resource="dns_tcp"}.
 * Fix: src/doors/dns/server.ts + src/doors/dns/door.ts (TCP slots per devbox through a FairShare).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import type http from 'node:http';
import type { DnsUpstream } from '../support/dns-upstream.js';
import { ATTACKER, P99_BUDGET_MS, type CliGateway, registerVictim, runVictim, startCliGateway, startOrigin } from '../support/tenants.js';

const ADDRESSES = Array.from({ length: 17 }, (_, i) => `127.0.0.${10 + i}`);
const PER_ADDRESS = 64;
let gw: CliGateway;
let upstream: DnsUpstream;
let origin: http.Server & { port: number };

beforeAll(async () => {
  ({ gw, upstream } = await startCliGateway());
  origin = await startOrigin();
  await registerVictim(gw);
  const p = await gw.api(ATTACKER, 'POST', '/v1/network-policies', { name: 'a', allowed_hostnames: ['victim.test'] });
  const d = await gw.api(ATTACKER, 'POST', '/v1/devboxes', { launch_parameters: { network_policy_id: p.body.id }, network: { addresses: ADDRESSES } });
  expect(d.status).toBe(200);
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  origin?.closeAllConnections();
  origin?.close();
  await upstream?.close();
});

/** Opens an idle TCP connection to the DNS door; resolves once connected (or refused). */
function hold(port: number, from: string, held: net.Socket[]): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
    s.on('connect', () => {
      held.push(s);
      resolve();
    });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
}

describe('DNS over TCP: one devbox, many addresses', { timeout: 120_000 }, () => {
  it('17 addresses of one devbox cannot take the TCP slots another account needs', async () => {
    const held: net.Socket[] = [];
    try {
      for (const a of ADDRESSES) await Promise.all(Array.from({ length: PER_ADDRESS }, () => hold(gw.ports.dns, a, held)));
      // Let the gateway close what it refused before the victim starts.
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      const report = await runVictim(gw, origin.port, () => Date.now() - started > 3000, { dnsTransport: 'tcp' });
      const stillOpen = held.filter((s) => !s.destroyed && s.readyState === 'open').length;
      console.log('victim while 17 addresses hold DNS TCP', JSON.stringify(report), 'attacker connections still open', stillOpen);
      for (const k of ['dns', 'http', 'connect'] as const) {
        expect(report[k].n).toBeGreaterThan(10);
        expect(report[k].rate, `${k} success rate`).toBeGreaterThanOrEqual(0.95);
        expect(report[k].p99, `${k} p99 ms`).toBeLessThanOrEqual(P99_BUDGET_MS);
      }
      const m = await gw.metrics();
      expect(m).toMatch(/egress_shared_refusals_total\{resource="dns_tcp",why="tenant"\} [1-9]/);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
