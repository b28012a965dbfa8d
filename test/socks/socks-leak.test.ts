/** Hundreds of aborted handshakes leave no socket, no tracked connection, and a working door. */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDomain } from '../fixtures/socks5-cases.js';
import { socksLiveClients } from '../../src/doors/socks5/door.js';
import { type SocksEnv, httpGet, metric, socksConnect, startSocksEnv } from '../support/socks.js';
import { eventually } from '../support/wait.js';

let env: SocksEnv;

beforeAll(async () => {
  env = await startSocksEnv({ 'header-timeout-ms': '2000' });
  const p = await env.gw.api.policy('leak', { allowed_hostnames: ['allowed.test'] });
  await env.gw.api.devbox(p, ['127.0.0.2']);
});
afterAll(() => env?.close());

/** Connects, sends some bytes, then aborts in the given way; resolves when the socket is gone. */
function abort(port: number, send: Buffer, how: 'destroy' | 'end' | 'reset', afterMs: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    s.on('error', () => {});
    s.on('close', () => resolve());
    s.on('data', () => {});
    s.on('connect', () => {
      if (send.length) s.write(send);
      setTimeout(() => {
        if (how === 'destroy') s.destroy();
        else if (how === 'end') s.end();
        else s.resetAndDestroy();
      }, afterMs);
    });
  });
}

describe('SOCKS5 leak check', () => {
  it('300 aborted handshakes at every stage, then no live sockets and the door still answers', async () => {
    const port = env.socksPort;
    const full = connectDomain('allowed.test', env.origin.port);
    const stages = [
      Buffer.alloc(0),
      Buffer.from([5]),
      Buffer.from([5, 1, 0]),
      full.subarray(0, 8),
      full, // aborted while the gateway decides / dials / after success
      Buffer.from([5, 1, 2, 1, 3, 0x61]),
    ];
    const hows = ['destroy', 'end', 'reset'] as const;
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      jobs.push(abort(port, stages[i % stages.length]!, hows[i % hows.length]!, i % 4));
      if (jobs.length % 50 === 0) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs);
    expect(await eventually(() => socksLiveClients() === 0, 5000)).toBe(true);
    expect(await metric(env.gw, 'egress_active_connections', { door: 'socks5' })).toBe(0);

    const sock = await socksConnect(port, { host: 'allowed.test', port: env.origin.port }, { localAddress: '127.0.0.2' });
    expect((await httpGet(sock, 'allowed.test', '/alive')).status).toBe(200);
    expect(await eventually(() => socksLiveClients() === 0, 3000)).toBe(true);
  });

  it('half-open tunnels idle past the handshake stay tracked until closed, then are released', async () => {
    const socks = await Promise.all(Array.from({ length: 20 }, () => socksConnect(env.socksPort, { host: 'allowed.test', port: env.origin.port }, { localAddress: '127.0.0.2' })));
    expect(await eventually(async () => (await metric(env.gw, 'egress_active_connections', { door: 'socks5' })) === 20)).toBe(true);
    for (const s of socks) s.destroy();
    expect(await eventually(async () => (await metric(env.gw, 'egress_active_connections', { door: 'socks5' })) === 0)).toBe(true);
    expect(await eventually(() => socksLiveClients() === 0)).toBe(true);
  });
});
