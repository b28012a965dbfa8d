/**
 * Threat: a tunnel opened while allowed outlives the permission. When a policy is tightened,
 * a devbox is attached to another policy, or shuts down, its open connections the new state
 * denies are closed within one second; connections still allowed stay open.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { type ProxyEnv, connectTunnel, metric, startProxyEnv, until } from '../support/proxy.js';

let env: ProxyEnv;
let echo: net.Server;
let echoPort: number;
beforeAll(async () => {
  env = await startProxyEnv();
  echo = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await env?.close();
  echo?.close();
});

async function openEcho(host: string, localAddress: string): Promise<{ sock: net.Socket; closed: () => number }> {
  const sock = await connectTunnel(env.proxyPort, `${host}:${echoPort}`, { localAddress });
  let at = 0;
  sock.on('close', () => (at = Date.now()));
  sock.on('error', () => {});
  const pong = await new Promise<string>((r) => {
    sock.once('data', (d) => r(d.toString()));
    sock.write('ping');
  });
  expect(pong).toBe('ping');
  return { sock, closed: () => at };
}

describe('policy changes cut open tunnels', () => {
  it('tightening the policy closes the now-denied tunnel within 1 s and keeps the allowed one', async () => {
    const p = await env.gw.api.policy('tighten', { allowed_hostnames: ['allowed.test', 'other.test'] });
    await env.gw.api.devbox(p, ['127.0.0.20'], 'tighten-box');
    const cut = await openEcho('other.test', '127.0.0.20');
    const kept = await openEcho('allowed.test', '127.0.0.20');
    const before = await metric(env, 'egress_connections_cut_total', { door: 'connect', reason: 'not_allowlisted' });
    const t0 = Date.now();
    await env.gw.api.updatePolicy(p, { allowed_hostnames: ['allowed.test'] });
    expect(await until(() => cut.closed() > 0, 1500)).toBe(true);
    expect(cut.closed() - t0).toBeLessThan(1000);
    expect(kept.closed()).toBe(0);
    const pong = await new Promise<string>((r) => {
      kept.sock.once('data', (d) => r(d.toString()));
      kept.sock.write('still here');
    });
    expect(pong).toBe('still here');
    kept.sock.destroy();
    expect(await metric(env, 'egress_connections_cut_total', { door: 'connect', reason: 'not_allowlisted' })).toBe(before + 1);
  });

  it('attaching the devbox to another policy cuts what the new one denies', async () => {
    const p1 = await env.gw.api.policy('first', { allowed_hostnames: ['allowed.test'] });
    const p2 = await env.gw.api.policy('second', { allowed_hostnames: ['other.test'] });
    const box = await env.gw.api.devbox(p1, ['127.0.0.21'], 'attach-box');
    const t = await openEcho('allowed.test', '127.0.0.21');
    const t0 = Date.now();
    await env.gw.api.attach(box.id, p2);
    expect(await until(() => t.closed() > 0, 1500)).toBe(true);
    expect(t.closed() - t0).toBeLessThan(1000);
  });

  it('a devbox shutting down closes all its tunnels (and plain HTTP in flight)', async () => {
    const p = await env.gw.api.policy('bye', { allowed_hostnames: ['allowed.test', 'other.test'] });
    const box = await env.gw.api.devbox(p, ['127.0.0.22'], 'bye-box');
    const a = await openEcho('allowed.test', '127.0.0.22');
    const b = await openEcho('other.test', '127.0.0.22');
    const t0 = Date.now();
    await env.gw.api.shutdown(box.id);
    expect(await until(() => a.closed() > 0 && b.closed() > 0, 1500)).toBe(true);
    expect(Math.max(a.closed(), b.closed()) - t0).toBeLessThan(1000);
    expect(await metric(env, 'egress_connections_cut_total', { door: 'connect', reason: 'unknown_client' })).toBeGreaterThanOrEqual(2);
  });

  it('a tunnel at its idle time-out is closed (gateway with --idle-timeout-ms 300)', async () => {
    const e2 = await startProxyEnv({ 'idle-timeout-ms': '300' });
    try {
      const sock = await connectTunnel(e2.proxyPort, `allowed.test:${echoPort}`, { localAddress: '127.0.0.2' });
      const t0 = Date.now();
      await new Promise((r) => sock.on('close', r));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      await e2.close();
    }
  });
});
